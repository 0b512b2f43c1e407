"""Sending one step: commit "attempt started", call the provider outside any transaction, then
record the outcome in a new transaction.
"""

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from uuid6 import uuid7

from channels_app.adapters.base import OutboundMessage, SendResult
from channels_app.errors import ErrorKind, ProviderError
from channels_app.registry import Route, connection_report_error, routes_for
from workflows_app import logcontext
from workflows_app.models import Attempt, ProviderMessage, Step
from workflows_app.services.clock import ClockTimestamp
from workflows_app.services.dispatch import send_on_commit
from workflows_app.services.receipts import replay_unmatched_receipts
from workflows_app.services.transitions import step_transition
from workflows_app.services.workflows import (
    step_evaluate,
    step_fail_over,
    step_message_status_advance,
    step_settle_as_submitted,
    step_start_waiting,
)
from workflows_app.states import FailoverReason, MessageStatus, StepState, WorkflowStatus

logger = logging.getLogger(__name__)


def step_send(step_id: int) -> None:
    """Make one attempt at sending a step. Safe to call twice: the second call does nothing.

    Called by the ``send_step`` task. Never raises for provider failures; they are recorded.
    """
    claimed = _attempt_start(step_id)
    if claimed is None:
        return
    attempt, route, outbound = claimed
    logcontext.bind(workflow_uuid=attempt.step.workflow_id, message_uuid=attempt.step.message_uuid)
    try:
        result = route.adapter.send(outbound, route.config)
    except ProviderError as error:
        _attempt_failed(attempt, error)
    except Exception as error:  # an adapter bug: the message may or may not have left
        logger.exception("adapter %s raised unexpectedly", route.adapter.name)
        _attempt_failed(attempt, ProviderError(ErrorKind.AMBIGUOUS, repr(error)[:500]))
    else:
        _attempt_accepted(attempt, result)


def _attempt_start(step_id: int) -> tuple[Attempt, Route, OutboundMessage] | None:
    with transaction.atomic():
        step = (
            Step.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .annotate(db_now=ClockTimestamp())
            .filter(id=step_id, state=StepState.PENDING, ready_at__isnull=False)
            .first()
        )
        if step is None:
            return None
        now = step.db_now
        assert step.ready_at is not None  # the query filtered on it
        if step.ready_at > now:  # an early duplicate of a retry that is not due yet
            return None
        if step.workflow.status != WorkflowStatus.RUNNING:
            return None
        routes = routes_for(step.channel, step.sender)
        number = step.attempt_count + 1
        route = routes[min((number - 1) // settings.SEND_MAX_ATTEMPTS, len(routes) - 1)]
        if not step_transition(
            step,
            StepState.SENDING,
            send_started_at=now,
            attempt_count=number,
            message_uuid=step.message_uuid or uuid7(),
        ):
            return None
        attempt = Attempt.objects.create(
            step=step,
            number=number,
            provider=route.adapter.name,
            connection_id=route.connection_id,
            request_summary={
                "channel": step.channel,
                "to": step.recipient,
                "content_type": step.message.get("content", {}).get("type"),
            },
        )
    outbound = OutboundMessage(
        channel=step.channel,
        sender=step.sender,
        recipient=step.recipient,
        message=step.message,
        client_ref=str(attempt.id),
        attempt_number=number,
    )
    return attempt, route, outbound


def _locked_step(attempt: Attempt) -> tuple[Step, datetime]:
    """The attempt's step, locked, with its run (whose webhook target a status change needs),
    and the database's clock: one round trip."""
    step = (
        Step.objects.select_for_update(of=("self",))
        .select_related("workflow__account", "workflow__application")
        .annotate(db_now=ClockTimestamp())
        .get(id=attempt.step_id)
    )
    return step, step.db_now


def _attempt_accepted(attempt: Attempt, result: SendResult) -> None:
    with transaction.atomic():
        step, now = _locked_step(attempt)
        Attempt.objects.filter(id=attempt.id).update(
            outcome="accepted",
            provider_message_ids=result.provider_message_ids,
            response=result.response,
            finished_at=now,
        )
        recipient = str(step.recipient.get("number") or step.recipient.get("id") or "")
        ProviderMessage.objects.bulk_create(
            [
                ProviderMessage(
                    provider=attempt.provider,
                    provider_message_id=pmid,
                    attempt_id=attempt.id,
                    recipient=recipient.lstrip("+"),
                    sent_at=attempt.started_at,  # before the call: watermarks compare to it
                    status=MessageStatus.SUBMITTED,
                )
                for pmid in result.provider_message_ids
            ],
            ignore_conflicts=True,
        )
        step_message_status_advance(step, MessageStatus.SUBMITTED)
        if step.state == StepState.SENDING and step.attempt_count == attempt.number:
            step_start_waiting(step, started_at=step.send_started_at, now=now, sent_at=now)
            step_evaluate(step)  # a receipt may have beaten us here
        replay_unmatched_receipts(attempt.provider, result.provider_message_ids)


def _attempt_failed(attempt: Attempt, error: ProviderError) -> None:
    with transaction.atomic():
        step, now = _locked_step(attempt)
        Attempt.objects.filter(id=attempt.id).update(
            outcome="error",
            error_kind=error.kind,
            error_code=error.provider_code,
            error_detail=error.reason[:1000],
            finished_at=now,
        )
        if step.state != StepState.SENDING or step.attempt_count != attempt.number:
            return
        if error.kind == ErrorKind.AMBIGUOUS:
            step_settle_as_submitted(step, detail=f"ambiguous outcome: {error.reason}")
            return
        if error.kind == ErrorKind.TRANSIENT and _retry_later(step, error, now):
            return
        if error.kind == ErrorKind.CONFIGURATION:
            logger.error(
                "provider configuration error on %s (connection %s): %s",
                attempt.provider,
                attempt.connection_id,
                error.reason,
            )
            connection_report_error(attempt.connection_id, error.kind, error.reason)
        step_message_status_advance(
            step, MessageStatus.REJECTED, error={"code": error.code, "reason": error.reason}
        )
        step_fail_over(step, FailoverReason.REJECTED, detail=f"{error.kind}: {error.reason}"[:255])


def _retry_later(step: Step, error: ProviderError, now) -> bool:
    """Schedule another attempt with backoff and jitter, if one fits before the step's deadline.

    The retry window is the step's expiry time (or the final-step timeout) counted from its
    first attempt; a retry never starts past it.
    """
    routes = len(routes_for(step.channel, step.sender))
    if step.attempt_count >= settings.SEND_MAX_ATTEMPTS * routes:
        return False
    backoff = settings.SEND_RETRY_BASE_DELAY * 2 ** (step.attempt_count - 1)
    delay = max(error.retry_after or 0.0, random.uniform(backoff / 2, backoff))
    window = step.expiry_time or settings.WORKFLOWS_FINAL_STEP_TIMEOUT
    first = step.attempts.aggregate(first=Min("started_at"))["first"] or now
    if now + timedelta(seconds=delay) >= first + timedelta(seconds=window):
        return False
    ready_at = now + timedelta(seconds=delay)
    if not step_transition(
        step,
        StepState.PENDING,
        ready_at=ready_at,
        dispatched_at=now,
        detail=f"transient: {error.reason}; retry in {delay:.1f}s"[:255],
    ):
        return False
    send_on_commit(step.id, countdown=delay)
    return True
