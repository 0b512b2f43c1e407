"""HTTP Basic authentication with an account's API key and secret."""

import base64
import binascii

from rest_framework import authentication, exceptions

from workflows_app.models import Account


class AccountPrincipal:
    """What ``request.user`` is for API calls: the authenticated account."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, account: Account) -> None:
        self.account = account

    def __str__(self) -> str:
        return self.account.api_key


class BasicAccountAuthentication(authentication.BaseAuthentication):
    """``Authorization: Basic base64(API_KEY:API_SECRET)`` (reference/vonage-api.md §1.6).

    Returns None for any other scheme (DRF then answers 401); raises AuthenticationFailed for
    malformed or wrong credentials.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        api_key, api_secret = decode_basic_credentials(encoded)
        account = Account.objects.filter(api_key=api_key).first()
        if account is None or not account.check_secret(api_secret):
            raise exceptions.AuthenticationFailed("You did not provide correct credentials.")
        return AccountPrincipal(account), account

    def authenticate_header(self, request) -> str:
        return 'Basic realm="api"'


def decode_basic_credentials(encoded: bytes) -> tuple[str, str]:
    """``(api_key, api_secret)`` from the base64 part of a Basic header.

    Raises AuthenticationFailed unless it is base64 of UTF-8 ``key:secret`` without NUL
    characters (which PostgreSQL refuses in a query, so they would otherwise be a 500).
    """
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from exc
    api_key, sep, api_secret = decoded.partition(":")
    if not sep or "\x00" in decoded:
        raise exceptions.AuthenticationFailed("Malformed Basic credentials.")
    return api_key, api_secret
