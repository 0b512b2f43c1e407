"""The one HTTP seam every adapter calls providers through.

Provider calls are coroutines on one event loop per process (:func:`submit`, :func:`run`), over
aiohttp: a hundred sends waiting on a slow provider are a hundred sockets in one thread, not a
hundred threads taking turns with the send loop for the interpreter (bench/findings.md, 31).
The loop is uvloop's (libuv): the send loop's thread shares the interpreter with it, so the
less CPU the loop spends per call, the more sends a process makes (finding 32).

This module owns timeouts and the mapping of network failures to error kinds, so no adapter has
to decide what a reset socket means:

- the request never left (DNS failure, connection refused, connect timeout): ``transient``;
  nothing reached the provider, so another attempt is safe;
- the request left but no answer came back (read timeout, connection reset or closed while
  waiting): ``ambiguous``; the provider may have accepted it, so the engine must not resend.

Adapters read HTTP status codes and bodies themselves, helped by :func:`kind_for_status`,
:func:`retry_after` and :func:`status_error`.
"""

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import email.utils
import functools
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import certifi
import requests
import uvloop
from django.conf import settings

from channels_app.errors import ErrorKind, ProviderError

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 20.0
USER_AGENT = "failover-orchestrator/0.1"

T = TypeVar("T")

# -- The process's event loop ----------------------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _running_loop() -> asyncio.AbstractEventLoop:
    """This process's provider-call loop, on a daemon thread of its own, started on first use
    (after a prefork worker forked: a loop inherited from the parent has no thread here)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = uvloop.new_event_loop(), os.getpid()
            _sessions.clear()
            thread = threading.Thread(target=_loop.run_forever, name="provider-calls", daemon=True)
            thread.start()
            atexit.register(_close, _loop)
        return _loop


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """At exit: close the sessions (their sockets) on their loop, then stop it."""
    if loop is _loop and loop.is_running():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_sessions_close(), loop).result(timeout=2)
        loop.call_soon_threadsafe(loop.stop)


async def _sessions_close() -> None:
    sessions = list(_sessions.values())
    _sessions.clear()
    await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)


def submit(call: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
    """Run ``call`` on the provider-call loop; the future ends with its result or exception.
    The call sees the submitting thread's context variables (log ids, the connection)."""
    return asyncio.run_coroutine_threadsafe(call, _running_loop())


def run(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` on the provider-call loop and wait for it: the bridge for code that is not
    a coroutine (the status poll, management commands, tests). Never call it on that loop."""
    return submit(call).result()


# -- Sessions ---------------------------------------------------------------------------------

# One keep-alive session per provider connection and process: sends through a connection
# reuse its TCP (and TLS) connections instead of opening one per send, and one connection's
# pool cannot be drained by another's. The send loop names the connection (for_connection).
# Only the loop's thread touches them.
_sessions: dict[str, aiohttp.ClientSession] = {}
_connection: contextvars.ContextVar[str] = contextvars.ContextVar("connection", default="")


@contextlib.contextmanager
def for_connection(connection_id: str) -> Iterator[None]:
    """Send the requests made inside through ``connection_id``'s session."""
    token = _connection.set(connection_id)
    try:
        yield
    finally:
        _connection.reset(token)


def _session() -> aiohttp.ClientSession:
    """The current connection's session (see :func:`for_connection`). Its pool keeps as many
    connections as sends may be in flight at once (``PROVIDER_POOL_SIZE``), so no send waits
    for one. No cookies are kept between sends. aiohttp retries a request on a dropped
    keep-alive connection only for idempotent methods, never a send's POST: a silent retry
    after the request was sent could send a message twice."""
    key = _connection.get()
    found = _sessions.get(key)
    if found is None or found.closed:
        connector = aiohttp.TCPConnector(limit=settings.PROVIDER_POOL_SIZE, limit_per_host=0)
        found = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        _sessions[key] = found
    return found


# -- Requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """A provider's answer, read whole: what adapters look at."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def request(
    method: str,
    url: str,
    *,
    config: dict[str, Any],
    auth: tuple[str, str] | None = None,
    **kwargs: Any,
) -> Response:
    """Send one HTTP request to a provider and return its response, whatever its status.

    ``config`` is the connection's config; ``connect_timeout`` and ``read_timeout`` (seconds)
    come from it. ``auth`` is a basic-auth pair; ``data``, ``json``, ``params`` and ``headers``
    go to aiohttp as they are. Raises :class:`ProviderError` (transient or ambiguous) when no
    response came. Error reasons never carry the URL, which may hold credentials in its query.
    """
    options = _options(url, config, auth, kwargs)
    try:
        async with _session().request(method, url, allow_redirects=False, **options) as response:
            return Response(response.status, response.headers, await response.read())
    except aiohttp.ConnectionTimeoutError:
        raise ProviderError(
            ErrorKind.TRANSIENT, "connect timeout: request not sent", code=1100
        ) from None
    except (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError):
        raise ProviderError(
            ErrorKind.TRANSIENT, "could not connect: request not sent", code=1100
        ) from None
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as error:  # raised before sending
        raise ProviderError(
            ErrorKind.CONFIGURATION, f"bad request setup: {type(error).__name__}"
        ) from None
    except aiohttp.SocketTimeoutError:
        raise ProviderError(
            ErrorKind.AMBIGUOUS, "read timeout after the request was sent", code=1100
        ) from None
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError):  # reset, closed, malformed
        raise ProviderError(
            ErrorKind.AMBIGUOUS, "connection lost after the request was sent", code=1100
        ) from None


def _options(
    url: str, config: dict[str, Any], auth: tuple[str, str] | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """aiohttp's arguments for one request: the connection's timeouts, the basic-auth header,
    the environment's proxy and CA bundle, and the adapter's ``kwargs``."""
    if auth:
        basic = aiohttp.encode_basic_auth(*auth)
        kwargs = {**kwargs, "headers": {**(kwargs.get("headers") or {}), "Authorization": basic}}
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=float(config.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT),
        sock_read=float(config.get("read_timeout") or DEFAULT_READ_TIMEOUT),
    )
    try:
        scheme, host = urllib.parse.urlsplit(url)[:2]
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        verify = _ssl_context(bundle)
    except (ValueError, OSError) as error:  # (OSError: the CA bundle named cannot be read)
        raise ProviderError(
            ErrorKind.CONFIGURATION, f"bad request setup: {type(error).__name__}"
        ) from None
    proxy = _environ_proxies(scheme, host).get(scheme)
    return {"timeout": timeout, "proxy": proxy, "ssl": verify, **kwargs}


@functools.lru_cache(maxsize=1024)
def _environ_proxies(scheme: str, host: str) -> dict[str, str]:
    """The proxies the environment names for ``scheme://host`` (``HTTPS_PROXY``, ``NO_PROXY``,
    …), as requests would find them, read once per process and host."""
    return requests.utils.get_environ_proxies(f"{scheme}://{host}/", no_proxy=None)


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """TLS verification against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` when one is named,
    else certifi's bundle, as requests verified (one context per bundle and process)."""
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


def kind_for_status(status: int) -> ErrorKind:
    """The default kind of an HTTP error status, for codes an adapter's table does not know."""
    if status == 429 or status >= 500:
        return ErrorKind.TRANSIENT
    if status in (401, 403, 407):
        return ErrorKind.CONFIGURATION
    return ErrorKind.PERMANENT


def retry_after(response: Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def json_body(response: Response) -> dict[str, Any] | None:
    """The response's JSON object, or None when the body is not one."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON (or nested past the parser's depth)
        return None
    return body if isinstance(body, dict) else None


def unreadable_success(response: Response) -> ProviderError:
    """A 2xx whose body we cannot read: the provider probably accepted, so never resend."""
    return ProviderError(
        ErrorKind.AMBIGUOUS,
        f"HTTP {response.status_code} with an unreadable body",
        code=1331,
        provider_code=str(response.status_code),
    )


def status_error(response: Response) -> ProviderError:
    """The error of an HTTP answer that the adapter's table does not explain: its kind by
    status (:func:`kind_for_status`), Vonage's generic 1331, ``Retry-After`` honoured."""
    return ProviderError(
        kind_for_status(response.status_code),
        f"HTTP {response.status_code}",
        code=1331,
        provider_code=str(response.status_code),
        retry_after=retry_after(response),
    )
