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
    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from exc
        api_key, sep, api_secret = decoded.partition(":")
        if not sep:
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.")
        account = Account.objects.filter(api_key=api_key).first()
        if account is None or not account.check_secret(api_secret):
            raise exceptions.AuthenticationFailed("You did not provide correct credentials.")
        return AccountPrincipal(account), account

    def authenticate_header(self, request) -> str:
        return 'Basic realm="api"'
