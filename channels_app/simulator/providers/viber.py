"""Viber's REST bot API."""

import hashlib
import hmac
import json
import uuid

from channels_app.simulator.providers.base import (
    Answer,
    Request,
    Sent,
    SimProvider,
    Webhook,
    now_ms,
)
from channels_app.statuses import ReceiptStatus


class Viber(SimProvider):
    name = "viber"

    def matches(self, request: Request) -> bool:
        return request.path == "/pa/send_message"

    def recipient(self, request: Request) -> str:
        return str(request.json().get("receiver", ""))

    def client_ref(self, request: Request) -> str:
        return str(request.json().get("tracking_data", ""))

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        token = request.headers.get("X-Viber-Auth-Token", "")
        return Sent(
            self.name,
            [str(uuid.uuid4().int >> 65)],
            self.recipient(request),
            "bot",
            "viber_service_msg",
            token,
            webhook.url if webhook else "",
            extra={"type": request.json().get("type")},
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(
            200,
            {
                "status": 0,
                "status_message": "ok",
                "message_token": int(sent.ids[0]),
                "chat_hostname": "SN-SIM_",
            },
        )

    def rejected(self) -> Answer:
        return Answer(200, {"status": 6, "status_message": "receiverNotSubscribed"})

    def transient(self, retry_after: float | None = None) -> Answer:
        return Answer(200, {"status": 12, "status_message": "tooManyRequests"})

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        event = {
            ReceiptStatus.DELIVERED: "delivered",
            ReceiptStatus.READ: "seen",
            ReceiptStatus.UNDELIVERABLE: "failed",
        }.get(status)
        if event is None:
            return []
        payload = {
            "event": event,
            "timestamp": now_ms(),
            "message_token": int(sent.ids[0]),
            "user_id": sent.to,
        }
        if event == "failed":
            payload["desc"] = "message validation failed"
        body = json.dumps(payload).encode()
        signature = hmac.new(sent.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}
        return [(sent.callback_url, headers, body)]
