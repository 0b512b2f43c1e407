"""The providers, one row each (its adapter and its receipt parser), and which route sends a
step: channels to routes.

Routes come from :class:`~channels_app.models.ProviderConnection` rows. A channel with no
connection at all is served by the sandbox (the embedded default). An enabled connection that
cannot send (an unknown provider, credentials that cannot be decrypted, or a config lacking keys
its adapter requires) is left out of every route, logged, and reported by the system check in
:mod:`channels_app.checks`: disabled, rather than failing each send.
"""

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels_app import http
from channels_app.adapters.base import Adapter, OutboundMessage, SendResult, address_of
from channels_app.adapters.google_rbm import GoogleRbmAdapter
from channels_app.adapters.messenger import MessengerAdapter
from channels_app.adapters.sandbox import SandboxAdapter
from channels_app.adapters.twilio import TwilioAdapter
from channels_app.adapters.viber import ViberAdapter
from channels_app.adapters.vonage_messages import VonageMessagesAdapter
from channels_app.adapters.vonage_sms import VonageSmsAdapter
from channels_app.adapters.whatsapp import WhatsAppAdapter
from channels_app.crypto import CredentialsUnreadable
from channels_app.errors import ErrorKind, ProviderError
from channels_app.models import ProviderConnection
from channels_app.receipts.base import ReceiptParser
from channels_app.receipts.google_rbm import GoogleRbmReceiptParser
from channels_app.receipts.messenger import MessengerReceiptParser
from channels_app.receipts.twilio import TwilioReceiptParser
from channels_app.receipts.viber import ViberReceiptParser
from channels_app.receipts.vonage_messages import VonageMessagesReceiptParser
from channels_app.receipts.vonage_sms import VonageSmsReceiptParser
from channels_app.receipts.whatsapp import WhatsAppReceiptParser

logger = logging.getLogger(__name__)


class UnroutedAdapter(Adapter):
    """Stands in when a channel has connections but none that can send serves this sender
    (each serves other senders, or is skipped as unusable: see :func:`connection_route`)."""

    name = "unrouted"
    channels = frozenset()

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        raise ProviderError(
            ErrorKind.CONFIGURATION,
            f"no usable provider connection serves sender {message.from_!r} on {message.channel}",
            code=1420,
            provider_code="no-route",
        )


@dataclass(frozen=True)
class Provider:
    """One provider: the adapter that sends through it, and the parser of the receipts it
    posts to ``/webhooks/receipts/<name>`` (None: the sandbox's come in-process)."""

    adapter: Adapter
    receipts: ReceiptParser | None

    @property
    def name(self) -> str:
        return self.adapter.name


# Adding a provider: its adapter, its receipt parser, their tests, and a row here.
PROVIDERS: dict[str, Provider] = {
    row.name: row
    for row in (
        Provider(SandboxAdapter(), receipts=None),
        Provider(MessengerAdapter(), MessengerReceiptParser()),
        Provider(ViberAdapter(), ViberReceiptParser()),
        Provider(VonageSmsAdapter(), VonageSmsReceiptParser()),
        Provider(TwilioAdapter(), TwilioReceiptParser()),
        Provider(WhatsAppAdapter(), WhatsAppReceiptParser()),
        Provider(VonageMessagesAdapter(), VonageMessagesReceiptParser()),
        Provider(GoogleRbmAdapter(), GoogleRbmReceiptParser()),
    )
}
assert all(row.receipts is None or row.receipts.provider == name for name, row in PROVIDERS.items())

ADAPTERS: dict[str, Adapter] = {name: row.adapter for name, row in PROVIDERS.items()}
ADAPTERS[UnroutedAdapter.name] = UnroutedAdapter()  # never a connection's provider
RECEIPT_PARSERS: dict[str, ReceiptParser] = {
    name: row.receipts for name, row in PROVIDERS.items() if row.receipts is not None
}


@dataclass(frozen=True)
class Route:
    adapter: Adapter
    connection_id: str = ""
    config: dict[str, Any] = field(default_factory=dict, repr=False)


def sandbox_route() -> Route:
    config = {
        "deliver_after": settings.SANDBOX_DELIVER_AFTER,
        "read_after": settings.SANDBOX_READ_AFTER,
        "send_delay": settings.SANDBOX_SEND_DELAY,
        "send_log": settings.SANDBOX_SEND_LOG,
        "connection_id": "sandbox",
    }
    return Route(ADAPTERS[SandboxAdapter.name], connection_id="sandbox", config=config)


def receipt_url(provider: str, connection_id: str) -> str:
    """Our receipt endpoint for one connection, or "" when PUBLIC_BASE_URL is not set."""
    if not settings.PUBLIC_BASE_URL:
        return ""
    return f"{settings.PUBLIC_BASE_URL}/webhooks/receipts/{provider}/{connection_id}"


def connection_config(connection: Any) -> dict[str, Any]:
    """A connection's decrypted config, merged with its base URL, timeouts and receipt URL."""
    config = {
        "connect_timeout": settings.PROVIDER_CONNECT_TIMEOUT,
        "read_timeout": settings.PROVIDER_READ_TIMEOUT,
        "receipt_url": receipt_url(connection.provider, str(connection.id)),
    }
    config.update(connection.config)
    if connection.base_url:
        config["base_url"] = connection.base_url
    config["connection_id"] = str(connection.id)  # the sandbox binds its receipts to it
    return config


class ConnectionUnusable(Exception):
    """A connection that cannot send; the message says why, naming no credential's value."""


def connection_route(connection: Any) -> Route:
    """The route through one connection. Raises :class:`ConnectionUnusable` when its provider
    is unknown, its credentials cannot be decrypted, or its config lacks a key that its
    adapter's ``required_config`` names."""
    adapter = ADAPTERS.get(connection.provider)
    if adapter is None or isinstance(adapter, UnroutedAdapter):
        raise ConnectionUnusable(f"unknown provider {connection.provider!r}")
    try:
        config = connection_config(connection)
    except CredentialsUnreadable as error:
        raise ConnectionUnusable(
            "its credentials cannot be decrypted with CREDENTIALS_KEY"
        ) from error
    missing = adapter.missing_config(config)
    if missing:
        raise ConnectionUnusable(
            f"its config lacks {', '.join(missing)} "
            f"({adapter.name} requires {', '.join(adapter.required_config)})"
        )
    return Route(adapter, str(connection.id), config)


def routes_for(channel: str, sender: dict[str, Any]) -> list[Route]:
    """The connections that may send on ``channel`` from ``sender``, best first.

    Connections flagged with a configuration error go last (the operator clears the flag once
    fixed); connections that cannot send at all (:func:`connection_route`) are skipped and
    logged. With no enabled connection for the channel, the sandbox serves it; connections that
    exist for the channel but serve other senders, or cannot send, leave this sender with no
    route: the sandbox serves only a channel with no connection at all, never as a silent
    stand-in for one that is misconfigured.
    """
    rows = list(ProviderConnection.objects.filter(channel=channel, enabled=True))
    if not rows:
        return [sandbox_route()]
    sender_id = address_of(sender)
    serving = [c for c in rows if c.serves(sender_id)]
    serving.sort(key=lambda c: (c.configuration_error, c.priority, c.created_at))
    routes = []
    for connection in serving:
        try:
            routes.append(connection_route(connection))
        except ConnectionUnusable as reason:
            logger.warning(
                "connection %s (%s on %s) is skipped: %s",
                connection.id,
                connection.provider,
                channel,
                reason,
            )
    return routes or [unrouted_route(channel)]


def unrouted_route(channel: str) -> Route:
    """A route that fails every send with a configuration error (nothing serves this sender)."""
    return Route(ADAPTERS["unrouted"], connection_id="", config={"channel": channel})


def connection_report_error(connection_id: str, kind: str, reason: str) -> None:
    """Record a provider error on a connection; a configuration error flags it for operators.

    Called by the engine when an attempt through the connection failed. ``reason`` must not
    hold credentials (adapters build reasons from provider codes, never from our request).
    """
    if not connection_id or connection_id == "sandbox":
        return
    fields: dict[str, Any] = {
        "last_error": f"{kind}: {reason}"[:500],
        "last_error_at": timezone.now(),
    }
    if kind == ErrorKind.CONFIGURATION:
        fields["configuration_error"] = True
    try:
        ProviderConnection.objects.filter(id=connection_id).update(**fields)
    except (ValueError, ValidationError):  # not a connection id: nothing to flag
        logger.warning("could not record an error on connection %r", connection_id)


def polling_providers() -> set[str]:
    """Providers whose adapters can be asked for a message's status (a receipt backstop)."""
    return {name for name, adapter in ADAPTERS.items() if adapter.supports_polling}


def poll(provider: str, connection_id: str, provider_message_id: str) -> list:
    """Ask the provider, through the connection that sent it, for a message's status.

    Returns normalised receipts (ReceiptEvent), bound to that connection. Raises ProviderError
    when the provider cannot answer. Call outside any transaction: this is a network call.
    """
    adapter = ADAPTERS[provider]
    connection = ProviderConnection.objects.get(id=connection_id)
    events = http.run(adapter.poll(provider_message_id, connection_config(connection)))
    return [replace(event, connection_ids=(connection_id,)) for event in events]


def revocable_channels() -> frozenset[str]:
    """Every channel some adapter can revoke messages on (RCS)."""
    return frozenset().union(*(adapter.revocable_channels for adapter in ADAPTERS.values()))


def can_revoke(provider: str, channel: str) -> bool:
    adapter = ADAPTERS.get(provider)
    return adapter is not None and channel in adapter.revocable_channels


def route_of(provider: str, connection_id: str) -> Route:
    """The route a message went out on (its attempt's provider and connection), to act on it
    later (a revoke). Raises ConnectionUnusable when that connection is gone or cannot send."""
    if connection_id == "sandbox" or not connection_id:
        return sandbox_route()
    try:
        connection = ProviderConnection.objects.get(id=connection_id, provider=provider)
    except (ProviderConnection.DoesNotExist, ValueError, ValidationError):
        raise ConnectionUnusable(f"connection {connection_id!r} no longer exists") from None
    return connection_route(connection)
