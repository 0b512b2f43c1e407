"""WhatsApp Business Cloud API: text, media and template messages.

Docs: developers.facebook.com/docs/whatsapp/cloud-api/reference/messages and
.../support/error-codes (reference/providers.md §5).

Config: ``access_token``, ``phone_number_id`` (send), ``app_secret`` (receipt signatures),
``verify_token`` (webhook handshake), optional ``api_version``.
"""

from typing import Any, ClassVar

from channels_app import http
from channels_app.adapters.base import OutboundMessage, SendResult, unsupported_content
from channels_app.adapters.graph import GraphAdapter
from channels_app.errors import ErrorRule, ProviderError, error_from_table

ERRORS: dict[int, ErrorRule] = {
    0: ErrorRule.configuration(1110, "Authentication failed"),
    190: ErrorRule.configuration(1370, "Access token expired"),
    3: ErrorRule.configuration(1140, "Missing permission"),
    10: ErrorRule.configuration(1140, "Permission denied"),
    4: ErrorRule.transient(1000, "Throttled"),
    80007: ErrorRule.transient(1000, "Throttled"),
    130429: ErrorRule.transient(1000, "Throttled"),
    131056: ErrorRule.transient(1241, "Too many send requests to this recipient"),
    # Spam rate limits last longer than any failover window (providers.md §5).
    131048: ErrorRule.permanent(1210, "Spam rate limit"),
    2: ErrorRule.transient(1331, "Service unavailable"),
    131000: ErrorRule.transient(1331, "Unknown error"),
    131016: ErrorRule.transient(1331, "Service overloaded"),
    100: ErrorRule.permanent(1020, "Invalid params"),
    131008: ErrorRule.permanent(1010, "Missing params"),
    131009: ErrorRule.permanent(1020, "Invalid params"),
    131051: ErrorRule.permanent(1440, "Unsupported message type"),
    131026: ErrorRule.permanent(1300, "Not part of provider network"),
    131047: ErrorRule.permanent(1340, "Outside allowed window"),
    131049: ErrorRule.permanent(1210, "Not delivered to maintain a healthy ecosystem"),
    131021: ErrorRule.permanent(1430, "Sender equals recipient"),
    131030: ErrorRule.configuration(1160, "Recipient not in allowed list"),
    131031: ErrorRule.configuration(1060, "Account locked"),
    368: ErrorRule.configuration(1060, "Account restricted"),
    131042: ErrorRule.configuration(1070, "Payment issue"),
    **{code: ErrorRule.permanent(1022, "Invalid template") for code in range(132000, 132017)},
}
# Codes 200-299 are permission errors (providers.md §5).
PERMISSION = ErrorRule.configuration(1140, "Permission denied")
FALLBACK = ErrorRule.permanent(1331, "Provider error")

MEDIA = {"image", "audio", "video", "file"}


def rule_for(code: Any) -> ErrorRule:
    if isinstance(code, int) and 200 <= code <= 299:
        return PERMISSION
    return ERRORS.get(code, FALLBACK)


class WhatsAppAdapter(GraphAdapter):
    name: ClassVar[str] = "whatsapp"
    channels: ClassVar[frozenset[str]] = frozenset({"whatsapp"})
    required_config: ClassVar[tuple[str, ...]] = ("access_token", "phone_number_id")

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        response, body = await self.graph_post(
            config,
            f"{config['phone_number_id']}/messages",
            config["access_token"],
            self.payload(message),
        )
        messages = (body or {}).get("messages") or []
        if not messages or not messages[0].get("id"):
            raise http.unreadable_success(response)
        return SendResult([str(messages[0]["id"])], {"contacts": (body or {}).get("contacts")})

    def graph_error(self, graph: dict[str, Any], retry_after: float | None) -> ProviderError:
        code = graph.get("code")
        rule = rule_for(code)
        detail = (graph.get("error_data") or {}).get("details") or graph.get("message", "")
        return error_from_table(
            {code: rule}, code, fallback=rule, detail=str(detail)[:200], retry_after=retry_after
        )

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.lstrip("+"),
            "biz_opaque_callback_data": message.client_ref,  # echoed in status webhooks
        }
        content = message.content
        kind = message.content_type
        if kind == "text":
            payload.update(
                type="text", text={"preview_url": False, "body": content.get("text", "")}
            )
        elif kind in MEDIA:
            media = content.get(kind) or {}
            wa_type = "document" if kind == "file" else kind
            body: dict[str, Any] = {"link": media.get("url")}
            if media.get("caption") and kind != "audio":
                body["caption"] = media["caption"]
            payload.update(type=wa_type, **{wa_type: body})
        elif kind == "template":
            payload.update(type="template", template=self.template(message))
        elif kind == "custom":
            payload.update(content.get("custom") or {})
        else:
            raise unsupported_content(self.name, message)
        return payload

    @staticmethod
    def template(message: OutboundMessage) -> dict[str, Any]:
        """Vonage's `{name, parameters}` template onto a Cloud API template with one body."""
        template = message.content.get("template") or {}
        policy = (message.channel_options() or {}).get("locale") or "en_US"
        parameters = [
            {"type": "text", "text": str(p.get("default", p) if isinstance(p, dict) else p)}
            for p in template.get("parameters") or []
        ]
        built: dict[str, Any] = {"name": template.get("name", ""), "language": {"code": policy}}
        if parameters:
            built["components"] = [{"type": "body", "parameters": parameters}]
        return built
