"""Deleting what is no longer needed: finished runs once they are old (``manage.py purge_runs``,
or the scheduler when ``PURGE_RUNS_OLDER_THAN_DAYS`` is set), and idempotency keys once they are
older than ``IDEMPOTENCY_KEY_TTL`` (both paths; the scheduler always, since an expired key means
nothing). A run goes with its steps, attempts, provider message ids, events, webhook deliveries
and their attempts (all cascade from the workflow)."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from workflows_app.models import Event, IdempotencyKey, Workflow
from workflows_app.services.clock import db_now
from workflows_app.states import EventKind, WorkflowStatus

logger = logging.getLogger(__name__)
_last_scheduled_purge = 0.0
SCHEDULED_MAX_BATCHES = 4


def runs_purge(older_than_days: float, *, batch: int = 500, max_batches: int | None = None) -> int:
    """Delete runs that finished more than ``older_than_days`` ago, ``batch`` runs per
    transaction. Running runs are never touched. Also drops unmatched receipts as old.
    Returns how many runs were deleted."""
    deleted = 0
    batches = 0
    cutoff = db_now() - timedelta(days=older_than_days)
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            ids = list(
                Workflow.objects.exclude(status=WorkflowStatus.RUNNING)
                .filter(finished_at__lt=cutoff)
                .order_by("finished_at")
                .values_list("id", flat=True)[:batch]
            )
            if not ids:
                break
            Workflow.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        batches += 1
    Event.objects.filter(
        workflow__isnull=True, kind=EventKind.RECEIPT_UNMATCHED, created_at__lt=cutoff
    ).delete()
    if deleted:
        logger.info("purged %d finished run(s) older than %s days", deleted, older_than_days)
    return deleted


def idempotency_keys_purge(*, batch: int = 500, max_batches: int | None = None) -> int:
    """Delete idempotency keys created more than ``IDEMPOTENCY_KEY_TTL`` seconds ago (by the
    database clock), ``batch`` keys per transaction. A key past its TTL is already ignored by
    :mod:`workflows_app.api.idempotency` (which drops it when reused); this drops the keys that
    are never reused. Rows a request is handling right now are skipped (``SKIP LOCKED``), never
    waited on. Returns how many keys were deleted."""
    deleted = 0
    batches = 0
    cutoff = db_now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            ids = list(
                IdempotencyKey.objects.select_for_update(skip_locked=True)
                .filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("id", flat=True)[:batch]
            )
            if not ids:
                break
            IdempotencyKey.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        batches += 1
    if deleted:
        logger.info("purged %d expired idempotency key(s)", deleted)
    return deleted


def scheduled_purge() -> tuple[int, int]:
    """The scheduler's purge phase: at most every ``PURGE_INTERVAL`` seconds, a few batches of
    expired idempotency keys and, when ``PURGE_RUNS_OLDER_THAN_DAYS`` is set, of old runs.
    Returns ``(runs deleted, keys deleted)``."""
    global _last_scheduled_purge
    if time.monotonic() - _last_scheduled_purge < settings.PURGE_INTERVAL:
        return 0, 0
    _last_scheduled_purge = time.monotonic()
    keys = idempotency_keys_purge(max_batches=SCHEDULED_MAX_BATCHES)
    days = settings.PURGE_RUNS_OLDER_THAN_DAYS
    runs = runs_purge(days, max_batches=SCHEDULED_MAX_BATCHES) if days else 0
    return runs, keys
