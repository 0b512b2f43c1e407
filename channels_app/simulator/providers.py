"""What each simulated provider says: its send answers, its errors, and its signed receipts.

Each class knows one provider's wire format (reference/providers.md, vonage-api.md) and
nothing about the server around it. Signatures are computed here independently of the
receipt parsers, from the providers' documented algorithms.
"""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt

from channels_app.statuses import ReceiptStatus


@dataclass
class Sent:
    """One accepted message, as the simulated provider remembers it."""

    provider: str
    ids: list[str]
    to: str
    sender: str
    channel: str
    secret: str  # the key its receipts are signed with
    callback_url: str
    client_ref: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "submitted"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class Request:
    method: str
    path: str
    headers: Any
    raw: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.raw or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.raw.decode(), keep_blank_values=True).items()}

    def bearer(self) -> str:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else ""

    def basic(self) -> tuple[str, str]:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return "", ""
        user, _, password = base64.b64decode(token).decode().partition(":")
        return user, password


@dataclass
class Webhook:
    """Where a provider account's receipts go (its dashboard / set_webhook setting)."""

    url: str
    secret: str = ""
    signature_method: str = "md5hash"


class SimProvider:
    name = ""

    def matches(self, request: Request) -> bool:
        raise NotImplementedError

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        raise NotImplementedError

    def accepted(self, sent: Sent) -> Answer:
        raise NotImplementedError

    def rejected(self) -> Answer:
        raise NotImplementedError

    def transient(self, retry_after: float | None = None) -> Answer:
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return Answer(503, {"error": "service unavailable"}, headers)

    def recipient(self, request: Request) -> str:
        raise NotImplementedError

    def client_ref(self, request: Request) -> str:
        """The sender's own reference carried by the send, where the API has one ("" if not)."""
        return ""

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        """The signed callbacks (url, headers, body) that report ``status`` for ``sent``."""
        raise NotImplementedError


def hub_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


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


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    signed = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()


TWILIO_STATUS = {
    ReceiptStatus.DELIVERED: "delivered",
    ReceiptStatus.READ: "read",
    ReceiptStatus.UNDELIVERABLE: "undelivered",
    ReceiptStatus.SUBMITTED: "sent",
}


class Twilio(SimProvider):
    name = "twilio"
    path = re.compile(r"^/2010-04-01/Accounts/(\w+)/Messages\.json$")
    fetch = re.compile(r"^/2010-04-01/Accounts/(\w+)/Messages/(\w+)\.json$")

    def matches(self, request: Request) -> bool:
        return request.method == "POST" and bool(self.path.match(request.path))

    def recipient(self, request: Request) -> str:
        return request.form().get("To", "")

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        form = request.form()
        account_sid, auth_token = request.basic()
        kind = "mms" if form.get("MediaUrl") else "sms"
        return Sent(
            self.name,
            [("MM" if kind == "mms" else "SM") + uuid.uuid4().hex],
            form.get("To", ""),
            form.get("From", ""),
            kind,
            auth_token,
            form.get("StatusCallback") or (webhook.url if webhook else ""),
            extra={"account_sid": account_sid},
        )

    def accepted(self, sent: Sent) -> Answer:
        return Answer(201, self.resource(sent))

    def resource(self, sent: Sent) -> dict[str, Any]:
        status = {"submitted": "sent"}.get(
            sent.status, TWILIO_STATUS.get(ReceiptStatus(sent.status), sent.status)
        )
        return {
            "sid": sent.ids[0],
            "account_sid": sent.extra.get("account_sid"),
            "to": sent.to,
            "from": sent.sender,
            "status": status,
            "error_code": 30003 if status == "undelivered" else None,
            "num_segments": "1",
            "price": None,
        }

    def rejected(self) -> Answer:
        return Answer(
            400,
            {
                "code": 21211,
                "message": "The 'To' number is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
        )

    def transient(self, retry_after: float | None = None) -> Answer:
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return Answer(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, headers)

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        if not sent.callback_url:
            return []
        params = {
            "MessageSid": sent.ids[0],
            "SmsSid": sent.ids[0],
            "MessageStatus": TWILIO_STATUS[status],
            "SmsStatus": TWILIO_STATUS[status],
            "AccountSid": sent.extra.get("account_sid", ""),
            "From": sent.sender,
            "To": sent.to,
            "ApiVersion": "2010-04-01",
        }
        if status == ReceiptStatus.UNDELIVERABLE:
            params["ErrorCode"] = "30003"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(sent.secret, sent.callback_url, params),
        }
        return [(sent.callback_url, headers, urlencode(params).encode())]


class VonageMessages(SimProvider):
    name = "vonage_messages"

    def matches(self, request: Request) -> bool:
        return request.path == "/v1/messages"

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


PROVIDERS: list[SimProvider] = [
    WhatsApp(),
    Messenger(),
    Viber(),
    VonageSms(),
    Twilio(),
    VonageMessages(),
]
