"""Hand work to Celery after the transaction that created it commits.

A lost dispatch (broker down, process killed after COMMIT) is never fatal: the scheduler finds
pending steps and due timers in Postgres and dispatches them again.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


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
    from workflows_app.tasks import send_due

    shared = settings.REDIS_URL != ""
    try:
        if shared and not cache.add(SEND_DUE_QUEUED, 1, timeout=SEND_DUE_QUEUED_TTL):
            return
        send_due.apply_async()
    except Exception:  # Redis unreachable: the scheduler will re-dispatch the steps
        logger.warning("could not queue a send; the scheduler will", exc_info=True)
        if shared:
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


def send_later_on_commit(step_id: int, countdown: float) -> None:
    """Queue the send of ``step_id`` in ``countdown`` seconds (a retry), once the current
    transaction commits."""

    def _send() -> None:
        from workflows_app.tasks import send_step

        try:
            send_step.apply_async((step_id,), countdown=countdown)
        except Exception:  # broker unreachable: the scheduler will re-dispatch it
            logger.warning(
                "could not queue send of step %s; the scheduler will", step_id, exc_info=True
            )

    transaction.on_commit(_send)


def arm_timer_on_commit(step_id: int, countdown: float) -> None:
    """Queue the fast-path expiry of ``step_id`` (the scheduler is the slow, sure path)."""

    def _arm() -> None:
        from workflows_app.tasks import expire_step

        try:
            expire_step.apply_async((step_id,), countdown=max(0.0, countdown))
        except Exception:
            logger.warning(
                "could not arm timer of step %s; the scheduler will fire it", step_id, exc_info=True
            )

    transaction.on_commit(_arm)


def poll_on_commit(step_id: int) -> None:
    """Queue a status poll of ``step_id`` (a lost poll only means the deadline decides)."""

    def _poll() -> None:
        from workflows_app.tasks import poll_step

        try:
            poll_step.apply_async((step_id,))
        except Exception:
            logger.warning("could not queue poll of step %s", step_id, exc_info=True)

    transaction.on_commit(_poll)
