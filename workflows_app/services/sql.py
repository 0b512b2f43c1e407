"""The engine's hand-written SQL, all of it: plain parameterised statements.

Every statement here is written out in full: table and column names come from the models'
public ``_meta`` (``db_table``, ``Field.column``), values are prepared by each field
(``Field.pre_save``, ``Field.get_prep_value`` or ``Field.get_db_prep_save``) and cast to its
column type (``Field.db_type``, or the table's own row type). Nothing is compiled from the
ORM's query internals, so a Django upgrade cannot change them. Tests:
tests/workflows_app/test_sql.py.

They exist for the engine's hot paths, on PostgreSQL:

- :func:`run_insert`: a new run (its Workflow, Steps and first Event) is one statement of
  data-modifying CTEs, atomic by itself: one round trip instead of three, plus BEGIN/COMMIT.
  Each table's rows are one JSON parameter (``jsonb_populate_recordset``), so the statement's
  text is the same for every run and is prepared once per connection;
- :func:`steps_set_where_state`, :func:`workflow_set_where_status`: a state change and its
  Event are one statement (``WITH changed AS (UPDATE … RETURNING) INSERT … SELECT FROM
  changed``), so neither can be seen without the other;
- :func:`steps_set_where_status_in`: ``UPDATE … RETURNING`` tells which rows of a batch a
  compare-and-set changed;
- :func:`rows_update`: many rows, each its own values, as one ``UPDATE … FROM (VALUES …)``
  (Django's ``bulk_update`` builds a ``CASE`` per row and field, which costs more CPU than
  the batch's other statements together).

Other databases (the embedded SQLite) run the same writes with the ORM, in a transaction.
"""

import datetime
import decimal
import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import AutoField, Field, Model, Q
from django.utils import timezone

from workflows_app.models import Event, Step, Workflow
from workflows_app.services.clock import ClockTimestamp


def run_insert(workflow: Workflow, steps: Sequence[Step], created: Event) -> None:
    """Insert a new run: its Workflow, its Steps (they refer to it by its UUID) and its first
    Event, as one statement. Sets the steps' new ids, in order."""
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=False):
            Workflow.objects.bulk_create([workflow])
            Step.objects.bulk_create(steps)
            Event.objects.bulk_create([created])
        return
    tables = (("w", [workflow]), ("s", steps), ("e", [created]))
    parts, params = [], []
    for name, batch in tables:
        rows, clocked = _json_rows(batch)
        returning = ' RETURNING "id"' if name == "s" else ""
        parts.append(f"{name} AS ({_insert_sql(type(batch[0]), clocked)}{returning})")
        params.append(rows)
    # Ids come from one sequence in the rows' order, so ordering by them keeps the steps' order.
    ids = _fetch(f"WITH {', '.join(parts)} SELECT id FROM s ORDER BY id", params)
    for step, (id_,) in zip(steps, ids, strict=True):
        step.id = id_


# A value of a timestamp column that stands for the database's clock (``ClockTimestamp()``):
# no Python datetime is infinite, so no real value can be mistaken for it.
_CLOCK = "infinity"


def _json_rows(objs: Sequence[Model]) -> tuple[str, tuple[str, ...]]:
    """Instances of one model as one JSON array of rows (column → value), and the columns
    that hold the database's clock. One parameter per table, whatever the run's size, keeps
    the statement's text the same for every run, so psycopg prepares it once (it re-parses
    a statement of more than 50 parameters on every execution)."""
    fields = _insert_fields(type(objs[0]))
    rows, clocked = [], set()
    for obj in objs:
        row = {}
        for column in fields:
            value = column.pre_save(obj, add=True)  # defaults, auto_now_add
            if isinstance(value, ClockTimestamp):
                clocked.add(column.column)
                row[column.column] = _CLOCK
            else:
                row[column.column] = column.get_prep_value(value)
        rows.append(row)
    return json.dumps(rows, default=_json_value, separators=(",", ":")), tuple(sorted(clocked))


def _json_value(value: Any) -> str:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()  # every digit: DjangoJSONEncoder drops the microseconds
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a column value sql.py knows")


@functools.cache
def _insert_fields(model: type[Model]) -> list[Field]:
    """A model's inserted columns: all but generated ones and the auto-increment id."""
    return [
        column
        for column in model._meta.concrete_fields
        if not column.generated and not isinstance(column, AutoField)
    ]


@functools.cache
def _insert_sql(model: type[Model], clocked: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns) SELECT columns FROM jsonb_populate_recordset(…)``: the
    parameter's rows, typed as the table's own row type, in order; the ``clocked`` columns'
    placeholder (:data:`_CLOCK`) becomes ``clock_timestamp()``."""
    names = [f'"{column.column}"' for column in _insert_fields(model)]
    values = [
        f"CASE WHEN r.{name} = '{_CLOCK}' THEN clock_timestamp() ELSE r.{name} END"
        if name.strip('"') in clocked
        else f"r.{name}"
        for name in names
    ]
    table = f'"{model._meta.db_table}"'
    return (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb) WITH ORDINALITY AS r "
        "ORDER BY r.ordinality"
    )


@dataclass(frozen=True)
class EventRow:
    """The Event each changed row gets: its ``workflow_id`` and ``step_id`` come from the row."""

    kind: str
    from_state: str
    to_state: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def row(self, workflow_id: Any, step_id: int | None) -> Event:
        """The Event itself, for the ORM (the embedded SQLite)."""
        names = ("kind", "from_state", "to_state", "data")
        fields = {name: getattr(self, name) for name in names}
        return Event(workflow_id=workflow_id, step_id=step_id, detail=self.detail[:255], **fields)


def steps_set_where_state(
    runs: Mapping[int, Any], state: str, values: dict[str, Any], event: EventRow
) -> set[int]:
    """``UPDATE step SET values WHERE id IN runs AND state = state``, and an Event for each row
    it changed (``runs``: step id → its workflow id). Returns the ids of the rows changed."""
    return _update_logged(Step, runs, "state", Q(state=state), [state], values, event)


def workflow_set_where_status(
    workflow_id: Any, status: str, values: dict[str, Any], event: EventRow
) -> bool:
    """``UPDATE workflow SET values WHERE id = workflow_id AND status = status``, and its Event
    if it changed. Returns whether it did."""
    where = Q(status=status)
    runs = {workflow_id: workflow_id}
    return bool(_update_logged(Workflow, runs, "status", where, [status], values, event))


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
    runs: Mapping[Any, Any],
    column: str,
    where: Q,
    where_params: list[Any],
    values: dict[str, Any],
    event: EventRow,
) -> set[Any]:
    """The compare-and-set of the two functions above: ``column = %s`` on each row of ``runs``
    (its id → its workflow's id)."""
    if not runs:
        return set()
    step_rows = model is Step
    if connection.vendor != "postgresql":
        return _update_logged_row_by_row(model, runs, where, values, event)
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
    logged = [event.kind, event.from_state, event.to_state, event.detail[:255], _json(event)]
    rows = _fetch(sql, [*params, list(runs), *where_params, *logged, timezone.now()])
    return {row[0] for row in rows}


def _update_logged_row_by_row(
    model: type[Model], runs: Mapping[Any, Any], where: Q, values: dict[str, Any], event: EventRow
) -> set[Any]:
    changed: set[Any] = set()
    events: list[Event] = []
    with transaction.atomic(savepoint=False):
        for id_, workflow_id in runs.items():
            if not model._default_manager.filter(where, pk=id_).update(**values):
                continue
            changed.add(id_)
            events.append(event.row(workflow_id, id_ if model is Step else None))
        Event.objects.bulk_create(events)
    return changed


def rows_update(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """``bulk_update(objs, fields)`` as one ``UPDATE … FROM (VALUES …)``: each row its own
    values, prepared by each field as ``save()`` does and cast to the column's type
    (PostgreSQL would type bare VALUES literals as text)."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields)
        return
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    assert all(isinstance(column, Field) for column in columns)
    names = [f'"{column.column}"' for column in columns]  # type: ignore[union-attr]
    row = "(" + ", ".join(f"%s::{column.db_type(connection)}" for column in columns) + ")"  # type: ignore[union-attr]
    params = [
        column.get_db_prep_save(getattr(obj, column.attname), connection)  # type: ignore[union-attr]
        for obj in objs
        for column in columns
    ]
    table, pk = f'"{meta.db_table}"', names[0]
    sql = (
        f"UPDATE {table} SET {', '.join(f'{name} = v.{name}' for name in names[1:])} "
        f"FROM (VALUES {', '.join([row] * len(objs))}) AS v({', '.join(names)}) "
        f"WHERE {table}.{pk} = v.{pk}"
    )
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def _assignments(model: type[Model], values: dict[str, Any]) -> tuple[str, list[Any]]:
    """``"col" = %s::type, …`` and its parameters, each value prepared as ``save()`` would."""
    parts, params = [], []
    database = _database()
    for name, value in values.items():
        column, assignment = _assignment(model, name)
        parts.append(assignment)
        params.append(column.get_db_prep_save(value, database))
    return ", ".join(parts), params


@functools.cache
def _assignment(model: type[Model], name: str) -> tuple[Field, str]:
    """A field and its ``"col" = %s::type``, worked out once (PostgreSQL only)."""
    column = model._meta.get_field(name)
    assert isinstance(column, Field)
    return column, f'"{column.column}" = %s::{column.db_type(connection)}'


def _database() -> BaseDatabaseWrapper:
    """The connection object itself: ``django.db.connection`` is a proxy that looks it up
    (thread- and task-local) on every attribute access, dozens of times per row prepared."""
    return connections[DEFAULT_DB_ALIAS]


def _json(event: EventRow) -> str:
    return json.dumps(event.data, separators=(",", ":"))


def _fetch(sql: str, params: list[Any]) -> list[tuple]:
    # As QuerySet does: an error inside someone's atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
