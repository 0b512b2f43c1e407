"""How fast the simulated providers answer, and how many sends a second they take.

Real providers answer a send in roughly 100-500 ms, sometimes seconds, and cap the sends per
second of an account or a sender (Vonage: 30/s per API key by default; WhatsApp Cloud: about
80/s per business number; a Twilio long code: 1/s). The simulator reproduces both for every
provider it speaks, so that the engine can be measured at realistic latency and against a
provider that enforces a rate:

- **latency**: every answer to a send waits ``seconds``, globally or for sends whose path
  starts with a prefix (the longest matching prefix wins). A prefix names one connection where
  the provider's path carries the account (Twilio's ``/2010-04-01/Accounts/<sid>/``), or one
  provider (``/v1/messages``).
- **rate limit**: a token bucket of ``burst`` tokens refilled at ``per_second``, one bucket per
  account (the send's credential) or per sender, as the real provider counts. A send finding
  the bucket empty is answered 429 with ``Retry-After`` (whole seconds, as providers send it).
"""

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RateRule:
    """A provider-side rate limit: ``per_second`` sustained, ``burst`` at once, counted
    ``per`` account (the credential the send carried) or ``per`` sender."""

    per_second: float
    burst: float = 0.0  # 0: one second's worth
    per: str = "account"  # account | sender

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError("per_second must be positive")
        if self.per not in ("account", "sender"):
            raise ValueError("per is 'account' or 'sender'")
        self.burst = self.burst or max(1.0, self.per_second)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Pacing:
    """Latency and rate limits of one simulator. Thread-safe."""

    latency: float = 0.0
    latencies: dict[str, float] = field(default_factory=dict)
    rule: RateRule | None = None
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    throttled: int = 0
    connections_opened: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_latency(self, seconds: float, path: str = "") -> None:
        """Answer sends after ``seconds``: all of them (``path`` "") or those under ``path``."""
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        with self.lock:
            if path:
                self.latencies[path] = seconds
            else:
                self.latency = seconds

    def latency_for(self, path: str) -> float:
        with self.lock:
            matching = [prefix for prefix in self.latencies if path.startswith(prefix)]
            return self.latencies[max(matching, key=len)] if matching else self.latency

    def set_rate_limit(self, rule: RateRule | None) -> None:
        with self.lock:
            self.rule = rule
            self.buckets.clear()

    def admit(self, account: str, sender: str) -> float:
        """Take a token for one send; 0.0 when admitted, else the seconds until a token."""
        with self.lock:
            rule = self.rule
            if rule is None:
                return 0.0
            key = account if rule.per == "account" else sender
            now = time.monotonic()
            bucket = self.buckets.setdefault(key, _Bucket(rule.burst, now))
            bucket.tokens = min(rule.burst, bucket.tokens + (now - bucket.at) * rule.per_second)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            self.throttled += 1
            return (1.0 - bucket.tokens) / rule.per_second

    def connection_opened(self) -> None:
        with self.lock:
            self.connections_opened += 1

    def stats(self) -> dict[str, float | int]:
        with self.lock:
            return {
                "connections_opened": self.connections_opened,
                "throttled": self.throttled,
                "latency": self.latency,
            }


def pacing_control(pacing: Pacing, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The simulator's pacing control endpoints (see :mod:`channels_app.simulator.server`):
    the answer's body, or None when ``path`` is not one of them. Raises ValueError (and so
    the server a 500) on a nonsensical setting; this is a test tool."""
    if path == "/_simulator/latency":
        pacing.set_latency(float(body.get("seconds") or 0.0), str(body.get("path") or ""))
    elif path == "/_simulator/rate_limit":
        per_second = body.get("per_second")
        burst, per = float(body.get("burst") or 0), str(body.get("per") or "account")
        pacing.set_rate_limit(RateRule(float(per_second), burst, per) if per_second else None)
    elif path != "/_simulator/stats":
        return None
    return pacing.stats()


def retry_after_header(wait: float) -> str:
    """``Retry-After`` in whole seconds (RFC 9110 §10.2.3 delta-seconds), never 0."""
    return str(max(1, math.ceil(wait)))
