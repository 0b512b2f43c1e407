"""The sandbox's recipient table (design.md, "Sandbox recipients"): the last digit decides."""

from dataclasses import dataclass
from enum import StrEnum

from channels_app.statuses import ReceiptStatus

# Channels whose sandbox reports `read` (SMS and MMS have no read receipts).
READ_CHANNELS = frozenset({"messenger", "viber_service_msg", "viber_service", "whatsapp", "rcs"})
# Channels whose sent, undelivered messages can be revoked (RCS: Vonage and Google RBM).
REVOCABLE_CHANNELS = frozenset({"rcs"})


class Fate(StrEnum):
    NORMAL = "normal"  # 0, 6-9: delivered, then read where the channel reports read
    REJECTED = "rejected"  # 1
    UNDELIVERABLE = "undeliverable"  # 2
    SILENT = "silent"  # 3
    DELIVERED_ONLY = "delivered_only"  # 4
    FLAKY = "flaky"  # 5: first attempt fails transiently, then as NORMAL


_BY_DIGIT = {
    "1": Fate.REJECTED,
    "2": Fate.UNDELIVERABLE,
    "3": Fate.SILENT,
    "4": Fate.DELIVERED_ONLY,
    "5": Fate.FLAKY,
}


def fate_of(recipient: str) -> Fate:
    last = recipient.strip()[-1:] if recipient else ""
    return _BY_DIGIT.get(last, Fate.NORMAL)


@dataclass(frozen=True)
class PlannedReceipt:
    status: ReceiptStatus
    after: float  # seconds after acceptance
    error_code: int | None = None
    error_reason: str = ""


def planned_receipts(
    fate: Fate, channel: str, deliver_after: float, read_after: float
) -> list[PlannedReceipt]:
    """The receipts the sandbox will post for an accepted message."""
    if fate == Fate.SILENT:
        return []
    if fate == Fate.REJECTED:  # only for providers that accept first (Vonage RCS, see simulator)
        return [
            PlannedReceipt(
                ReceiptStatus.REJECTED, deliver_after / 3, 1300, "Not part of the provider network"
            )
        ]
    if fate == Fate.UNDELIVERABLE:
        return [
            PlannedReceipt(
                ReceiptStatus.UNDELIVERABLE, deliver_after, 1260, "Destination unreachable"
            )
        ]
    receipts = [PlannedReceipt(ReceiptStatus.DELIVERED, deliver_after)]
    if fate in (Fate.NORMAL, Fate.FLAKY) and channel in READ_CHANNELS:
        receipts.append(PlannedReceipt(ReceiptStatus.READ, read_after))
    return receipts
