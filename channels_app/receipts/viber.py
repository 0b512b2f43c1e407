"""Viber REST Bot API callbacks: `delivered`, `seen`, `failed`.

Docs: developers.viber.com/docs/api/rest-bot-api/#callbacks, Viber/viber-bot-python
`viberbot/api/api.py` (signature) (reference/providers.md §2). `seen` is sent once when the
person reads their unread messages: it reads that message and every earlier one (a watermark).
"""

from typing import Any, ClassVar

from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    ReceiptParser,
    SignatureInvalid,
    SignatureMissing,
    from_ms,
    hmac_hex,
    json_object,
    same,
)
from channels_app.statuses import ReceiptEvent, ReceiptStatus

STATUSES = {
    "delivered": ReceiptStatus.DELIVERED,
    "seen": ReceiptStatus.READ,
    "failed": ReceiptStatus.UNDELIVERABLE,
}


class ViberReceiptParser(ReceiptParser):
    provider: ClassVar[str] = "viber"

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        """``X-Viber-Content-Signature``: hex HMAC-SHA256 of the raw body, keyed with the token."""
        signature = incoming.headers.get("X-Viber-Content-Signature", "")
        if not signature:
            raise SignatureMissing("X-Viber-Content-Signature missing")
        token = str(config.get("auth_token", ""))
        if not token or not same(signature.lower(), hmac_hex(token, incoming.raw)):
            raise SignatureInvalid("X-Viber-Content-Signature does not verify")

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        body = json_object(incoming)
        status = STATUSES.get(str(body.get("event", "")))
        if "event" not in body:
            raise MalformedReceipt("no event")
        if status is None:
            return []  # webhook check, subscribed, conversation_started, message...
        if body.get("message_token") is None:
            raise MalformedReceipt("no message_token")
        when = from_ms(body.get("timestamp"))
        person = str(body.get("user_id") or body.get("chat_id") or "")
        token = str(body["message_token"])  # a 64-bit integer: keep it as a string
        failed = status == ReceiptStatus.UNDELIVERABLE
        events = [
            ReceiptEvent(
                self.provider,
                token,
                status,
                timestamp=when,
                error_code=1040 if failed else None,
                error_reason=str(body.get("desc") or "Invalid message")[:200] if failed else "",
                raw=body,
                recipient=person,
            )
        ]
        if status == ReceiptStatus.READ and person:
            events.append(
                ReceiptEvent(
                    self.provider,
                    "",
                    status,
                    timestamp=when,
                    raw=body,
                    recipient=person,
                    watermark=when,
                )
            )
        return events
