"""Google RBM webhook events: a Pub/Sub-style envelope whose ``message.data`` is the event,
base64-encoded, signed in ``X-Goog-Signature``.

Docs: developers.google.com/business-communications/rcs-business-messaging/guides/integrate/
webhooks ("Verify incoming messages": base64 HMAC-SHA512, keyed with the webhook's client
token, over the *decoded* ``message.data``; the webhook is confirmed by echoing ``secret`` for
a POST ``{"clientToken", "secret"}``) and guides/build/events (user events ``DELIVERED`` and
``READ`` name our ``messageId``; server events ``TTL_EXPIRATION_REVOKED`` /
``TTL_EXPIRATION_REVOKE_FAILED``). What we could not confirm: docs/providers.md.

The signature covers no timestamp and RBM retries for up to 7 days, so no age check applies;
a replay is a duplicate and changes nothing.
"""

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse

from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    ReceiptParser,
    SignatureInvalid,
    SignatureMissing,
    connection_configs,
    json_object,
    same,
)
from channels_app.statuses import ReceiptEvent, ReceiptStatus

STATUSES = {"DELIVERED": ReceiptStatus.DELIVERED, "READ": ReceiptStatus.READ}
# The message expired (our ttl) and RBM withdrew it: it will never be delivered.
EXPIRED_REVOKED = "TTL_EXPIRATION_REVOKED"


def rbm_signature(client_token: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(client_token.encode(), data, hashlib.sha512).digest()).decode()


def event_data(body: dict[str, Any]) -> bytes:
    """The decoded ``message.data`` of an envelope (raises MalformedReceipt)."""
    message = body.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        raise MalformedReceipt("message.data missing")
    try:
        return base64.b64decode(message["data"], validate=True)
    except (binascii.Error, ValueError):
        raise MalformedReceipt("message.data is not base64") from None


class GoogleRbmReceiptParser(ReceiptParser):
    provider: ClassVar[str] = "google_rbm"

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        signature = incoming.headers.get("X-Goog-Signature", "")
        if not signature:
            raise SignatureMissing("X-Goog-Signature missing")
        token = str(config.get("client_token", ""))
        if not token:
            raise SignatureInvalid("connection has no client_token")
        try:
            data = event_data(json_object(incoming))
        except MalformedReceipt:
            raise SignatureInvalid("nothing signed to verify") from None
        if not same(signature, rbm_signature(token, data)):
            raise SignatureInvalid("X-Goog-Signature does not verify")

    def answer_post(self, request: HttpRequest, connection_id: str | None) -> HttpResponse | None:
        """The webhook confirmation: echo ``secret`` when ``clientToken`` is a connection's."""
        if len(request.body or b"") > 4096:
            return None  # not a confirmation; the receipt path caps and refuses it
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(body, dict) or "clientToken" not in body or "message" in body:
            return None
        token = str(body.get("clientToken", ""))
        tokens = [
            str(c.get("client_token") or "")
            for c in connection_configs(self.provider, connection_id)
        ]
        if token and any(same(token, known) for known in tokens if known):
            return HttpResponse(str(body.get("secret", "")), content_type="text/plain")
        return HttpResponse(status=403)

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        try:
            event = json.loads(event_data(json_object(incoming)))
        except (ValueError, UnicodeDecodeError):
            raise MalformedReceipt("message.data is not a JSON event") from None
        if not isinstance(event, dict):
            raise MalformedReceipt("message.data is not a JSON object")
        kind, message_id = event.get("eventType"), event.get("messageId")
        if not kind:
            return []  # an inbound user message, a capability answer: nothing we track
        if not message_id:
            raise MalformedReceipt("messageId missing")
        if kind in STATUSES:
            status, code, reason = STATUSES[kind], None, ""
        elif kind == EXPIRED_REVOKED:
            status, code, reason = ReceiptStatus.UNDELIVERABLE, 1360, "TTL expired; revoked"
        else:
            return []  # IS_TYPING, TTL_EXPIRATION_REVOKE_FAILED (a DELIVERED may follow), ...
        phone = str(event.get("senderPhoneNumber") or event.get("phoneNumber") or "")
        return [
            ReceiptEvent(
                self.provider,
                str(message_id),
                status,
                client_ref=str(message_id),  # the messageId is our attempt id
                timestamp=rfc3339(event.get("sendTime")),
                error_code=code,
                error_reason=reason,
                raw=event,
                recipient=phone.lstrip("+"),
            )
        ]


def rfc3339(value: Any) -> datetime | None:
    """Google timestamps carry up to nanoseconds; Python 3.11 parses up to microseconds."""
    if not isinstance(value, str) or not value:
        return None
    head, dot, rest = value.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        value = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
