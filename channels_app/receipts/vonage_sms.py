"""Vonage SMS delivery receipts (DLRs), signed with the `sig` parameter.

Docs: developer.vonage.com/en/messaging/sms/guides/delivery-receipts and
.../concepts/guides/signing-messages; vonage-python-sdk `http_client/auth.py`
(`sign_params`/`check_signature`) (reference/providers.md §3). DLRs come as GET query
strings, POST forms or POST JSON, whichever the account chose. Each part of a long text has
its own DLR.
"""

import hashlib
import hmac
from typing import Any, ClassVar

from django.http import HttpRequest

from channels_app.adapters.vonage_sms import CURRENCY, DLR_ERRORS
from channels_app.errors import ErrorKind, ErrorRule
from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    ReceiptParser,
    SignatureInvalid,
    SignatureMissing,
    check_age,
    json_object,
    same,
)
from channels_app.statuses import Price, ReceiptEvent, ReceiptStatus

HMAC_METHODS = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
SUBMITTED = {"accepted", "buffered", "unknown"}
UNKNOWN_ERROR = ErrorRule(ErrorKind.PERMANENT, 1330, "Unknown")


def vonage_sms_signature(params: dict[str, str], secret: str, method: str = "md5hash") -> str:
    """Sorted ``&key=value`` pairs (``&`` and ``=`` in values replaced by ``_``), then plain
    MD5 with the secret appended (``md5hash``) or an HMAC keyed with the secret."""
    signed = "".join(
        f"&{key}={str(params[key]).replace('&', '_').replace('=', '_')}"
        for key in sorted(params)
        if key != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((signed + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), signed.encode(), HMAC_METHODS[method]).hexdigest()


def dlr_params(incoming: Incoming) -> dict[str, str]:
    if incoming.method == "GET":
        return {k: incoming.query.get(k, "") for k in incoming.query}
    if "json" in incoming.content_type:
        body = json_object(incoming)
        return {k: "" if v is None else str(v) for k, v in body.items()}
    form = incoming.form()
    return {k: form.get(k, "") for k in form}


class VonageSmsReceiptParser(ReceiptParser):
    provider: ClassVar[str] = "vonage_sms"

    def accepts_get(self, request: HttpRequest) -> bool:
        return "messageId" in request.GET

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        params = dlr_params(incoming)
        if not params.get("sig"):
            raise SignatureMissing("sig missing: enable signed webhooks for this account")
        secret = str(config.get("signature_secret", ""))
        method = str(config.get("signature_method", "md5hash")).lower()
        if not secret or method not in {"md5hash", *HMAC_METHODS}:
            raise SignatureInvalid("connection has no usable signature_secret/signature_method")
        if not same(params["sig"].lower(), vonage_sms_signature(params, secret, method)):
            raise SignatureInvalid("sig does not verify")
        try:
            check_age(float(params.get("timestamp", "")))
        except ValueError:
            raise SignatureInvalid("timestamp missing") from None

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        params = dlr_params(incoming)
        message_id, status = params.get("messageId"), params.get("status", "").lower()
        if not message_id or not status:
            raise MalformedReceipt("messageId or status missing")
        normalised, code, reason = self.normalise(status, params.get("err-code", ""))
        return [
            ReceiptEvent(
                self.provider,
                message_id,
                normalised,
                client_ref=params.get("client-ref", ""),
                error_code=code,
                error_reason=reason,
                raw={k: v for k, v in params.items() if k not in ("sig", "api-key")},
                recipient=params.get("msisdn", ""),
                price=Price.reported(params.get("price"), CURRENCY),
            )
        ]

    @staticmethod
    def normalise(status: str, err_code: str) -> tuple[ReceiptStatus, int | None, str]:
        if status == "delivered":
            return ReceiptStatus.DELIVERED, None, ""
        if status in SUBMITTED:
            return ReceiptStatus.SUBMITTED, None, ""
        rule = DLR_ERRORS.get(err_code, UNKNOWN_ERROR)
        if status == "rejected":
            return ReceiptStatus.REJECTED, rule.code, rule.reason
        return ReceiptStatus.UNDELIVERABLE, rule.code, rule.reason  # expired, failed
