"""Liveness and readiness: what ``/healthz`` and ``/readyz`` report (docs/operations.md)."""

import time
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from workflows_app.models import Heartbeat

_last_beat: dict[str, float] = {}
HEARTBEAT_EVERY = 5.0  # seconds: one UPDATE per scheduler per 5 s, not per tick


def heartbeat_record(name: str) -> None:
    """Note that ``name`` completed a round (written at most every ``HEARTBEAT_EVERY`` s)."""
    now = time.monotonic()
    if now - _last_beat.get(name, 0.0) < HEARTBEAT_EVERY:
        return
    Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})
    _last_beat[name] = now


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


def readiness() -> Readiness:
    """Database reachable, broker reachable, scheduler ticked within ``READY_SCHEDULER_MAX_AGE``."""
    result = Readiness()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        result.checks["database"] = "ok"
    except Exception as error:
        result.checks["database"] = f"unreachable: {type(error).__name__}"
        result.checks["scheduler"] = "unknown (no database)"
    result.checks["broker"] = _broker_check()
    if "scheduler" not in result.checks:
        result.checks["scheduler"] = _scheduler_check()
    return result


def _broker_check() -> str:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as error:
        return f"unreachable: {type(error).__name__}"


def _scheduler_check() -> str:
    beat = Heartbeat.objects.filter(name="scheduler").first()
    if beat is None:
        return "never ticked"
    age = (timezone.now() - beat.beat_at).total_seconds()
    if age > settings.READY_SCHEDULER_MAX_AGE:
        return f"last tick {age:.0f}s ago"
    return "ok"
