"""Vonage (Nexmo) SMS API.

Docs: developer.vonage.com/en/api/sms, Nexmo/api-specification `definitions/sms.yml`
(reference/providers.md §3). The answer is always HTTP 200; each part carries its own status.

Config: ``api_key``, ``api_secret`` (send), ``signature_secret`` and ``signature_method``
(``md5hash`` default, or ``md5``/``sha1``/``sha256``/``sha512`` HMAC) for signed DLRs.

Prices: the send answer's ``message-price`` (per part) and the DLR's ``price`` carry an amount
but no currency; Vonage bills in EUR (the only ``usage.currency`` the Messages API names), so
:data:`CURRENCY` is assumed (docs/providers.md).
"""

from decimal import Decimal
from typing import Any, ClassVar

from channels_app import http
from channels_app.adapters.base import Adapter, OutboundMessage, SendResult, unsupported_content
from channels_app.errors import ErrorKind, ErrorRule, ProviderError, error_from_table
from channels_app.statuses import Price

CURRENCY = "EUR"

# `messages[].status` of the send response. The Vonage codes are the same table's
# asynchronous twins (reference/vonage-api.md §2.7: 1000 + 10 * status, mostly).
ERRORS: dict[str, ErrorRule] = {
    "1": ErrorRule.transient(1000, "Throttled"),
    "2": ErrorRule.permanent(1010, "Missing params"),
    "3": ErrorRule.permanent(1020, "Invalid params"),
    "4": ErrorRule.configuration(1110, "Invalid credentials"),
    "5": ErrorRule.transient(1030, "Internal error"),
    "6": ErrorRule.permanent(1040, "Invalid message"),
    "7": ErrorRule.permanent(1050, "Number barred"),
    "8": ErrorRule.configuration(1060, "Partner account barred"),
    "9": ErrorRule.configuration(1070, "Partner quota exceeded"),
    "10": ErrorRule.transient(1331, "Too many existing binds"),
    "11": ErrorRule.configuration(1080, "Account not enabled for REST"),
    "12": ErrorRule.permanent(1090, "Message too long"),
    "14": ErrorRule.configuration(1110, "Invalid signature"),
    "15": ErrorRule.permanent(1120, "Illegal sender address"),
    "22": ErrorRule.permanent(1020, "Invalid network code"),
    "23": ErrorRule.configuration(1020, "Invalid callback URL"),
    "29": ErrorRule.permanent(1160, "Non-whitelisted destination"),
    "32": ErrorRule.configuration(1110, "Signature and api secret disallowed"),
    "33": ErrorRule.permanent(1240, "Number de-activated"),
}
FALLBACK = ErrorRule.transient(1331, "Provider error")

# DLR `err-code` (failures only), for the receipt parser.
DLR_ERRORS: dict[str, ErrorRule] = {
    "1": ErrorRule.permanent(1330, "Unknown"),
    "2": ErrorRule.transient(1180, "Absent subscriber (temporary)"),
    "3": ErrorRule.permanent(1190, "Absent subscriber (permanent)"),
    "4": ErrorRule.permanent(1280, "Call barred by user"),
    "5": ErrorRule.permanent(1200, "Portability error"),
    "6": ErrorRule.permanent(1210, "Anti-spam rejection"),
    "7": ErrorRule.transient(1220, "Handset busy"),
    "8": ErrorRule.transient(1230, "Network error"),
    "9": ErrorRule.permanent(1240, "Illegal number"),
    "10": ErrorRule.permanent(1040, "Invalid message"),
    "11": ErrorRule.permanent(1250, "Unroutable"),
    "12": ErrorRule.permanent(1260, "Destination unreachable"),
    "13": ErrorRule.permanent(1270, "Age restriction"),
    "14": ErrorRule.permanent(1280, "Blocked by carrier"),
    "15": ErrorRule.transient(1290, "Pre-paid insufficient funds"),
    "99": ErrorRule.transient(1331, "General error"),
}


class VonageSmsAdapter(Adapter):
    name: ClassVar[str] = "vonage_sms"
    channels: ClassVar[frozenset[str]] = frozenset({"sms"})
    default_base_url: ClassVar[str] = "https://rest.nexmo.com"
    required_config: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        if message.content_type != "text":
            raise unsupported_content(self.name, message)
        text = str(message.content.get("text", ""))
        form = {
            "api_key": config["api_key"],
            "api_secret": config["api_secret"],
            "from": message.from_,
            "to": message.to.lstrip("+"),
            "text": text,
            "type": "text" if text.isascii() else "unicode",
            "client-ref": message.client_ref,  # echoed in every DLR
        }
        callback = config.get("callback") or config.get("receipt_url")
        if callback:
            form["callback"] = callback
        response = await http.request(
            "POST", f"{self.base_url(config)}/sms/json", config=config, data=form
        )
        body = http.json_body(response)
        if not response.ok:
            raise http.status_error(response)
        if body is None or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise http.unreadable_success(response)
        return self.result(body["messages"], http.retry_after(response))

    def result(self, parts: list[dict[str, Any]], retry_after: float | None) -> SendResult:
        """Every part must be accepted; one accepted part means the person may get something."""
        accepted = [str(p["message-id"]) for p in parts if str(p.get("status")) == "0"]
        failed = [p for p in parts if str(p.get("status")) != "0"]
        if failed and not accepted:
            first = failed[0]
            return_error = error_from_table(
                ERRORS,
                str(first.get("status")),
                fallback=FALLBACK,
                detail=str(first.get("error-text", ""))[:200],
                retry_after=retry_after,
            )
            raise return_error
        if failed:
            # Part of a long text left: resending would duplicate it. The accepted parts' DLRs
            # decide, and a missing part leaves the message short of `delivered`.
            raise ProviderError(
                ErrorKind.PERMANENT,
                f"only {len(accepted)} of {len(parts)} parts accepted",
                code=1331,
                provider_code="partial",
            )
        return SendResult(
            accepted, {"message-count": str(len(parts))}, price=self.total_price(parts)
        )

    @staticmethod
    def total_price(parts: list[dict[str, Any]]) -> Price | None:
        """The sum of every part's ``message-price``, or None unless every part reports one."""
        prices = [Price.reported(p.get("message-price"), CURRENCY) for p in parts]
        if not prices or any(price is None for price in prices):
            return None
        total = sum((Decimal(price.amount) for price in prices if price), Decimal(0))
        return Price(str(total), CURRENCY)
