"""Messenger receipts: `message_deliveries` and `message_reads` webhook events.

Docs: developers.facebook.com/docs/messenger-platform/webhooks and
.../webhook-events/message-deliveries, .../message-reads (reference/providers.md §1).
Both are watermarks: every message sent to that person before ``watermark`` (ms) is delivered
(or read). A delivery event may also list ``mids``.
"""

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse

from channels_app.receipts.base import (
    Incoming,
    MalformedReceipt,
    ReceiptParser,
    SignatureInvalid,
    SignatureMissing,
    hmac_hex,
    same,
)
from channels_app.statuses import ReceiptEvent, ReceiptStatus


def verify_hub_signature(incoming: Incoming, app_secret: str) -> None:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`` (Meta)."""
    header = incoming.headers.get("X-Hub-Signature-256", "")
    if not header:
        raise SignatureMissing("X-Hub-Signature-256 missing")
    if not app_secret:
        raise SignatureInvalid("connection has no app_secret")
    scheme, _, signature = header.partition("=")
    if scheme != "sha256" or not same(signature.lower(), hmac_hex(app_secret, incoming.raw)):
        raise SignatureInvalid("X-Hub-Signature-256 does not verify")


def hub_handshake(request: HttpRequest, configs: list[dict[str, Any]]) -> HttpResponse:
    """Meta's subscription check: echo ``hub.challenge`` if ``hub.verify_token`` is ours."""
    token = request.GET.get("hub.verify_token", "")
    known = [str(c.get("verify_token", "")) for c in configs if c.get("verify_token")]
    if request.GET.get("hub.mode") == "subscribe" and token and any(same(token, k) for k in known):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponse("verification failed", status=403, content_type="text/plain")


def json_object(incoming: Incoming) -> dict[str, Any]:
    try:
        body = json.loads(incoming.raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedReceipt("body is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedReceipt("body is not a JSON object")
    return body


def from_ms(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MalformedReceipt(f"bad timestamp {value!r}") from None


class MessengerReceiptParser(ReceiptParser):
    provider: ClassVar[str] = "messenger"

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        verify_hub_signature(incoming, str(config.get("app_secret", "")))

    def get(self, request: HttpRequest, configs: list[dict[str, Any]]) -> HttpResponse:
        return hub_handshake(request, configs)

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
