"""Time as the database sees it. Due-ness is never decided with a worker's clock."""

from datetime import datetime

from django.db import connection
from django.db.models import DateTimeField, Func
from django.db.models.functions import Now
from django.utils import timezone


class ClockTimestamp(Func):
    """The database's wall clock as a query expression: ``clock_timestamp()`` on PostgreSQL
    (``now()`` would freeze at the transaction's start), ``Now()`` elsewhere.

    Annotate a query that runs anyway with it (``.annotate(db_now=ClockTimestamp())``) instead
    of asking :func:`db_now` in a round trip of its own.
    """

    function = "clock_timestamp"
    template = "clock_timestamp()"
    output_field = DateTimeField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return Now().as_sql(compiler, connection)


def db_now() -> datetime:
    """The database server's current time (aware, UTC)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    # SQLite runs in our own process: its clock is ours.
    return timezone.now()
