"""Revoke before fallback: an RCS message that did not arrive in time is withdrawn before the
next step goes out, so that a person does not get the message twice.

1. When a step fails over on expiry (:func:`steps_mark_for_revoke`, inside the fail-over's
   transaction) and its message went out through an adapter that can revoke it: an undelivered
   message is marked ``pending``; one already delivered (its ``read`` deadline passed) is
   recorded ``too_late`` at once, with no request.
2. The worker that claims the next step finds the revoke due before it (:func:`revokes_for`,
   inside the claim), and its provider call asks the provider to revoke the message
   (:func:`revoke_run`, after the claim committed, just before the send, outside any
   transaction), each request bounded by ``REVOKE_TIMEOUT``; a failed or slow revoke is
   recorded and the send goes on.
3. :func:`revokes_record` writes each outcome with the send's record: a compare-and-set on
   ``Step.revoke_state`` from ``pending`` and an Event (``revoke.revoked``, ``revoke.too_late``,
   ``revoke.failed``) that the admin timeline and the final report show.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from channels_app.adapters.base import address_of
from channels_app.errors import ProviderError
from channels_app.registry import ConnectionUnusable, Route, can_revoke, revocable_channels
from channels_app.registry import route_of as registry_route_of
from workflows_app.models import Attempt, Event, Step
from workflows_app.states import (
    REVOKE_EVENTS,
    AttemptOutcome,
    MessageStatus,
    RevokeState,
    revoke_move_check,
)

logger = logging.getLogger(__name__)

DELIVERED_FIRST = "delivered before the deadline: not revoked (it cannot be); the fallback goes"


@dataclass(frozen=True)
class RevokeTask:
    """One message to withdraw before the step after it is sent."""

    step_id: int  # the failed-over step whose message is withdrawn
    workflow_id: Any
    provider_message_id: str
    recipient: str
    route: Route | None  # None: its connection is gone (recorded as failed)


# A revoke's task, how it ended, and why: what :func:`revokes_record` writes.
RevokeResult = tuple[RevokeTask, RevokeState, str]


def _accepted_attempts(steps: Sequence[Step]) -> dict[int, Attempt]:
    """Each step's last accepted attempt (the message that may reach the person)."""
    attempts = Attempt.objects.filter(
        step_id__in=[step.id for step in steps], outcome=AttemptOutcome.ACCEPTED
    ).order_by("step_id", "number")
    return {attempt.step_id: attempt for attempt in attempts}


def steps_mark_for_revoke(steps: Sequence[Step]) -> None:
    """Mark the steps that just failed over on expiry for revoke (call inside that transaction).

    Only messages sent through an adapter that can revoke on their channel count.
    """
    channels = revocable_channels()
    candidates = [step for step in steps if step.channel in channels]
    if not candidates:
        return
    attempts = _accepted_attempts(candidates)
    pending, delivered = [], []
    for step in candidates:
        attempt = attempts.get(step.id)
        if attempt is None or not can_revoke(attempt.provider, step.channel):
            continue
        if step.message_status in (MessageStatus.DELIVERED, MessageStatus.READ):
            delivered.append(step)
        else:
            pending.append(step)
    _revoke_move([s.id for s in pending], None, RevokeState.PENDING)
    _revoke_move([s.id for s in delivered], None, RevokeState.TOO_LATE)
    Event.objects.bulk_create(
        [
            _event(step.id, step.workflow_id, RevokeState.TOO_LATE, DELIVERED_FIRST, {})
            for step in delivered
        ]
    )


def revokes_for(next_steps: Sequence[Step]) -> dict[int, RevokeTask]:
    """The revokes due before each of ``next_steps`` is sent, keyed by the next step's id.
    Database reads only; call while claiming the sends."""
    later = [step for step in next_steps if step.index > 0]
    if not later:
        return {}
    wanted = {(step.workflow_id, step.index - 1): step.id for step in later}
    previous = list(
        Step.objects.filter(
            workflow_id__in={workflow_id for workflow_id, _ in wanted},
            revoke_state=RevokeState.PENDING,
        )
    )
    previous = [step for step in previous if (step.workflow_id, step.index) in wanted]
    attempts = _accepted_attempts(previous)
    tasks = {}
    for step in previous:
        attempt = attempts.get(step.id)
        if attempt is None or not attempt.provider_message_ids:
            continue
        try:
            route: Route | None = registry_route_of(attempt.provider, attempt.connection_id)
        except ConnectionUnusable:
            route = None
        recipient = address_of(step.recipient)
        tasks[wanted[(step.workflow_id, step.index)]] = RevokeTask(
            step.id, step.workflow_id, str(attempt.provider_message_ids[0]), recipient, route
        )
    return tasks


async def revoke_run(task: RevokeTask) -> tuple[RevokeState, str]:
    """Ask the provider to withdraw the message, within ``REVOKE_TIMEOUT`` per request. Never
    raises; a provider error, a timeout or a bug is a failed revoke. Outside any transaction."""
    if task.route is None:
        return RevokeState.FAILED, "the connection that sent it is gone"
    bound = settings.REVOKE_TIMEOUT
    config = {**task.route.config, "connect_timeout": bound, "read_timeout": bound}
    try:
        outcome = await task.route.adapter.revoke(task.provider_message_id, task.recipient, config)
    except ProviderError as error:
        return RevokeState.FAILED, f"{error.kind}: {error.reason}"[:255]
    except Exception as error:  # an adapter bug must not hold the fallback back
        logger.exception("revoke through %s raised unexpectedly", task.route.adapter.name)
        return RevokeState.FAILED, repr(error)[:255]
    if outcome == "too_late":
        return RevokeState.TOO_LATE, "the provider says it was already delivered"
    return RevokeState.REVOKED, "withdrawn before the fallback was sent"


def revokes_record(results: Sequence[RevokeResult]) -> None:
    """Record each outcome once (inside the send's record transaction)."""
    for task, state, detail in results:
        if _revoke_move([task.step_id], RevokeState.PENDING, state):
            data = {"provider_message_id": task.provider_message_id}
            _event(task.step_id, task.workflow_id, state, detail, data).save()


def _revoke_move(ids: list[int], source: RevokeState | None, to: RevokeState) -> int:
    """Compare-and-set: move the revoke state of the steps ``ids`` still at ``source`` to
    ``to``, as ``REVOKE_TRANSITIONS`` allows. Returns how many moved."""
    revoke_move_check(source, to)
    return Step.objects.filter(id__in=ids, revoke_state=source).update(revoke_state=to)


def _event(step_id: int, workflow_id: Any, state: RevokeState, detail: str, data: dict) -> Event:
    return Event(
        workflow_id=workflow_id,
        step_id=step_id,
        kind=REVOKE_EVENTS[state],
        to_state=state,
        detail=detail[:255],
        data=data,
    )
