"""The only writer of ``Step.state`` and ``Workflow.status``.

Each change is checked against the table in :mod:`workflows_app.states`, applied as a
compare-and-set (``UPDATE … WHERE id = %s AND state = %s``) and recorded as an Event in the
same statement (:func:`~workflows_app.services.statements.update_then_insert`). A lost race, a
repeated task or a duplicate receipt therefore changes nothing and the caller learns so from
the ``False`` it gets back.
"""

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows_app import webhooks
from workflows_app.models import Event, Step, Workflow
from workflows_app.services.statements import update_then_insert
from workflows_app.states import (
    STEP_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    StepState,
    WorkflowStatus,
)


class IllegalTransition(Exception):
    """A transition that is not in the table: a programming error, never user input."""


def step_transition(
    step: Step,
    to: StepState,
    *,
    detail: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move ``step`` from the state it was read in to ``to``; set ``fields`` alongside.

    Returns True if this call made the change (and updates ``step`` in memory), False if the
    row had already moved on. Raises IllegalTransition for a pair that is not in the table.
    """
    source = StepState(step.state)
    if (source, to) not in STEP_TRANSITIONS:
        raise IllegalTransition(f"step {source} → {to}")
    changed = update_then_insert(
        Step.objects.filter(id=step.id, state=source),
        {"state": to, "updated_at": timezone.now(), **fields},
        _step_event(step, source, to, detail, data),
    )
    if changed != 1:
        return False
    step.state = to
    for name, value in fields.items():
        setattr(step, name, value)
    return True


def steps_transition(
    steps: Sequence[Step], to: StepState, *, detail: str = "", **fields: Any
) -> None:
    """:func:`step_transition` for many steps at once: one UPDATE and one INSERT of their
    Events, whatever their number.

    The caller must hold every row's lock (``select_for_update``) and have read each in one
    source state, so no row can have moved on: the compare-and-set must change them all, and
    anything else is a bug that rolls the caller's transaction back.
    """
    if not steps:
        return
    source = StepState(steps[0].state)
    if any(step.state != source for step in steps):
        raise ValueError("steps_transition takes steps read in one state")
    if (source, to) not in STEP_TRANSITIONS:
        raise IllegalTransition(f"step {source} → {to}")
    now = timezone.now()
    ids = [step.id for step in steps]
    with transaction.atomic(savepoint=False):
        changed = Step.objects.filter(id__in=ids, state=source).update(
            state=to, updated_at=now, **fields
        )
        if changed != len(ids):
            raise RuntimeError(f"{len(ids) - changed} locked step(s) moved under their lock")
        Event.objects.bulk_create(_step_event(step, source, to, detail) for step in steps)
    for step in steps:
        step.state = to
        for name, value in fields.items():
            setattr(step, name, value)


def _step_event(
    step: Step, source: StepState, to: StepState, detail: str, data: dict[str, Any] | None = None
) -> Event:
    return Event(
        workflow_id=step.workflow_id,
        step_id=step.id,
        kind="step.transition",
        from_state=source,
        to_state=to,
        detail=detail or STEP_TRANSITIONS[(source, to)],
        data=data or {},
    )


def workflow_transition(
    workflow_id: Any, source: WorkflowStatus, to: WorkflowStatus, *, detail: str = ""
) -> bool:
    """Move a workflow from ``source`` to ``to`` as a compare-and-set with an Event."""
    if (source, to) not in WORKFLOW_TRANSITIONS:
        raise IllegalTransition(f"workflow {source} → {to}")
    now = timezone.now()
    with transaction.atomic(savepoint=False):  # the report commits or rolls back with it
        changed = update_then_insert(
            Workflow.objects.filter(id=workflow_id, status=source),
            {"status": to, "updated_at": now, "finished_at": now},
            Event(
                workflow_id=workflow_id,
                kind="workflow.transition",
                from_state=source,
                to_state=to,
                detail=detail or WORKFLOW_TRANSITIONS[(source, to)],
            ),
        )
        if changed != 1:
            return False
        if source == WorkflowStatus.RUNNING:
            webhooks.workflow_finished(workflow_id)
    return True
