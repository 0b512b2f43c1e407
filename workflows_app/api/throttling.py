"""Request budgets per account and per application, counted on the shared cache.

A fixed window per budget: ``cache.add`` creates the window's counter and ``cache.incr`` counts,
both atomic on the shared cache (Redis, or the database table of embedded mode:
orchestrator/cache.py), so every web process shares one exact count (DRF's own throttles keep
a request history with non-atomic read-modify-write; reliability.md §6.7).

Over budget is a 429 problem with the headers Messages v1 documents (reference/vonage-api.md §3):
``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (Unix seconds) and
``Retry-After`` (seconds). Rates come from ``settings.API_THROTTLE_RATES``, read per request.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from workflows_app.api.problems import Problem, problem_body

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"100/s"`` → ``(100, 1)``; ``"5/m"`` → ``(5, 60)``. Raises ValueError otherwise."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[:1]]


def _count(key: str, period: int) -> int:
    """Add one to the window's counter (atomic on Redis) and return it."""
    cache.add(key, 0, timeout=period + 1)
    try:
        return cache.incr(key)
    except ValueError:  # the counter expired between add and incr: a new window
        cache.add(key, 1, timeout=period + 1)
        return 1


class WindowThrottle(BaseThrottle):
    """Counts requests of one identity in fixed windows; raises a 429 Problem when over."""

    scope = ""

    def identity(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.identity(request)
        if ident is None:
            return True
        limit, period = parse_rate(settings.API_THROTTLE_RATES[self.scope])
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self.scope}:{ident}:{period}:{window}"
        try:
            count = _count(key, period)
        except Exception:  # the cache backend's own errors (redis.ConnectionError, ...)
            # Fail open: an API that refuses every run while Redis restarts breaks a bigger
            # promise than a budget does.
            logger.warning("throttle %s: cache unavailable, not counted", self.scope, exc_info=True)
            return True
        if count <= limit:
            return True
        reset = (window + 1) * period
        raise Problem(
            429,
            problem_body(
                429,
                detail=f"Over the {self.scope} budget of {limit} requests per {period} s.",
            ),
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "Retry-After": str(max(1, math.ceil(reset - now))),
            },
        )


class AccountRateThrottle(WindowThrottle):
    scope = "account"

    def identity(self, request) -> str | None:
        account = request.auth
        # The API key, not the row id: ids restart in a new database, keys do not repeat.
        return account.api_key if account is not None else None


class ApplicationRateThrottle(WindowThrottle):
    scope = "application"

    def identity(self, request) -> str | None:
        application = getattr(request.user, "application", None)
        return str(application.pk) if application is not None else None
