"""The normalised receipt vocabulary shared by every provider."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class ReceiptStatus(StrEnum):
    """Vonage's message status vocabulary; every provider's receipt is mapped onto it."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    READ = "read"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class Price:
    """What a provider says one message cost: ``amount`` a decimal string, ``currency`` ISO 4217.

    Only ever built from what the provider reported (:meth:`reported`); no price is ``None``,
    never a made-up zero.
    """

    amount: str
    currency: str

    @classmethod
    def reported(cls, amount: Any, currency: Any) -> "Price | None":
        """The price from a provider's amount and currency fields, or None when either is
        missing or the amount is not a finite decimal. Twilio reports charges as negative
        amounts (``"-0.00750"``): the cost is its magnitude."""
        if amount is None or amount == "" or not currency:
            return None
        try:
            value = Decimal(str(amount).strip())
        except InvalidOperation:
            return None
        if not value.is_finite():
            return None
        return cls(str(abs(value)), str(currency).strip().upper()[:3])

    def as_usage(self) -> dict[str, str]:
        """Vonage's ``usage`` object."""
        return {"price": self.amount, "currency": self.currency}


@dataclass(frozen=True)
class ReceiptEvent:
    """One provider receipt, normalised.

    ``client_ref`` is the attempt id we gave the provider, when the provider echoes it; else the
    receipt is matched by ``(provider, provider_message_id)``.

    A *watermark* receipt (Messenger's delivery/read watermarks, Viber's ``seen``) covers every
    message sent to ``recipient`` through ``provider`` at or before ``watermark``; it may carry
    no ``provider_message_id`` at all.
    """

    provider: str
    provider_message_id: str
    status: ReceiptStatus
    client_ref: str = ""
    timestamp: datetime | None = None
    error_code: int | None = None
    error_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    recipient: str = ""
    watermark: datetime | None = None
    price: Price | None = None  # what the provider says the message cost, when it says

    @property
    def is_watermark(self) -> bool:
        return self.watermark is not None

    @property
    def dedupe_key(self) -> str:
        if self.watermark is not None:
            stamp = int(self.watermark.timestamp() * 1000)
            return f"{self.provider}:wm:{self.recipient}:{stamp}:{self.status}"
        return f"{self.provider}:{self.provider_message_id}:{self.status}"
