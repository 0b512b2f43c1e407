"""The race between an RCS sandbox message's delivery and its revoke: the first one wins.

Kept in the database (:class:`~channels_app.models.SandboxRevocation`), not in a process's
memory, because the receipt task and the revoke run in different worker processes, in the
embedded mode (SQLite) as on PostgreSQL.
"""

from django.db import IntegrityError, transaction

from channels_app.models import SandboxRevocation

DELIVERED, REVOKED = "delivered", "revoked"


def claim(provider_message_id: str, outcome: str) -> str:
    """Record ``outcome`` for the message unless another was recorded first; return the one
    that holds (``outcome`` itself when this call won)."""
    try:
        with transaction.atomic():
            SandboxRevocation.objects.create(
                provider_message_id=provider_message_id, outcome=outcome
            )
        return outcome
    except IntegrityError:
        row = SandboxRevocation.objects.filter(provider_message_id=provider_message_id).first()
        return row.outcome if row else outcome


def is_revoked(provider_message_id: str) -> bool:
    return SandboxRevocation.objects.filter(
        provider_message_id=provider_message_id, outcome=REVOKED
    ).exists()
