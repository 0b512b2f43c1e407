"""Google RCS Business Messaging (RBM), the RCS channel without a reseller in between.

Docs: developers.google.com/business-communications/rcs-business-messaging, reference
``phones.agentMessages`` (create, delete), ``phones.getCapabilities``, guides "Send messages",
"Revoke messages", "Webhooks" (what we confirmed and what we could not: docs/providers.md).

- Send: ``POST /v1/phones/{+E.164}/agentMessages?messageId=<ours>&agentId=<agent>`` with an
  ``AgentMessage``. The message id is ours (the attempt id), so receipts name the attempt and a
  resend of the same id answers 409 ALREADY_EXISTS, which means it was accepted before.
- A phone without RCS answers 404 (to the send and to the capability check); a carrier where
  the agent is not launched answers 403. Both fail over at once.
- Capability check: ``GET /v1/phones/{+E.164}/capabilities?requestId=&agentId=`` lists the
  device's ``features``; made before rich cards (which need a feature), and before every send
  when the connection's ``capability_check`` is true.
- Revoke: ``DELETE /v1/phones/{+E.164}/agentMessages/{messageId}?agentId=``: 200 revoked, 404
  too late (already delivered).
- Auth: a service account's OAuth 2.0 token (JWT bearer grant, scope ``rcsbusinessmessaging``)
  through google-auth, cached per service account until shortly before it expires.

Config: ``service_account`` (the key file's JSON object), ``agent_id``; optional ``token_url``
(overrides the key file's ``token_uri``), ``client_token`` (verifies receipts, see
:mod:`channels_app.receipts.google_rbm`), ``capability_check``, ``base_url`` (a regional host).
RBM reports no price, so its messages' cost stays unknown (null).
"""

import asyncio
import threading
import uuid
from typing import Any, ClassVar
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import service_account

from channels_app import http
from channels_app.adapters.base import (
    Adapter,
    OutboundMessage,
    RevokeOutcome,
    SendResult,
    unsupported_content,
)
from channels_app.errors import ErrorKind, ErrorRule, ProviderError, error_from_table

SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"

# Google API errors by HTTP status (their `error.status` in brackets).
ERRORS: dict[int, ErrorRule] = {
    400: ErrorRule.permanent(1020, "Invalid params"),  # INVALID_ARGUMENT
    401: ErrorRule.configuration(1110, "Unauthenticated"),  # UNAUTHENTICATED: token refused
    # PERMISSION_DENIED: the agent is not launched on the recipient's carrier ("Send messages").
    # It concerns this recipient, not the connection, so it fails over without flagging it.
    403: ErrorRule.permanent(1140, "Agent not launched for this recipient's carrier"),
    404: ErrorRule.permanent(1300, "Recipient is not RCS-capable"),  # NOT_FOUND
    429: ErrorRule.transient(1000, "Throttled"),  # RESOURCE_EXHAUSTED
    500: ErrorRule.transient(1331, "Provider error"),
    503: ErrorRule.transient(1331, "Provider unavailable"),
}
FALLBACK_4XX = ErrorRule.permanent(1331, "Provider error")
FALLBACK_5XX = ErrorRule.transient(1331, "Provider error")
NOT_SUITABLE = ErrorRule.permanent(1310, "Recipient's device lacks a feature this message needs")

# Content that needs a device feature (`Capabilities.features`).
FEATURES = {"card": "RICHCARD_STANDALONE", "carousel": "RICHCARD_CAROUSEL"}
MEDIA = {"image", "video", "file"}
HEIGHTS = {"SHORT", "MEDIUM", "TALL"}


class GoogleRbmAdapter(Adapter):
    name: ClassVar[str] = "google_rbm"
    channels: ClassVar[frozenset[str]] = frozenset({"rcs"})
    default_base_url: ClassVar[str] = "https://rcsbusinessmessaging.googleapis.com"
    required_config: ClassVar[tuple[str, ...]] = ("service_account", "agent_id")
    revocable_channels: ClassVar[frozenset[str]] = frozenset({"rcs"})

    async def send(self, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        self.require_config(config)
        body = agent_message(message)
        phone = e164(message.to)
        if message.content_type in FEATURES or config.get("capability_check"):
            await self.check_capable(phone, FEATURES.get(message.content_type), config)
        response = await self.call(
            "POST",
            f"/v1/phones/{phone}/agentMessages",
            config,
            params={"messageId": message.client_ref, "agentId": config["agent_id"]},
            json=body,
        )
        if response.ok or response.status_code == 409:  # 409: this id was accepted before
            return SendResult([message.client_ref], {"status": response.status_code})
        raise self.error(response)

    async def check_capable(self, phone: str, feature: str | None, config: dict[str, Any]) -> None:
        """Raise a permanent error unless the phone has RCS (and ``feature``, if named)."""
        response = await self.call(
            "GET",
            f"/v1/phones/{phone}/capabilities",
            config,
            params={"requestId": str(uuid.uuid4()), "agentId": config["agent_id"]},
        )
        if not response.ok:
            raise self.error(response)
        features = (http.json_body(response) or {}).get("features") or []
        if feature and feature not in features:
            raise ProviderError(
                NOT_SUITABLE.kind,
                NOT_SUITABLE.reason,
                code=NOT_SUITABLE.code,
                provider_code=feature,
            )

    async def revoke(
        self, provider_message_id: str, recipient: str, config: dict[str, Any]
    ) -> RevokeOutcome:
        self.require_config(config)
        response = await self.call(
            "DELETE",
            f"/v1/phones/{e164(recipient)}/agentMessages/{quote(provider_message_id, safe='')}",
            config,
            params={"agentId": config["agent_id"]},
        )
        if response.ok:
            return RevokeOutcome.REVOKED
        if response.status_code == 404:  # "the revocation failed because it was delivered"
            return RevokeOutcome.TOO_LATE
        raise self.error(response)

    async def call(self, method: str, path: str, config: dict[str, Any], **kwargs: Any) -> Any:
        # A cached token costs a lookup; fetching one blocks, so it runs off the loop's thread.
        token = valid_token(config) or await asyncio.to_thread(access_token, config)
        headers = {"Authorization": f"Bearer {token}"}
        response = await http.request(
            method, self.base_url(config) + path, config=config, headers=headers, **kwargs
        )
        if response.status_code == 401:  # a token Google no longer takes: fetch a new one next
            forget_token(config)
        return response

    @staticmethod
    def error(response: Any) -> ProviderError:
        status = response.status_code
        fallback = FALLBACK_5XX if status >= 500 else FALLBACK_4XX
        error = (http.json_body(response) or {}).get("error")
        detail = str(error.get("message", ""))[:200] if isinstance(error, dict) else ""
        return error_from_table(
            ERRORS, status, fallback=fallback, detail=detail, retry_after=http.retry_after(response)
        )


def e164(number: str) -> str:
    """RBM names phones in E.164 with the plus (``phones/+12223334444``); ours come without."""
    return "+" + number.strip().lstrip("+")


# -- The AgentMessage for our (Vonage v1-shaped) content ------------------------------------


def agent_message(message: OutboundMessage) -> dict[str, Any]:
    """The ``AgentMessage`` body. ``custom`` content is sent as the AgentMessage itself (as
    Vonage's RCS custom type takes one); ``ttl`` becomes RBM's ``ttl`` duration."""
    kind, content = message.content_type, message.content
    if kind == "custom":
        body = dict(content.get("custom") or {})
    elif kind == "text":
        body = {"contentMessage": {"text": str(content.get("text", ""))}}
    elif kind in MEDIA:
        media = content.get(kind) or {}
        body = {"contentMessage": {"contentInfo": {"fileUrl": str(media.get("url", ""))}}}
    elif kind == "card":
        orientation = str(message.channel_options().get("card_orientation", "VERTICAL")).upper()
        standalone = {"cardOrientation": orientation, "cardContent": card(content.get("card"))}
        body = {"contentMessage": {"richCard": {"standaloneCard": standalone}}}
    elif kind == "carousel":
        cards = (content.get("carousel") or {}).get("cards") or []
        width = str(message.channel_options().get("card_width", "MEDIUM")).upper()
        carousel = {"cardWidth": width, "cardContents": [card(c) for c in cards]}
        body = {"contentMessage": {"richCard": {"carouselCard": carousel}}}
    else:
        raise unsupported_content("google_rbm", message)
    ttl = message.message.get("ttl", message.channel_options().get("ttl"))
    if ttl is not None and "ttl" not in body and "expireTime" not in body:
        body["ttl"] = f"{int(ttl)}s"
    return body


def card(spec: Any) -> dict[str, Any]:
    """One Vonage v1 RCS card (title, text, media_url, media_height, thumbnail_url,
    suggestions) as an RBM ``CardContent``."""
    spec = spec if isinstance(spec, dict) else {}
    content: dict[str, Any] = {}
    if spec.get("title"):
        content["title"] = str(spec["title"])
    if spec.get("text"):
        content["description"] = str(spec["text"])
    if spec.get("media_url"):
        info: dict[str, Any] = {"fileUrl": str(spec["media_url"])}
        if spec.get("thumbnail_url"):
            info["thumbnailUrl"] = str(spec["thumbnail_url"])
        if spec.get("media_force_refresh"):
            info["forceRefresh"] = True
        height = str(spec.get("media_height", "MEDIUM")).upper()
        content["media"] = {
            "height": height if height in HEIGHTS else "MEDIUM",
            "contentInfo": info,
        }
    suggestions = [suggestion(s) for s in spec.get("suggestions") or []]
    if suggestions:
        content["suggestions"] = suggestions
    return content


def suggestion(spec: Any) -> dict[str, Any]:
    """A Vonage v1 suggestion (``type`` reply, open_url or dial) as an RBM ``Suggestion``."""
    spec = spec if isinstance(spec, dict) else {}
    kind = spec.get("type")
    base = {"text": str(spec.get("text", "")), "postbackData": str(spec.get("postback_data", ""))}
    if kind == "reply":
        return {"reply": base}
    if kind == "open_url":
        return {"action": {**base, "openUrlAction": {"url": str(spec.get("url", ""))}}}
    if kind == "dial":
        return {
            "action": {
                **base,
                "dialAction": {"phoneNumber": e164(str(spec.get("phone_number", "")))},
            }
        }
    raise ProviderError(
        ErrorKind.PERMANENT,
        f"google_rbm cannot translate a {kind!r} suggestion; send it as custom content",
        code=1440,
        provider_code="unsupported-suggestion",
    )


# -- Service-account access tokens ----------------------------------------------------------


class _Transport(google.auth.transport.requests.Request):
    """google-auth's requests transport with our connection's timeouts (its default is 120 s).
    Token fetches are rare (one an hour per service account), so they keep requests' blocking
    session, on a thread of their own (see :meth:`GoogleRbmAdapter.call`)."""

    session = requests.Session()

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__(session=self.session)
        self.timeout = timeout

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return super().__call__(url, method, body, headers, timeout=self.timeout, **kwargs)


_tokens: dict[tuple[str, str], service_account.Credentials] = {}
_tokens_lock = threading.Lock()


def _token_key(config: dict[str, Any]) -> tuple[str, str]:
    info = config.get("service_account")
    if not isinstance(info, dict) or not info.get("client_email"):
        raise ProviderError(
            ErrorKind.CONFIGURATION,
            "service_account is not a service-account key object",
            code=1110,
        )
    token_url = str(config.get("token_url") or info.get("token_uri") or DEFAULT_TOKEN_URL)
    return str(info["client_email"]), token_url


def forget_token(config: dict[str, Any]) -> None:
    with _tokens_lock:
        _tokens.pop(_token_key(config), None)


def valid_token(config: dict[str, Any]) -> str | None:
    """The cached access token for the connection's service account while it is valid."""
    key = _token_key(config)
    with _tokens_lock:
        credentials = _tokens.get(key)
        return str(credentials.token) if credentials is not None and credentials.valid else None


def access_token(config: dict[str, Any]) -> str:
    """A valid access token for the connection's service account, fetched only when the cached
    one is missing or near expiry. Raises ProviderError: configuration when the key or the
    token endpoint's answer refuses us, transient when the endpoint cannot be reached."""
    key = _token_key(config)
    info, token_url = config["service_account"], key[1]
    with _tokens_lock:
        credentials = _tokens.get(key)
        if credentials is None:
            try:
                credentials = service_account.Credentials.from_service_account_info(
                    {**info, "token_uri": token_url}, scopes=[SCOPE]
                )
            except (ValueError, KeyError, TypeError):
                raise ProviderError(
                    ErrorKind.CONFIGURATION, "service_account key is not usable", code=1110
                ) from None
            _tokens[key] = credentials
        if not credentials.valid:
            _refresh(credentials, config)
        return str(credentials.token)


def _refresh(credentials: service_account.Credentials, config: dict[str, Any]) -> None:
    timeout = (
        float(config.get("connect_timeout") or http.DEFAULT_CONNECT_TIMEOUT),
        float(config.get("read_timeout") or http.DEFAULT_READ_TIMEOUT),
    )
    try:
        credentials.refresh(_Transport(timeout))
    except google.auth.exceptions.RefreshError as error:
        kind = (
            ErrorKind.TRANSIENT if getattr(error, "retryable", False) else ErrorKind.CONFIGURATION
        )
        raise ProviderError(kind, "token endpoint refused the service account", code=1110) from None
    except (google.auth.exceptions.TransportError, ValueError):
        # Nothing reached RBM yet: safe to retry.
        raise ProviderError(ErrorKind.TRANSIENT, "token endpoint unreachable", code=1100) from None
