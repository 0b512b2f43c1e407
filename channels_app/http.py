"""The one HTTP seam every adapter calls providers through.

It owns timeouts and the mapping of network failures to error kinds, so no adapter has to
decide what a reset socket means:

- the request never left (DNS failure, connection refused, connect timeout): ``transient``;
  nothing reached the provider, so another attempt is safe;
- the request left but no answer came back (read timeout, connection reset or closed while
  waiting): ``ambiguous``; the provider may have accepted it, so the engine must not resend.

Adapters read HTTP status codes and bodies themselves, helped by :func:`kind_for_status`,
:func:`retry_after` and :func:`status_error`.
"""

import contextlib
import contextvars
import email.utils
import functools
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from channels_app.errors import ErrorKind, ProviderError

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 20.0
USER_AGENT = "failover-orchestrator/0.1"

# One keep-alive session per provider connection and process: sends through a connection
# reuse its TCP (and TLS) connections instead of opening one per send, and one connection's
# pool cannot be drained by another's. The send loop names the connection (for_connection).
_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()
_connection: contextvars.ContextVar[str] = contextvars.ContextVar("connection", default="")


@contextlib.contextmanager
def for_connection(connection_id: str) -> Iterator[None]:
    """Send the requests made inside through ``connection_id``'s session."""
    token = _connection.set(connection_id)
    try:
        yield
    finally:
        _connection.reset(token)


def session() -> requests.Session:
    """The current connection's session (see :func:`for_connection`). Its pool keeps as many
    connections per host as sends may be in flight at once (``PROVIDER_POOL_SIZE``), so none is
    opened only to be thrown away. urllib3 never retries on its own here: a silent retry after
    the request was sent could send a message twice."""
    key = _connection.get()
    with _sessions_lock:
        found = _sessions.get(key)
        if found is None:
            found = requests.Session()
            adapter = HTTPAdapter(max_retries=0, pool_maxsize=settings.PROVIDER_POOL_SIZE)
            found.mount("http://", adapter)
            found.mount("https://", adapter)
            found.headers["User-Agent"] = USER_AGENT
            # requests reads the environment (proxies, no_proxy, CA bundle, ~/.netrc) on every
            # call, scanning all of os.environ: ~17% of a call's CPU. request() reads it once
            # per provider host instead (no netrc: a provider's credentials are its config's).
            found.trust_env = False
            _sessions[key] = found
        return found


def request(method: str, url: str, *, config: dict[str, Any], **kwargs: Any) -> requests.Response:
    """Send one HTTP request to a provider and return its response, whatever its status.

    ``config`` is the connection's config; ``connect_timeout`` and ``read_timeout`` (seconds)
    come from it. Raises :class:`ProviderError` (transient or ambiguous) when no response came.
    Error reasons never carry the URL, which may hold credentials in its query string.
    """
    timeout = (
        float(config.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT),
        float(config.get("read_timeout") or DEFAULT_READ_TIMEOUT),
    )
    try:
        scheme, host = urllib.parse.urlsplit(url)[:2]
    except ValueError:
        raise ProviderError(ErrorKind.CONFIGURATION, "bad request setup: invalid URL") from None
    try:
        return session().request(
            method,
            url,
            timeout=timeout,
            allow_redirects=False,
            proxies=dict(_environ_proxies(scheme, host)),
            verify=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True,
            **kwargs,
        )
    except requests.ConnectTimeout:
        raise ProviderError(
            ErrorKind.TRANSIENT, "connect timeout: request not sent", code=1100
        ) from None
    except requests.ReadTimeout:
        raise ProviderError(
            ErrorKind.AMBIGUOUS, "read timeout after the request was sent", code=1100
        ) from None
    except requests.ConnectionError as error:
        if _never_connected(error):
            raise ProviderError(
                ErrorKind.TRANSIENT, "could not connect: request not sent", code=1100
            ) from None
        raise ProviderError(
            ErrorKind.AMBIGUOUS, "connection lost after the request was sent", code=1100
        ) from None
    except requests.RequestException as error:  # invalid URL, too many redirects, ...
        raise ProviderError(
            ErrorKind.CONFIGURATION, f"bad request setup: {type(error).__name__}"
        ) from None


@functools.lru_cache(maxsize=1024)
def _environ_proxies(scheme: str, host: str) -> dict[str, str]:
    """The proxies the environment names for ``scheme://host`` (``HTTPS_PROXY``, ``NO_PROXY``,
    …), as requests would find them, read once per process and host."""
    return requests.utils.get_environ_proxies(f"{scheme}://{host}/", no_proxy=None)


def _never_connected(error: requests.ConnectionError) -> bool:
    """True when the failure happened while connecting, before any byte was sent."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, NewConnectionError | ConnectTimeoutError | NameResolutionError):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            cause = reason
            continue
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = nested or cause.__cause__ or cause.__context__
    return False


def kind_for_status(status: int) -> ErrorKind:
    """The default kind of an HTTP error status, for codes an adapter's table does not know."""
    if status == 429 or status >= 500:
        return ErrorKind.TRANSIENT
    if status in (401, 403, 407):
        return ErrorKind.CONFIGURATION
    return ErrorKind.PERMANENT


def retry_after(response: requests.Response) -> float | None:
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


def json_body(response: requests.Response) -> dict[str, Any] | None:
    """The response's JSON object, or None when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unreadable_success(response: requests.Response) -> ProviderError:
    """A 2xx whose body we cannot read: the provider probably accepted, so never resend."""
    return ProviderError(
        ErrorKind.AMBIGUOUS,
        f"HTTP {response.status_code} with an unreadable body",
        code=1331,
        provider_code=str(response.status_code),
    )


def status_error(response: requests.Response) -> ProviderError:
    """The error of an HTTP answer that the adapter's table does not explain: its kind by
    status (:func:`kind_for_status`), Vonage's generic 1331, ``Retry-After`` honoured."""
    return ProviderError(
        kind_for_status(response.status_code),
        f"HTTP {response.status_code}",
        code=1331,
        provider_code=str(response.status_code),
        retry_after=retry_after(response),
    )
