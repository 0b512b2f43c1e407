"""What every provider adapter implements.

An adapter translates between our message and one provider's send API. It never touches the
ORM, Celery or settings: its connection's config is passed in, and failures are raised as
:class:`~channels_app.errors.ProviderError` by kind.
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class OutboundMessage:
    channel: str
    sender: dict[str, Any]  # the Vonage-shaped `from` object
    recipient: dict[str, Any]  # the Vonage-shaped `to` object
    message: dict[str, Any]  # the Vonage-shaped `message` object
    client_ref: str  # our attempt id; providers that echo it let receipts find the attempt
    attempt_number: int = 1


@dataclass(frozen=True)
class SendResult:
    provider_message_ids: list[str]
    response: dict[str, Any] = field(default_factory=dict)


class Adapter:
    name: ClassVar[str]
    channels: ClassVar[frozenset[str]]

    def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        """Send one message. Returns the provider's ids; raises ProviderError by kind."""
        raise NotImplementedError
