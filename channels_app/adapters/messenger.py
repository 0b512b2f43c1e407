"""Facebook Messenger through the Graph API Send API.

Docs: developers.facebook.com/docs/messenger-platform/reference/send-api and
.../send-api/error-codes (reference/providers.md §1).

Config: ``page_access_token`` (send), ``app_secret`` (receipt signatures), ``verify_token``
(webhook handshake), optional ``api_version`` and ``page_id``.
"""

from typing import Any, ClassVar

from channels_app import http
from channels_app.adapters.base import OutboundMessage, SendResult, unsupported_content
from channels_app.adapters.graph import GraphAdapter
from channels_app.errors import ErrorRule, ProviderError, error_from_table

# Graph errors by (code, error_subcode); a (code, None) row covers every subcode of that code.
ERRORS: dict[tuple[int, int | None], ErrorRule] = {
    (1200, None): ErrorRule.transient(1331, "Temporary send failure"),
    (2, None): ErrorRule.transient(1331, "Unexpected error, retry later"),
    (4, None): ErrorRule.transient(1000, "Throttled"),
    (4, 2018022): ErrorRule.transient(1241, "Too many send requests"),
    (613, None): ErrorRule.transient(1000, "Throttled"),
    (190, None): ErrorRule.configuration(1370, "Expired access token"),
    (10, None): ErrorRule.permanent(1340, "Outside allowed window"),
    (10, 2018278): ErrorRule.permanent(1340, "Outside allowed window"),
    (100, None): ErrorRule.permanent(1020, "Invalid params"),
    (100, 2018001): ErrorRule.permanent(1430, "Invalid recipient"),
    (551, None): ErrorRule.permanent(1300, "Not part of provider network"),
    (200, None): ErrorRule.permanent(1300, "Permission denied for this person"),
    (200, 1545041): ErrorRule.permanent(1300, "Person unavailable"),
    (368, None): ErrorRule.configuration(1060, "Page blocked by policy"),
}
FALLBACK = ErrorRule.permanent(1331, "Provider error")

MEDIA = {"image", "audio", "video", "file"}
# Vonage's `message.messenger.category` onto the Send API's `messaging_type`.
MESSAGING_TYPES = {"response": "RESPONSE", "update": "UPDATE", "message_tag": "MESSAGE_TAG"}


class MessengerAdapter(GraphAdapter):
    name: ClassVar[str] = "messenger"
    channels: ClassVar[frozenset[str]] = frozenset({"messenger"})
    required_config: ClassVar[tuple[str, ...]] = ("page_access_token",)

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        response, body = await self.graph_post(
            config, "me/messages", config["page_access_token"], self.payload(message)
        )
        if body is None or not body.get("message_id"):
            raise http.unreadable_success(response)
        return SendResult([str(body["message_id"])], {"recipient_id": body.get("recipient_id")})

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        options = message.channel_options()
        category = str(options.get("category", "response")).lower()
        payload: dict[str, Any] = {
            "recipient": {"id": message.to},
            "messaging_type": MESSAGING_TYPES.get(category, "RESPONSE"),
            "message": self.content(message),
        }
        if options.get("tag"):
            payload["messaging_type"] = "MESSAGE_TAG"
            payload["tag"] = str(options["tag"]).upper()
        return payload

    def content(self, message: OutboundMessage) -> dict[str, Any]:
        content = message.content
        if message.content_type == "text":
            return {"text": content.get("text", "")}
        if message.content_type in MEDIA:
            url = (content.get(message.content_type) or {}).get("url")
            return {
                "attachment": {
                    "type": message.content_type,
                    "payload": {"url": url, "is_reusable": False},
                }
            }
        if message.content_type == "custom":
            return dict(content.get("custom") or {})
        raise unsupported_content(self.name, message)

    def graph_error(self, graph: dict[str, Any], retry_after: float | None) -> ProviderError:
        code, subcode = graph.get("code"), graph.get("error_subcode")
        key = (code, subcode) if (code, subcode) in ERRORS else (code, None)
        detail = str(graph.get("message", ""))[:200]
        return error_from_table(
            ERRORS, key, fallback=FALLBACK, detail=detail, retry_after=retry_after
        )
