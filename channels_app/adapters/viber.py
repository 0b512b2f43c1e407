"""Viber REST Bot API, for the `viber_service_msg` channel.

Docs: developers.viber.com/docs/api/rest-bot-api/, Viber/viber-bot-python
(reference/providers.md §2). Failures come back as HTTP 200 with a non-zero ``status``.
Viber addresses people by Viber user id, never by phone number: ``to.id`` (or ``to.number``)
must hold the user id.

Config: ``auth_token`` (send, and the key of receipt signatures), ``sender_name`` (≤ 28
characters), optional ``sender_avatar``.
"""

from typing import Any, ClassVar

from channels_app import http
from channels_app.adapters.base import Adapter, OutboundMessage, SendResult, unsupported_content
from channels_app.errors import ErrorRule, error_from_table

ERRORS: dict[int, ErrorRule] = {
    1: ErrorRule.configuration(1380, "invalidUrl"),
    2: ErrorRule.configuration(1110, "invalidAuthToken"),
    3: ErrorRule.permanent(1020, "badData"),
    4: ErrorRule.permanent(1010, "missingData"),
    5: ErrorRule.permanent(1300, "receiverNotRegistered"),
    6: ErrorRule.permanent(1300, "receiverNotSubscribed"),
    7: ErrorRule.configuration(1060, "publicAccountBlocked"),
    8: ErrorRule.configuration(1060, "publicAccountNotFound"),
    9: ErrorRule.configuration(1060, "publicAccountSuspended"),
    10: ErrorRule.configuration(1140, "webhookNotSet"),
    11: ErrorRule.permanent(1310, "receiverNoSuitableDevice"),
    12: ErrorRule.transient(1000, "tooManyRequests"),
    13: ErrorRule.permanent(1440, "apiVersionNotSupported"),
    14: ErrorRule.permanent(1440, "incompatibleWithVersion"),
    15: ErrorRule.configuration(1060, "publicAccountNotAuthorized"),
    **{
        status: ErrorRule.permanent(1140, "not allowed for this account")
        for status in range(16, 21)
    },
}
FALLBACK = ErrorRule.transient(1331, "generalError")


class ViberAdapter(Adapter):
    name: ClassVar[str] = "viber"
    channels: ClassVar[frozenset[str]] = frozenset({"viber_service_msg", "viber_service"})
    default_base_url: ClassVar[str] = "https://chatapi.viber.com"
    required_config: ClassVar[tuple[str, ...]] = ("auth_token",)

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        response = await http.request(
            "POST",
            f"{self.base_url(config)}/pa/send_message",
            config=config,
            json=self.payload(message, config),
            headers={"X-Viber-Auth-Token": config["auth_token"]},
        )
        body = http.json_body(response)
        if not response.ok:
            raise http.status_error(response)
        if body is None or "status" not in body:
            raise http.unreadable_success(response)
        if body["status"] != 0:
            raise error_from_table(
                ERRORS,
                body["status"],
                fallback=FALLBACK,
                detail=str(body.get("status_message", ""))[:200],
                retry_after=http.retry_after(response),
            )
        # message_token is a 64-bit integer: keep it as a string (providers.md §2).
        return SendResult([str(body["message_token"])], {"status": 0})

    def payload(self, message: OutboundMessage, config: dict[str, Any]) -> dict[str, Any]:
        sender = {"name": str(config.get("sender_name") or message.from_ or "Notifications")[:28]}
        if config.get("sender_avatar"):
            sender["avatar"] = config["sender_avatar"]
        payload: dict[str, Any] = {
            "receiver": message.to,
            "sender": sender,
            "tracking_data": message.client_ref,
            "min_api_version": 1,
        }
        content = message.content
        if message.content_type == "text":
            payload.update(type="text", text=content.get("text", ""))
        elif message.content_type == "image":
            image = content.get("image") or {}
            payload.update(type="picture", media=image.get("url"), text=image.get("caption", ""))
        elif message.content_type in ("video", "file"):
            media = content.get(message.content_type) or {}
            payload.update(type=message.content_type, media=media.get("url"), size=0)
            if message.content_type == "file":
                payload["file_name"] = media.get("name") or media.get("url", "").rsplit("/")[-1]
        else:
            raise unsupported_content(self.name, message)
        return payload
