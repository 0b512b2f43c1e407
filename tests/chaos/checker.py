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
5. a finished workflow's status agrees with its steps, and it changed status once;
6. a finished workflow with a webhook endpoint has exactly one final report, a running one
   none, and the report says how the workflow ended; when given what the caller's receiver got
   (``received``), every event was delivered, each ``webhook-id`` was accepted once, no event
   came under two ids, one final report per workflow reached the receiver, and every request
   carried signatures that verify (checked there with PyJWT and ``standardwebhooks``).

Invariant 3 also reads, when given, the provider simulator's log of the send requests it
received (``provider_log``, tests/chaos/providers.py), matched to attempts by ``client_ref``
where the provider's API carries it, else by the message ids the attempt recorded, and to
steps by recipient (each step of a provider scenario has its own).
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.db import connection, transaction

from workflows_app.models import Attempt, Event, Step, WebhookDelivery, Workflow
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
    workflow_ids: Iterable,
    send_log: Path | None = None,
    *,
    require_settled: bool = True,
    provider_log: Path | None = None,
    received: list | None = None,
) -> Verdict:
    """Check every invariant over the given workflows (and their sandbox calls, the provider
    simulator's sends, and the webhooks the caller's receiver got, when given).

    Reads one snapshot of the database (REPEATABLE READ), so runs that move on while it reads
    cannot look inconsistent. ``require_settled=False`` skips invariant 1, for checks in the
    middle of a run.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        verdict = _check(list(workflow_ids), send_log, require_settled)
        if provider_log is not None:
            _check_provider_sends(verdict, list(workflow_ids), provider_log)
        _check_webhooks(verdict, list(workflow_ids), received)
        return verdict


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


def _check_provider_sends(verdict: Verdict, ids: list, provider_log: Path) -> None:
    """No attempt reached a simulated provider twice; no step was accepted twice; every send
    that carried a ``client_ref`` came from an attempt the database knows."""
    steps = list(Step.objects.filter(workflow_id__in=ids))
    by_recipient = Counter(_recipient(s) for s in steps)
    step_of_recipient = {_recipient(s): s.id for s in steps if by_recipient[_recipient(s)] == 1}
    attempts = {a.id: a for a in Attempt.objects.filter(step__in=steps)}
    by_message_id = {mid: a.id for a in attempts.values() for mid in a.provider_message_ids}
    calls = [c for c in read_send_log(provider_log) if c["recipient"] in step_of_recipient]
    per_attempt: Counter = Counter()
    accepted_per_step: Counter = Counter()
    for call in calls:
        attempt_id = _attempt_id(call)
        if call.get("client_ref") and attempt_id not in attempts:
            verdict.add(f"a send to {call['recipient']} came from unknown attempt {attempt_id}")
        if attempt_id is None:
            ids_ = call.get("provider_message_ids") or []
            attempt_id = next((by_message_id[m] for m in ids_ if m in by_message_id), None)
        if attempt_id is not None:
            per_attempt[attempt_id] += 1
        if call["outcome"] == "accepted":
            accepted_per_step[step_of_recipient[call["recipient"]]] += 1
    for attempt_id, count in per_attempt.items():
        if count > 1:
            verdict.duplicates += count - 1
            verdict.add(f"attempt {attempt_id} reached the simulated provider {count} times")
    for step_id, count in accepted_per_step.items():
        if count > 1:
            verdict.duplicates += count - 1
            verdict.add(f"step {step_id}: the simulated providers accepted it {count} times")
    for step in steps:
        if step.attempt_count and not any(a.step_id == step.id for a in attempts.values()):
            verdict.add(f"step {step.id} counts attempts but has no Attempt rows")


def _recipient(step: Step) -> str:
    to = step.recipient or {}
    return str(to.get("number") or to.get("id") or "").removeprefix("whatsapp:").lstrip("+")


def _check_webhooks(verdict: Verdict, ids: list, received: list | None) -> None:
    """Invariant 6: one final report per finished workflow, in the outbox and at the caller."""
    deliveries = list(WebhookDelivery.objects.filter(workflow_id__in=ids))
    if not deliveries and received is None:
        return
    reports = Counter(d.workflow_id for d in deliveries if d.kind == "workflow_report")
    has_deliveries = {d.workflow_id for d in deliveries}
    for workflow in Workflow.objects.filter(id__in=ids):
        count = reports.get(workflow.id, 0)
        if workflow.status == WorkflowStatus.RUNNING and count:
            verdict.add(f"running workflow {workflow.id} has {count} final reports")
        elif (
            workflow.status != WorkflowStatus.RUNNING
            and workflow.id in has_deliveries
            and count != 1
        ):
            verdict.add(f"finished workflow {workflow.id} has {count} final reports")
    for delivery in deliveries:
        if delivery.kind == "workflow_report":
            status = json.loads(delivery.body).get("status")
            workflow = Workflow.objects.get(id=delivery.workflow_id)
            if status != workflow.status:
                verdict.add(f"report of {workflow.id} says {status}, it is {workflow.status}")
    if received is not None:
        _check_received(verdict, ids, deliveries, received)


def _check_received(verdict: Verdict, ids: list, deliveries: list, received: list) -> None:
    """What the caller's receiver got agrees with the outbox: everything, each id once."""
    for item in received:
        if item.jwt_claims is None or not item.standard_ok:
            verdict.add(f"webhook {item.headers.get('webhook-id')}: a signature did not verify")
    accepted = Counter(r.webhook_id for r in received if 200 <= r.answered < 300)
    expected = {d.header_id: d for d in deliveries}
    for delivery in deliveries:
        if delivery.state != "delivered":
            verdict.add(f"webhook {delivery.header_id} ({delivery.kind}) is {delivery.state}")
        elif accepted.get(delivery.header_id, 0) != 1:
            times = accepted.get(delivery.header_id, 0)
            verdict.add(f"webhook {delivery.header_id} reached the receiver {times} times")
    for webhook_id in set(accepted) - set(expected):
        verdict.add(f"the receiver accepted {webhook_id}, which the outbox never held")
    ids_per_event: defaultdict = defaultdict(set)
    for item in received:
        if 200 <= item.answered < 300:
            body = item.json
            key = (
                (body["message_uuid"], body["status"])
                if "message_uuid" in body
                else (
                    "report",
                    str(
                        body.get("workflow_uuid") or (body.get("workflow") or {}).get("workflow_id")
                    ),
                )
            )
            ids_per_event[key].add(item.webhook_id)
    for event, webhook_ids in ids_per_event.items():
        if len(webhook_ids) > 1:
            verdict.add(f"event {event} came under {len(webhook_ids)} webhook ids")
    finished = Workflow.objects.filter(id__in=ids).exclude(status=WorkflowStatus.RUNNING)
    for workflow_id in finished.values_list("id", flat=True):
        if not ids_per_event.get(("report", str(workflow_id))):
            verdict.add(f"the receiver never got the final report of {workflow_id}")
