"""Sending steps in batches: commit "attempt started" for each step of a batch, call the
providers outside any transaction (concurrently, each call with its own timeouts), then record
every outcome in one new transaction.

Postgres is the queue. Whatever makes a step due asks, on commit, for a ``send_due`` task
(:func:`~workflows_app.services.dispatch.send_due_on_commit`); the task claims up to
``SEND_BATCH_SIZE`` due steps with ``FOR UPDATE SKIP LOCKED``, oldest first. Celery's cost per
task, and the two transactions' commits, are then paid once per batch instead of once per step.
A retry makes its step due later and queues the same task with that countdown.

This module holds the send loop and the claim; the record of the outcomes is
:mod:`workflows_app.services.send_record`.
"""

import logging
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from uuid6 import uuid7

from channels_app import http
from channels_app.adapters.base import OutboundMessage, address_of
from channels_app.errors import ErrorKind, ProviderError
from channels_app.registry import Route, routes_for
from workflows_app import logcontext
from workflows_app.models import Attempt, Step
from workflows_app.services.clock import ClockBound, ClockTimestamp
from workflows_app.services.dispatch import send_due_now
from workflows_app.services.revoke import RevokeResult, RevokeTask, revoke_run, revokes_for
from workflows_app.services.send_admission import steps_admit
from workflows_app.services.send_record import Outcome, outcomes_record
from workflows_app.services.sql import rows_update
from workflows_app.services.transitions import steps_transition
from workflows_app.states import StepState, WorkflowStatus

logger = logging.getLogger(__name__)


class SendClaim(NamedTuple):
    """A step moved to ``sending``: its new Attempt, the route it goes out on, the message, and
    the revoke to make first, if any."""

    attempt: Attempt
    route: Route
    outbound: OutboundMessage
    revoke: RevokeTask | None = None


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
    provider calls run as coroutines on this process's provider-call loop
    (:func:`channels_app.http.submit`), outside any transaction, and outcomes are recorded as
    they come back, a few at a time. With no ``budget`` that is one claim. With ``budget``
    seconds (the ``send_due`` task) it claims again whenever calls finish, keeping up to
    ``SEND_CONCURRENCY`` in flight (in this process) however slowly the providers answer,
    until nothing is due or the budget is spent. So throughput follows the providers' latency
    only past that many calls in flight.

    A full claim asks for another task, so that the other worker processes join in on a
    backlog. When the budget is spent the loop asks for one too and returns at once, leaving
    its calls in flight to a thread of this process that records them as they end (see
    :func:`_finish_elsewhere`): the next loop claims meanwhile, instead of a provider latency
    passing with nothing claimed.
    """
    limit = limit or settings.SEND_BATCH_SIZE
    candidates = Step.objects.all() if ids is None else Step.objects.filter(id__in=ids)
    stop_at = time.monotonic() + budget
    calls = _Calls()
    claimed = rounds = 0
    recorded_at = time.monotonic()
    idle_until = 0.0  # after a short claim: nothing more is due, so do not ask again at once
    while True:
        now = time.monotonic()
        room = min(limit, settings.SEND_CONCURRENCY - len(calls.inflight) - _finishing_count())
        claims = []
        if room > 0 and (rounds == 0 or (now < stop_at and now >= idle_until)):
            claims = _claim(candidates, room)
            rounds += 1
            claimed += len(claims)
            calls.start(claims)
            if len(claims) == room:
                send_due_now()
            else:
                idle_until = now + SEND_IDLE_POLL
        spent = rounds > 1 and now >= stop_at
        if spent and claimed:
            send_due_now()  # the budget ended with steps perhaps still due: hand them on
        if not calls.inflight:  # nothing due (held-back steps have a countdown task) or time is up
            return claimed
        if spent:
            _finish_elsewhere(calls)
            return claimed
        timeout = _wait_for_calls(now, stop_at, idle_until, room, len(claims))
        calls.take(0.0 if calls.finished else timeout)
        if calls.finished and timeout != 0.0:
            calls.gather(min(limit, len(calls.inflight)))
        elif len(calls.finished) < limit and now - recorded_at < RECORD_WINDOW:
            continue  # still claiming: let a claim's worth finish, or RECORD_WINDOW pass
        if calls.finished:
            calls.record()
            recorded_at = time.monotonic()


class _Calls:
    """One send loop's provider calls: in flight on the loop, and finished but not recorded.

    A call puts itself on ``finishing`` as it ends, so taking one costs the same however many
    are in flight (``concurrent.futures.wait`` visits every pending future on every call)."""

    def __init__(self) -> None:
        self.inflight: dict[Future[Called], SendClaim] = {}
        self.finishing: queue.SimpleQueue[Future[Called]] = queue.SimpleQueue()
        self.finished: list[Future[Called]] = []

    def start(self, claims: list[SendClaim]) -> None:
        for claim in claims:
            future = http.submit(_call_provider(claim))
            future.add_done_callback(self.finishing.put)
            self.inflight[future] = claim

    def take(self, timeout: float | None) -> None:
        """Take the calls that have finished, waiting up to ``timeout`` (None: as long as it
        takes) for the first."""
        try:
            if timeout == 0.0:
                self.finished.append(self.finishing.get_nowait())
            else:
                self.finished.append(self.finishing.get(timeout=timeout))
        except queue.Empty:
            return
        while not self.finishing.empty():
            self.finished.append(self.finishing.get_nowait())

    def gather(self, want: int) -> None:
        """Wait up to ``RECORD_WINDOW`` for more calls to finish, until ``want`` have, so that
        one transaction records several: with slow providers calls finish spread out, and a
        transaction per call would cost more than the calls."""
        give_up = time.monotonic() + RECORD_WINDOW
        while len(self.finished) < want and (left := give_up - time.monotonic()) > 0:
            self.take(left)

    def record(self) -> None:
        """Record the finished calls' outcomes (and revokes) in one transaction."""
        called = [(self.inflight.pop(f).attempt, f.result()) for f in self.finished]
        self.finished = []
        outcomes_record(
            [(attempt, result.outcome) for attempt, result in called],
            [result.revoked for _, result in called if result.revoked is not None],
        )


# The calls of send loops that ended before them, each set recorded by a thread of its own.
_finishing: dict[_Calls, threading.Thread] = {}
_finishing_lock = threading.Lock()


def _finish_elsewhere(calls: _Calls) -> None:
    """Record ``calls`` as they end, on a new thread (with its own database connection)."""
    thread = threading.Thread(target=_finish, args=(calls,), name="send-finish", daemon=True)
    with _finishing_lock:
        _finishing[calls] = thread
    thread.start()


def _finish(calls: _Calls) -> None:
    try:
        while calls.inflight:
            if not calls.finished:  # (the loop may have taken some it did not record)
                calls.take(None)
            calls.gather(min(settings.SEND_BATCH_SIZE, len(calls.inflight)))
            calls.record()  # (never raises for one step's trouble: see outcomes_record)
    except Exception:  # the database is gone: the steps left sending are settled after the lease
        logger.exception("recording %d finished provider calls failed", len(calls.inflight))
    finally:
        with _finishing_lock:
            del _finishing[calls]
        connection.close()  # this thread's


def _finishing_count() -> int:
    """Calls in flight that ended send loops left behind in this process."""
    with _finishing_lock:
        return sum(len(calls.inflight) for calls in _finishing)


def sends_finish(timeout: float | None = None) -> None:
    """Wait for the calls send loops left behind to end and be recorded (a worker process
    stopping calls this, so that a warm shutdown leaves no step ``sending``)."""
    with _finishing_lock:
        threads = list(_finishing.values())
    for thread in threads:
        thread.join(timeout)


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


async def _call_provider(claim: SendClaim) -> Called:
    """On the provider-call loop, outside any transaction: the revoke due first (bounded by
    ``REVOKE_TIMEOUT``, so a slow one delays the fallback by at most that), then the send."""
    attempt, route, outbound, revoke = claim
    logcontext.bind(workflow_uuid=attempt.step.workflow_id, message_uuid=attempt.step.message_uuid)
    revoked = (revoke, *await revoke_run(revoke)) if revoke is not None else None
    try:
        with http.for_connection(route.connection_id):  # its keep-alive session
            return Called(await route.adapter.send(outbound, route.config), revoked)
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
            .filter(state=StepState.PENDING, ready_at__lte=ClockBound())
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
