"""The one HTTP seam for outbound webhooks, guarded against SSRF.

Callers give us URLs, so a URL could point at our own network. The guard checks the address
the socket actually connected to (after DNS, for every answer tried), not a pre-resolved one,
so DNS rebinding and parser tricks do not get past it (reference/reliability.md §5.6):

- link-local (169.254.0.0/16, fe80::/10, which hold cloud metadata services), multicast,
  unspecified and reserved addresses: always refused;
- loopback, private (RFC 1918, CGNAT, IPv6 ULA): refused unless ``WEBHOOKS_ALLOW_PRIVATE``.

Redirects are never followed (a 3xx is a failed attempt), no proxy from the environment is
used, and the whole request is bounded by ``WEBHOOK_TIMEOUT``.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Cloud metadata services that do not live in link-local space (Alibaba; AWS's IPv6 one).
METADATA_ADDRESSES = {
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host": 0.x reaches local services
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(OSError):
    """The peer address is not one we may call."""


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why we may not call ``address``, or None when we may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return f"{ip} is link-local or a cloud metadata address"
    if ip.is_multicast or ip.is_unspecified or ip in THIS_NETWORK:
        return f"{ip} is not a unicast address"
    if ip.is_loopback or ip.is_private or ip in CGNAT:
        return None if allow_private else f"{ip} is loopback or private (WEBHOOKS_ALLOW_PRIVATE=0)"
    if ip.is_reserved:
        return f"{ip} is a reserved address"
    return None


# The mixin is only ever combined with a urllib3 connection class; the checker needs that base.
if TYPE_CHECKING:
    _ConnectionBase = HTTPConnection
else:
    _ConnectionBase = object


class _GuardedConnectionMixin(_ConnectionBase):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        reason = address_refusal(peer, self.allow_private)
        if reason:
            sock.close()
            raise AddressRefused(f"refused to call {self.host}: {reason}")
        return sock


def _guarded_pools(allow_private: bool) -> dict[str, type]:
    attrs = {"allow_private": allow_private}
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), attrs)
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), attrs)
    return {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class GuardedAdapter(HTTPAdapter):
    def __init__(self, allow_private: bool) -> None:
        self._pools = _guarded_pools(allow_private)
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools


@dataclass(frozen=True)
class HttpOutcome:
    status_code: int | None
    duration_ms: int
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def post(url: str, body: bytes, headers: dict[str, str]) -> HttpOutcome:
    """POST once; never raises for network trouble (it is reported in the outcome)."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the guard must see the peer
    adapter = GuardedAdapter(settings.WEBHOOKS_ALLOW_PRIVATE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    started = time.monotonic()
    deadline = started + settings.WEBHOOK_TIMEOUT
    elapsed = lambda: int((time.monotonic() - started) * 1000)  # noqa: E731
    if not url.lower().startswith(("http://", "https://")):
        return HttpOutcome(None, 0, error="only http and https URLs are called")
    try:
        with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "failover-orchestrator"}
            | headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_TIMEOUT),
            allow_redirects=False,
            stream=True,
        ) as response:
            excerpt = _read_excerpt(response, deadline)
            return HttpOutcome(
                response.status_code,
                elapsed(),
                excerpt=excerpt,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
    except requests.RequestException as error:
        return HttpOutcome(None, elapsed(), error=_describe(error))
    except AddressRefused as error:
        return HttpOutcome(None, elapsed(), error=str(error))
    finally:
        session.close()


def _read_excerpt(response: requests.Response, deadline: float) -> str:
    """The first bytes of the answer, read no longer than the request's overall deadline."""
    limit = settings.WEBHOOK_RESPONSE_EXCERPT
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=512):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or time.monotonic() > deadline:
            break
    return b"".join(chunks)[:limit].decode(errors="replace")


def _describe(error: requests.RequestException) -> str:
    cause: BaseException = error
    while cause.__context__ is not None and not isinstance(cause, AddressRefused):
        cause = cause.__context__
    if isinstance(cause, AddressRefused):
        return str(cause)
    if isinstance(error, requests.Timeout):
        return f"timeout: {error}"[:500]
    return f"{type(error).__name__}: {error}"[:500]
