"""Workflow and message UUIDs on every log line written while handling them.

Tasks open a :func:`log_context`; services :func:`bind` the ids once they know them; the
:class:`LogContextFilter` (installed on the console handler in settings) copies them onto each
record, where the JSON formatter (``LOG_FORMAT=json``) emits them as fields.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# None outside any log_context: bind() then does nothing, so ids never leak from one task into
# the next one a worker thread runs.
_ids: ContextVar[dict[str, str] | None] = ContextVar("log_ids", default=None)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Scope for ids bound while handling one task or request."""
    token = _ids.set({**(_ids.get() or {}), **_clean(ids)})
    try:
        yield
    finally:
        _ids.reset(token)


def bind(**ids: Any) -> None:
    """Add ids to the current scope (the innermost :func:`log_context`); outside one, nothing."""
    current = _ids.get()
    if current is not None:
        _ids.set({**current, **_clean(ids)})


def _clean(ids: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in ids.items() if value is not None}


class LogContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
