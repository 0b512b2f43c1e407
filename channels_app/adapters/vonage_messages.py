"""Any channel relayed through Vonage's Messages API v1, so existing Vonage customers get
Dispatch-style timers and read conditions back.

Docs: developer.vonage.com/en/api/messages (spec v1.20.0) and
.../concepts/guides/authentication (reference/vonage-api.md §3).

Config: ``application_id`` and ``private_key`` (PEM; the JWT RS256 we send with every request),
``signature_secret`` (the account's, for HS256-signed status webhooks), optional ``api_key``.
"""

import time
import uuid
from typing import Any, ClassVar

import jwt

from channels_app import http
from channels_app.adapters.base import Adapter, OutboundMessage, SendResult, unsupported_content
from channels_app.errors import ErrorKind, ErrorRule, ProviderError

# v1 answers errors by HTTP status with an RFC 7807 body.
ERRORS: dict[int, ErrorRule] = {
    401: ErrorRule.configuration(1110, "Unauthorized"),
    402: ErrorRule.configuration(1070, "Payment required"),
    403: ErrorRule.configuration(1140, "Forbidden"),
    404: ErrorRule.configuration(1380, "Not found"),
    422: ErrorRule.permanent(1020, "Invalid params"),
    429: ErrorRule.transient(1000, "Throttled"),
}
FALLBACK_5XX = ErrorRule.transient(1331, "Provider error")
FALLBACK_4XX = ErrorRule.permanent(1331, "Provider error")

# Our (Vonage v0.1) channel names onto v1's; v1 renamed Viber.
CHANNELS = {"viber_service_msg": "viber_service"}
# Which content types v1 carries per channel (spec v1.20.0 message_type lists).
CONTENT = {
    "sms": {"text"},
    "mms": {"image", "video", "audio"},
    "messenger": {"text", "image", "audio", "video", "file"},
    "viber_service": {"text", "image", "video", "file"},
    "whatsapp": {"text", "image", "audio", "video", "file", "template", "custom"},
}
JWT_LIFETIME = 300


class VonageMessagesAdapter(Adapter):
    name: ClassVar[str] = "vonage_messages"
    channels: ClassVar[frozenset[str]] = frozenset(
        {"sms", "mms", "messenger", "viber_service_msg", "viber_service", "whatsapp"}
    )
    default_base_url: ClassVar[str] = "https://api.nexmo.com"
    required_config: ClassVar[tuple[str, ...]] = ("application_id", "private_key")

    def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        try:
            token = self.jwt(config)
        except (ValueError, TypeError, jwt.PyJWTError):
            raise ProviderError(
                ErrorKind.CONFIGURATION, "private_key is not a usable RSA key", code=1110
            ) from None
        response = http.request(
            "POST",
            f"{self.base_url(config)}/v1/messages",
            config=config,
            json=self.payload(message, config),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        body = http.json_body(response)
        if response.ok:
            if body is None or not body.get("message_uuid"):
                raise http.unreadable_success(response)
            return SendResult([str(body["message_uuid"])], {"status": response.status_code})
        status = response.status_code
        rule = ERRORS.get(status, FALLBACK_5XX if status >= 500 else FALLBACK_4XX)
        detail = str((body or {}).get("detail") or (body or {}).get("title") or "")[:200]
        raise ProviderError(
            rule.kind,
            f"{rule.reason}: {detail}" if detail else rule.reason,
            code=rule.code,
            provider_code=str(status),
            retry_after=http.retry_after(response),
        )

    @staticmethod
    def jwt(config: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "application_id": config["application_id"],
            "iat": now,
            "exp": now + JWT_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, config["private_key"], algorithm="RS256")

    def payload(self, message: OutboundMessage, config: dict[str, Any]) -> dict[str, Any]:
        channel = CHANNELS.get(message.channel, message.channel)
        kind = message.content_type
        if kind not in CONTENT.get(channel, set()):
            raise unsupported_content(self.name, message)
        payload: dict[str, Any] = {
            "channel": channel,
            "to": message.to.lstrip("+"),
            "from": message.from_,
            "message_type": kind,
            "client_ref": message.client_ref,
        }
        content = message.content
        if kind == "text":
            payload["text"] = content.get("text", "")
        elif kind == "custom":
            payload["custom"] = content.get("custom") or {}
        else:
            payload[kind] = content.get(kind) or {}
        options = message.channel_options()
        if options:
            payload[channel] = options
        if config.get("receipt_url"):
            payload["webhook_url"] = config["receipt_url"]
            payload["webhook_version"] = "v1"
        return payload
