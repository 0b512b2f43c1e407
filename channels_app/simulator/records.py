"""What the simulator keeps of the requests it received: the faults it was told to inject,
and a record of every send and revoke (served under ``/_simulator/``; see
:mod:`channels_app.simulator.server`)."""

import time
from dataclasses import dataclass, field

FAULTS = {
    "http_500",
    "http_429",
    "http_401",
    "slow",
    "reset",
    "timeout_after_accept",
    "malformed",
    "drop_receipts",
}


@dataclass
class Fault:
    fault: str
    times: int = 1  # 0 = every time
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class RevokeRecord:
    """One revoke request as the simulated provider received it."""

    provider: str
    message_id: str
    recipient: str
    outcome: str  # revoked | too_late | unknown | fault
    fault: str = ""
    at: float = 0.0


@dataclass
class SendRecord:
    """One send request as the simulated provider received it."""

    provider: str
    recipient: str
    client_ref: str
    fault: str
    outcome: str = ""  # accepted | rejected | transient | fault
    provider_message_ids: list[str] | None = None
    at: float = 0.0  # time.time() when it was answered
    received_at: float = field(default_factory=time.time)  # and when it arrived
