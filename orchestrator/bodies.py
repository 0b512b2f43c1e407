"""Request bodies at the WSGI edge: a chunked body is read, and a body left unread ends the
connection, saying so.

Two gaps between gunicorn and Django that :class:`BodyFraming` closes:

1. A body sent with ``Transfer-Encoding: chunked`` has no Content-Length. gunicorn de-chunks
   it into ``wsgi.input``, but Django reads ``CONTENT_LENGTH`` (absent, so 0) and sees an
   empty body. Here a chunked body is read (at most the largest body cap plus one byte) and
   handed to Django with its length, so every endpoint applies its own cap (a 413) to it as to
   any other body.
2. When the application answers without reading the whole body (a 413 refuses it unread, a
   401 comes before parsing), gunicorn 27 announces ``Connection: keep-alive``, then drains
   at most 64 KiB and silently closes the connection when more is left, so a pooled client's
   next request on it fails. Here a response that leaves any of the body unread closes the
   connection and says so (``Connection: close``); the client then opens a new one.

A WSGI application cannot set ``Connection`` itself (a hop-by-hop header; gunicorn drops it),
so closing goes through :data:`CLOSE_HOOK`, a callable that ``gunicorn.conf.py``'s
``pre_request`` puts on the request's ``wsgi.input``. Under a server without it (Django's
test client, ``runserver``) the middleware only reads chunked bodies.
"""

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

# The attribute of wsgi.input that closes the connection after this response (gunicorn.conf.py).
CLOSE_HOOK = "close_connection_after_response"

Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


class CountingInput:
    """``stream`` limited to ``length`` bytes, remembering how many were never read."""

    def __init__(self, stream: Any, length: int) -> None:
        self.stream, self.unread = stream, length

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self.stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self.stream.readline, size)

    def _take(self, reader: Callable[[int], bytes], size: int | None) -> bytes:
        if self.unread <= 0:
            return b""
        wanted = self.unread if size is None or size < 0 else min(size, self.unread)
        data = reader(wanted)
        self.unread = self.unread - len(data) if data else 0  # b"": the client went away
        return data


class BodyFraming:
    """WSGI middleware around the Django application (``orchestrator.wsgi``)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = environ.get("wsgi.input")
        if raw is None:
            return self.app(environ, start_response)
        close = getattr(raw, CLOSE_HOOK, None)
        if _is_chunked(environ):
            limit = largest_body_cap() + 1
            body = _read_at_most(raw, limit)
            left_behind = len(body) >= limit  # over every cap: refused, and the rest unread
            environ["CONTENT_LENGTH"] = str(len(body))
            counting = CountingInput(io.BytesIO(body), len(body))
        else:
            left_behind = False
            counting = CountingInput(raw, _declared_length(environ))
        environ["wsgi.input"] = counting
        response = self.app(environ, start_response)
        # gunicorn writes the status line (and decides Connection) on the first body write,
        # after this returns: closing now still changes the header.
        if (left_behind or counting.unread > 0) and close is not None:
            close()
        return response


def largest_body_cap() -> int:
    """The largest body any endpoint accepts: the API's or the receipts' cap."""
    return max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0, settings.RECEIPT_MAX_BODY_BYTES)


def _is_chunked(environ: Environ) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _declared_length(environ: Environ) -> int:
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _read_at_most(stream: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        data = stream.read(min(64 * 1024, limit - size))
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)
