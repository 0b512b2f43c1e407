"""The invariants every chaos scenario (and the state-machine test) must leave true.

Reads only the database (Workflow, Step, Attempt, Event) plus, when given, the sandbox's log of
the calls it received (``SANDBOX_SEND_LOG``). Each broken invariant is one line in
:attr:`Verdict.violations`; ``lost`` and ``duplicates`` count the two failures we promise never
to cause (design.md, "Invariants every change keeps"):

1. every workflow ended, or waits on a future deadline (else it is *lost*);
2. no step failed over twice, and each step's transitions form one unbroken chain through the
   table in ``workflows_app/states.py`` (so its state never went backwards);
3. no attempt reached the provider twice, and no step was accepted by the provider twice
   (else a *duplicate* send);
4. a step's message status is never behind a non-failure status it received;
5. a finished workflow's status agrees with its steps, and it changed status once.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.db import connection, transaction

from workflows_app.models import Attempt, Event, Step, Workflow
from workflows_app.services.clock import db_now
from workflows_app.states import (
    ACTIVE_STEP_STATES,
    FAILURE_STATUSES,
    MESSAGE_STATUS_RANK,
    STEP_TRANSITIONS,
    MessageStatus,
    StepState,
    WorkflowStatus,
)

RECEIPT_KINDS = ("receipt", "receipt.late", "receipt.replayed")


@dataclass
class Verdict:
    workflows: int = 0
    lost: int = 0
    duplicates: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, message: str) -> None:
        self.violations.append(message)


def is_settled(workflow: Workflow, steps: list[Step], now) -> bool:
    """Ended, or running with its one active step waiting on a deadline still to come."""
    if workflow.status != WorkflowStatus.RUNNING:
        return True
    active = [s for s in steps if s.state in ACTIVE_STEP_STATES and s.ready_at is not None]
    return (
        len(active) == 1
        and active[0].state == StepState.WAITING
        and active[0].deadline_at is not None
        and active[0].deadline_at > now
    )


def unsettled(workflow_ids: Iterable, margin: timedelta = timedelta(0)) -> list:
    """The ids among ``workflow_ids`` that are neither finished nor waiting on a deadline more
    than ``margin`` away (a harness waits with a margin, so a deadline due in a moment does not
    count as settled just before it fires)."""
    now = db_now() + margin
    steps = _steps_by_workflow(workflow_ids)
    return [
        w.id
        for w in Workflow.objects.filter(id__in=list(steps))
        if not is_settled(w, steps[w.id], now)
    ]


def _steps_by_workflow(workflow_ids: Iterable) -> dict:
    by_workflow: dict = defaultdict(list)
    for step in Step.objects.filter(workflow_id__in=list(workflow_ids)).order_by("index"):
        by_workflow[step.workflow_id].append(step)
    return by_workflow


def check(
    workflow_ids: Iterable, send_log: Path | None = None, *, require_settled: bool = True
) -> Verdict:
    """Check every invariant over the given workflows (and their sandbox calls).

    Reads one snapshot of the database (REPEATABLE READ), so runs that move on while it reads
    cannot look inconsistent. ``require_settled=False`` skips invariant 1, for checks in the
    middle of a run.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _check(list(workflow_ids), send_log, require_settled)


def _check(ids: list, send_log: Path | None, require_settled: bool) -> Verdict:
    verdict = Verdict(workflows=len(ids))
    now = db_now()
    steps_by_workflow = _steps_by_workflow(ids)
    events = defaultdict(list)
    workflow_events = defaultdict(list)
    for event in Event.objects.filter(workflow_id__in=ids).order_by("id"):
        if event.step_id is not None:
            events[event.step_id].append(event)
        elif event.kind == "workflow.transition":
            workflow_events[event.workflow_id].append(event)
    for workflow in Workflow.objects.filter(id__in=ids):
        steps = steps_by_workflow[workflow.id]
        if require_settled and not is_settled(workflow, steps, now):
            verdict.lost += 1
            verdict.add(f"lost: {workflow.id} is {_describe(steps)}")
        _check_workflow_outcome(verdict, workflow, steps, workflow_events[workflow.id])
        for step in steps:
            _check_step_history(verdict, step, events[step.id])
            _check_message_status(verdict, step, events[step.id])
    _check_sends(verdict, steps_by_workflow, send_log)
    return verdict


def _describe(steps: list[Step]) -> str:
    return ", ".join(f"#{s.index} {s.state}/{s.message_status}" for s in steps)


def _check_workflow_outcome(verdict: Verdict, workflow, steps, transitions) -> None:
    if len(transitions) > 1:
        verdict.add(f"workflow {workflow.id} changed status {len(transitions)} times")
    states = [s.state for s in steps]
    if workflow.status == WorkflowStatus.COMPLETED and states.count(StepState.SUCCEEDED) != 1:
        verdict.add(f"completed workflow {workflow.id} has steps {_describe(steps)}")
    if workflow.status == WorkflowStatus.ERROR and states[-1] != StepState.FAILED:
        verdict.add(f"errored workflow {workflow.id} has steps {_describe(steps)}")
    if workflow.status != WorkflowStatus.RUNNING:
        stuck = [s for s in steps if s.state in ACTIVE_STEP_STATES and s.ready_at is not None]
        if stuck:
            verdict.add(f"finished workflow {workflow.id} has active steps {_describe(stuck)}")


def _check_step_history(verdict: Verdict, step: Step, events: list[Event]) -> None:
    """Transitions form one chain from `pending` through the table, ending in the row's state."""
    state = StepState.PENDING
    for event in (e for e in events if e.kind == "step.transition"):
        pair = (event.from_state, event.to_state)
        if event.from_state != state or pair not in STEP_TRANSITIONS:
            verdict.add(f"step {step.id}: transition {pair} after reaching {state}")
        state = StepState(event.to_state)
    if state != step.state:
        verdict.add(f"step {step.id}: row says {step.state}, its events end at {state}")
    failovers = sum(1 for e in events if e.to_state == StepState.FAILED_OVER)
    if failovers > 1:
        verdict.add(f"step {step.id} failed over {failovers} times")
    starts = sum(1 for e in events if e.to_state == StepState.SENDING)
    if starts != step.attempt_count:
        verdict.add(
            f"step {step.id}: {starts} attempts started, attempt_count {step.attempt_count}"
        )


def _check_message_status(verdict: Verdict, step: Step, events: list[Event]) -> None:
    """The step's message status is not behind any non-failure status it received."""
    received = [
        MessageStatus(e.to_state)
        for e in events
        if e.kind in RECEIPT_KINDS and e.to_state in MessageStatus.__members__.values()
    ]
    if not received:
        return
    if step.message_status is None:
        verdict.add(f"step {step.id} received {received} but has no message status")
        return
    current = MessageStatus(step.message_status)
    if current in FAILURE_STATUSES:
        return
    best = max(
        (s for s in received if s not in FAILURE_STATUSES),
        key=MESSAGE_STATUS_RANK.get,
        default=None,
    )
    if best is not None and MESSAGE_STATUS_RANK[current] < MESSAGE_STATUS_RANK[best]:
        verdict.add(f"step {step.id}: status {current} is behind received {best}")


def read_send_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_sends(verdict: Verdict, steps_by_workflow: dict, send_log: Path | None) -> None:
    step_ids = {s.id for steps in steps_by_workflow.values() for s in steps}
    attempts = dict(Attempt.objects.filter(step_id__in=step_ids).values_list("id", "step_id"))
    accepted_in_db = Counter(
        Attempt.objects.filter(step_id__in=step_ids, outcome="accepted").values_list(
            "step_id", flat=True
        )
    )
    for step_id, count in accepted_in_db.items():
        if count > 1:
            verdict.duplicates += count - 1
            verdict.add(f"step {step_id}: {count} attempts recorded as accepted")
    if send_log is None:
        return
    calls = [c for c in read_send_log(send_log) if _attempt_id(c) in attempts]
    per_attempt = Counter(_attempt_id(c) for c in calls)
    for attempt_id, count in per_attempt.items():
        if count > 1:
            verdict.duplicates += count - 1
            verdict.add(f"attempt {attempt_id} reached the provider {count} times")
    accepted = Counter(attempts[_attempt_id(c)] for c in calls if c["outcome"] == "accepted")
    for step_id, count in accepted.items():
        if count > 1 and accepted_in_db.get(step_id, 0) <= 1:
            verdict.duplicates += count - 1
            verdict.add(f"step {step_id}: the provider accepted it {count} times")


def _attempt_id(call: dict):
    import uuid

    try:
        return uuid.UUID(call["client_ref"])
    except (KeyError, ValueError):
        return None
