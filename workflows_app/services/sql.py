"""The engine's hand-written SQL: plain parameterised statements, each a compare-and-set.

Every statement here is written out in full: table and column names come from the models'
public ``_meta`` (``db_table``, ``Field.column``), values are prepared by each field
(``Field.get_db_prep_save``) and cast to its column type (``Field.db_type``). Nothing is
compiled from the ORM's query internals, so a Django upgrade cannot change them.

They exist because a state change and its Event are one statement on PostgreSQL (a
data-modifying CTE: ``WITH changed AS (UPDATE … RETURNING) INSERT … SELECT FROM changed``),
atomic by itself and one round trip, and because ``UPDATE … RETURNING`` tells which rows of a
batch a compare-and-set changed. Other databases (the embedded SQLite) run the same writes row
by row with the ORM, inside a transaction.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Model, Q
from django.utils import timezone

from workflows_app.models import Event, Step, Workflow


@dataclass(frozen=True)
class EventRow:
    """The Event each changed row gets: its ``workflow_id`` and ``step_id`` come from the row."""

    kind: str
    from_state: str
    to_state: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def steps_set_where_state(
    ids: Sequence[int], state: str, values: dict[str, Any], event: EventRow
) -> set[int]:
    """``UPDATE step SET values WHERE id IN ids AND state = state``, and an Event for each row
    it changed. Returns the ids of the rows changed."""
    return _update_logged(Step, ids, "state", Q(state=state), [state], values, event)


def workflow_set_where_status(
    workflow_id: Any, status: str, values: dict[str, Any], event: EventRow
) -> bool:
    """``UPDATE workflow SET values WHERE id = workflow_id AND status = status``, and its Event
    if it changed. Returns whether it did."""
    where = Q(status=status)
    return bool(_update_logged(Workflow, [workflow_id], "status", where, [status], values, event))


def steps_set_where_status_in(
    ids: Sequence[int], statuses: Sequence[str | None], values: dict[str, Any]
) -> set[int]:
    """``UPDATE step SET values WHERE id IN ids AND message_status IN statuses`` (``None`` in
    ``statuses``: also where it is null). Returns the ids of the rows changed."""
    known = [status for status in statuses if status is not None]
    where = Q(message_status__in=known)
    condition = '"message_status" = ANY(%s)'
    if None in statuses:
        where |= Q(message_status__isnull=True)
        condition = f'("message_status" IS NULL OR {condition})'
    if not ids:
        return set()
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=False):
            changed = {id_ for id_ in ids if Step.objects.filter(where, id=id_).update(**values)}
        return changed
    assignments, params = _assignments(Step, values)
    sql = (
        f'UPDATE "{Step._meta.db_table}" SET {assignments} '
        f'WHERE "id" = ANY(%s) AND {condition} RETURNING "id"'
    )
    return {row[0] for row in _fetch(sql, [*params, list(ids), known])}


def _update_logged(
    model: type[Model],
    ids: Sequence[Any],
    column: str,
    where: Q,
    where_params: list[Any],
    values: dict[str, Any],
    event: EventRow,
) -> set[Any]:
    """The compare-and-set of the two functions above: ``column = %s`` on each of ``ids``."""
    if not ids:
        return set()
    now = timezone.now()
    step_rows = model is Step
    if connection.vendor != "postgresql":
        return _update_logged_row_by_row(model, ids, where, values, event, now)
    assignments, params = _assignments(model, values)
    workflow, step = ('"workflow_id"', '"id"') if step_rows else ('"id"', "NULL::bigint")
    sql = (
        f'WITH changed AS (UPDATE "{model._meta.db_table}" SET {assignments} '
        f'WHERE "id" = ANY(%s) AND "{column}" = %s RETURNING {workflow} AS w, {step} AS s) '
        f'INSERT INTO "{Event._meta.db_table}" '
        '("workflow_id", "step_id", "kind", "from_state", "to_state", "detail", "data", '
        '"dedupe_key", "created_at") '
        "SELECT w, s, %s, %s, %s, %s, %s::jsonb, NULL, %s FROM changed "
        f"RETURNING {'step_id' if step_rows else 'workflow_id'}"
    )
    event_params = [event.kind, event.from_state, event.to_state, event.detail[:255]]
    rows = _fetch(sql, [*params, list(ids), *where_params, *event_params, _json(event), now])
    return {row[0] for row in rows}


def _update_logged_row_by_row(
    model: type[Model], ids: Sequence[Any], where: Q, values: dict[str, Any], event: EventRow, now
) -> set[Any]:
    changed: set[Any] = set()
    events: list[Event] = []
    with transaction.atomic(savepoint=False):
        for id_ in ids:
            if not model._default_manager.filter(where, pk=id_).update(**values):
                continue
            changed.add(id_)
            step_id = id_ if model is Step else None
            workflow_id = (
                Step.objects.values_list("workflow_id", flat=True).get(id=id_) if step_id else id_
            )
            events.append(
                Event(
                    workflow_id=workflow_id,
                    step_id=step_id,
                    kind=event.kind,
                    from_state=event.from_state,
                    to_state=event.to_state,
                    detail=event.detail[:255],
                    data=event.data,
                    created_at=now,
                )
            )
        Event.objects.bulk_create(events)
    return changed


def _assignments(model: type[Model], values: dict[str, Any]) -> tuple[str, list[Any]]:
    """``"col" = %s::type, …`` and its parameters, each value prepared as ``save()`` would."""
    parts, params = [], []
    for name, value in values.items():
        column = model._meta.get_field(name)
        parts.append(f'"{column.column}" = %s::{column.db_type(connection)}')  # type: ignore[union-attr]
        params.append(column.get_db_prep_save(value, connection))  # type: ignore[union-attr]
    return ", ".join(parts), params


def _json(event: EventRow) -> str:
    return json.dumps(event.data, separators=(",", ":"))


def _fetch(sql: str, params: list[Any]) -> list[tuple]:
    # As QuerySet does: an error inside someone's atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
