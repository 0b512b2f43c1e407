"""The only writer of ``Step.state`` and ``Workflow.status``.

Each change is checked against the table in :mod:`workflows_app.states`, applied as a
compare-and-set (``UPDATE … WHERE id = %s AND state = %s``) and recorded as an Event in the
same statement (:mod:`workflows_app.services.sql`). A lost race, a repeated task or a duplicate
receipt therefore changes nothing, and the caller learns so from what it gets back.
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows_app.models import Step
from workflows_app.services import sql
from workflows_app.states import (
    STEP_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    EventKind,
    IllegalTransition,
    StepState,
    WorkflowStatus,
)
from workflows_app.webhooks import outbox

__all__ = ["IllegalTransition", "steps_transition", "workflow_transition"]


def steps_transition(
    steps: Sequence[Step],
    to: StepState,
    *,
    detail: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> list[Step]:
    """Move each of ``steps`` from the state it was read in to ``to``; set ``fields`` alongside.

    Returns the steps this call moved, in order, updated in memory; a step whose row had
    already moved on is left out (one UPDATE and one INSERT of Events per source state, however
    many steps). Raises IllegalTransition, changing nothing, for a pair not in the table.
    """
    by_source: dict[StepState, list[Step]] = defaultdict(list)
    for step in steps:
        by_source[StepState(step.state)].append(step)
    for source in by_source:
        if (source, to) not in STEP_TRANSITIONS:
            raise IllegalTransition(f"step {source} → {to}")
    values = {"state": to, "updated_at": timezone.now(), **fields}
    changed: set[int] = set()
    with transaction.atomic(savepoint=False):
        for source, group in by_source.items():
            event = sql.EventRow(
                kind=EventKind.STEP_TRANSITION,
                from_state=source,
                to_state=to,
                detail=detail or STEP_TRANSITIONS[(source, to)],
                data=data or {},
            )
            runs = {step.id: step.workflow_id for step in group}
            changed |= sql.steps_set_where_state(runs, source, values, event)
    moved = [step for step in steps if step.id in changed]
    for step in moved:
        step.state = to
        for name, value in fields.items():
            setattr(step, name, value)
    return moved


def workflow_transition(
    workflow_id: Any, source: WorkflowStatus, to: WorkflowStatus, *, detail: str = ""
) -> bool:
    """Move a workflow from ``source`` to ``to`` as a compare-and-set with an Event; a run
    that leaves ``running`` gets its final report queued in the same transaction."""
    if (source, to) not in WORKFLOW_TRANSITIONS:
        raise IllegalTransition(f"workflow {source} → {to}")
    now = timezone.now()
    event = sql.EventRow(
        kind=EventKind.WORKFLOW_TRANSITION,
        from_state=source,
        to_state=to,
        detail=detail or WORKFLOW_TRANSITIONS[(source, to)],
    )
    with transaction.atomic(savepoint=False):  # the report commits or rolls back with it
        values = {"status": to, "updated_at": now, "finished_at": now}
        if not sql.workflow_set_where_status(workflow_id, source, values, event):
            return False
        if source == WorkflowStatus.RUNNING:
            outbox.workflow_finished(workflow_id)
    return True
