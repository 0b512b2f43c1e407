"""API authentication: HTTP Basic with an account's key and secret, or an application's JWT.

Reference/vonage-api.md §1.6: "Use one method only; sending both is the
``multiple-auth-methods`` error". Every 401 is a problem response with a Vonage error slug.
Failed Basic logins are counted by :class:`~workflows_app.api.brake.FailureBrake`, which answers
429 to a guesser.
"""

import base64
import binascii

from rest_framework import authentication, exceptions

from workflows_app.api.bearer import JwtRefused, application_for_token
from workflows_app.api.brake import FailureBrake
from workflows_app.api.problems import Problem, problem_body
from workflows_app.models import Account, Application

WWW_AUTHENTICATE = 'Basic realm="api", Bearer realm="api"'
MAX_TOKEN_LENGTH = 8192


class AccountPrincipal:
    """What ``request.user`` is for API calls: the account, and the application for a JWT."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, account: Account, application: Application | None = None) -> None:
        self.account = account
        self.application = application

    def __str__(self) -> str:
        return self.account.api_key


def unauthorized(slug: str = "unauthorized", detail: str | None = None) -> Problem:
    """A 401 problem with the Vonage error ``slug``."""
    return Problem(
        401, problem_body(401, slug=slug, detail=detail), {"WWW-Authenticate": WWW_AUTHENTICATE}
    )


class AccountAuthentication(authentication.BaseAuthentication):
    """``Authorization: Basic base64(KEY:SECRET)`` or ``Authorization: Bearer <JWT>``.

    ``request.auth`` is the Account either way; ``request.user.application`` is the JWT's
    application (None for Basic). Returns None without an Authorization header (DRF then
    answers 401); raises a 401 Problem for anything else that does not authenticate.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        credentials = _credentials(header)
        schemes = {scheme for scheme, _ in credentials}
        if len(credentials) > 1:
            if schemes >= {"basic", "bearer"}:
                raise unauthorized(
                    "multiple-auth-methods", "Use Basic or Bearer authentication, not both."
                )
            raise unauthorized(detail="Send one set of credentials.")
        scheme, value = credentials[0]
        if scheme == "basic":
            return _basic(value, remote_addr=request.META.get("REMOTE_ADDR", ""))
        if scheme == "bearer":
            return _bearer(value)
        raise unauthorized(detail="Use Basic or Bearer authentication.")

    def authenticate_header(self, request) -> str:
        return WWW_AUTHENTICATE


def _credentials(header: bytes) -> list[tuple[str, bytes]]:
    """``[(scheme, value)]`` from a header; repeated headers arrive comma-joined (RFC 9110
    §5.3), and neither base64 nor a JWT contains a comma, so a comma separates credentials."""
    parts = [part.strip() for part in header.split(b",") if part.strip()]
    result = []
    for part in parts or [header]:
        scheme, _, value = part.partition(b" ")
        result.append((scheme.decode("latin-1").lower(), value.strip()))
    return result


def _basic(encoded: bytes, *, remote_addr: str):
    try:
        api_key, api_secret = decode_basic_credentials(encoded)
    except Problem:
        brake = FailureBrake(remote_addr=remote_addr, api_key=None)
        brake.check()  # a braked address gets 429 whatever it sends
        brake.record_failure()
        raise
    brake = FailureBrake(remote_addr=remote_addr, api_key=api_key)
    brake.check()
    account = Account.objects.filter(api_key=api_key).first()
    if account is None or not account.check_secret(api_secret):
        brake.record_failure(account_exists=account is not None)
        raise unauthorized(detail="You did not provide correct credentials.")
    return AccountPrincipal(account), account


def _bearer(token: bytes):
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise unauthorized(detail="The bearer token is missing or too long.")
    try:
        application = application_for_token(token.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise unauthorized(detail="The bearer token is not a JWT.") from exc
    except JwtRefused as refused:
        raise unauthorized(refused.slug, refused.detail) from refused
    return AccountPrincipal(application.account, application), application.account


def decode_basic_credentials(encoded: bytes) -> tuple[str, str]:
    """``(api_key, api_secret)`` from the base64 part of a Basic header.

    Raises a 401 Problem unless it is base64 of UTF-8 ``key:secret`` without NUL characters
    (which PostgreSQL refuses in a query, so they would otherwise be a 500).
    """
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise unauthorized(detail="Malformed Basic credentials.") from exc
    api_key, sep, api_secret = decoded.partition(":")
    if not sep or "\x00" in decoded:
        raise unauthorized(detail="Malformed Basic credentials.")
    return api_key, api_secret


def request_account(request) -> Account:
    """The account a request authenticated as (``request.auth``, with Basic or JWT). Call only
    behind ``IsAuthenticated``; an unauthenticated request is refused with 401."""
    account = request.auth
    if not isinstance(account, Account):
        raise exceptions.NotAuthenticated()
    return account


def request_application(request) -> Application | None:
    """The application a request authenticated as (JWT), or None (Basic)."""
    return getattr(request.user, "application", None)
