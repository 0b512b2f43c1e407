"""Starting runs and moving them between steps: the heart of the engine.

Callers hold a transaction; every function here takes a Step read in that transaction and
changes it only through :mod:`workflows_app.services.transitions`.
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, OuterRef, Subquery, Value
from django.db.models.functions import Least

from workflows_app.models import Account, Application, Event, Step, Workflow
from workflows_app.services import sql
from workflows_app.services.clock import ClockTimestamp, db_now
from workflows_app.services.dispatch import EXPIRE_STEP, enqueue_on_commit, send_due_on_commit
from workflows_app.services.revoke import steps_mark_for_revoke
from workflows_app.services.transitions import steps_transition, workflow_transition
from workflows_app.states import (
    ACTIVE_STEP_STATES,
    EventKind,
    FailoverReason,
    MessageStatus,
    StepState,
    WorkflowStatus,
    condition_met,
    statuses_replaceable_by,
)
from workflows_app.webhooks import outbox


@dataclass(frozen=True)
class StepSpec:
    """One validated workflow item."""

    channel: str
    sender: dict[str, Any]
    recipient: dict[str, Any]
    message: dict[str, Any]
    condition_status: str | None = None
    expiry_time: int | None = None
    # Pre-assigned so an API can return it before the send (else assigned at first send).
    message_uuid: uuid.UUID | None = None


def workflow_create(
    *,
    account: Account,
    flavour: str,
    steps: list[StepSpec],
    application: Application | None = None,
    client_ref: str = "",
    webhook_url: str | None = None,
    webhook_version: str | None = None,
) -> Workflow:
    """Store a run and queue its first send (after commit). Returns the new Workflow.

    ``application`` is the JWT's application, if any (its ``status_url`` receives webhooks);
    ``webhook_url``/``webhook_version`` are a Messages v1 request's per-message overrides.
    """
    workflow = Workflow(
        account=account,
        application=application,
        api_flavour=flavour,
        client_ref=client_ref,
        webhook_url=webhook_url,
        webhook_version=webhook_version,
    )
    now = ClockTimestamp()  # evaluated by the database in the INSERT: no round trip
    steps_rows = [
        Step(
            workflow=workflow,
            index=index,
            channel=spec.channel,
            sender=spec.sender,
            recipient=spec.recipient,
            message=spec.message,
            condition_status=spec.condition_status,
            expiry_time=spec.expiry_time,
            message_uuid=spec.message_uuid,
            is_last=index == len(steps) - 1,
            ready_at=now if index == 0 else None,
            dispatched_at=now if index == 0 else None,
        )
        for index, spec in enumerate(steps)
    ]
    created = Event(
        workflow=workflow,
        kind=EventKind.WORKFLOW_CREATED,
        to_state="running",
        data={"steps": len(steps), "flavour": flavour},
    )
    # One statement (atomic by itself): the run, its steps and its first Event.
    sql.run_insert(workflow, steps_rows, created)
    send_due_on_commit()
    return workflow


def step_wanted_status(step: Step) -> str:
    """The status that ends the run successfully: the condition, or `delivered` for the last."""
    return step.condition_status or MessageStatus.DELIVERED


def steps_evaluate(steps: Sequence[Step]) -> None:
    """Decide active steps from their message status: succeed, fail over, or keep waiting.

    Call inside a transaction with the step rows locked (``select_for_update``), after their
    message status changed or they entered ``waiting``.
    """
    active = [step for step in steps if step.state in (StepState.SENDING, StepState.WAITING)]
    for reason in (FailoverReason.REJECTED, FailoverReason.UNDELIVERABLE):
        steps_fail_over([step for step in active if step.message_status == reason], reason)
    steps_succeed(
        [step for step in active if condition_met(step_wanted_status(step), step.message_status)]
    )


def steps_succeed(steps: Sequence[Step]) -> None:
    """The condition was met in time: each run completes and its later steps are skipped."""
    if not steps:
        return
    now = db_now()
    succeeded = steps_transition(steps, StepState.SUCCEEDED, finished_at=now)
    later = [
        pending
        for step in succeeded
        for pending in Step.objects.filter(
            workflow_id=step.workflow_id, index__gt=step.index, state=StepState.PENDING
        )
    ]
    steps_transition(later, StepState.SKIPPED, finished_at=now)
    for step in succeeded:
        workflow_transition(step.workflow_id, WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED)


def steps_fail_over(
    steps: Sequence[Step], reason: FailoverReason, *, detail: str = "", now: Any = None
) -> None:
    """Rejected, undeliverable or expired: start each step's next step, or end its run in
    `error` when it was the last. A constant number of statements for steps that are not last,
    so a burst of deadlines costs one scheduler tick, not one per step.

    ``now`` is the database's clock if the caller already read it in this transaction.
    """
    if not steps:
        return
    now = now or db_now()
    fields: dict[str, Any] = {"failover_reason": reason, "finished_at": now}
    last = [step for step in steps if step.is_last]
    for step in steps_transition(last, StepState.FAILED, detail=detail, **fields):
        workflow_transition(step.workflow_id, WorkflowStatus.RUNNING, WorkflowStatus.ERROR)
    middle = [step for step in steps if not step.is_last]
    failed_over = steps_transition(middle, StepState.FAILED_OVER, detail=detail, **fields)
    if reason == FailoverReason.EXPIRED:
        steps_mark_for_revoke(failed_over)
    _start_next_steps(failed_over, now)


def _start_next_steps(failed_over: list[Step], now: Any) -> None:
    """Make the step after each of ``failed_over`` due and queue its send."""
    if not failed_over:
        return
    wanted = {(step.workflow_id, step.index + 1) for step in failed_over}
    candidates = Step.objects.filter(
        workflow_id__in={workflow_id for workflow_id, _ in wanted},
        state=StepState.PENDING,
        ready_at__isnull=True,
    ).values_list("id", "workflow_id", "index")
    next_ids = [id_ for id_, workflow_id, index in candidates if (workflow_id, index) in wanted]
    if not next_ids:
        return
    # Due since its run started, not since now: the send queue is ordered by ``ready_at``, so
    # a failover goes ahead of a backlog of first sends accepted after its run (the person has
    # waited longest), instead of waiting for all of them.
    started = Workflow.objects.filter(id=OuterRef("workflow_id")).values("created_at")[:1]
    # (Least: a created_at from an application clock ahead of the database's is still due.)
    ready_at = Least(Subquery(started), Value(now, output_field=DateTimeField()))
    Step.objects.filter(id__in=next_ids).update(ready_at=ready_at, dispatched_at=now)
    send_due_on_commit()


def steps_message_status_advance(
    steps: Sequence[Step], new: MessageStatus, *, error: dict[str, Any] | None = None
) -> list[Step]:
    """Move the steps' message status forward to ``new`` and report it to the caller.

    The only writer of ``Step.message_status``: a compare-and-set that never moves a status
    backwards (``submitted`` < ``delivered`` < ``read``; a failure replaces only "not sent" or
    ``submitted`` and is final). Returns the steps it moved (updated in memory); the others,
    whose status ``new`` would not move forward, are left as they were.
    """
    fields: dict[str, Any] = {"message_status": new}
    if error is not None:
        fields["error"] = error
    ids = [step.id for step in steps]
    changed = sql.steps_set_where_status_in(ids, statuses_replaceable_by(new), fields)
    moved = [step for step in steps if step.id in changed]
    for step in moved:
        for name, value in fields.items():
            setattr(step, name, value)
        outbox.message_status_changed(step, new)
    return moved


def steps_settle_as_submitted(steps: Sequence[Step], *, detail: str) -> list[Step]:
    """``sending`` → ``waiting`` when the provider may or may not have the message.

    Never resent blindly: it counts as submitted and the step's timer decides, counted from
    now (if the provider has the message, it had it by now: the timer never fires early).
    """
    steps_message_status_advance(steps, MessageStatus.SUBMITTED)
    return steps_start_waiting(steps, detail=detail[:255])


def steps_start_waiting(
    steps: Sequence[Step], *, now: Any = None, detail: str = "", **fields: Any
) -> list[Step]:
    """``sending`` → ``waiting``: the providers have the messages as of ``now`` (their
    ``sent_at``), so each deadline is ``now + expiry_time``; arms the timers near enough.
    Returns the steps it moved.

    One UPDATE and one INSERT of Events per distinct deadline (a batch's steps are recorded
    together, so usually one). ``now`` is the database's clock if the caller already read it in
    this transaction.
    """
    now = now or db_now()
    groups: dict[tuple[Any, bool], list[Step]] = defaultdict(list)
    for step in steps:
        groups[_deadline(step, now)].append(step)
    moved: list[Step] = []
    for (deadline, armed), group in groups.items():
        waiting = steps_transition(
            group,
            StepState.WAITING,
            detail=detail,
            deadline_at=deadline,
            timer_armed_at=now if armed else None,
            sent_at=now,
            **fields,
        )
        for step in waiting if armed else []:
            enqueue_on_commit(EXPIRE_STEP, step.id, countdown=(deadline - now).total_seconds())
        moved += waiting
    return moved


def _deadline(step: Step, sent_at: Any) -> tuple[Any, bool]:
    """When a step whose message the provider had by ``sent_at`` fails over, and whether that
    is near enough (``TIMER_HORIZON``) to arm a countdown for it now.

    Counted from the acceptance, not from the start of the provider call: a failover before
    ``sent_at + expiry_time`` would cut the person's time short by the call's duration. Both
    are the database clock to the microsecond (services/clock.py), never rounded down.
    """
    seconds = (
        step.expiry_time if step.expiry_time is not None else settings.WORKFLOWS_FINAL_STEP_TIMEOUT
    )
    deadline = sent_at + timedelta(seconds=seconds)
    return deadline, deadline - sent_at <= timedelta(seconds=settings.TIMER_HORIZON)


def workflow_cancel(workflow: Workflow) -> bool:
    """Cancel a running workflow: every unfinished step is cancelled and its timer disarmed.

    A step whose attempt is in flight is cancelled too; the message may still reach the
    person, and its receipts are recorded, but nothing further is sent.

    Returns False if the run had already finished.
    """
    with transaction.atomic():
        if not workflow_transition(workflow.id, WorkflowStatus.RUNNING, WorkflowStatus.CANCELLED):
            return False
        now = db_now()
        active = Step.objects.select_for_update().filter(
            workflow_id=workflow.id, state__in=ACTIVE_STEP_STATES
        )
        steps_transition(list(active), StepState.CANCELLED, finished_at=now)
    return True
