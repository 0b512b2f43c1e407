"""Several writes in one SQL statement, compiled by Django's ORM.

The engine's hot paths write rows of several tables together: a new run is a Workflow, its
Steps and an Event; a state change is an ``UPDATE`` and its Event. As separate ORM calls each
costs a round trip, plus ``BEGIN`` and ``COMMIT``. On PostgreSQL the helpers here send them as
one statement with data-modifying CTEs (``WITH a AS (INSERT …), b AS (UPDATE …) …``), which is
atomic by itself. The SQL and its values are still the ORM's own (defaults, ``auto_now``, JSON,
expressions, column lists), taken from its compilers rather than written by hand, so a new
field or a changed default needs no change here. Other databases (the embedded SQLite) run the
same writes one by one in a transaction.

:func:`update_rows` (many rows, each its own values) has no ORM compiler to borrow: it writes
the ``UPDATE … FROM (VALUES …)`` itself, from each field's column type and value preparation.
"""

from collections.abc import Sequence
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import AutoField, Field, Model, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery


def _database() -> BaseDatabaseWrapper:
    """The connection object itself. ``django.db.connection`` is a proxy that finds it (thread-
    and task-local) on every attribute access; a compiler given the proxy does ~50 such lookups
    per row, a quarter of the cost of compiling an INSERT."""
    return connections[DEFAULT_DB_ALIAS]


def _insert_sql(objs: Sequence[Model]) -> tuple[str, tuple[Any, ...]]:
    """The ``INSERT`` that ``bulk_create(objs)`` would run (one model, one statement)."""
    model = type(objs[0])
    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.generated and not isinstance(field, AutoField)
    ]
    query = InsertQuery(model)
    query.insert_values(fields, list(objs))
    [(sql, params)] = query.get_compiler(connection=_database()).as_sql()
    return sql, tuple(params)


def _mark_saved(objs: Sequence[Model]) -> None:
    """Make instances look like ones the ORM saved (those whose id the database kept)."""
    for obj in objs:
        if obj.pk is not None:
            obj._state.adding = False
            obj._state.db = connection.alias


def insert_together(*batches: Sequence[Model], returning: int) -> list[int]:
    """Insert every batch (instances of one model each, in order) as one statement; returns
    the new ids of ``batches[returning]``'s rows, in order, and sets them on its instances.

    Rows refer to rows of other batches by keys they carry already (a UUID default); the
    database numbers auto-increment ids, and only the returned batch learns its own.
    """
    if not all(batches):
        raise ValueError("every batch needs at least one row")
    target = batches[returning]
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=False):
            for batch in batches:
                type(batch[0])._default_manager.bulk_create(batch)
        return [obj.pk for obj in target]
    parts: list[str] = []
    params: list[Any] = []
    for number, batch in enumerate(batches):
        sql, values = _insert_sql(batch)
        if number == returning:
            sql += ' RETURNING "id"'
        parts.append(f"w{number} AS ({sql})")
        params.extend(values)
    # As QuerySet does: an error inside someone's atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        # Ids come from one sequence in VALUES order, so ordering by them keeps the rows' order.
        cursor.execute(f"WITH {', '.join(parts)} SELECT id FROM w{returning} ORDER BY id", params)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, id_ in zip(target, ids, strict=True):
        obj.pk = id_
    for batch in batches:
        _mark_saved(batch)
    return ids


def update_then_insert(updated: QuerySet, values: dict[str, Any], row: Model) -> int:
    """``updated.update(**values)``, and only if it changed a row, insert ``row``; one
    statement. Returns the number of rows updated.

    For a compare-and-set and the Event that records it: the insert happens exactly when the
    update did, and in the same statement, so neither can be seen without the other.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=False):
            changed = updated.update(**values)
            if changed:
                row.save(force_insert=True)
        return changed
    query = cast(UpdateQuery, updated.query.chain(UpdateQuery))
    query.add_update_values(values)
    assert not query.related_updates, "one table's update only"
    update_sql, update_params = query.get_compiler(connection=_database()).as_sql()
    insert_sql, insert_params = _insert_sql([row])
    # The row's VALUES (…) become SELECT … WHERE, which inserts nothing when nothing changed.
    # (Not a VALUES subquery: PostgreSQL would type its literals as text, not as the columns.)
    head, _, values_sql = insert_sql.partition(" VALUES (")
    sql = (
        f"WITH changed AS ({update_sql} RETURNING 1) "
        f"{head} SELECT {values_sql.removesuffix(')')} WHERE EXISTS (SELECT FROM changed) "
        f"RETURNING (SELECT count(*) FROM changed)"
    )
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(sql, (*update_params, *insert_params))
        result = cursor.fetchone()
    if result is None:
        return 0
    _mark_saved([row])
    return result[0]


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """``bulk_update(objs, fields)`` as one ``UPDATE … FROM (VALUES …)``.

    Django's ``bulk_update`` writes a ``CASE WHEN id = … THEN …`` per row and field; building
    that costs more than the rows' other statements together (a batch of sends, 16 rows and 7
    columns: ~2.5 ms of CPU per row). Values are prepared by each field, as ``save()`` does,
    and cast to the column's type (PostgreSQL would type bare VALUES literals as text).
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields)
        return
    meta = model._meta
    columns = [meta.pk, *(cast(Field, meta.get_field(name)) for name in fields)]
    database = _database()
    names = [database.ops.quote_name(field.column) for field in columns]
    table, pk = database.ops.quote_name(meta.db_table), names[0]
    row = "(" + ", ".join(f"%s::{field.db_type(database)}" for field in columns) + ")"
    params = [
        field.get_db_prep_save(getattr(obj, field.attname), database)
        for obj in objs
        for field in columns
    ]
    sql = (
        f"UPDATE {table} SET {', '.join(f'{name} = v.{name}' for name in names[1:])} "
        f"FROM (VALUES {', '.join([row] * len(objs))}) AS v({', '.join(names)}) "
        f"WHERE {table}.{pk} = v.{pk}"
    )
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(sql, params)
