"""Twilio Programmable Messaging: SMS and MMS.

Docs: twilio.com/docs/messaging/api/message-resource, /docs/api/errors (reference/providers.md §4).

Config: ``account_sid``, ``auth_token`` (send and receipt signatures), optional
``messaging_service_sid`` (used instead of the step's `from`), ``status_callback`` (our receipt
URL; the registry fills ``receipt_url`` when ``PUBLIC_BASE_URL`` is set).
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

from channels_app import http
from channels_app.adapters.base import Adapter, OutboundMessage, SendResult, unsupported_content
from channels_app.errors import ErrorRule, ProviderError, error_from_table
from channels_app.statuses import Price, ReceiptEvent, ReceiptStatus

# Send-time errors (`code` in the error body) and delivery errors (`ErrorCode` in callbacks).
ERRORS: dict[int, ErrorRule] = {
    20003: ErrorRule.configuration(1110, "Authentication failed"),
    20429: ErrorRule.transient(1000, "Throttled"),
    21211: ErrorRule.permanent(1170, "Invalid To number"),
    21408: ErrorRule.configuration(1140, "Region not enabled"),
    21610: ErrorRule.permanent(1240, "Recipient unsubscribed"),
    21614: ErrorRule.permanent(1170, "Not a mobile number"),
    21635: ErrorRule.permanent(1310, "Landline"),
    30001: ErrorRule.transient(1000, "Queue overflow"),
    30002: ErrorRule.configuration(1060, "Account suspended"),
    30003: ErrorRule.transient(1260, "Destination unreachable"),
    30004: ErrorRule.permanent(1280, "Blocked"),
    30005: ErrorRule.permanent(1170, "Unknown handset"),
    30006: ErrorRule.permanent(1310, "Landline or unreachable carrier"),
    30007: ErrorRule.permanent(1210, "Carrier filtering"),
    30008: ErrorRule.transient(1330, "Unknown error"),
}
FALLBACK = ErrorRule.permanent(1331, "Provider error")

# MessageStatus values (twilio-python `MessageInstance.Status`) onto our vocabulary.
STATUSES: dict[str, ReceiptStatus] = {
    "queued": ReceiptStatus.SUBMITTED,
    "accepted": ReceiptStatus.SUBMITTED,
    "scheduled": ReceiptStatus.SUBMITTED,
    "sending": ReceiptStatus.SUBMITTED,
    "sent": ReceiptStatus.SUBMITTED,
    "delivered": ReceiptStatus.DELIVERED,
    "partially_delivered": ReceiptStatus.DELIVERED,  # UNCONFIRMED in providers.md
    "read": ReceiptStatus.READ,
    "undelivered": ReceiptStatus.UNDELIVERABLE,
    "failed": ReceiptStatus.REJECTED,
    "canceled": ReceiptStatus.REJECTED,
}


class TwilioAdapter(Adapter):
    name: ClassVar[str] = "twilio"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "mms"})
    default_base_url: ClassVar[str] = "https://api.twilio.com"
    required_config: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token")
    supports_polling: ClassVar[bool] = True

    def messages_url(self, config: dict[str, Any]) -> str:
        return f"{self.base_url(config)}/2010-04-01/Accounts/{config['account_sid']}/Messages"

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        response = await http.request(
            "POST",
            self.messages_url(config) + ".json",
            config=config,
            data=self.form(message, config),
            auth=(config["account_sid"], config["auth_token"]),
        )
        body = http.json_body(response)
        if response.ok:
            if body is None or not body.get("sid"):
                raise http.unreadable_success(response)
            return SendResult(
                [str(body["sid"])],
                {"status": body.get("status")},
                price=Price.reported(body.get("price"), body.get("price_unit")),
            )
        raise self.error(response, body)

    def form(self, message: OutboundMessage, config: dict[str, Any]) -> dict[str, Any]:
        form: dict[str, Any] = {"To": "+" + message.to.lstrip("+")}
        if config.get("messaging_service_sid"):
            form["MessagingServiceSid"] = config["messaging_service_sid"]
        else:
            sender = message.from_
            form["From"] = "+" + sender.lstrip("+") if sender.lstrip("+").isdigit() else sender
        content = message.content
        if message.content_type == "text":
            form["Body"] = content.get("text", "")
        elif message.content_type == "image" and message.channel == "mms":
            image = content.get("image") or {}
            form["MediaUrl"] = image.get("url", "")
            if image.get("caption"):
                form["Body"] = image["caption"]
        else:
            raise unsupported_content(self.name, message)
        callback = config.get("status_callback") or config.get("receipt_url")
        if callback:
            form["StatusCallback"] = callback
        return form

    def error(self, response: Any, body: dict[str, Any] | None) -> ProviderError:
        code = (body or {}).get("code")
        retry_after = http.retry_after(response)
        if response.status_code == 429:
            code = 20429
        if isinstance(code, int) and code in ERRORS:
            return error_from_table(
                ERRORS, code, fallback=FALLBACK, detail="", retry_after=retry_after
            )
        return ProviderError(
            http.kind_for_status(response.status_code),
            f"HTTP {response.status_code}: {str((body or {}).get('message', ''))[:200]}",
            code=1331,
            provider_code=str(code or response.status_code),
            retry_after=retry_after,
        )

    async def poll(self, provider_message_id: str, config: dict[str, Any]) -> list[ReceiptEvent]:
        """Fetch the Message resource: the backstop for a status callback that never came."""
        self.require_config(config)
        response = await http.request(
            "GET",
            f"{self.messages_url(config)}/{provider_message_id}.json",
            config=config,
            auth=(config["account_sid"], config["auth_token"]),
        )
        body = http.json_body(response)
        if not response.ok or body is None:
            raise self.error(response, body)
        price = Price.reported(body.get("price"), body.get("price_unit"))
        return [
            receipt_from_twilio(
                body.get("status"), body.get("error_code"), provider_message_id, body, price
            )
        ]


def receipt_from_twilio(
    status: Any,
    error_code: Any,
    provider_message_id: str,
    raw: dict[str, Any],
    price: Price | None = None,
) -> ReceiptEvent:
    """One Twilio status (callback or polled resource) as a normalised receipt. ``price`` is
    the resource's ``price``/``price_unit`` (negative for a charge; null until Twilio knows)."""
    normalised = STATUSES.get(str(status or "").lower(), ReceiptStatus.SUBMITTED)
    code, reason = None, ""
    if normalised in (ReceiptStatus.REJECTED, ReceiptStatus.UNDELIVERABLE):
        try:
            rule = ERRORS.get(int(error_code), FALLBACK)
        except (TypeError, ValueError):
            rule = FALLBACK
        code, reason = rule.code, rule.reason
    return ReceiptEvent(
        provider="twilio",
        provider_message_id=provider_message_id,
        status=normalised,
        timestamp=datetime.now(UTC),
        error_code=code,
        error_reason=reason,
        raw=raw,
        price=price,
    )
