"""What an operator is shown about provider connections: on the command line
(``manage.py connections list``) and in ``make run``'s banner.

Never a credential: a connection is described by the names of its config keys only.
"""

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from channels_app.crypto import CredentialsUnreadable
from channels_app.models import ProviderConnection
from channels_app.registry import ADAPTERS


@dataclass(frozen=True)
class ConnectionSummary:
    id: str
    name: str
    provider: str
    channel: str
    senders: list[str]
    priority: int
    enabled: bool
    base_url: str
    config_keys: list[str]  # names only, never values
    problem: str  # why sends skip or distrust it ("" when none is known)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summarize(connection: ProviderConnection) -> ConnectionSummary:
    """A connection as shown to an operator (see the module docstring)."""
    problem = ""
    try:
        config = connection.config
    except CredentialsUnreadable:
        config, problem = {}, "credentials unreadable with the current CREDENTIALS_KEY"
    keys = sorted(config)
    adapter = ADAPTERS.get(connection.provider)
    if adapter is None:
        problem = f"unknown provider {connection.provider!r}"
    elif not problem and (missing := adapter.missing_config(config)):
        problem = f"config lacks {', '.join(missing)}"
    if not problem and connection.configuration_error:
        problem = f"configuration error: {connection.last_error}"
    return ConnectionSummary(
        id=str(connection.id),
        name=connection.name,
        provider=connection.provider,
        channel=connection.channel,
        senders=[str(s) for s in connection.senders or []],
        priority=connection.priority,
        enabled=connection.enabled,
        base_url=connection.base_url,
        config_keys=keys,
        problem=problem,
    )


def all_connections(enabled_only: bool = False) -> list[ConnectionSummary]:
    rows = ProviderConnection.objects.order_by("channel", "priority", "created_at")
    if enabled_only:
        rows = rows.filter(enabled=True)
    return [summarize(row) for row in rows]


def base_url_answers(base_url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``base_url``'s host and port.

    A connection with no base URL talks to the provider's public API, which is not probed
    (it would leave this machine): that counts as answering.
    """
    if not base_url:
        return True
    parts = urlsplit(base_url)
    if not parts.hostname:
        return False
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
