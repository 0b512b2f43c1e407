"""What every provider adapter implements.

An adapter translates between our message and one provider's send API. It never touches the
ORM, Celery or settings: its connection's config is passed in, and failures are raised as
:class:`~channels_app.errors.ProviderError` by kind. Each adapter keeps one visible table
(``ERRORS``) from provider codes to an :class:`ErrorRule`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from channels_app.errors import ErrorKind, ProviderError
from channels_app.statuses import Price, ReceiptEvent


def address_of(party: Mapping[str, Any]) -> str:
    """A Vonage-shaped ``from`` or ``to`` object's address, as the caller gave it: its
    ``number`` (SMS, MMS, WhatsApp, Viber), else its ``id`` (Messenger); "" if it has neither."""
    return str(party.get("number") or party.get("id") or "")


@dataclass(frozen=True)
class OutboundMessage:
    channel: str
    sender: dict[str, Any]  # the Vonage-shaped `from` object
    recipient: dict[str, Any]  # the Vonage-shaped `to` object
    message: dict[str, Any]  # the Vonage-shaped `message` object
    client_ref: str  # our attempt id; providers that echo it let receipts find the attempt
    attempt_number: int = 1

    @property
    def content(self) -> dict[str, Any]:
        return self.message.get("content") or {}

    @property
    def content_type(self) -> str:
        return str(self.content.get("type", ""))

    @property
    def to(self) -> str:
        """The recipient's number or id, as the caller gave it."""
        return address_of(self.recipient)

    @property
    def from_(self) -> str:
        return address_of(self.sender)

    def channel_options(self) -> dict[str, Any]:
        """The request's per-channel block, e.g. ``message.messenger`` (Vonage v0.1 shape)."""
        return self.message.get(self.channel) or {}


@dataclass(frozen=True)
class SendResult:
    provider_message_ids: list[str]
    response: dict[str, Any] = field(default_factory=dict)
    price: Price | None = None  # the cost the send's answer reported (None: not reported)


class RevokeOutcome(StrEnum):
    """What a revoke request achieved. A revoke that could not be made raises ProviderError."""

    REVOKED = "revoked"  # the provider will not deliver the message
    TOO_LATE = "too_late"  # the provider says the message was already delivered


def unsupported_content(provider: str, message: OutboundMessage) -> ProviderError:
    """A content type this provider cannot carry on this channel: permanent, fail over."""
    return ProviderError(
        ErrorKind.PERMANENT,
        f"{provider} cannot send {message.content_type or 'empty'} content on {message.channel}",
        code=1440,
        provider_code="unsupported-content",
    )


def missing_config(provider: str, *keys: str) -> ProviderError:
    return ProviderError(
        ErrorKind.CONFIGURATION,
        f"{provider} connection is missing config: {', '.join(keys)}",
        provider_code="missing-config",
    )


class Adapter:
    name: ClassVar[str]
    channels: ClassVar[frozenset[str]]
    default_base_url: ClassVar[str] = ""
    # The config keys (credentials, account ids) that :meth:`send` cannot work without. The one
    # list read by send() (through :meth:`require_config`), by the registry, which skips a
    # connection lacking any of them, and by the system check that warns about it.
    required_config: ClassVar[tuple[str, ...]] = ()
    # True when :meth:`poll` can ask the provider for a message's status (a receipt backstop).
    supports_polling: ClassVar[bool] = False
    # The channels on which :meth:`revoke` can withdraw a sent, undelivered message (RCS).
    revocable_channels: ClassVar[frozenset[str]] = frozenset()

    def missing_config(self, config: Mapping[str, Any]) -> list[str]:
        """The keys of :attr:`required_config` that ``config`` lacks or leaves empty."""
        return [key for key in self.required_config if not config.get(key)]

    def require_config(self, config: Mapping[str, Any]) -> None:
        """Raise a configuration :class:`ProviderError` unless ``config`` has every required key."""
        missing = self.missing_config(config)
        if missing:
            raise missing_config(self.name, *missing)

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        """Send one message. Returns the provider's ids; raises ProviderError by kind."""
        raise NotImplementedError

    async def poll(self, provider_message_id: str, config: dict[str, Any]) -> list[ReceiptEvent]:
        """Ask the provider for a message's current status, as receipts (possibly none).

        Raises ProviderError when the provider cannot answer.
        """
        raise NotImplementedError

    async def revoke(
        self, provider_message_id: str, recipient: str, config: dict[str, Any]
    ) -> RevokeOutcome:
        """Ask the provider not to deliver a sent message (``recipient`` as the step's ``to``).

        Returns REVOKED or TOO_LATE; raises ProviderError when the provider did not answer
        either way (the caller records that as a failed revoke and moves on).
        """
        raise NotImplementedError

    def base_url(self, config: dict[str, Any]) -> str:
        return str(config.get("base_url") or self.default_base_url).rstrip("/")
