"""The sandbox provider's side: it posts receipts later, like a real provider would."""

from typing import Any

from celery import shared_task

from channels_app import receipts
from channels_app.sandbox import revocations
from channels_app.statuses import ReceiptEvent, ReceiptStatus


@shared_task(name="sandbox.emit_receipt", acks_late=True)
def emit_receipt(
    provider_message_id: str,
    client_ref: str,
    status: str,
    error_code: int | None = None,
    error_reason: str = "",
    connection_id: str = "sandbox",
    revocable: bool = False,
) -> None:
    """Ingest one sandbox receipt, bound to the connection that sent the message (the built-in
    sandbox route is ``"sandbox"``; a sandbox ProviderConnection passes its id). A revocable
    (RCS) message's delivery races its revoke: a revoked message reports nothing more, as a
    provider that withdrew it would."""
    if revocable and not _still_deliverable(provider_message_id, status):
        return
    raw: dict[str, Any] = {
        "message_id": provider_message_id,
        "client_ref": client_ref,
        "status": status,
    }
    if error_code is not None:
        raw["error"] = {"code": error_code, "reason": error_reason}
    receipts.ingest(
        [
            ReceiptEvent(
                provider="sandbox",
                provider_message_id=provider_message_id,
                status=ReceiptStatus(status),
                client_ref=client_ref,
                error_code=error_code,
                error_reason=error_reason,
                raw=raw,
                connection_ids=(connection_id,),
            )
        ]
    )


def _still_deliverable(provider_message_id: str, status: str) -> bool:
    if status == ReceiptStatus.READ:
        return not revocations.is_revoked(provider_message_id)
    return revocations.claim(provider_message_id, revocations.DELIVERED) != revocations.REVOKED
