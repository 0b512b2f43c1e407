"""The receipt webhook: fixed steps, providers fill in a few (django-anymail style).

:class:`ReceiptWebhookView` caps the body, finds the secrets that may verify it (the
connection named in the URL, or every connection of the provider), has the provider's
:class:`ReceiptParser` verify the signature over the raw bytes, then parse and normalise the
payload into :class:`~channels_app.statuses.ReceiptEvent`s, and hands them to
:func:`channels_app.receipts.ingest`.

Answers: 401 unsigned, 403 forged or unverifiable, 413 too big, 400 malformed (after a valid
signature), 200 otherwise: duplicates and receipts for unknown messages included (they are
recorded). Nothing changes unless the signature holds.
"""

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from channels_app import receipts
from channels_app.crypto import CredentialsUnreadable
from channels_app.statuses import ReceiptEvent

logger = logging.getLogger(__name__)


class ReceiptRejected(Exception):
    status = 403


class SignatureMissing(ReceiptRejected):
    status = 401


class SignatureInvalid(ReceiptRejected):
    status = 403


class MalformedReceipt(ReceiptRejected):
    status = 400


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


def connection_configs(provider: str, connection_id: str | None) -> list[dict[str, Any]]:
    """The decrypted configs of the connections whose secrets may sign this provider's receipts.

    Disabled connections count: their messages' receipts still arrive.
    """
    from channels_app.models import ProviderConnection

    rows = ProviderConnection.objects.filter(provider=provider)
    if connection_id is not None:
        try:
            rows = rows.filter(id=connection_id)
        except ValidationError:
            return []
    configs = []
    for row in rows:
        try:
            configs.append(row.config)
        except CredentialsUnreadable:
            logger.error("connection %s: credentials cannot be decrypted", row.id)
    return configs


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
            self.verify(incoming, connection_configs(provider, _id(connection_id)))
            events = self.parser.parse(incoming)
        except ReceiptRejected as error:
            logger.warning("%s receipt refused (%s): %s", provider, error.status, error)
            return _problem(error.status, str(error))
        receipts.ingest(events)
        return JsonResponse({"received": len(events)})

    def verify(self, incoming: Incoming, configs: list[dict[str, Any]]) -> None:
        """Pass if any candidate connection's secret verifies the request."""
        if not configs:
            raise SignatureInvalid("no connection configured to verify this receipt")
        failure: ReceiptRejected = SignatureInvalid("signature does not verify")
        for config in configs:
            try:
                self.parser.verify(incoming, config)
            except SignatureMissing as error:
                raise error
            except ReceiptRejected as error:
                failure = error
            else:
                return
        raise failure

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


def _id(connection_id: Any) -> str | None:
    return None if connection_id is None else str(connection_id)


def _called_url(request: HttpRequest) -> str:
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + request.get_full_path()
    return request.build_absolute_uri()


def _problem(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"title": "receipt refused", "detail": detail}, status=status)
