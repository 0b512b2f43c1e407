"""The normalised receipt vocabulary shared by every provider."""

from dataclasses import dataclass, field
from datetime import datetime
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

    @property
    def is_watermark(self) -> bool:
        return self.watermark is not None

    @property
    def dedupe_key(self) -> str:
        if self.watermark is not None:
            stamp = int(self.watermark.timestamp() * 1000)
            return f"{self.provider}:wm:{self.recipient}:{stamp}:{self.status}"
        return f"{self.provider}:{self.provider_message_id}:{self.status}"
