"""Recording a batch of sends: each Attempt's outcome, the provider's message ids, and what the
step does next (wait for its receipt, retry later, fail over, or count as submitted), all in one
transaction after the provider calls (see :mod:`workflows_app.services.sending`).
"""

import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Min

from channels_app.adapters.base import SendResult, address_of
from channels_app.errors import ErrorKind, ProviderError
from channels_app.ratelimit import rate_slow_down
from channels_app.registry import connection_report_error, routes_for
from workflows_app.models import Attempt, ProviderMessage, Step
from workflows_app.services.clock import ClockTimestamp
from workflows_app.services.dispatch import SEND_DUE, enqueue_on_commit
from workflows_app.services.receipts import replay_unmatched_receipts
from workflows_app.services.revoke import RevokeResult, revokes_record
from workflows_app.services.send_admission import UNLIMITED
from workflows_app.services.sql import rows_update
from workflows_app.services.transitions import steps_transition
from workflows_app.services.workflows import (
    steps_evaluate,
    steps_fail_over,
    steps_message_status_advance,
    steps_settle_as_submitted,
    steps_start_waiting,
)
from workflows_app.states import AttemptOutcome, FailoverReason, MessageStatus, StepState

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

Outcome = SendResult | ProviderError


def outcomes_record(
    outcomes: list[tuple[Attempt, Outcome]], revoked: Sequence[RevokeResult] = ()
) -> None:
    """Record a batch's outcomes in one transaction. Should that fail, record each in its own,
    so that one step's trouble cannot undo the others' records (a step left ``sending`` is
    settled by the scheduler after ``SENDING_LEASE``)."""
    if len(outcomes) == 1:
        _outcomes_record_in_one_transaction(outcomes, revoked)
        return
    try:
        _outcomes_record_in_one_transaction(outcomes, revoked)
    except Exception:
        logger.exception("recording %d sends together failed; recording each alone", len(outcomes))
        with transaction.atomic():
            revokes_record(revoked)  # each a compare-and-set: none is written twice
        for item in outcomes:
            try:
                _outcomes_record_in_one_transaction([item])
            except Exception:
                logger.exception("recording the send of step %s failed", item[0].step_id)


def _outcomes_record_in_one_transaction(
    outcomes: list[tuple[Attempt, Outcome]], revoked: Sequence[RevokeResult] = ()
) -> None:
    with transaction.atomic():
        revokes_record(revoked)
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
        _attempts_failed_locked(
            [
                (steps[attempt.step_id], attempt, outcome)
                for attempt, outcome in outcomes
                if isinstance(outcome, ProviderError)
            ],
            now,
        )
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


def _attempts_failed_locked(
    failed: list[tuple[Step, Attempt, ProviderError]], now: datetime
) -> None:
    """What each failed attempt's step does next: count as submitted (an ambiguous outcome),
    try again later (transient, if a retry fits), or fail over. Steps that fail alike move
    together, so a provider refusing a whole batch costs a few statements, not a few per step.
    """
    ambiguous: defaultdict[str, list[Step]] = defaultdict(list)
    rejected: defaultdict[tuple[str, int | None, str], list[Step]] = defaultdict(list)
    misconfigured: set[tuple[str, str, str]] = set()
    for step, attempt, error in failed:
        if step.state != StepState.SENDING or step.attempt_count != attempt.number:
            continue
        if error.kind == ErrorKind.AMBIGUOUS:
            ambiguous[f"ambiguous outcome: {error.reason}"[:255]].append(step)
            continue
        throttled = error.kind == ErrorKind.TRANSIENT and error.retry_after
        if throttled and attempt.connection_id not in UNLIMITED:  # it said when to come back
            rate_slow_down(attempt.connection_id, error.retry_after or 0.0)
        if error.kind == ErrorKind.TRANSIENT and _retry_later(step, error, now):
            continue
        if error.kind == ErrorKind.CONFIGURATION:
            misconfigured.add((attempt.provider, attempt.connection_id, error.reason))
        rejected[(error.kind, error.code, error.reason)].append(step)
    for detail, group in ambiguous.items():
        steps_settle_as_submitted(group, detail=detail)
    for provider, connection_id, reason in misconfigured:
        logger.error(
            "provider configuration error on %s (connection %s): %s",
            provider,
            connection_id,
            reason,
        )
        connection_report_error(connection_id, ErrorKind.CONFIGURATION, reason)
    for (kind, code, reason), group in rejected.items():
        steps_message_status_advance(
            group, MessageStatus.REJECTED, error={"code": code, "reason": reason}
        )
        steps_fail_over(group, FailoverReason.REJECTED, detail=f"{kind}: {reason}"[:255], now=now)


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
