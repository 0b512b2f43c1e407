"""The receipt webhook: fixed steps, providers fill in a few (django-anymail style).

:class:`ReceiptWebhookView` caps the body, finds the secrets that may verify it (the
connection named in the URL, or every connection of the provider), has the provider's
:class:`ReceiptParser` verify the signature over the raw bytes, then parse and normalise the
payload into :class:`~channels_app.statuses.ReceiptEvent`s, and hands them to
:func:`channels_app.receipts.ingest`.

Answers: 401 unsigned, 403 forged or unverifiable, 413 too big, 400 malformed (after a valid
signature), 200 otherwise: duplicates and receipts for unknown messages included (they are
recorded). Nothing changes unless the signature holds, and then only messages sent through a
connection whose secret verified it (each event carries those connections' ids).

Never a 500 for what the sender put in the body: providers retry 5xx for days. A verified
body that the provider's parser cannot read (bad JSON, nesting deep enough to exhaust the
stack, a field of the wrong type) or whose events cannot be stored (NUL, lone surrogates,
NaN; see :mod:`orchestrator.storable`) is a 400.
"""

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import DataError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from channels_app import receipts
from channels_app.crypto import CredentialsUnreadable
from channels_app.models import ProviderConnection
from channels_app.statuses import ReceiptEvent
from orchestrator.storable import first_unstorable

logger = logging.getLogger(__name__)


class ReceiptRejected(Exception):
    status = 403


class SignatureMissing(ReceiptRejected):
    status = 401


class SignatureInvalid(ReceiptRejected):
    status = 403


class MalformedReceipt(ReceiptRejected):
    status = 400


# What a parser raises when a verified body is not the shape it expects: a string where it
# wants an object (AttributeError, TypeError), a missing key or an empty list, an out-of-range
# number (OverflowError), JSON nested past the interpreter's stack (RecursionError).
UNREADABLE = (RecursionError, TypeError, AttributeError, LookupError, ValueError, ArithmeticError)
# Provider receipts are a few levels deep (WhatsApp's, the deepest, about eight).
MAX_RECEIPT_DEPTH = 32


@dataclass(frozen=True)
class Candidate:
    """A connection whose secret may verify a receipt."""

    connection_id: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Incoming:
    """What a parser sees of the request: the raw bytes and the parts signatures cover."""

    method: str
    url: str  # the full URL the provider called, query string included
    headers: Any
    raw: bytes
    query: QueryDict
    content_type: str

    def form(self) -> QueryDict:
        """The body as form fields (signatures over forms cover every received field)."""
        try:
            return QueryDict(self.raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedReceipt("form body is not UTF-8") from None


class ReceiptParser:
    """One provider's receipt format. Subclasses fill in :meth:`verify` and :meth:`parse`."""

    provider: ClassVar[str]

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        """Raise SignatureMissing or SignatureInvalid unless ``config``'s secret signed it."""
        raise NotImplementedError

    def parse(self, incoming: Incoming) -> list[ReceiptEvent]:
        """Normalise a verified payload. Raise MalformedReceipt for one we cannot read."""
        raise NotImplementedError

    def get(self, request: HttpRequest, configs: list[dict[str, Any]]) -> HttpResponse | None:
        """Answer a GET (a verification handshake), or None for "not allowed"."""
        return None

    def accepts_get(self, request: HttpRequest) -> bool:
        """Whether a GET carries a receipt in its query string (Vonage SMS can send DLRs so)."""
        return False

    def answer_post(self, request: HttpRequest, connection_id: str | None) -> HttpResponse | None:
        """Answer a POST that is not a receipt (RBM's webhook confirmation), or None."""
        return None


def hmac_hex(key: str, raw: bytes, digest: Any = hashlib.sha256) -> str:
    return hmac.new(key.encode(), raw, digest).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(a.encode(), b.encode())


def check_age(timestamp: float) -> None:
    """Refuse a signed receipt whose own timestamp is too old (or far in the future)."""
    if abs(time.time() - timestamp) > settings.RECEIPT_MAX_AGE:
        raise SignatureInvalid("stale signature timestamp")


def connection_candidates(provider: str, connection_id: str | None) -> list[Candidate]:
    """The connections whose secrets may sign this provider's receipts, oldest first, with
    their decrypted configs: the one named in the URL, or every connection of the provider.

    Disabled connections count: their messages' receipts still arrive.
    """
    rows = ProviderConnection.objects.filter(provider=provider).order_by("created_at", "id")
    if connection_id is not None:
        try:
            rows = rows.filter(id=connection_id)
        except ValidationError:
            return []
    candidates = []
    for row in rows:
        try:
            candidates.append(Candidate(str(row.id), row.config))
        except CredentialsUnreadable:
            logger.error("connection %s: credentials cannot be decrypted", row.id)
    return candidates


def connection_configs(provider: str, connection_id: str | None) -> list[dict[str, Any]]:
    """The configs of :func:`connection_candidates` (for verification handshakes)."""
    return [c.config for c in connection_candidates(provider, connection_id)]


@method_decorator(csrf_exempt, name="dispatch")
class ReceiptWebhookView(View):
    parser: ReceiptParser = None  # type: ignore[assignment]  # set by as_view(parser=...)

    def get(self, request: HttpRequest, connection_id: Any = None) -> HttpResponse:
        if self.parser.accepts_get(request):
            return self.receive(request, connection_id)
        configs = connection_configs(self.parser.provider, _id(connection_id))
        response = self.parser.get(request, configs)
        return response or HttpResponse(status=405)

    def post(self, request: HttpRequest, connection_id: Any = None) -> HttpResponse:
        return self.parser.answer_post(request, _id(connection_id)) or self.receive(
            request, connection_id
        )

    def receive(self, request: HttpRequest, connection_id: Any) -> HttpResponse:
        raw = self.read_body(request)
        if raw is None:
            return _problem(413, "receipt body too large")
        incoming = Incoming(
            method=request.method or "POST",
            url=_called_url(request),
            headers=request.headers,
            raw=raw,
            query=request.GET,
            content_type=request.content_type or "",
        )
        provider = self.parser.provider
        try:
            verified_by = self.verify(incoming, connection_candidates(provider, _id(connection_id)))
            events = self.parse(incoming, verified_by)
        except ReceiptRejected as error:
            logger.warning("%s receipt refused (%s): %s", provider, error.status, error)
            return _problem(error.status, str(error))
        try:
            receipts.ingest(events)
        except DataError:  # a value the checks above missed: still the sender's, not ours
            logger.exception("%s receipt could not be stored", provider)
            return _problem(400, "receipt cannot be stored")
        return JsonResponse({"received": len(events)})

    def verify(self, incoming: Incoming, candidates: list[Candidate]) -> tuple[str, ...]:
        """The ids of the candidate connections whose secret verifies the request (more than
        one only when connections share a secret); raise ReceiptRejected when none does."""
        if not candidates:
            raise SignatureInvalid("no connection configured to verify this receipt")
        failure: ReceiptRejected = SignatureInvalid("signature does not verify")
        verified = []
        for candidate in candidates:
            try:
                with _unreadable_is_malformed():
                    self.parser.verify(incoming, candidate.config)
            except SignatureMissing as error:
                raise error
            except ReceiptRejected as error:
                failure = error
            else:
                verified.append(candidate.connection_id)
        if not verified:
            raise failure
        return tuple(verified)

    def parse(self, incoming: Incoming, verified_by: tuple[str, ...]) -> list[ReceiptEvent]:
        """The parser's events, bound to ``verified_by``; MalformedReceipt when the parser
        cannot read the body or an event holds a value that cannot be stored."""
        with _unreadable_is_malformed():
            events = self.parser.parse(incoming)
        for event in events:
            found = first_unstorable(_stored_fields(event), MAX_RECEIPT_DEPTH + 1)
            if found is not None:
                raise MalformedReceipt(f"{found.where or 'body'}: {found.reason}")
        return [replace(event, connection_ids=verified_by) for event in events]

    @staticmethod
    def read_body(request: HttpRequest) -> bytes | None:
        """The raw body, or None when it is over ``RECEIPT_MAX_BODY_BYTES``."""
        cap = settings.RECEIPT_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > cap:
            return None
        try:
            raw = request.body
        except RequestDataTooBig:
            return None
        return None if len(raw) > cap else raw


@contextmanager
def _unreadable_is_malformed() -> Iterator[None]:
    """Turn a parser's failure to read a verified body (:data:`UNREADABLE`) into a 400."""
    try:
        yield
    except UNREADABLE as error:
        logger.debug("receipt unreadable", exc_info=True)  # a parser bug shows here
        raise MalformedReceipt(f"receipt cannot be read ({type(error).__name__})") from None


def _stored_fields(event: ReceiptEvent) -> dict[str, Any]:
    """What of an event is stored (the raw payload one level down)."""
    return {
        "provider_message_id": event.provider_message_id,
        "client_ref": event.client_ref,
        "error_reason": event.error_reason,
        "recipient": event.recipient,
        "raw": event.raw,
    }


def _id(connection_id: Any) -> str | None:
    return None if connection_id is None else str(connection_id)


def _called_url(request: HttpRequest) -> str:
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + request.get_full_path()
    return request.build_absolute_uri()


def _problem(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"title": "receipt refused", "detail": detail}, status=status)


# Helpers the providers' parsers share.


def verify_hub_signature(incoming: Incoming, app_secret: str) -> None:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`` (Meta)."""
    header = incoming.headers.get("X-Hub-Signature-256", "")
    if not header:
        raise SignatureMissing("X-Hub-Signature-256 missing")
    if not app_secret:
        raise SignatureInvalid("connection has no app_secret")
    scheme, _, signature = header.partition("=")
    if scheme != "sha256" or not same(signature.lower(), hmac_hex(app_secret, incoming.raw)):
        raise SignatureInvalid("X-Hub-Signature-256 does not verify")


def hub_handshake(request: HttpRequest, configs: list[dict[str, Any]]) -> HttpResponse:
    """Meta's subscription check: echo ``hub.challenge`` if ``hub.verify_token`` is ours."""
    token = request.GET.get("hub.verify_token", "")
    known = [str(c.get("verify_token", "")) for c in configs if c.get("verify_token")]
    if request.GET.get("hub.mode") == "subscribe" and token and any(same(token, k) for k in known):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponse("verification failed", status=403, content_type="text/plain")


def json_object(incoming: Incoming) -> dict[str, Any]:
    """The body as a JSON object; MalformedReceipt (a 400) when it is anything else."""
    try:
        body = json.loads(incoming.raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedReceipt("body is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedReceipt("body is not a JSON object")
    return body


def from_ms(value: Any) -> datetime:
    """A provider's milliseconds-since-epoch timestamp as an aware datetime."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MalformedReceipt(f"bad timestamp {value!r}") from None


class MetaReceiptParser(ReceiptParser):
    """Meta's webhooks (Messenger, WhatsApp Cloud): signed with the app secret
    (``X-Hub-Signature-256``), subscribed with the ``hub.challenge`` handshake."""

    def verify(self, incoming: Incoming, config: dict[str, Any]) -> None:
        verify_hub_signature(incoming, str(config.get("app_secret", "")))

    def get(self, request: HttpRequest, configs: list[dict[str, Any]]) -> HttpResponse:
        return hub_handshake(request, configs)
