"""Time as the database sees it. Due-ness is never decided with a worker's clock.

PostgreSQL has ``clock_timestamp()`` (microseconds, advancing inside a transaction). SQLite
has no such function: its ``CURRENT_TIMESTAMP`` has whole seconds, so a step made due "now"
(``ready_at`` with microseconds) was not yet due for the send queued right after it, and a
deadline counted from a start rounded down fired up to a second early. So every SQLite
connection is given a ``clock_timestamp()`` of its own (:func:`register_sqlite_clock`, on
``connection_created``): the same SQL then runs on both databases, with the same precision.
"""

from datetime import UTC, datetime

from django.db import connection
from django.db.backends.signals import connection_created
from django.db.models import DateTimeField, Func
from django.utils import timezone


class ClockTimestamp(Func):
    """The database's wall clock as a query expression: ``clock_timestamp()`` (on PostgreSQL
    the built-in, ``now()`` would freeze at the transaction's start; on SQLite ours).

    Annotate a query that runs anyway with it (``.annotate(db_now=ClockTimestamp())``) instead
    of asking :func:`db_now` in a round trip of its own.
    """

    function = "clock_timestamp"
    template = "clock_timestamp()"
    output_field = DateTimeField()


class ClockBound(ClockTimestamp):
    """The same clock as the bound of an index scan: ``(SELECT clock_timestamp())``.

    PostgreSQL cannot bound an index scan with a volatile function, so ``ready_at <=
    clock_timestamp()`` filters every entry of the index in turn: the steps not yet due too
    (held back by a rate limit, retrying later), each a heap fetch, on every claim. An
    uncorrelated subquery is evaluated once per execution (an InitPlan), and its value bounds
    the scan. (On SQLite, the same SQL.)
    """

    template = "(SELECT clock_timestamp())"


def sqlite_clock_timestamp() -> str:
    """Now, in UTC, as Django stores a datetime in SQLite (``str()`` of a naive datetime:
    ``YYYY-MM-DD HH:MM:SS[.ffffff]``), so that text comparisons with stored values order as
    the times do. Microseconds, as on PostgreSQL; never rounded."""
    return str(datetime.now(UTC).replace(tzinfo=None))


def register_sqlite_clock(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: give a new SQLite connection ``clock_timestamp()``."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "clock_timestamp", 0, sqlite_clock_timestamp, deterministic=False
        )


connection_created.connect(register_sqlite_clock, dispatch_uid="workflows_app.sqlite_clock")


def db_now() -> datetime:
    """The database server's current time (aware, UTC)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    # SQLite runs in our own process: its clock is ours (the one clock_timestamp() reads).
    return timezone.now()
