"""Per-connection send rates, shared by every worker process.

A connection's config may carry ``max_per_second`` (a float; 0.5 is one send every two
seconds) and ``burst`` (how many may go at once after a quiet spell; default: a tenth of a
second's worth, at least 1, so that sends leave evenly spaced and a provider counting per
second never sees more than its limit). Providers cap sends per account or sender (Vonage
30/s per API key by default, WhatsApp Cloud about 80/s per number, a Twilio long code 1/s);
above the cap they answer 429, so a send above it is better held back than made.

The algorithm is pyrate-limiter's GCRA (one theoretical arrival time per connection, no log).
Its state lives in Redis when ``REDIS_URL`` is set (pyrate-limiter's ``RedisStateStore``: a
Lua script, atomic across processes and machines), else in a :class:`ConnectionRate` row per
connection, updated with a compare-and-set on its version (SQLite or PostgreSQL alike).

A 429 with ``Retry-After`` (:func:`rate_slow_down`) pauses the connection for that long: the
provider has said when to come back, and every send through it would draw the same answer.
A connection with ``max_per_second`` then runs at half its rate for as long again, since a 429
despite our own limit means someone else spends the same account's quota.

Callers (the send loop) ask :func:`rate_admit` before claiming sends; nothing here sleeps.
"""

import math
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from pyrate_limiter import Rate
from pyrate_limiter.abstracts.algorithm import GCRA, Decision, StateAlgorithm
from pyrate_limiter.abstracts.store import StateStore
from pyrate_limiter.buckets.redis_state import RedisStateStore

from channels_app.models import ConnectionRate

_GCRA = GCRA()
_redis: redis.Redis | None = None


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int

    def rate(self, slowed: bool = False) -> Rate:
        """The pyrate-limiter rate: one send per emission interval (ms precision is too coarse
        for high rates, so the interval is a second in ms and the limit is scaled to match)."""
        per_second = self.per_second / 2 if slowed else self.per_second
        return Rate(max(1, round(per_second * 1000)), 1_000_000, burst=self.burst)


def rate_limit_of(config: dict[str, Any]) -> RateLimit | None:
    """The limit a connection's config asks for, or None. Bad values mean no limit; the
    connection form validates them."""
    try:
        per_second = float(config.get("max_per_second") or 0)
    except (TypeError, ValueError):
        return None
    if per_second <= 0:
        return None
    try:
        burst = int(config.get("burst") or 0)
    except (TypeError, ValueError):
        burst = 0
    return RateLimit(per_second, burst or max(1, math.floor(per_second / 10)))


def rate_admit(connection_id: str, limit: RateLimit | None, wanted: int) -> tuple[int, float]:
    """Take up to ``wanted`` send slots of a connection now.

    Returns ``(admitted, wait)``: how many may be sent at once, and, when fewer than
    ``wanted``, the seconds until the next slot frees (0.0 when all were admitted). A
    connection with no limit admits everything unless a 429 paused it.
    """
    if wanted <= 0 or not connection_id:
        return 0, 0.0
    now_us = int(time.time() * 1_000_000)
    paused_until, slowed_until = _store().penalty(connection_id)
    if paused_until > now_us:
        return 0, (paused_until - now_us) / 1_000_000
    if limit is None:
        return wanted, 0.0
    rates = [limit.rate(slowed=slowed_until > now_us)]
    store = _store().state(connection_id)
    admitted = 0
    while admitted < wanted:
        decision = store.check(_GCRA, rates, now_us // 1000, 1)
        assert isinstance(decision, Decision)  # our stores are synchronous
        if not decision.allowed:
            return admitted, max(0.001, (decision.retry_after_ms or 1) / 1000)
        admitted += 1
    return admitted, 0.0


def rate_slow_down(connection_id: str, retry_after: float) -> None:
    """A provider answered 429 with ``Retry-After``: send nothing through the connection for
    ``retry_after`` seconds, then (if it has a limit) half its rate for as long again."""
    if not connection_id or retry_after <= 0:
        return
    now_us = int(time.time() * 1_000_000)
    pause_us = int(retry_after * 1_000_000)
    _store().set_penalty(connection_id, now_us + pause_us, now_us + 2 * pause_us)


def rate_reset(connection_id: str) -> None:
    """Forget a connection's rate state (tests, and an operator changing its limit)."""
    _store().reset(connection_id)


# --- Where the state lives -------------------------------------------------------------------


class _RedisRates:
    PREFIX = "orchestrator:rate:"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def state(self, key: str) -> StateStore:
        return RedisStateStore(self.client, self.PREFIX + key)

    def penalty(self, key: str) -> tuple[int, int]:
        values = self.client.hmget(self.PREFIX + "penalty:" + key, ["paused", "slowed"])
        return int(values[0] or 0), int(values[1] or 0)

    def set_penalty(self, key: str, paused_until_us: int, slowed_until_us: int) -> None:
        name = self.PREFIX + "penalty:" + key
        ttl_ms = max(1, (slowed_until_us - int(time.time() * 1_000_000)) // 1000)
        pipe = self.client.pipeline()
        pipe.hset(name, mapping={"paused": paused_until_us, "slowed": slowed_until_us})
        pipe.pexpire(name, ttl_ms)
        pipe.execute()

    def reset(self, key: str) -> None:
        self.client.delete(self.PREFIX + key, self.PREFIX + "penalty:" + key)


class DatabaseStateStore(StateStore):
    """pyrate-limiter's store contract over a :class:`ConnectionRate` row: read the state,
    step the algorithm, write it back only if no other process wrote in between (the row's
    ``version``), else read again."""

    is_async = False

    def __init__(self, key: str) -> None:
        self.key = key

    def check(
        self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int
    ) -> Decision:
        while True:
            row = _row(self.key)
            state = algorithm.decode(row.state.split(",")) if row.state else None
            state = state or algorithm.initial(rates)
            new_state, decision = algorithm.step(rates, state, now, weight)
            if new_state == state:
                return decision
            written = ConnectionRate.objects.filter(key=self.key, version=row.version).update(
                state=",".join(str(v) for v in new_state), version=F("version") + 1
            )
            if written:
                return decision

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]):
        row = _row(self.key)
        return algorithm.decode(row.state.split(",")) if row.state else algorithm.initial(rates)

    def reset(self) -> None:
        ConnectionRate.objects.filter(key=self.key).delete()


class _DatabaseRates:
    def state(self, key: str) -> StateStore:
        return DatabaseStateStore(key)

    def penalty(self, key: str) -> tuple[int, int]:
        row = _row(key)
        return row.paused_until_us, row.slowed_until_us

    def set_penalty(self, key: str, paused_until_us: int, slowed_until_us: int) -> None:
        _row(key)
        ConnectionRate.objects.filter(key=key).update(
            paused_until_us=paused_until_us,
            slowed_until_us=slowed_until_us,
            version=F("version") + 1,
        )

    def reset(self, key: str) -> None:
        DatabaseStateStore(key).reset()


def _row(key: str) -> ConnectionRate:
    with transaction.atomic():  # a savepoint: a lost insert race must not end the caller's
        row, _ = ConnectionRate.objects.get_or_create(key=key)
    return row


def _store() -> _RedisRates | _DatabaseRates:
    global _redis
    if not settings.REDIS_URL:
        return _DatabaseRates()
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL)
    return _RedisRates(_redis)
