"""Which adapter sends a step: provider names to adapters, and channels to routes."""

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from channels_app.adapters.base import Adapter
from channels_app.adapters.sandbox import SandboxAdapter

ADAPTERS: dict[str, Adapter] = {
    SandboxAdapter.name: SandboxAdapter(),
}


@dataclass(frozen=True)
class Route:
    adapter: Adapter
    connection_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def routes_for(channel: str, sender: dict[str, Any]) -> list[Route]:
    """The connections that may send on ``channel`` from ``sender``, best first.

    Until provider connections are configured, the sandbox serves every channel.
    """
    sandbox_config = {
        "deliver_after": settings.SANDBOX_DELIVER_AFTER,
        "read_after": settings.SANDBOX_READ_AFTER,
        "send_delay": settings.SANDBOX_SEND_DELAY,
        "send_log": settings.SANDBOX_SEND_LOG,
    }
    return [Route(ADAPTERS[SandboxAdapter.name], connection_id="sandbox", config=sandbox_config)]
