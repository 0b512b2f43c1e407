"""WhatsApp Cloud API receipts: the `statuses` of a `messages` webhook change.

Docs: developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components and
.../webhooks/reference/messages/status (reference/providers.md §5). Read implies delivered
(no `delivered` is sent when both happen together); `played` is read for voice messages.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

from channels_app.adapters.whatsapp import rule_for
from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    MetaReceiptParser,
    json_object,
)
from channels_app.statuses import ReceiptEvent, ReceiptStatus

STATUSES = {
    "sent": ReceiptStatus.SUBMITTED,
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.READ,
    "played": ReceiptStatus.READ,
    "failed": ReceiptStatus.UNDELIVERABLE,
}


class WhatsAppReceiptParser(MetaReceiptParser):
    provider: ClassVar[str] = "whatsapp"

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        body = json_object(incoming)
        if body.get("object") != "whatsapp_business_account" or not isinstance(
            body.get("entry"), list
        ):
            raise MalformedReceipt("not a WhatsApp Business Account webhook")
        events = []
        for entry in body["entry"]:
            for change in (entry or {}).get("changes") or []:
                value = (change or {}).get("value") or {}
                for status in value.get("statuses") or []:  # inbound `messages` are not receipts
                    event = self.normalise(status, value)
                    if event is not None:
                        events.append(event)
        return events

    def normalise(self, item: dict[str, Any], value: dict[str, Any]) -> ReceiptEvent | None:
        status = STATUSES.get(str(item.get("status", "")))
        if status is None or not item.get("id"):
            return None
        code, reason = None, ""
        if status == ReceiptStatus.UNDELIVERABLE:
            errors = item.get("errors") or value.get("errors") or [{}]
            rule = rule_for(errors[0].get("code"))
            code, reason = rule.code, rule.reason
        try:
            when = datetime.fromtimestamp(int(item.get("timestamp", 0)), tz=UTC)
        except (TypeError, ValueError, OverflowError):
            raise MalformedReceipt("bad timestamp") from None
        return ReceiptEvent(
            self.provider,
            str(item["id"]),
            status,
            client_ref=str(item.get("biz_opaque_callback_data") or ""),
            timestamp=when,
            error_code=code,
            error_reason=reason,
            raw=item,
            recipient=str(item.get("recipient_id", "")),
        )
