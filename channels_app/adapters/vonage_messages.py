"""Any channel relayed through Vonage's Messages API v1, so existing Vonage customers get
Dispatch-style timers and read conditions back.

Docs: developer.vonage.com/en/api/messages (spec v1.20.0) and
.../concepts/guides/authentication (reference/vonage-api.md §3).

Config: ``application_id`` and ``private_key`` (PEM; the JWT RS256 we send with every request),
``signature_secret`` (the account's, for HS256-signed status webhooks), optional ``api_key``.

RCS (developer.vonage.com/en/messages/guides/rcs/rcs-message-revocation): v1 sends RCS text,
image, video, file, card, carousel and custom messages with a top-level ``ttl``; a sent RCS
message is revoked with ``PATCH /v1/messages/{message_uuid}`` ``{"status": "revoked"}``, which
"does not guarantee that a message will be revoked" and is possible for 24 h only. A phone
without RCS comes back ``rejected``. The send answer carries no price; status webhooks carry
``usage``.
"""

import time
import uuid
from typing import Any, ClassVar

import jwt

from channels_app import http
from channels_app.adapters.base import (
    Adapter,
    OutboundMessage,
    RevokeOutcome,
    SendResult,
    unsupported_content,
)
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
    "rcs": {"text", "image", "video", "file", "card", "carousel", "custom"},
}
# Channels whose top-level `ttl` v1 takes (Viber's lives in `viber_service.ttl`).
TTL_CHANNELS = {"sms", "mms", "rcs"}
JWT_LIFETIME = 300


class VonageMessagesAdapter(Adapter):
    name: ClassVar[str] = "vonage_messages"
    channels: ClassVar[frozenset[str]] = frozenset(
        {"sms", "mms", "messenger", "viber_service_msg", "viber_service", "whatsapp", "rcs"}
    )
    default_base_url: ClassVar[str] = "https://api.nexmo.com"
    required_config: ClassVar[tuple[str, ...]] = ("application_id", "private_key")
    revocable_channels: ClassVar[frozenset[str]] = frozenset({"rcs"})

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        payload = self.payload(message, config)
        response = await http.request(
            "POST",
            f"{self.base_url(config)}/v1/messages",
            config=config,
            json=payload,
            headers=self.headers(config),
        )
        body = http.json_body(response)
        if response.ok:
            if body is None or not body.get("message_uuid"):
                raise http.unreadable_success(response)
            return SendResult([str(body["message_uuid"])], {"status": response.status_code})
        raise self.error(response, body)

    async def revoke(
        self, provider_message_id: str, recipient: str, config: dict[str, Any]
    ) -> RevokeOutcome:
        """``PATCH /v1/messages/{uuid}``: a 2xx means Vonage took the request (it does not
        promise the message is withdrawn); anything else raises ProviderError."""
        self.require_config(config)
        response = await http.request(
            "PATCH",
            f"{self.base_url(config)}/v1/messages/{provider_message_id}",
            config=config,
            json={"status": "revoked"},
            headers=self.headers(config),
        )
        if response.ok:
            return RevokeOutcome.REVOKED
        raise self.error(response, http.json_body(response))

    def headers(self, config: dict[str, Any]) -> dict[str, str]:
        try:
            token = self.jwt(config)
        except (ValueError, TypeError, jwt.PyJWTError):
            raise ProviderError(
                ErrorKind.CONFIGURATION, "private_key is not a usable RSA key", code=1110
            ) from None
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @staticmethod
    def error(response: Any, body: dict[str, Any] | None) -> ProviderError:
        status = response.status_code
        rule = ERRORS.get(status, FALLBACK_5XX if status >= 500 else FALLBACK_4XX)
        detail = str((body or {}).get("detail") or (body or {}).get("title") or "")[:200]
        return ProviderError(
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
        options = dict(message.channel_options())
        ttl = message.message.get("ttl", options.pop("ttl", None))
        if ttl is not None and channel in TTL_CHANNELS:
            payload["ttl"] = ttl
        if options:
            payload[channel] = options
        if config.get("receipt_url"):
            payload["webhook_url"] = config["receipt_url"]
            payload["webhook_version"] = "v1"
        return payload
