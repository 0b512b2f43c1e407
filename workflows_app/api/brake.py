"""The failed-login brake on Basic credentials: counted per client address and per (address,
api_key), alerted per api_key, on the cache every process shares (Redis, or the database in
embedded mode: orchestrator/cache.py).

Why these counters (docs/api.md, "Failed logins"):

- per address: one client guessing many keys (or one key many times) is stopped;
- per (address, api_key), a lower limit: one client guessing one key is stopped sooner, and a
  misconfigured client locks out only its own key from its own address, not its neighbours
  behind the same NAT;
- never per api_key alone: anyone who knows a key (it is not a secret) could then lock its
  owner out from anywhere. Failures against one existing account's key, from any address, only
  raise an alert (a log line, once per window) at ``AUTH_FAILURE_ALERT_PER_KEY``.

While a counter for the caller's address is at its limit, every Basic login from there gets 429
with Retry-After, the right secret included, so that the brake tells a guesser nothing. The
right secret from any other address still works. IPv6 addresses are counted per /64 (what one
subscriber is given). ``REMOTE_ADDR`` is the client address: no proxy header is trusted.
"""

import hashlib
import ipaddress
import logging
import time

from django.conf import settings
from django.core.cache import cache

from workflows_app.api.problems import Problem, problem_body

logger = logging.getLogger(__name__)

PREFIX = "auth-failures"


def client_address(remote_addr: str) -> str:
    """The address a brake counts: the IPv4 address, or the /64 an IPv6 address lies in."""
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return remote_addr[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _digest(api_key: str) -> str:
    # Hashed: a key is caller input, and cache keys must stay short and printable.
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class FailureBrake:
    """The counters of one Basic login attempt: ``api_key`` is None when the credentials could
    not even be decoded.

    Fixed windows of ``AUTH_FAILURE_WINDOW`` seconds: a counter's key names its window, so it
    needs no reset and expires on its own; ``add`` and ``incr`` are atomic on both shared
    caches, so concurrent guesses from many processes are all counted.
    """

    def __init__(self, *, remote_addr: str, api_key: str | None) -> None:
        self.address = client_address(remote_addr)
        self.api_key = api_key
        self.window = max(1, settings.AUTH_FAILURE_WINDOW)
        self.window_index, elapsed = divmod(int(time.time()), self.window)
        self.retry_after = self.window - elapsed

    def _key(self, *parts: str) -> str:
        return ":".join((PREFIX, *parts, str(self.window_index)))

    def _limits(self) -> list[tuple[str, int, str]]:
        """``(cache key, limit, what it counts)`` of the counters that refuse."""
        address = _digest(self.address)
        limits = [(self._key("ip", address), settings.AUTH_FAILURE_LIMIT_PER_IP, "")]
        if self.api_key is not None:
            limits.append(
                (
                    self._key("ip-key", address, _digest(self.api_key)),
                    settings.AUTH_FAILURE_LIMIT_PER_IP_KEY,
                    " for this API key",
                )
            )
        return [(key, limit, what) for key, limit, what in limits if limit > 0]

    def check(self) -> None:
        """Raise a 429 Problem if a counter of this address is at its limit in this window.

        Fails open: while the cache is unreachable the brake is off, because an API that stops
        accepting runs whenever Redis restarts would break a bigger promise.
        """
        limits = self._limits()
        if not limits:
            return
        try:
            counts = cache.get_many([key for key, _, _ in limits])
        except Exception:  # the cache backend's own errors (redis.ConnectionError, ...)
            logger.warning("failed-login brake: cache unavailable, not checked", exc_info=True)
            return
        for key, limit, what in limits:
            if counts.get(key, 0) >= limit:
                raise self._refusal(limit, what)

    def _refusal(self, limit: int, what: str) -> Problem:
        return Problem(
            429,
            problem_body(
                429,
                title="Too Many Failed Logins",
                detail=(
                    f"Too many failed logins from your address{what}: {limit} in "
                    f"{self.window} s. Try again in {self.retry_after} s."
                ),
            ),
            {"Retry-After": str(self.retry_after)},
        )

    def record_failure(self, *, account_exists: bool = False) -> None:
        """Count a failed login; alert once per window when an existing account's key has
        failed ``AUTH_FAILURE_ALERT_PER_KEY`` times from any addresses."""
        try:
            for key, _, _ in self._limits():
                _count(key, self.window)
            alert_at = settings.AUTH_FAILURE_ALERT_PER_KEY
            if account_exists and self.api_key is not None and alert_at > 0:
                failures = _count(self._key("key", _digest(self.api_key)), self.window)
                if failures == alert_at:
                    logger.warning(
                        "failed-login alert: %d failed logins for api_key %r in %d s "
                        "(from any address); someone may be guessing its secret",
                        failures,
                        self.api_key,
                        self.window,
                        extra={"api_key": self.api_key, "auth_failures": failures},
                    )
        except Exception:
            logger.warning("failed-login brake: cache unavailable, not counted", exc_info=True)


def _count(key: str, window: int) -> int:
    """Add one to a window's counter and return it."""
    cache.add(key, 0, timeout=window + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: the window just ended
        cache.add(key, 1, timeout=window + 1)
        return 1
