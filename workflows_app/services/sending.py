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
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Min, QuerySet
from uuid6 import uuid7

from channels_app import http
from channels_app.adapters.base import OutboundMessage, SendResult, address_of
from channels_app.errors import ErrorKind, ProviderError
from channels_app.ratelimit import rate_slow_down
from channels_app.registry import Route, connection_report_error, routes_for
from workflows_app import logcontext
from workflows_app.models import Attempt, ProviderMessage, Step
from workflows_app.services.clock import ClockTimestamp
from workflows_app.services.dispatch import SEND_DUE, enqueue_on_commit, send_due_now
from workflows_app.services.receipts import replay_unmatched_receipts
from workflows_app.services.revoke import (
    RevokeResult,
    RevokeTask,
    revoke_run,
    revokes_for,
    revokes_record,
)
from workflows_app.services.send_admission import UNLIMITED, steps_admit
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
    """A step moved to ``sending``: its new Attempt, the route it goes out on, the message, and
    the revoke to make first, if any."""

    attempt: Attempt
    route: Route
    outbound: OutboundMessage
    revoke: RevokeTask | None = None


Outcome = SendResult | ProviderError


class Called(NamedTuple):
    """What a provider call came back with: the send's outcome, and the revoke's before it."""

    outcome: Outcome
    revoked: RevokeResult | None = None


def steps_send_due(
    limit: int | None = None, *, ids: list[int] | None = None, budget: float = 0.0
) -> int:
    """Send due steps, oldest first (only those of ``ids``, if given). Returns how many it
    claimed. Never raises for provider failures: they are recorded. A step that is not due, or
    that another worker is sending, is left alone, so calling this twice sends nothing twice.

    Each claim takes up to ``limit`` (``SEND_BATCH_SIZE``) steps in one transaction; their
    provider calls run on this process's pool of ``SEND_CONCURRENCY`` threads, outside any
    transaction, and outcomes are recorded as they come back, a few at a time. With no
    ``budget`` that is one claim. With ``budget`` seconds (the ``send_due`` task) it claims
    again whenever calls finish, keeping up to ``SEND_CONCURRENCY`` in flight however slowly the
    providers answer, until nothing is due or the budget is spent; then it lets its calls
    finish. So throughput follows the providers' latency only past that many calls in flight.

    A full claim asks for another task, so that the other worker processes join in on a
    backlog; one still due when the budget ends is handed on the same way.
    """
    limit = limit or settings.SEND_BATCH_SIZE
    candidates = Step.objects.all() if ids is None else Step.objects.filter(id__in=ids)
    stop_at = time.monotonic() + budget
    inflight: dict[Future[Called], SendClaim] = {}
    claimed = rounds = 0
    claims: list[SendClaim] = []
    recorded_at = time.monotonic()
    idle_until = 0.0  # after a short claim: nothing more is due, so do not ask again at once
    while True:
        now = time.monotonic()
        room = min(limit, settings.SEND_CONCURRENCY - len(inflight))
        claims = []
        if room > 0 and (rounds == 0 or (now < stop_at and now >= idle_until)):
            claims = _claim(candidates, room)
            rounds += 1
            claimed += len(claims)
            for claim in claims:
                future = _pool().submit(contextvars.copy_context().run, _call_provider, claim)
                inflight[future] = claim
            if len(claims) == room:
                send_due_now()
            else:
                idle_until = now + SEND_IDLE_POLL
        if not inflight:  # nothing due (held-back steps have a countdown task) or time is up
            if rounds > 1 and claimed and now >= stop_at:
                send_due_now()  # the budget ended with steps perhaps still due: hand them on
            return claimed
        timeout = _wait_for_calls(now, stop_at, idle_until, room, len(claims))
        done, _ = wait(inflight, timeout=timeout, return_when=FIRST_COMPLETED)
        if done and timeout != 0.0:
            done = _gather(inflight, done, limit)
        elif len(done) < limit and now - recorded_at < RECORD_WINDOW:
            continue  # still claiming: let a claim's worth finish, or RECORD_WINDOW pass
        if done:
            called = [(inflight.pop(f).attempt, f.result()) for f in done]
            _outcomes_record(
                [(attempt, result.outcome) for attempt, result in called],
                [result.revoked for _, result in called if result.revoked is not None],
            )
            recorded_at = time.monotonic()


def _gather(inflight: dict[Future[Called], SendClaim], done: set, limit: int) -> set:
    """Wait up to ``RECORD_WINDOW`` for more calls to finish, until ``limit`` have, so that
    one transaction records several: with slow providers calls finish spread out, and a
    transaction per call would cost more than the calls."""
    give_up = time.monotonic() + RECORD_WINDOW
    while len(done) < min(limit, len(inflight)):
        left = give_up - time.monotonic()
        if left <= 0:
            break
        wait([f for f in inflight if f not in done], timeout=left, return_when=FIRST_COMPLETED)
        done = {future for future in inflight if future.done()}
    return done


def _wait_for_calls(
    now: float, stop_at: float, idle_until: float, room: int, claimed: int
) -> float | None:
    """How long the loop may wait for a call to finish before it claims again: not at all
    after a full claim (more are due and there is room for them), until ``idle_until`` after a
    short one, and for as long as it takes once it no longer claims."""
    if now >= stop_at:
        return None
    if room > 0 and claimed == room:
        return 0.0
    return max(0.0, idle_until - now) or None


# How long a send loop waits after finding nothing due before it asks again, and how long it
# waits for more calls to finish once one has, so that a transaction records several.
SEND_IDLE_POLL = 0.05
RECORD_WINDOW = 0.025

_threads: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """This process's provider-call threads (made after a prefork worker forked)."""
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(settings.SEND_CONCURRENCY, thread_name_prefix="send")
    return _threads


def _call_provider(claim: SendClaim) -> Called:
    """On a provider-call thread, outside any transaction: the revoke due first (bounded by
    ``REVOKE_TIMEOUT``, so a slow one delays the fallback by at most that), then the send."""
    attempt, route, outbound, revoke = claim
    logcontext.bind(workflow_uuid=attempt.step.workflow_id, message_uuid=attempt.step.message_uuid)
    revoked = (revoke, *revoke_run(revoke)) if revoke is not None else None
    try:
        with http.for_connection(route.connection_id):  # its keep-alive session
            return Called(route.adapter.send(outbound, route.config), revoked)
    except ProviderError as error:
        return Called(error, revoked)
    except Exception as error:  # an adapter bug: the message may or may not have left
        logger.exception("adapter %s raised unexpectedly", route.adapter.name)
        return Called(ProviderError(ErrorKind.AMBIGUOUS, repr(error)[:500]), revoked)


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
        routes: dict[tuple[str, str], list[Route]] = {}
        # Ending a run settles its steps, so a due step of an ended run is a race lost long
        # ago: skip it rather than leave it at the head of the queue. (Not a filter on the run
        # in the query: the planner may then start from the runs, not from the queue.)
        ended = [step for step in steps if step.workflow.status != WorkflowStatus.RUNNING]
        steps_transition(ended, StepState.SKIPPED, detail="its run had ended", finished_at=now)
        running = [step for step in steps if step.workflow.status == WorkflowStatus.RUNNING]
        admitted, _ = steps_admit([(step, _route(step, routes)) for step in running], now)
        route_of = {step.id: route for step, route in admitted}
        by_number: dict[int, list[Step]] = defaultdict(list)
        for row, _ in admitted:
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
        claims = _claims_for(sending, route_of)
        Attempt.objects.bulk_create([claim.attempt for claim in claims])
    return claims


def _route(step: Step, routes: dict[tuple[str, str], list[Route]]) -> Route:
    """The route of the step's next attempt: its channel's connections for its sender, best
    first, each tried ``SEND_MAX_ATTEMPTS`` times. ``routes`` caches them per sender and
    channel, so that a claim makes one query per sender, not per step."""
    key = (step.channel, address_of(step.sender))
    if key not in routes:
        routes[key] = routes_for(step.channel, step.sender)
    choices = routes[key]
    return choices[min(step.attempt_count // settings.SEND_MAX_ATTEMPTS, len(choices) - 1)]


def _claims_for(sending: list[Step], route_of: dict[int, Route]) -> list[SendClaim]:
    """Each claimed step's new Attempt, the message to send, and the revoke due before it
    (revoke before fallback: the undelivered RCS message this step replaces)."""
    revokes = revokes_for(sending)
    claims = []
    for step in sending:
        route = route_of[step.id]
        attempt = Attempt(
            step=step,
            number=step.attempt_count,
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
            attempt_number=step.attempt_count,
        )
        claims.append(SendClaim(attempt, route, outbound, revokes.get(step.id)))
    return claims


def _outcomes_record(
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
    throttled = error.kind == ErrorKind.TRANSIENT and error.retry_after
    if throttled and attempt.connection_id not in UNLIMITED:  # it said when to come back
        rate_slow_down(attempt.connection_id, error.retry_after or 0.0)
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
