"""Signing what we send, twice (docs/webhooks.md shows how a receiver verifies both):

1. Vonage's signed webhooks (reference/vonage-api.md §2.6): ``Authorization: Bearer <JWT>``,
   HS256 with the account's signature secret, claims ``iat``, ``jti``, ``iss="Vonage"``,
   ``api_key``, ``application_id`` (when there is one) and ``payload_hash`` = SHA-256 hex of the
   exact body bytes.
2. Standard Webhooks (reference/reliability.md §4): ``webhook-id`` (stable across retries),
   ``webhook-timestamp`` (this attempt) and ``webhook-signature``, a space-separated list of
   ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per valid secret (two while a
   rotated-out secret overlaps the new one).
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from workflows_app.webhooks.models import WebhookSecretFields, new_webhook_secret


@dataclass(frozen=True)
class Signer:
    """What signing one delivery needs, read from the database before the HTTP call."""

    api_key: str
    signature_secret: str
    application_id: str | None
    webhook_secrets: list[str]


def vonage_jwt(signer: Signer, body: bytes, now: datetime) -> str:
    claims = {
        "iat": int(now.timestamp()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": signer.api_key,
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    if signer.application_id:
        claims["application_id"] = signer.application_id
    return jwt.encode(claims, signer.signature_secret, algorithm="HS256")


def signed_headers(signer: Signer, header_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Every header that authenticates one attempt of a delivery."""
    text = body.decode()
    signatures = " ".join(
        Webhook(secret).sign(msg_id=header_id, timestamp=now, data=text)
        for secret in signer.webhook_secrets
    )
    return {
        "Authorization": f"Bearer {vonage_jwt(signer, body, now)}",
        "webhook-id": header_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


def webhook_secret_rotate(owner: WebhookSecretFields, overlap_hours: float | None = None) -> str:
    """Give ``owner`` (an Account or Application) a new secret and return it (shown once).

    The old secret keeps signing, beside the new one, for ``overlap_hours``
    (``WEBHOOK_SECRET_OVERLAP_HOURS``), so receivers can switch without losing a webhook.
    """
    hours = settings.WEBHOOK_SECRET_OVERLAP_HOURS if overlap_hours is None else overlap_hours
    fresh = new_webhook_secret()
    with transaction.atomic():
        type(owner)._default_manager.filter(pk=owner.pk).update(
            webhook_secret=fresh,
            webhook_secret_previous=owner.webhook_secret,
            webhook_secret_previous_until=timezone.now() + timedelta(hours=hours),
        )
    owner.refresh_from_db()
    return fresh
