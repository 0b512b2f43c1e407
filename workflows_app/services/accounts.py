"""Creating accounts. The API secret is shown once and only its hash is kept."""

import secrets
from dataclasses import dataclass

from workflows_app.models import Account, hash_secret


@dataclass(frozen=True)
class NewAccount:
    account: Account
    api_secret: str


def account_create(
    *, name: str, status_url: str = "", api_key: str | None = None, api_secret: str | None = None
) -> NewAccount:
    """Create an account with fresh credentials (or the given ones, for demos)."""
    api_secret = api_secret or secrets.token_urlsafe(16)
    account = Account.objects.create(
        name=name,
        api_key=api_key or secrets.token_hex(4),
        api_secret_hash=hash_secret(api_secret),
        signature_secret=secrets.token_urlsafe(32),
        status_url=status_url,
    )
    return NewAccount(account=account, api_secret=api_secret)
