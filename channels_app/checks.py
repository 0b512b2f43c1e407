"""System checks for provider connections (style rule 9: a missing provider credential disables
that provider with a clear warning instead of crashing).

- ``channels_app.W001`` (``manage.py check --database default``): an enabled connection that
  cannot send, because its provider is unknown, its credentials cannot be decrypted, or its config
  lacks a key its adapter's ``required_config`` names. The registry skips such a connection
  (:func:`channels_app.registry.connection_route`), so this says why a channel is unrouted.
  It reads the database, so Django runs it only when a database is named; before the
  connections table exists (``migrate`` on an empty database checks first) it says nothing.
- ``channels_app.W002``: the connections could not be read at all.
- ``channels_app.W003`` (``manage.py check --deploy``): ``CREDENTIALS_KEY`` is unset while
  ``DEBUG`` is off.
"""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connections, transaction

from channels_app.models import ProviderConnection
from channels_app.registry import ConnectionUnusable, connection_route


@checks.register(checks.Tags.database)
def provider_connections_check(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W001 for every enabled connection that cannot send; W002 when none can be read."""
    found: list[checks.CheckMessage] = []
    for alias in databases or ():
        found.extend(_check_connections(alias))
    return found


def _check_connections(alias: str) -> list[checks.CheckMessage]:
    try:
        if ProviderConnection._meta.db_table not in connections[alias].introspection.table_names():
            return []  # not migrated yet: nothing is configured
        with transaction.atomic(using=alias):  # a savepoint, should a caller hold a transaction
            rows = list(ProviderConnection.objects.using(alias).filter(enabled=True))
    except DatabaseError as error:
        return [
            checks.Warning(
                f"Provider connections could not be read from database {alias!r}: "
                f"{type(error).__name__}.",
                hint="Run `manage.py migrate`, or check DATABASE_URL.",
                id="channels_app.W002",
            )
        ]
    found: list[checks.CheckMessage] = []
    for connection in rows:
        try:
            connection_route(connection)
        except ConnectionUnusable as reason:
            found.append(
                checks.Warning(
                    f"This provider connection is disabled: {reason}. Sends on "
                    f"{connection.channel} skip it.",
                    hint="Add the missing configuration (admin: Provider connections), or "
                    "untick `enabled`.",
                    obj=connection,
                    id="channels_app.W001",
                )
            )
    return found


@checks.register(checks.Tags.security, deploy=True)
def credentials_key_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W003 when provider credentials are encrypted with a key derived from SECRET_KEY."""
    if settings.DEBUG or settings.CREDENTIALS_KEY:
        return []
    return [
        checks.Warning(
            "CREDENTIALS_KEY is not set, so provider credentials are encrypted with a key "
            "derived from SECRET_KEY: changing SECRET_KEY would make every stored credential "
            "unreadable and disable every provider connection.",
            hint="Set CREDENTIALS_KEY to the output of "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
            ".decode())'` before adding provider connections (see docs/providers.md).",
            id="channels_app.W003",
        )
    ]
