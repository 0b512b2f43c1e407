"""Vonage: the SMS API (signed receipts) and the Messages API (JWT-signed receipts)."""

import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt

from channels_app.simulator.providers.base import Answer, Request, Sent, SimProvider, Webhook
from channels_app.statuses import ReceiptStatus


def vonage_sms_sig(params: dict[str, str], secret: str, method: str) -> str:
    """The signing algorithm of vonage-python-sdk ``Auth.sign_params`` (md5hash or HMAC)."""
    hasher = hashlib.md5() if method == "md5hash" else hmac.new(secret.encode(), digestmod=method)
    for key in sorted(params):
        value = str(params[key]).replace("&", "_").replace("=", "_")
        hasher.update(f"&{key}={value}".encode())
    if method == "md5hash":
        hasher.update(secret.encode())
    return hasher.hexdigest()


class VonageSms(SimProvider):
    name = "vonage_sms"
    part_length = 153  # a concatenated GSM part (160 minus the UDH)

    def matches(self, request: Request) -> bool:
        return request.path == "/sms/json"

    def recipient(self, request: Request) -> str:
        return request.form().get("to", "")

    def client_ref(self, request: Request) -> str:
        return request.form().get("client-ref", "")

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        form = request.form()
        text = form.get("text", "")
        parts = max(1, -(-len(text) // self.part_length)) if len(text) > 160 else 1
        return Sent(
            self.name,
            [uuid.uuid4().hex[:16].upper() for _ in range(parts)],
            form.get("to", ""),
            form.get("from", ""),
            "sms",
            (webhook.secret if webhook else "") or default_secret,
            form.get("callback") or (webhook.url if webhook else ""),
            client_ref=form.get("client-ref", ""),
            extra={
                "api_key": form.get("api_key", ""),
                "method": webhook.signature_method if webhook else "md5hash",
            },
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(
            200,
            {
                "message-count": str(len(sent.ids)),
                "messages": [
                    {
                        "to": sent.to,
                        "message-id": mid,
                        "status": "0",
                        "remaining-balance": "3.14",
                        "message-price": "0.0333",
                        "network": "23410",
                        "client-ref": sent.client_ref,
                    }
                    for mid in sent.ids
                ],
            },
        )

    def rejected(self) -> Answer:
        return Answer(
            200,
            {
                "message-count": "1",
                "messages": [{"status": "6", "error-text": "Unroutable message - rejected"}],
            },
        )

    def transient(self, retry_after: float | None = None) -> Answer:
        return Answer(
            200, {"message-count": "1", "messages": [{"status": "1", "error-text": "Throttled"}]}
        )

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        dlr_status, err = {
            ReceiptStatus.DELIVERED: ("delivered", "0"),
            ReceiptStatus.UNDELIVERABLE: ("failed", "12"),
        }.get(status, ("", ""))
        if not dlr_status:
            return []  # SMS has no read receipts
        callbacks = []
        for mid in sent.ids:
            params = {
                "msisdn": sent.to,
                "to": sent.sender,
                "network-code": "23410",
                "messageId": mid,
                "price": "0.0333",
                "status": dlr_status,
                "scts": time.strftime("%y%m%d%H%M"),
                "err-code": err,
                "api-key": sent.extra.get("api_key", ""),
                "client-ref": sent.client_ref,
                "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
                "timestamp": str(int(time.time())),
                "nonce": uuid.uuid4().hex,
            }
            params["sig"] = vonage_sms_sig(params, sent.secret, sent.extra.get("method", "md5hash"))
            callbacks.append(
                (
                    sent.callback_url,
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    urlencode(params).encode(),
                )
            )
        return callbacks


# What the simulated Messages API charges per message, reported in status webhooks' `usage`.
MESSAGES_PRICES = {"rcs": "0.0150", "sms": "0.0333"}
DEFAULT_PRICE = "0.0100"


class VonageMessages(SimProvider):
    name = "vonage_messages"
    revoke_path = re.compile(r"^/v1/messages/([0-9a-fA-F-]{36})$")

    def matches(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/v1/messages"

    def rejects_later(self, request: Request) -> bool:
        """A phone without RCS: Vonage's documented flow is "RCS submitted → RCS rejected"."""
        return request.json().get("channel") == "rcs"

    def other(self, request: Request, sim: Any) -> Answer | None:
        """``PATCH /v1/messages/{uuid}`` ``{"status": "revoked"}``: Vonage "does not guarantee
        that a message will be revoked", so it answers 200 whether or not it was in time."""
        match = self.revoke_path.match(request.path)
        if request.method != "PATCH" or not match:
            return None
        if request.json().get("status") != "revoked":
            return Answer(422, {"title": "Invalid params", "detail": "status must be revoked"})
        sent = sim.messages.get(match.group(1))
        outcome, fault = sim.revoke(self.name, match.group(1), sent.to if sent else "")
        if fault is not None:
            return fault
        if outcome == "unknown":
            return Answer(404, {"title": "Not Found", "detail": "message not found"})
        return Answer(200, {})

    def recipient(self, request: Request) -> str:
        return str(request.json().get("to", ""))

    def client_ref(self, request: Request) -> str:
        return str(request.json().get("client_ref", ""))

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        body = request.json()
        claims = (
            jwt.decode(request.bearer(), options={"verify_signature": False})
            if request.bearer()
            else {}
        )
        channel = str(body.get("channel", "sms"))
        return Sent(
            self.name,
            [str(uuid.uuid4())],
            str(body.get("to", "")),
            str(body.get("from", "")),
            channel,
            (webhook.secret if webhook else "") or default_secret,
            str(body.get("webhook_url") or (webhook.url if webhook else "")),
            client_ref=str(body.get("client_ref", "")),
            extra={
                "application_id": claims.get("application_id", ""),
                "message_type": body.get("message_type"),
            },
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(202, {"message_uuid": sent.ids[0]})

    def rejected(self) -> Answer:
        return Answer(
            422,
            {
                "type": "https://developer.vonage.com/api-errors/messages#1150",
                "title": "Invalid params",
                "detail": "The value of `to` is invalid",
                "instance": uuid.uuid4().hex,
            },
        )

    def transient(self, retry_after: float | None = None) -> Answer:
        headers = {"Retry-After": str(int(retry_after or 1))}
        return Answer(
            429,
            {
                "type": "https://developer.vonage.com/api-errors#throttled",
                "title": "Rate Limit Hit",
            },
            headers,
        )

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        payload: dict[str, Any] = {
            "message_uuid": sent.ids[0],
            "to": sent.to,
            "from": sent.sender,
            "channel": sent.channel,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "status": status.value,
            "client_ref": sent.client_ref,
        }
        if status == ReceiptStatus.UNDELIVERABLE:
            payload["error"] = {
                "type": "https://developer.vonage.com/api-errors/messages#1260",
                "title": "1260",
                "detail": "Destination unreachable",
            }
        if status == ReceiptStatus.REJECTED:
            payload["error"] = {
                "type": "https://developer.vonage.com/api-errors/messages#1300",
                "title": "1300",
                "detail": "Not part of the provider network",
            }
        if status in (ReceiptStatus.DELIVERED, ReceiptStatus.UNDELIVERABLE):
            price = MESSAGES_PRICES.get(sent.channel, DEFAULT_PRICE)
            payload["usage"] = {"currency": "EUR", "price": price}
        body = json.dumps(payload).encode()
        token = jwt.encode(
            {
                "iat": int(time.time()),
                "jti": str(uuid.uuid4()),
                "iss": "Vonage",
                "payload_hash": hashlib.sha256(body).hexdigest(),
                "application_id": sent.extra.get("application_id", ""),
            },
            sent.secret,
            algorithm="HS256",
        )
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return [(sent.callback_url, headers, body)]
