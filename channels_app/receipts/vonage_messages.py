"""Vonage Messages API status webhooks, signed with a JWT (HS256, the account's signature
secret) whose ``payload_hash`` binds it to the body.

Docs: developer.vonage.com/en/getting-started/concepts/webhooks#signed-webhooks and the
Messages v1 spec's `messageStatus` (reference/vonage-api.md §2.6, §3).
"""

import hashlib
from typing import Any, ClassVar

import jwt

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


class VonageMessagesReceiptParser(ReceiptParser):
    provider: ClassVar[str] = "vonage_messages"

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        header = incoming.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise SignatureMissing("Authorization: Bearer <JWT> missing")
        secret = str(config.get("signature_secret", ""))
        if not secret:
            raise SignatureInvalid("connection has no signature_secret")
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["iat", "payload_hash"]}
            )
        except jwt.PyJWTError:
            raise SignatureInvalid("JWT does not verify") from None
        if not same(str(claims["payload_hash"]).lower(), hashlib.sha256(incoming.raw).hexdigest()):
            raise SignatureInvalid("payload_hash does not match the body")
        check_age(float(claims["iat"]))

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        body = json_object(incoming)
        uuid, status = body.get("message_uuid"), body.get("status")
        if not uuid or not status:
            raise MalformedReceipt("message_uuid or status missing")
        try:
            normalised = ReceiptStatus(str(status))
        except ValueError:
            return []  # e.g. a status this service does not track
        code, reason = self.error(body.get("error"))
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return [
            ReceiptEvent(
                self.provider,
                str(uuid),
                normalised,
                client_ref=str(body.get("client_ref") or ""),
                error_code=code,
                error_reason=reason,
                raw=body,
                recipient=str(body.get("to") or ""),
                price=Price.reported(usage.get("price"), usage.get("currency")),
            )
        ]

    @staticmethod
    def error(error: Any) -> tuple[int | None, str]:
        """v0.1 sends ``{code, reason}``; v1 sends ``{type, title: "<code>", detail}``."""
        if not isinstance(error, dict):
            return None, ""
        raw = error.get("code", error.get("title"))
        try:
            code = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            code = None
        return code, str(error.get("reason") or error.get("detail") or "")[:200]
