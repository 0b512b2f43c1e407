"""Hand work to Celery after the transaction that created it commits: the one place that queues
tasks, by name (so that nothing here imports :mod:`workflows_app.tasks`, which imports the
services).

A lost dispatch (broker down, process killed after COMMIT) is never fatal: the scheduler finds
pending steps, due timers and due webhooks in Postgres and dispatches them again. So a broker
error is logged here, never raised.
"""

import functools
import logging
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

# The engine's tasks (workflows_app/tasks.py registers them under these names).
SEND_DUE = "workflows.send_due"
EXPIRE_STEP = "workflows.expire_step"
POLL_STEP = "workflows.poll_step"
DELIVER_WEBHOOKS = "workflows.deliver_webhooks"
SCHEDULER_TICK = "workflows.scheduler_tick"


def enqueue_on_commit(task: str, *args: Any, countdown: float | None = None) -> None:
    """Queue ``task`` with ``args`` (in ``countdown`` seconds) once the current transaction
    commits; at once outside a transaction."""
    transaction.on_commit(functools.partial(enqueue_now, task, *args, countdown=countdown))


def enqueue_now(task: str, *args: Any, countdown: float | None = None) -> bool:
    """Queue ``task`` now. Returns False (and logs) if the broker refused it."""
    try:
        current_app.send_task(
            task, args, countdown=None if countdown is None else max(0.0, countdown)
        )
    except Exception:  # broker unreachable: the scheduler will re-dispatch from PostgreSQL
        logger.warning("could not queue %s%r; the scheduler will", task, args, exc_info=True)
        return False
    return True


# Set while a ``send_due`` task is queued and has not started: commits in between need not
# queue another, since that one will see their steps. It expires, so a task lost with its
# worker only delays the next one this long (the scheduler re-dispatches in any case).
SEND_DUE_QUEUED = "orchestrator:send-due-queued"
SEND_DUE_QUEUED_TTL = 2


def send_due_on_commit() -> None:
    """Have due steps sent once the current transaction commits (see services/sending.py)."""
    transaction.on_commit(send_due_now)


def send_due_now() -> None:
    """Queue a ``send_due`` task, unless one is queued and has not started yet.

    That check needs a cache every process shares (Redis); embedded mode has none, and queues
    one task per call.
    """
    shared = settings.REDIS_URL != ""
    try:
        if shared and not cache.add(SEND_DUE_QUEUED, 1, timeout=SEND_DUE_QUEUED_TTL):
            return
    except Exception:  # Redis unreachable: the scheduler will re-dispatch the steps
        logger.warning("could not queue a send; the scheduler will", exc_info=True)
        return
    if not enqueue_now(SEND_DUE) and shared:
        _forget_queued()


def send_due_started() -> None:
    """A ``send_due`` task starts: from now on a commit must queue another."""
    if settings.REDIS_URL != "":
        _forget_queued()


def _forget_queued() -> None:
    try:
        cache.delete(SEND_DUE_QUEUED)
    except Exception:
        logger.warning("could not clear %s", SEND_DUE_QUEUED, exc_info=True)
