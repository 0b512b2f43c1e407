"""The scheduler: durable timers and every backstop. Postgres holds the work; Celery only
hurries it.

``Step.deadline_at`` is the truth. :func:`scheduler_tick` runs every ``SCHEDULER_INTERVAL``
seconds (``manage.py run_scheduler``) and, using the database clock:

1. fails over waiting steps whose deadline passed (``FOR UPDATE SKIP LOCKED``, so several
   schedulers split the work instead of repeating it), as one batch of statements;
2. arms a countdown task for deadlines inside ``TIMER_HORIZON`` (the fast path), so worker
   memory stays bounded however many runs wait;
3. re-dispatches pending steps that were due long ago and never picked up (a lost message);
4. settles steps stuck in ``sending`` past ``SENDING_LEASE`` (a worker died mid-call): the
   provider may have accepted, so it is counted as submitted and the timer decides;
5. dispatches one status poll for waiting steps whose deadline is within
   ``POLL_BEFORE_DEADLINE`` and whose provider can be polled (the receipt backstop).
6. queues webhook deliveries that are due: retries, lost tasks, dead workers' attempts
   (:func:`workflows_app.webhooks.delivery.webhooks_dispatch_due`);
7. purges old finished runs when ``PURGE_RUNS_OLDER_THAN_DAYS`` is set (every ``PURGE_INTERVAL``);
8. records a heartbeat that ``/readyz`` checks.

Between ticks the scheduler does not sleep blindly: it sleeps until the earliest deadline
(:func:`seconds_to_next_deadline`, an index probe) and runs phase 1 alone
(:func:`steps_expire_due`), so a failover fires within ``TIMER_RESOLUTION`` of its deadline even
when the workers, and with them the countdowns, are behind.
"""

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    DateTimeField,
    DurationField,
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Least, Now

from channels_app.registry import polling_providers
from workflows_app.models import Attempt, Step
from workflows_app.services.clock import db_now
from workflows_app.services.dispatch import (
    EXPIRE_STEP,
    POLL_STEP,
    enqueue_on_commit,
    send_due_on_commit,
)
from workflows_app.services.health import heartbeat_record
from workflows_app.services.retention import scheduled_purge
from workflows_app.services.workflows import steps_fail_over, steps_settle_as_submitted
from workflows_app.states import AttemptOutcome, FailoverReason, StepState
from workflows_app.webhooks.delivery import webhooks_dispatch_due, webhooks_due

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    expired: int = 0
    armed: int = 0
    redispatched: int = 0
    settled: int = 0
    polled: int = 0
    webhooks: int = 0
    duration_ms: float = 0.0

    @property
    def did_work(self) -> bool:
        return any((self.expired, self.redispatched, self.settled, self.polled, self.webhooks))


def scheduler_tick(batch: int | None = None) -> TickReport:
    """One round of the scheduler. It asks the database one question first (its clock, and
    which phases have anything to do: one EXISTS index probe each) and runs only those, so an
    idle tick is one round trip however many runs wait."""
    started = time.perf_counter()
    batch = batch or settings.SCHEDULER_BATCH_SIZE
    now, work = _probe()
    report = TickReport(
        expired=steps_expire_due(limit=batch, now=now) if work["expire"] else 0,
        armed=_arm_near(batch, now) if work["arm"] else 0,
        redispatched=_redispatch_pending(batch, now) if work["redispatch"] else 0,
        settled=_settle_stuck_sending(batch, now) if work["settle"] else 0,
        polled=_poll_near(batch, now) if work.get("poll") else 0,
        webhooks=webhooks_dispatch_due(batch, now) if work["webhooks"] else 0,
    )
    scheduled_purge()
    heartbeat_record("scheduler")
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


def scheduler_round(
    interval: float,
    stopping: Callable[[], bool] = lambda: False,
    guard: Callable[..., Any] = lambda function, *args: function(*args),
) -> TickReport | None:
    """One round of ``run_scheduler``: a tick, then, until ``interval`` has passed since it
    began, sleep until the earliest deadline and fire what is due. ``guard`` runs each piece
    of work (the command's logs and survives database errors). Returns the tick's report."""
    started = time.monotonic()
    report = guard(scheduler_tick)
    next_tick = started + interval
    while not stopping() and (remaining := next_tick - time.monotonic()) > 0:
        time.sleep(guard(seconds_to_next_deadline, remaining) or remaining)
        if not stopping() and time.monotonic() < next_tick:
            guard(steps_expire_due)
    return report


def _probe() -> tuple[datetime, dict[str, bool]]:
    """The database clock and, per phase, whether any row is due: one query."""
    providers = frozenset(polling_providers())
    key = tuple(getattr(settings, name) for name in PROBE_SETTINGS)
    names, sql, params = _probe_query(key, providers, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    clock = row[0] if connection.vendor == "postgresql" else db_now()
    return clock, {name: bool(flag) for name, flag in zip(names, row[1:], strict=True)}


# The settings the phases' filters depend on: the probe's SQL is built once per combination.
PROBE_SETTINGS = (
    "TIMER_HORIZON",
    "PENDING_GRACE",
    "SENDING_LEASE",
    "POLL_BEFORE_DEADLINE",
    "WEBHOOK_DISPATCH_GRACE",
)


@functools.lru_cache(maxsize=8)
def _probe_query(
    key: tuple, providers: frozenset[str], vendor: str
) -> tuple[tuple[str, ...], str, tuple]:
    """``SELECT <clock>, EXISTS(<phase 1 rows>), …`` with the phases' own filters, the clock
    being the database's (an expression, so the SQL never changes and is compiled once).

    The clock is ``statement_timestamp()`` (Django's ``Now()``), not ``clock_timestamp()``:
    PostgreSQL can bound an index scan with a stable function but not with a volatile one,
    which would turn every EXISTS into a scan of the whole step table. The probe is a
    statement of its own, so the two clocks differ by the time it takes to start.
    """
    now = Now()
    phases: dict[str, QuerySet] = {
        "expire": _expired(now),
        "arm": _unarmed_near(now),
        "redispatch": _lost_pending(now),
        "settle": _stuck_sending(now),
        "webhooks": webhooks_due(now),
    }
    if providers:
        phases["poll"] = _pollable_near(now, set(providers))
    parts: list[str] = []
    params: list[Any] = []
    for queryset in phases.values():
        sql, query_params = queryset.values("pk")[:1].query.sql_with_params()
        parts.append(f"EXISTS({sql})")
        params.extend(query_params)
    clock_sql = "statement_timestamp()" if vendor == "postgresql" else "NULL"  # SQLite: ours
    return tuple(phases), f"SELECT {clock_sql}, {', '.join(parts)}", tuple(params)


def seconds_to_next_deadline(limit: float) -> float:
    """How long the scheduler may sleep before a waiting step's deadline passes (by the
    database clock), between ``TIMER_RESOLUTION`` and ``limit`` seconds."""
    earliest = Step.objects.filter(state=StepState.WAITING).aggregate(at=Min("deadline_at"))
    now = db_now()
    if earliest["at"] is None:
        return limit
    seconds = (earliest["at"] - now).total_seconds()
    return min(limit, max(settings.TIMER_RESOLUTION, seconds))


# Each phase: the rows it is about (``now`` is a datetime, or the database clock as an
# expression for the probe), then the phase, which claims them with FOR UPDATE SKIP LOCKED.


def _expired(now: Any) -> QuerySet[Step]:
    return Step.objects.filter(state=StepState.WAITING, deadline_at__lte=now)


def steps_expire_due(
    ids: list[int] | None = None, *, limit: int | None = None, now: datetime | None = None
) -> int:
    """Fail over waiting steps whose deadline passed by the database clock: those of ``ids``
    (a countdown task, the fast path), else the ``limit`` most overdue (the first phase of a
    tick). Rows another transaction holds are skipped: it is deciding them. Returns how many
    failed over; a second call for the same steps finds none."""
    with transaction.atomic():
        now = now or db_now()
        expired = _expired(now) if ids is None else _expired(now).filter(id__in=ids)
        due = list(
            expired.select_for_update(skip_locked=True).order_by("deadline_at")[
                : limit or settings.SCHEDULER_BATCH_SIZE
            ]
        )
        detail = "deadline passed" if ids is not None else "deadline passed (scheduler)"
        steps_fail_over(due, FailoverReason.EXPIRED, detail=detail, now=now)
    return len(due)


def _unarmed_near(now: Any) -> QuerySet[Step]:
    return Step.objects.filter(
        state=StepState.WAITING,
        timer_armed_at__isnull=True,
        deadline_at__lte=now + timedelta(seconds=settings.TIMER_HORIZON),
    )


def _arm_near(batch: int, now: datetime) -> int:
    with transaction.atomic():
        near = list(
            _unarmed_near(now)
            .select_for_update(skip_locked=True)
            .order_by("deadline_at")
            .only("id", "deadline_at")[:batch]
        )
        Step.objects.filter(id__in=[s.id for s in near]).update(timer_armed_at=now)
        for step in near:
            assert step.deadline_at is not None  # the query filtered on it
            countdown = (step.deadline_at - now).total_seconds()
            enqueue_on_commit(EXPIRE_STEP, step.id, countdown=countdown)
    return len(near)


# A re-dispatched step is not re-dispatched again before it has waited as long once more (up
# to this cap): when workers are merely behind, duplicates grow with log(backlog) instead of
# piling up on the queue they wait in. The cap bounds how late a send whose queued copy died
# with a worker (acks_late: Redis only restores it after the visibility timeout) is recovered.
REDISPATCH_BACKOFF_CAP = timedelta(seconds=60)


def _lost_pending(now: Any) -> QuerySet[Step]:
    """Pending steps whose send was queued ``PENDING_GRACE`` ago and never ran."""
    stale = now - timedelta(seconds=settings.PENDING_GRACE)
    return Step.objects.filter(state=StepState.PENDING, ready_at__lte=stale).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale)
    )


def _redispatch_pending(batch: int, now: datetime) -> int:
    """Queue :func:`_lost_pending` steps again.

    ``dispatched_at`` then moves forward by as long as the step has already waited (doubling
    the interval each time, capped), so this is a backstop for lost messages, not a second
    queue.
    """
    with transaction.atomic():
        lost = list(
            _lost_pending(now)
            .select_for_update(skip_locked=True)
            .order_by("ready_at")
            .values_list("id", flat=True)[:batch]
        )
        waited = Value(now, DateTimeField()) - F("ready_at")
        Step.objects.filter(id__in=lost).update(
            dispatched_at=Value(now, DateTimeField())
            + Least(waited, Value(REDISPATCH_BACKOFF_CAP, DurationField()))
        )
        if lost:
            send_due_on_commit()
    if lost:
        logger.warning("re-dispatched %d pending step(s) that no worker picked up", len(lost))
    return len(lost)


def _stuck_sending(now: Any) -> QuerySet[Step]:
    return Step.objects.filter(
        state=StepState.SENDING,
        send_started_at__lte=now - timedelta(seconds=settings.SENDING_LEASE),
    )


def _settle_stuck_sending(batch: int, now: datetime) -> int:
    with transaction.atomic():
        stuck = list(
            _stuck_sending(now)
            .select_for_update(skip_locked=True)
            .order_by("send_started_at")[:batch]
        )
        steps_settle_as_submitted(stuck, detail="send lease expired: outcome unknown, not resent")
    if stuck:
        logger.warning("settled %d step(s) stuck in sending as submitted", len(stuck))
    return len(stuck)


def _pollable_near(now: Any, providers: set[str]) -> QuerySet[Step]:
    return Step.objects.filter(
        state=StepState.WAITING,
        polled_at__isnull=True,
        deadline_at__lte=now + timedelta(seconds=settings.POLL_BEFORE_DEADLINE),
    ).filter(
        Exists(
            Attempt.objects.filter(
                step=OuterRef("pk"), outcome=AttemptOutcome.ACCEPTED, provider__in=providers
            )
        )
    )


def _poll_near(batch: int, now: datetime) -> int:
    with transaction.atomic():
        near = list(
            _pollable_near(now, polling_providers())
            .select_for_update(skip_locked=True)
            .order_by("deadline_at")
            .values_list("id", flat=True)[:batch]
        )
        Step.objects.filter(id__in=near).update(polled_at=now)
        for step_id in near:
            enqueue_on_commit(POLL_STEP, step_id)
    return len(near)
