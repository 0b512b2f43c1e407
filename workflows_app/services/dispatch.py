"""Hand work to Celery after the transaction that created it commits.

A lost dispatch (broker down, process killed after COMMIT) is never fatal: the scheduler finds
pending steps and due timers in Postgres and dispatches them again.
"""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def send_on_commit(step_id: int, countdown: float | None = None) -> None:
    """Queue the send of ``step_id`` once the current transaction commits."""

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
