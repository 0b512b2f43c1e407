"""Messenger receipts: `message_deliveries` and `message_reads` webhook events.

Docs: developers.facebook.com/docs/messenger-platform/webhooks and
.../webhook-events/message-deliveries, .../message-reads (reference/providers.md §1).
Both are watermarks: every message sent to that person before ``watermark`` (ms) is delivered
(or read). A delivery event may also list ``mids``.
"""

from typing import Any, ClassVar

from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    MetaReceiptParser,
    from_ms,
    json_object,
)
from channels_app.statuses import ReceiptEvent, ReceiptStatus


class MessengerReceiptParser(MetaReceiptParser):
    provider: ClassVar[str] = "messenger"

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        body = json_object(incoming)
        if body.get("object") != "page" or not isinstance(body.get("entry"), list):
            raise MalformedReceipt("not a page webhook")
        events: list[ReceiptEvent] = []
        for entry in body["entry"]:
            for item in (entry or {}).get("messaging") or []:
                events.extend(self.normalise(item))
        return events

    def normalise(self, item: dict[str, Any]) -> list[ReceiptEvent]:
        person = str((item.get("sender") or {}).get("id", ""))
        if "delivery" in item:
            delivery = item["delivery"] or {}
            events = [
                ReceiptEvent(self.provider, str(mid), ReceiptStatus.DELIVERED, raw=item)
                for mid in delivery.get("mids") or []
            ]
            if delivery.get("watermark") is not None and person:
                events.append(
                    self.watermark(person, delivery["watermark"], ReceiptStatus.DELIVERED, item)
                )
            return events
        if "read" in item and person:
            return [
                self.watermark(
                    person, (item["read"] or {}).get("watermark"), ReceiptStatus.READ, item
                )
            ]
        return []  # messages, echoes, postbacks: not receipts

    def watermark(
        self, person: str, value: Any, status: ReceiptStatus, raw: dict[str, Any]
    ) -> ReceiptEvent:
        when = from_ms(value)
        return ReceiptEvent(
            self.provider, "", status, timestamp=when, raw=raw, recipient=person, watermark=when
        )
