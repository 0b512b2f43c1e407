"""Time as the database sees it. Due-ness is never decided with a worker's clock."""

from datetime import datetime

from django.db import connection
from django.utils import timezone


def db_now() -> datetime:
    """The database server's current time (aware, UTC)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    # SQLite runs in our own process: its clock is ours.
    return timezone.now()
