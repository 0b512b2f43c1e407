"""Provider credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from ``settings.CREDENTIALS_KEY`` (comma-separated for rotation: the first key
encrypts, every key decrypts). Unset, a key is derived from ``SECRET_KEY`` so the embedded
defaults work with no setup.
"""

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted with the configured key(s)."""


@lru_cache(maxsize=4)
def _fernet(keys: str, secret_key: str) -> MultiFernet:
    if keys:
        return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
    derived = hashlib.sha256(b"orchestrator-credentials:" + secret_key.encode()).digest()
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def fernet() -> MultiFernet:
    return _fernet(settings.CREDENTIALS_KEY, settings.SECRET_KEY)


def encrypt_config(config: dict[str, Any]) -> str:
    return fernet().encrypt(json.dumps(config, sort_keys=True).encode()).decode()


def decrypt_config(token: str) -> dict[str, Any]:
    """Raises CredentialsUnreadable when the token was made with another key."""
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError) as error:
        raise CredentialsUnreadable(
            "credentials cannot be decrypted with CREDENTIALS_KEY"
        ) from error
