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
from django.db.models import Q

from workflows_app import webhooks
from workflows_app.models import Account, Application, Event, Step, Workflow
from workflows_app.services.clock import ClockTimestamp, db_now
from workflows_app.services.dispatch import arm_timer_on_commit, send_due_on_commit
from workflows_app.services.statements import insert_together
from workflows_app.services.transitions import (
    step_transition,
    steps_transition,
    workflow_transition,
)
from workflows_app.states import (
    ACTIVE_STEP_STATES,
    FAILURE_STATUSES,
    FailoverReason,
    MessageStatus,
    StepState,
    WorkflowStatus,
    condition_met,
    statuses_replaceable_by,
)


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
            ready_at=now if index == 0 else None,
            dispatched_at=now if index == 0 else None,
        )
        for index, spec in enumerate(steps)
    ]
    created = Event(
        workflow=workflow,
        kind="workflow.created",
        to_state="running",
        data={"steps": len(steps), "flavour": flavour},
    )
    # One statement (atomic by itself): the run, its steps and its first Event.
    insert_together([workflow], steps_rows, [created], returning=1)
    send_due_on_commit()
    return workflow


def step_wanted_status(step: Step) -> str:
    """The status that ends the run successfully: the condition, or `delivered` for the last."""
    return step.condition_status or MessageStatus.DELIVERED


def step_evaluate(step: Step) -> None:
    """Decide an active step from its message status: succeed, fail over, or keep waiting.

    Call inside a transaction with the step row locked (``select_for_update``), after the
    message status changed or the step entered ``waiting``.
    """
    if step.state not in (StepState.SENDING, StepState.WAITING):
        return
    if step.message_status in FAILURE_STATUSES:
        step_fail_over(step, FailoverReason(step.message_status))
    elif condition_met(step_wanted_status(step), step.message_status):
        step_succeed(step)


def step_succeed(step: Step) -> None:
    """The condition was met in time: the run completes and later steps are skipped."""
    now = db_now()
    if not step_transition(step, StepState.SUCCEEDED, finished_at=now):
        return
    later = Step.objects.filter(
        workflow_id=step.workflow_id, index__gt=step.index, state=StepState.PENDING
    )
    for pending in later:
        step_transition(pending, StepState.SKIPPED, finished_at=now)
    workflow_transition(step.workflow_id, WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED)


def step_fail_over(step: Step, reason: FailoverReason, *, detail: str = "") -> None:
    """Rejected, undeliverable or expired: start the next step, or end the run in `error`."""
    now = db_now()
    fields: dict[str, Any] = {"failover_reason": reason, "finished_at": now}
    if step.is_last:
        if step_transition(step, StepState.FAILED, detail=detail, **fields):
            workflow_transition(step.workflow_id, WorkflowStatus.RUNNING, WorkflowStatus.ERROR)
        return
    if step_transition(step, StepState.FAILED_OVER, detail=detail, **fields):
        _start_next_steps([step], now)


def steps_fail_over(steps: list[Step], reason: FailoverReason, *, detail: str, now: Any) -> None:
    """:func:`step_fail_over` for a batch of waiting steps the caller has locked (the
    scheduler's expired deadlines): a constant number of statements for the lot, so a burst of
    deadlines costs one tick, not one tick per step."""
    last = [step for step in steps if step.is_last]
    for step in last:  # ends a run: its workflow transition and report, one by one
        step_fail_over(step, reason, detail=detail)
    middle = [step for step in steps if not step.is_last]
    steps_transition(
        middle, StepState.FAILED_OVER, detail=detail, failover_reason=reason, finished_at=now
    )
    _start_next_steps(middle, now)


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
    Step.objects.filter(id__in=next_ids).update(ready_at=now, dispatched_at=now)
    send_due_on_commit()


def step_message_status_advance(
    step: Step, new: MessageStatus, *, error: dict[str, Any] | None = None
) -> bool:
    """Move the step's message status forward to ``new`` and report it to the caller.

    The only writer of ``Step.message_status``: a compare-and-set that never moves a status
    backwards (``submitted`` < ``delivered`` < ``read``; a failure replaces only "not sent" or
    ``submitted`` and is final). Returns False, changing nothing, when ``new`` is not forward.
    """
    fields: dict[str, Any] = {"message_status": new}
    if error is not None:
        fields["error"] = error
    replaceable = [s for s in statuses_replaceable_by(new) if s is not None]
    moves_forward = Q(message_status__isnull=True) | Q(message_status__in=replaceable)
    if not Step.objects.filter(moves_forward, id=step.id).update(**fields):
        return False
    for name, value in fields.items():
        setattr(step, name, value)
    webhooks.message_status_changed(step, new)
    return True


def steps_message_status_advance(steps: Sequence[Step], new: MessageStatus) -> None:
    """:func:`step_message_status_advance` for steps the caller has locked: their statuses in
    memory are current, so those it moves forward are known before one UPDATE moves them."""
    replaceable = statuses_replaceable_by(new)
    forward = [step for step in steps if step.message_status in replaceable]
    if not forward:
        return
    Step.objects.filter(id__in=[step.id for step in forward]).update(message_status=new)
    for step in forward:
        step.message_status = new
        webhooks.message_status_changed(step, new)


def step_settle_as_submitted(step: Step, *, detail: str) -> bool:
    """``sending`` → ``waiting`` when the provider may or may not have the message.

    Never resent blindly: it counts as submitted and the step's timer decides, counted from
    now (if the provider has the message, it had it by now: the timer never fires early).
    """
    step_message_status_advance(step, MessageStatus.SUBMITTED)
    return step_start_waiting(step, detail=detail[:255])


def step_start_waiting(step: Step, *, now: Any = None, detail: str = "", **fields: Any) -> bool:
    """``sending`` → ``waiting``: the provider has the message as of ``now`` (its ``sent_at``),
    so its deadline is ``now + expiry_time``; arms the timer.

    ``now`` is the database's clock if the caller already read it in this transaction.
    """
    now = now or db_now()
    deadline, armed = _deadline(step, now)
    if not step_transition(
        step,
        StepState.WAITING,
        detail=detail,
        deadline_at=deadline,
        timer_armed_at=now if armed else None,
        sent_at=now,
        **fields,
    ):
        return False
    if armed:
        arm_timer_on_commit(step.id, (deadline - now).total_seconds())
    return True


def steps_start_waiting(steps: Sequence[Step], *, now: Any) -> None:
    """:func:`step_start_waiting` for ``sending`` steps the caller has locked (a batch of
    sends whose providers accepted by ``now``): one UPDATE and one INSERT of Events per
    distinct deadline (a batch's steps are recorded together, so usually one)."""
    groups: dict[tuple[Any, bool], list[Step]] = defaultdict(list)
    for step in steps:
        groups[_deadline(step, now)].append(step)
    for (deadline, armed), group in groups.items():
        steps_transition(
            group,
            StepState.WAITING,
            deadline_at=deadline,
            timer_armed_at=now if armed else None,
            sent_at=now,
        )
        for step in group if armed else []:
            arm_timer_on_commit(step.id, (deadline - now).total_seconds())


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
        for step in active:
            step_transition(step, StepState.CANCELLED, finished_at=now)
    return True
