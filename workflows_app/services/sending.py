"""Sending steps in batches: commit "attempt started" for each step of a batch, call the
providers outside any transaction (concurrently, each call with its own timeouts), then record
every outcome in one new transaction.

Postgres is the queue. Whatever makes a step due asks, on commit, for a ``send_due`` task
(:func:`~workflows_app.services.dispatch.send_due_on_commit`); the task claims up to
``SEND_BATCH_SIZE`` due steps with ``FOR UPDATE SKIP LOCKED``, oldest first. Celery's cost per
task, and the two transactions' commits, are then paid once per batch instead of once per step.
A retry makes its step due later and queues the same task with that countdown.
"""

import contextvars
import logging
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Min, QuerySet
from uuid6 import uuid7

from channels_app.adapters.base import OutboundMessage, SendResult, address_of
from channels_app.errors import ErrorKind, ProviderError
from channels_app.registry import Route, connection_report_error, routes_for
from workflows_app import logcontext
from workflows_app.models import Attempt, ProviderMessage, Step
from workflows_app.services.clock import ClockTimestamp
from workflows_app.services.dispatch import SEND_DUE, enqueue_on_commit, send_due_now
from workflows_app.services.receipts import replay_unmatched_receipts
from workflows_app.services.revoke import revokes_for, revokes_record, revokes_run
from workflows_app.services.sql import rows_update
from workflows_app.services.transitions import steps_transition
from workflows_app.services.workflows import (
    steps_evaluate,
    steps_fail_over,
    steps_message_status_advance,
    steps_settle_as_submitted,
    steps_start_waiting,
)
from workflows_app.states import (
    AttemptOutcome,
    FailoverReason,
    MessageStatus,
    StepState,
    WorkflowStatus,
)

logger = logging.getLogger(__name__)

# The Attempt columns an outcome fills in (one UPDATE for a whole batch).
OUTCOME_FIELDS = [
    "outcome",
    "provider_message_ids",
    "response",
    "error_kind",
    "error_code",
    "error_detail",
    "price_amount",
    "price_currency",
    "finished_at",
]


class SendClaim(NamedTuple):
    """A step moved to ``sending``: its new Attempt, the route it goes out on, the message."""

    attempt: Attempt
    route: Route
    outbound: OutboundMessage


Outcome = SendResult | ProviderError


def steps_send_due(limit: int | None = None, *, ids: list[int] | None = None) -> int:
    """Send up to ``limit`` (``SEND_BATCH_SIZE``) due steps, oldest first (only those of
    ``ids``, if given): the ``send_due`` task. Returns how many it claimed. Never raises for
    provider failures: they are recorded. A step that is not due, or that another worker is
    sending, is left alone, so calling this twice sends nothing twice.

    A full batch first asks for another task, so that the other worker processes take the
    next batch of a backlog while this one calls its providers.
    """
    limit = limit or settings.SEND_BATCH_SIZE
    candidates = Step.objects.all() if ids is None else Step.objects.filter(id__in=ids)
    claims = _claim(candidates, limit)
    if len(claims) == limit:
        send_due_now()
    _send(claims)
    return len(claims)


def _send(claims: list[SendClaim]) -> None:
    """Call the providers and record what they answered. Never raises for provider failures;
    they are recorded."""
    if not claims:
        return
    # Revoke before fallback: withdraw the undelivered RCS message each of these steps replaces,
    # before its send and outside any transaction, each revoke bounded by REVOKE_TIMEOUT.
    revokes = revokes_for([claim.attempt.step for claim in claims])
    if revokes:
        results = revokes_run(revokes)
        with transaction.atomic():
            revokes_record(results)
    if len(claims) == 1:
        outcomes = [_call_provider(claims[0])]
    else:
        # Concurrently, so that a batch takes as long as its slowest call, well inside the
        # SENDING_LEASE every step of it started under.
        with ThreadPoolExecutor(max_workers=len(claims)) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, _call_provider, claim)
                for claim in claims
            ]
            outcomes = [future.result() for future in futures]
    _outcomes_record(
        [(claim.attempt, outcome) for claim, outcome in zip(claims, outcomes, strict=True)]
    )


def _call_provider(claim: SendClaim) -> Outcome:
    attempt, route, outbound = claim
    logcontext.bind(workflow_uuid=attempt.step.workflow_id, message_uuid=attempt.step.message_uuid)
    try:
        return route.adapter.send(outbound, route.config)
    except ProviderError as error:
        return error
    except Exception as error:  # an adapter bug: the message may or may not have left
        logger.exception("adapter %s raised unexpectedly", route.adapter.name)
        return ProviderError(ErrorKind.AMBIGUOUS, repr(error)[:500])


def _claim(candidates: QuerySet[Step], limit: int) -> list[SendClaim]:
    """Move up to ``limit`` due pending steps of ``candidates`` to ``sending``, each with a new
    Attempt, in one transaction. Rows another transaction has locked are skipped: it is
    sending them (or making them not due)."""
    with transaction.atomic():
        steps = list(
            candidates.select_for_update(of=("self",), skip_locked=True)
            .select_related("workflow")
            .annotate(db_now=ClockTimestamp())
            .filter(state=StepState.PENDING, ready_at__lte=ClockTimestamp())
            .order_by("ready_at")[:limit]
        )
        if not steps:
            return []
        now = steps[0].db_now  # one start for the batch, so its steps share their deadline
        # Ending a run settles its steps, so a due step of an ended run is a race lost long
        # ago: skip it rather than leave it at the head of the queue. (Not a filter on the run
        # in the query: the planner may then start from the runs, not from the queue.)
        ended = [step for step in steps if step.workflow.status != WorkflowStatus.RUNNING]
        steps_transition(ended, StepState.SKIPPED, detail="its run had ended", finished_at=now)
        by_number: dict[int, list[Step]] = defaultdict(list)
        for row in steps:
            if row.workflow.status == WorkflowStatus.RUNNING:
                by_number[row.attempt_count + 1].append(row)
        sending: list[Step] = [
            moved
            for number, group in by_number.items()
            for moved in steps_transition(
                group, StepState.SENDING, send_started_at=now, attempt_count=number
            )
        ]
        first_sends = [step for step in sending if step.message_uuid is None]
        for step in first_sends:
            step.message_uuid = uuid7()
        rows_update(first_sends, ["message_uuid"])
        claims = _claims_for(sending)
        Attempt.objects.bulk_create([claim.attempt for claim in claims])
    return claims


def _claims_for(steps: list[Step]) -> list[SendClaim]:
    """Each step's route (its attempt number picks among the channel's connections, after
    ``SEND_MAX_ATTEMPTS`` tries on each), its new Attempt and the message to send."""
    routes: dict[tuple[str, str], list[Route]] = {}
    claims = []
    for step in steps:
        key = (step.channel, address_of(step.sender))
        if key not in routes:  # one query per sender and channel, not per step
            routes[key] = routes_for(step.channel, step.sender)
        choices = routes[key]
        number = step.attempt_count
        route = choices[min((number - 1) // settings.SEND_MAX_ATTEMPTS, len(choices) - 1)]
        attempt = Attempt(
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
        claims.append(SendClaim(attempt, route, outbound))
    return claims


def _outcomes_record(outcomes: list[tuple[Attempt, Outcome]]) -> None:
    """Record a batch's outcomes in one transaction. Should that fail, record each in its own,
    so that one step's trouble cannot undo the others' records (a step left ``sending`` is
    settled by the scheduler after ``SENDING_LEASE``)."""
    if len(outcomes) == 1:
        _outcomes_record_in_one_transaction(outcomes)
        return
    try:
        _outcomes_record_in_one_transaction(outcomes)
    except Exception:
        logger.exception("recording %d sends together failed; recording each alone", len(outcomes))
        for item in outcomes:
            try:
                _outcomes_record_in_one_transaction([item])
            except Exception:
                logger.exception("recording the send of step %s failed", item[0].step_id)


def _outcomes_record_in_one_transaction(outcomes: list[tuple[Attempt, Outcome]]) -> None:
    with transaction.atomic():
        ids = sorted(attempt.step_id for attempt, _ in outcomes)  # one lock order for all
        steps = {
            step.id: step
            for step in Step.objects.select_for_update(of=("self",))
            .select_related("workflow__account", "workflow__application")
            .annotate(db_now=ClockTimestamp())
            .filter(id__in=ids)
            .order_by("id")
        }
        now = next(iter(steps.values())).db_now
        messages: list[ProviderMessage] = []
        accepted: defaultdict[str, list[str]] = defaultdict(list)
        for attempt, outcome in outcomes:
            step = steps[attempt.step_id]
            attempt.finished_at = now
            if isinstance(outcome, ProviderError):
                attempt.outcome = AttemptOutcome.ERROR
                attempt.error_kind = outcome.kind
                attempt.error_code = outcome.provider_code
                attempt.error_detail = outcome.reason[:1000]
            else:
                attempt.outcome = AttemptOutcome.ACCEPTED
                attempt.provider_message_ids = outcome.provider_message_ids
                attempt.response = outcome.response
                if outcome.price is not None:
                    attempt.price_amount = Decimal(outcome.price.amount)
                    attempt.price_currency = outcome.price.currency
                messages += _provider_messages(step, attempt, outcome)
                accepted[attempt.provider] += outcome.provider_message_ids
        rows_update([attempt for attempt, _ in outcomes], OUTCOME_FIELDS)
        ProviderMessage.objects.bulk_create(messages, ignore_conflicts=True)
        accepted_steps = [
            (attempt, steps[attempt.step_id])
            for attempt, outcome in outcomes
            if not isinstance(outcome, ProviderError)
        ]
        steps_message_status_advance([step for _, step in accepted_steps], MessageStatus.SUBMITTED)
        current = [
            step
            for attempt, step in accepted_steps
            if step.state == StepState.SENDING and step.attempt_count == attempt.number
        ]
        steps_evaluate(steps_start_waiting(current, now=now))  # a receipt may have beaten us
        for attempt, outcome in outcomes:
            if isinstance(outcome, ProviderError):
                _attempt_failed_locked(steps[attempt.step_id], now, attempt, outcome)
        for provider, provider_message_ids in accepted.items():
            replay_unmatched_receipts(provider, provider_message_ids)  # receipts that beat us


def _provider_messages(step: Step, attempt: Attempt, result: SendResult) -> list[ProviderMessage]:
    recipient = address_of(step.recipient)
    return [
        ProviderMessage(
            provider=attempt.provider,
            provider_message_id=pmid,
            attempt_id=attempt.id,
            recipient=recipient.lstrip("+"),
            sent_at=attempt.started_at,  # before the call: watermarks compare to it
            status=MessageStatus.SUBMITTED,
        )
        for pmid in result.provider_message_ids
    ]


def _attempt_failed_locked(step: Step, now: datetime, attempt: Attempt, error: ProviderError):
    if step.state != StepState.SENDING or step.attempt_count != attempt.number:
        return
    if error.kind == ErrorKind.AMBIGUOUS:
        steps_settle_as_submitted([step], detail=f"ambiguous outcome: {error.reason}")
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
    steps_message_status_advance(
        [step], MessageStatus.REJECTED, error={"code": error.code, "reason": error.reason}
    )
    detail = f"{error.kind}: {error.reason}"[:255]
    steps_fail_over([step], FailoverReason.REJECTED, detail=detail, now=now)


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
    if not steps_transition(
        [step],
        StepState.PENDING,
        ready_at=ready_at,
        dispatched_at=now,
        detail=f"transient: {error.reason}; retry in {delay:.1f}s"[:255],
    ):
        return False
    enqueue_on_commit(SEND_DUE, countdown=delay)
    return True
