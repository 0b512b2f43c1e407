"""Applying normalised provider receipts to steps.

Every receipt is stored once (a duplicate is a no-op insert on its dedupe key), then moves the
step's message status forward only, then lets the step decide (succeed, fail over, wait). A
receipt for a step that already finished is recorded and flagged, and never reopens the run.

A receipt changes only messages whose attempt went through one of the event's
``connection_ids`` (the connections whose secret verified it): a receipt signed by another
connection, or by none, is recorded as unmatched and changes nothing.
"""

import logging
import uuid
from dataclasses import replace
from datetime import timedelta

from django.db import IntegrityError, transaction

from channels_app.statuses import ReceiptEvent, ReceiptStatus
from workflows_app.logcontext import log_context
from workflows_app.models import Attempt, Event, ProviderMessage, Step
from workflows_app.services.workflows import steps_evaluate, steps_message_status_advance
from workflows_app.states import (
    FAILURE_STATUSES,
    MESSAGE_STATUS_RANK,
    EventKind,
    MessageStatus,
    StepState,
    statuses_replaceable_by,
)

logger = logging.getLogger(__name__)


def receipts_apply(events: list[ReceiptEvent]) -> None:
    """The handler registered with :func:`channels_app.receipts.ingest`."""
    for event in events:
        receipt_apply(event)


def _attempt_for(event: ReceiptEvent) -> Attempt | None:
    if event.client_ref:
        try:
            attempt_id = uuid.UUID(event.client_ref)
        except ValueError:
            attempt_id = None
        if attempt_id is not None:
            attempt = Attempt.objects.filter(
                id=attempt_id, provider=event.provider, connection_id__in=event.connection_ids
            ).first()
            if attempt is not None:
                return attempt
    mapping = (
        ProviderMessage.objects.select_related("attempt")
        .filter(
            provider=event.provider,
            provider_message_id=event.provider_message_id,
            attempt__connection_id__in=event.connection_ids,
        )
        .first()
    )
    return mapping.attempt if mapping else None


def receipt_apply(event: ReceiptEvent, *, replayed: bool = False) -> bool:
    """Record one receipt and apply it. Returns False for a duplicate, and for a replayed
    receipt that still matches no message of its connections."""
    if event.is_watermark:
        return watermark_apply(event)
    with transaction.atomic():
        attempt = _attempt_for(event)
        step = Step.objects.select_for_update().get(id=attempt.step_id) if attempt else None
        if not replayed and not _receipt_store(event, step):
            return False
        if step is None or attempt is None:  # both or neither: the step is the attempt's
            return not replayed
        status = _part_apply(attempt, event)
        if status is not None:
            with log_context(workflow_uuid=step.workflow_id, message_uuid=step.message_uuid):
                _apply_status(step, event, status)
    return True


# A watermark covers messages sent at most this long before it: receipts for older ones
# would have come long ago, and the bound keeps the lookup small.
WATERMARK_LOOKBACK = timedelta(days=7)


def watermark_apply(event: ReceiptEvent) -> bool:
    """Apply a watermark receipt to every message it covers.

    Messenger's delivery and read watermarks and Viber's ``seen`` say "every message sent to
    this person before T has reached this status" (reference/providers.md §1, §2). Each covered
    message is found by provider + recipient + send time (the time we started the call, which
    precedes the provider's own timestamp) and gets an ordinary per-message receipt, so its
    step's log shows it. Returns False for a duplicate watermark.
    """
    watermark = event.watermark
    assert watermark is not None
    new = MessageStatus(event.status)
    replaceable = [s for s in statuses_replaceable_by(new) if s is not None]
    with transaction.atomic():
        if not _receipt_store(event, None, kind=EventKind.RECEIPT_WATERMARK):
            return False
        covered = list(
            ProviderMessage.objects.filter(
                provider=event.provider,
                attempt__connection_id__in=event.connection_ids,
                recipient=event.recipient.lstrip("+"),
                sent_at__lte=watermark,
                sent_at__gte=watermark - WATERMARK_LOOKBACK,
                status__in=replaceable,
            ).values_list("provider_message_id", flat=True)
        )
    for provider_message_id in covered:
        receipt_apply(
            replace(
                event,
                provider_message_id=provider_message_id,
                watermark=None,
                raw={"watermark": event.dedupe_key, **event.raw},
            )
        )
    return True


def _part_apply(attempt: Attempt, event: ReceiptEvent) -> MessageStatus | None:
    """Record this part's status; return the status the whole message has reached, if any.

    A message sent as several parts (a long SMS) is delivered when every part is, and fails
    when any part fails. ``None`` means the message as a whole has not moved.
    """
    new = MessageStatus(event.status)
    parts = list(ProviderMessage.objects.filter(attempt=attempt))
    this = next((p for p in parts if p.provider_message_id == event.provider_message_id), None)
    if this is not None and this.status in statuses_replaceable_by(new):
        ProviderMessage.objects.filter(id=this.id).update(status=new)
        this.status = new
    if this is not None and event.price is not None:  # the cost, whenever a receipt says it
        ProviderMessage.objects.filter(id=this.id).update(
            price_amount=event.price.amount, price_currency=event.price.currency
        )
    if len(parts) <= 1 or new in FAILURE_STATUSES:
        return new
    statuses = [MessageStatus(p.status) for p in parts if p.status]
    if len(statuses) < len(parts) or any(s in FAILURE_STATUSES for s in statuses):
        return None
    return min(statuses, key=lambda s: MESSAGE_STATUS_RANK[s])


def _receipt_store(event: ReceiptEvent, step: Step | None, kind: str = "") -> bool:
    """Insert the raw receipt; False if this (provider, message, status) was seen before."""
    try:
        with transaction.atomic():
            Event.objects.create(
                workflow_id=step.workflow_id if step else None,
                step=step,
                kind=kind or (EventKind.RECEIPT if step else EventKind.RECEIPT_UNMATCHED),
                to_state=event.status,
                detail=f"{event.provider}:{event.provider_message_id}"[:255],
                data={
                    "provider_message_id": event.provider_message_id,
                    "error_code": event.error_code,
                    "error_reason": event.error_reason,
                    "client_ref": event.client_ref,
                    "connection_ids": list(event.connection_ids),
                    "raw": event.raw,
                },
                dedupe_key=event.dedupe_key[:300],
            )
    except IntegrityError:
        return False
    return True


def _apply_status(step: Step, event: ReceiptEvent, new: MessageStatus) -> None:
    error = None
    if new in FAILURE_STATUSES and event.error_code is not None:
        error = {"code": event.error_code, "reason": event.error_reason}
    if not steps_message_status_advance([step], new, error=error):
        return
    if step.state in (StepState.FAILED_OVER, StepState.FAILED) and new not in FAILURE_STATUSES:
        # The person got the message after we moved on: report it, never reopen the run.
        Step.objects.filter(id=step.id).update(late_receipt=True)
        Event.objects.create(
            workflow_id=step.workflow_id,
            step=step,
            kind=EventKind.RECEIPT_LATE,
            to_state=new,
            detail="received after the step had failed over",
        )
        return
    steps_evaluate([step])


def replay_unmatched_receipts(provider: str, provider_message_ids: list[str]) -> None:
    """Apply receipts that arrived before the send that produced them was recorded."""
    keys = [f"{provider}:{pmid}"[:255] for pmid in provider_message_ids]
    early = Event.objects.filter(kind=EventKind.RECEIPT_UNMATCHED, detail__in=keys).order_by("id")
    for stored in early:
        event = ReceiptEvent(
            provider=provider,
            provider_message_id=stored.data["provider_message_id"],
            status=ReceiptStatus(stored.to_state),
            raw=stored.data.get("raw", {}),
            error_code=stored.data.get("error_code"),
            error_reason=stored.data.get("error_reason", ""),
            connection_ids=tuple(stored.data.get("connection_ids") or ()),
        )
        if receipt_apply(event, replayed=True):
            Event.objects.filter(id=stored.id).update(kind=EventKind.RECEIPT_REPLAYED)
