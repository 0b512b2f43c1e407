"""Creating accounts. The API secret is shown once and only its hash is kept."""

import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from workflows_app.models import Account, hash_secret, validate_http_url


@dataclass(frozen=True)
class NewAccount:
    account: Account
    api_secret: str


def account_create(
    *, name: str, status_url: str = "", api_key: str | None = None, api_secret: str | None = None
) -> NewAccount:
    """Create an account with fresh credentials (or the given ones, for demos).

    Raises ValidationError (``{"status_url": [...]}``) unless ``status_url`` is empty or an
    http(s) URL: a webhook target is checked once, when it is stored, not at each delivery.
    """
    urls_check(status_url=status_url)
    api_secret = api_secret or secrets.token_urlsafe(16)
    account = Account.objects.create(
        name=name,
        api_key=api_key or secrets.token_hex(4),
        api_secret_hash=hash_secret(api_secret),
        signature_secret=secrets.token_urlsafe(32),
        status_url=status_url,
    )
    return NewAccount(account=account, api_secret=api_secret)


def urls_check(**urls: str) -> None:
    """Raise ValidationError naming each non-empty URL that :func:`validate_http_url` refuses."""
    errors = {}
    for name, url in urls.items():
        try:
            if url:
                validate_http_url(url)
        except ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors)


def url_errors(error: ValidationError) -> str:
    """One line for an operator: ``--status-url: Enter an absolute http:// ...``."""
    return "; ".join(
        f"--{name.replace('_', '-')}: {' '.join(messages)}"
        for name, messages in error.message_dict.items()
    )
