"""Signed receipt requests, built the way each provider builds them (independently of the
parsers under test; Twilio's through the `twilio` package's own RequestValidator)."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import jwt
from twilio.request_validator import RequestValidator

from channels_app.simulator.providers import vonage_sms_sig


@dataclass
class SignedReceipt:
    body: bytes
    content_type: str
    headers: dict[str, str]


def receipt_body(provider: str, message_id: str, status: str = "delivered") -> dict:
    """A provider receipt saying ``message_id`` reached ``status`` (delivered/read/failed)."""
    now_ms = 1750000000000  # fixed: the same receipt twice is a duplicate
    if provider == "messenger":
        event = {"sender": {"id": "psid-1"}, "recipient": {"id": "page-1"}}
        if status == "read":
            event["read"] = {"watermark": now_ms}
        else:
            event["delivery"] = {"mids": [message_id], "watermark": now_ms}
        return {"object": "page", "entry": [{"id": "page-1", "time": now_ms, "messaging": [event]}]}
    if provider == "whatsapp":
        item = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": "447700900000",
        }
        value = {"messaging_product": "whatsapp", "statuses": [item]}
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": "waba", "changes": [{"field": "messages", "value": value}]}],
        }
    if provider == "viber":
        event = {"read": "seen"}.get(status, status)
        return {
            "event": event,
            "timestamp": now_ms,
            "message_token": int(message_id),
            "user_id": "viber-user",
        }
    if provider == "vonage_sms":
        return {
            "msisdn": "447700900000",
            "to": "Shop",
            "messageId": message_id,
            "status": status,
            "err-code": "0",
            "client-ref": "",
            "message-timestamp": "2025-01-01 10:00:00",
        }
    if provider == "twilio":
        return {
            "MessageSid": message_id,
            "SmsSid": message_id,
            "MessageStatus": status,
            "AccountSid": "AC0123456789",
            "To": "+447700900000",
            "From": "+447700900002",
            "ApiVersion": "2010-04-01",
        }
    if provider == "google_rbm":
        kind = {"delivered": "DELIVERED", "read": "READ"}.get(status, status.upper())
        return {
            "senderPhoneNumber": "+447700900000",
            "eventType": kind,
            "eventId": f"evt-{message_id}-{kind}",
            "messageId": message_id,
            "sendTime": "2025-01-01T10:00:00.123456789Z",
            "agentId": "acme-agent",
        }
    if provider == "vonage_messages":
        return {
            "message_uuid": message_id,
            "to": "447700900000",
            "from": "447700900003",
            "channel": "sms",
            "timestamp": "2025-01-01T10:00:00Z",
            "status": status,
        }
    raise ValueError(provider)


def sign(provider: str, payload: dict | bytes, secret: str, url: str) -> SignedReceipt:
    """Sign ``payload`` for ``provider`` with ``secret`` as if sent to ``url``."""
    if provider in ("messenger", "whatsapp"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return SignedReceipt(body, "application/json", {"X-Hub-Signature-256": f"sha256={digest}"})
    if provider == "viber":
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return SignedReceipt(body, "application/json", {"X-Viber-Content-Signature": digest})
    if provider == "vonage_sms":
        if isinstance(payload, bytes):
            return SignedReceipt(payload, "application/x-www-form-urlencoded", {})
        params = {**payload, "timestamp": str(int(time.time())), "nonce": uuid.uuid4().hex}
        params["sig"] = vonage_sms_sig(params, secret, "sha256")
        return SignedReceipt(urlencode(params).encode(), "application/x-www-form-urlencoded", {})
    if provider == "twilio":
        params = {} if isinstance(payload, bytes) else payload
        body = payload if isinstance(payload, bytes) else urlencode(payload).encode()
        signature = RequestValidator(secret).compute_signature(url, params)
        return SignedReceipt(
            body, "application/x-www-form-urlencoded", {"X-Twilio-Signature": signature}
        )
    if provider == "google_rbm":
        # RBM signs the decoded `message.data` (base64 HMAC-SHA512 keyed with the client token).
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        digest = hmac.new(secret.encode(), data, hashlib.sha512).digest()
        envelope = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": "1234567890",
                "publishTime": "2025-01-01T10:00:00.200Z",
            },
            "subscription": "projects/rbm-acme/subscriptions/rbm-acme",
        }
        return SignedReceipt(
            json.dumps(envelope).encode(),
            "application/json",
            {"X-Goog-Signature": base64.b64encode(digest).decode()},
        )
    if provider == "vonage_messages":
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        token = jwt.encode(
            {
                "iat": int(time.time()),
                "jti": str(uuid.uuid4()),
                "iss": "Vonage",
                "payload_hash": hashlib.sha256(body).hexdigest(),
            },
            secret,
            algorithm="HS256",
        )
        return SignedReceipt(body, "application/json", {"Authorization": f"Bearer {token}"})
    raise ValueError(provider)


def strip_signature(provider: str, signed: SignedReceipt) -> SignedReceipt:
    if provider == "vonage_sms":
        body = b"&".join(p for p in signed.body.split(b"&") if not p.startswith(b"sig="))
        return SignedReceipt(body, signed.content_type, {})
    return SignedReceipt(signed.body, signed.content_type, {})


def tamper(signed: SignedReceipt, message_id: str) -> SignedReceipt:
    """The same signature over a body naming another message."""
    if "X-Goog-Signature" in signed.headers:  # the id is inside base64 `message.data`
        envelope = json.loads(signed.body)
        data = base64.b64decode(envelope["message"]["data"])
        data = data.replace(message_id.encode(), message_id[:-1].encode() + b"9")
        envelope["message"]["data"] = base64.b64encode(data).decode()
        return SignedReceipt(json.dumps(envelope).encode(), signed.content_type, signed.headers)
    body = signed.body.replace(message_id.encode(), message_id[:-1].encode() + b"9")
    assert body != signed.body
    return SignedReceipt(body, signed.content_type, signed.headers)
