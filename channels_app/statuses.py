"""The normalised receipt vocabulary shared by every provider."""

import hashlib
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

    ``connection_ids`` are the connections whose secret verified the receipt (the receipt
    endpoint fills them in; more than one only when connections share a secret), or the
    connection that sent the message for the sandbox's and a poll's receipts. A receipt may
    change only messages sent through one of them: one with none changes nothing.
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
    connection_ids: tuple[str, ...] = ()
    price: Price | None = None  # what the provider says the message cost, when it says

    @property
    def is_watermark(self) -> bool:
        return self.watermark is not None

    @property
    def dedupe_key(self) -> str:
        """Equal for the same news through the same connections. The connections are part of
        it so that a receipt forged through one connection cannot pre-empt (as a duplicate)
        the genuine receipt of another's message."""
        scope = self.provider
        if len(self.connection_ids) == 1:
            scope += f"@{self.connection_ids[0]}"
        elif self.connection_ids:
            joined = ",".join(sorted(self.connection_ids)).encode()
            scope += f"@{hashlib.sha256(joined).hexdigest()[:16]}"
        if self.watermark is not None:
            stamp = int(self.watermark.timestamp() * 1000)
            return f"{scope}:wm:{self.recipient}:{stamp}:{self.status}"
        return f"{scope}:{self.provider_message_id}:{self.status}"
