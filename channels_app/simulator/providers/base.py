"""The simulated providers' shared shapes: a remembered send, an answer, a request, a webhook
setting, and the interface each provider fills in.
"""

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from channels_app.statuses import ReceiptStatus


@dataclass
class Sent:
    """One accepted message, as the simulated provider remembers it."""

    provider: str
    ids: list[str]
    to: str
    sender: str
    channel: str
    secret: str  # the key its receipts are signed with
    callback_url: str
    client_ref: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "submitted"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class Request:
    method: str
    path: str
    headers: Any
    raw: bytes
    query: str = ""

    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.raw or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.raw.decode(), keep_blank_values=True).items()}

    def bearer(self) -> str:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else ""

    def basic(self) -> tuple[str, str]:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return "", ""
        user, _, password = base64.b64decode(token).decode().partition(":")
        return user, password


@dataclass
class Webhook:
    """Where a provider account's receipts go (its dashboard / set_webhook setting)."""

    url: str
    secret: str = ""
    signature_method: str = "md5hash"


class SimProvider:
    name = ""

    def matches(self, request: Request) -> bool:
        raise NotImplementedError

    def accept(self, request: Request, webhook: Webhook | None, default_secret: str) -> Sent:
        raise NotImplementedError

    def accepted(self, sent: Sent) -> Answer:
        raise NotImplementedError

    def rejected(self) -> Answer:
        raise NotImplementedError

    def transient(self, retry_after: float | None = None) -> Answer:
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return Answer(503, {"error": "service unavailable"}, headers)

    def throttled(self, retry_after: str) -> Answer:
        """A rate limit's answer: HTTP 429 with ``Retry-After`` (whole seconds), the body of
        the provider's own transient error where that is a 429 or 503."""
        answer = self.transient(None)
        body = answer.body if answer.status in (429, 503) else {"error": "too many requests"}
        return Answer(429, body, {"Retry-After": retry_after})

    def recipient(self, request: Request) -> str:
        raise NotImplementedError

    def account(self, request: Request) -> str:
        """Who the send is billed to, as a provider counts its rate limit: the credential it
        carried (Basic user, bearer token, Viber token, or a Vonage ``api_key`` field)."""
        return (
            request.basic()[0]
            or request.bearer()
            or request.headers.get("X-Viber-Auth-Token", "")
            or str(request.json().get("api_key") or request.form().get("api_key") or "")
        )

    def sender(self, request: Request) -> str:
        """The sending number or id, for providers that limit the rate per sender."""
        body = request.json()
        value = body.get("from") or body.get("sender") or request.form().get("From", "")
        if isinstance(value, dict):
            value = value.get("number") or value.get("id") or ""
        return str(value or request.path)

    def client_ref(self, request: Request) -> str:
        """The sender's own reference carried by the send, where the API has one ("" if not)."""
        return ""

    def receipt(self, sent: Sent, status: ReceiptStatus) -> list[tuple[str, dict, bytes]]:
        """The signed callbacks (url, headers, body) that report ``status`` for ``sent``."""
        raise NotImplementedError

    def rejects_later(self, request: Request) -> bool:
        """Whether a rejected recipient is accepted, then reported ``rejected`` in a receipt."""
        return False

    def other(self, request: Request, sim: Any) -> Answer | None:
        """Answer a request to one of this provider's non-send endpoints (a token, a
        capability check, a revoke), or None when the request is not for one."""
        return None


def now_ms() -> int:
    return int(time.time() * 1000)
