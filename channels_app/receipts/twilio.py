"""Twilio status callbacks: form-encoded POSTs to the message's ``StatusCallback``.

Docs: twilio.com/docs/messaging/guides/track-outbound-message-status and
/docs/usage/webhooks/webhooks-security; twilio-python `twilio/request_validator.py`
(reference/providers.md §4).
"""

import base64
import hashlib
import hmac
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from channels_app.adapters.twilio import receipt_from_twilio
from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    ReceiptParser,
    SignatureInvalid,
    SignatureMissing,
    same,
)
from channels_app.statuses import Price, ReceiptEvent


def twilio_signature(auth_token: str, url: str, params: dict[str, list[str]]) -> str:
    """base64 HMAC-SHA1 over the URL followed by every field name+value, names sorted, then
    each name's values sorted (twilio-python ``RequestValidator.compute_signature``)."""
    signed = url + "".join(
        name + value for name in sorted(params) for value in sorted(params[name])
    )
    digest = hmac.new(auth_token.encode(), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL as called, with and without the default port: Twilio signs either form."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default:
        other = f"{host}:{default}"
    elif parts.port == default:
        other = host
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


class TwilioReceiptParser(ReceiptParser):
    provider: ClassVar[str] = "twilio"

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        signature = incoming.headers.get("X-Twilio-Signature", "")
        if not signature:
            raise SignatureMissing("X-Twilio-Signature missing")
        token = str(config.get("auth_token", ""))
        params = {name: incoming.form().getlist(name) for name in incoming.form()}
        if not token or not any(
            same(signature, twilio_signature(token, url, params))
            for url in url_variants(incoming.url)
        ):
            raise SignatureInvalid("X-Twilio-Signature does not verify")

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        form = incoming.form()
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not status:
            raise MalformedReceipt("MessageSid or MessageStatus missing")
        raw = {name: form.get(name) for name in form}
        # Callbacks are documented without a price; take one if Twilio ever sends it.
        price = Price.reported(form.get("Price"), form.get("PriceUnit"))
        return [receipt_from_twilio(status, form.get("ErrorCode"), sid, raw, price)]
