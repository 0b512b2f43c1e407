"""The single entry point for normalised receipts.

Every receipt endpoint (and the sandbox) parses its provider's payload into
:class:`~channels_app.statuses.ReceiptEvent` objects and calls :func:`ingest`. The domain
registers the consumer at start-up (``workflows_app.apps``); this package never imports it.
"""

from collections.abc import Callable, Iterable

from channels_app.statuses import ReceiptEvent

ReceiptHandler = Callable[[list[ReceiptEvent]], None]
_handler: ReceiptHandler | None = None


def register_handler(handler: ReceiptHandler) -> None:
    global _handler
    _handler = handler


def ingest(events: Iterable[ReceiptEvent]) -> None:
    """Hand receipts to the domain. Raises if no handler is registered (a wiring bug)."""
    if _handler is None:
        raise RuntimeError("no receipt handler registered")
    _handler(list(events))
