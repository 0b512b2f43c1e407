"""Meta's Graph API: Messenger and WhatsApp Cloud (X-Hub-Signature-256 receipts)."""

import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

from channels_app.simulator.providers.base import (
    Answer,
    Request,
    Sent,
    SimProvider,
    Webhook,
    now_ms,
)
from channels_app.statuses import ReceiptStatus


def hub_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Messenger(SimProvider):
    name = "messenger"
    path = re.compile(r"^/v[\d.]+/(me|\d+)/messages$")

    def matches(self, request: Request) -> bool:
        return bool(self.path.match(request.path)) and "messaging_product" not in request.json()

    def recipient(self, request: Request) -> str:
        return str((request.json().get("recipient") or {}).get("id", ""))

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        body = request.json()
        return Sent(
            self.name,
            [f"m_{uuid.uuid4().hex}"],
            self.recipient(request),
            "page-1",
            "messenger",
            (webhook.secret if webhook else "") or default_secret,
            webhook.url if webhook else "",
            extra={"messaging_type": body.get("messaging_type"), "tag": body.get("tag")},
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(200, {"recipient_id": sent.to, "message_id": sent.ids[0]})

    def rejected(self) -> Answer:
        return Answer(
            400,
            {
                "error": {
                    "message": "(#551) This person isn't available right now.",
                    "type": "OAuthException",
                    "code": 551,
                    "fbtrace_id": "sim",
                }
            },
        )

    def transient(self, retry_after: float | None = None) -> Answer:
        answer = super().transient(retry_after)
        answer.body = {"error": {"message": "Temporary send message failure", "code": 1200}}
        return answer

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        person, page = {"id": sent.to}, {"id": sent.sender}
        if status == ReceiptStatus.DELIVERED:
            event = {
                "sender": person,
                "recipient": page,
                "delivery": {"mids": sent.ids, "watermark": now_ms()},
            }
        elif status == ReceiptStatus.READ:
            # Reads carry no mids: only a watermark (providers.md §1).
            event = {
                "sender": person,
                "recipient": page,
                "timestamp": now_ms(),
                "read": {"watermark": now_ms()},
            }
        else:
            return []  # Messenger has no failure receipt
        body = json.dumps(
            {
                "object": "page",
                "entry": [{"id": sent.sender, "time": now_ms(), "messaging": [event]}],
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": hub_signature(sent.secret, body),
        }
        return [(sent.callback_url, headers, body)]


class WhatsApp(SimProvider):
    name = "whatsapp"
    path = re.compile(r"^/v[\d.]+/(\w+)/messages$")

    def matches(self, request: Request) -> bool:
        return bool(self.path.match(request.path)) and "messaging_product" in request.json()

    def recipient(self, request: Request) -> str:
        return str(request.json().get("to", ""))

    def client_ref(self, request: Request) -> str:
        return str(request.json().get("biz_opaque_callback_data", ""))

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        body = request.json()
        phone_number_id = self.path.match(request.path)
        assert phone_number_id is not None  # matches() chose this provider by this path
        return Sent(
            self.name,
            [f"wamid.{uuid.uuid4().hex}"],
            self.recipient(request),
            phone_number_id.group(1),
            "whatsapp",
            (webhook.secret if webhook else "") or default_secret,
            webhook.url if webhook else "",
            client_ref=str(body.get("biz_opaque_callback_data", "")),
            extra={"type": body.get("type")},
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": sent.to, "wa_id": sent.to}],
                "messages": [{"id": sent.ids[0]}],
            },
        )

    def rejected(self) -> Answer:
        return Answer(
            400,
            {
                "error": {
                    "message": "(#131026) Message undeliverable",
                    "code": 131026,
                    "fbtrace_id": "sim",
                }
            },
        )

    def transient(self, retry_after: float | None = None) -> Answer:
        answer = super().transient(retry_after)
        answer.body = {"error": {"message": "Service unavailable", "code": 131016}}
        return answer

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        item: dict[str, Any] = {
            "id": sent.ids[0],
            "status": {ReceiptStatus.UNDELIVERABLE: "failed"}.get(status, status.value),
            "timestamp": str(int(time.time())),
            "recipient_id": sent.to,
            "biz_opaque_callback_data": sent.client_ref,
        }
        if status == ReceiptStatus.UNDELIVERABLE:
            item["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": sent.sender},
            "statuses": [item],
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}],
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": hub_signature(sent.secret, body),
        }
        return [(sent.callback_url, headers, body)]
