"""Applying normalised provider receipts to steps.

Every receipt is stored once (a duplicate is a no-op insert on its dedupe key), then moves the
step's message status forward only, then lets the step decide (succeed, fail over, wait). A
receipt for a step that already finished is recorded and flagged, and never reopens the run.
"""

import logging
import uuid

from django.db import IntegrityError, transaction
from django.db.models import Q

from channels_app.statuses import ReceiptEvent
from workflows_app import webhooks
from workflows_app.logcontext import log_context
from workflows_app.models import Attempt, Event, ProviderMessage, Step
from workflows_app.states import (
    FAILURE_STATUSES,
    MessageStatus,
    StepState,
    statuses_replaceable_by,
)

logger = logging.getLogger(__name__)

UNMATCHED = "receipt.unmatched"


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
            attempt = Attempt.objects.filter(id=attempt_id, provider=event.provider).first()
            if attempt is not None:
                return attempt
    mapping = (
        ProviderMessage.objects.select_related("attempt")
        .filter(provider=event.provider, provider_message_id=event.provider_message_id)
        .first()
    )
    return mapping.attempt if mapping else None


def receipt_apply(event: ReceiptEvent, *, replayed: bool = False) -> bool:
    """Record one receipt and apply it. Returns False for a duplicate."""
    with transaction.atomic():
        attempt = _attempt_for(event)
        step = Step.objects.select_for_update().get(id=attempt.step_id) if attempt else None
        if not replayed and not _record(event, step):
            return False
        if step is None:
            return True
        with log_context(workflow_uuid=step.workflow_id, message_uuid=step.message_uuid):
            _apply_status(step, event)
    return True


def _record(event: ReceiptEvent, step: Step | None) -> bool:
    """Insert the raw receipt; False if this (provider, message, status) was seen before."""
    try:
        with transaction.atomic():
            Event.objects.create(
                workflow_id=step.workflow_id if step else None,
                step=step,
                kind="receipt" if step else UNMATCHED,
                to_state=event.status,
                detail=f"{event.provider}:{event.provider_message_id}"[:255],
                data={
                    "error_code": event.error_code,
                    "error_reason": event.error_reason,
                    "client_ref": event.client_ref,
                    "raw": event.raw,
                },
                dedupe_key=event.dedupe_key[:300],
            )
    except IntegrityError:
        return False
    return True


def _apply_status(step: Step, event: ReceiptEvent) -> None:
    from workflows_app.services.workflows import step_evaluate

    new = MessageStatus(event.status)
    fields: dict = {"message_status": new}
    if new in FAILURE_STATUSES and event.error_code is not None:
        fields["error"] = {"code": event.error_code, "reason": event.error_reason}
    replaceable = [s for s in statuses_replaceable_by(new) if s is not None]
    moves_forward = Q(message_status__isnull=True) | Q(message_status__in=replaceable)
    if not Step.objects.filter(moves_forward, id=step.id).update(**fields):
        return
    for name, value in fields.items():
        setattr(step, name, value)
    webhooks.message_status_changed(step, new)
    if step.state in (StepState.FAILED_OVER, StepState.FAILED) and new not in FAILURE_STATUSES:
        # The person got the message after we moved on: report it, never reopen the run.
        Step.objects.filter(id=step.id).update(late_receipt=True)
        Event.objects.create(
            workflow_id=step.workflow_id,
            step=step,
            kind="receipt.late",
            to_state=new,
            detail="received after the step had failed over",
        )
        return
    step_evaluate(step)


def replay_unmatched_receipts(provider: str, provider_message_ids: list[str]) -> None:
    """Apply receipts that arrived before the send that produced them was recorded."""
    keys = [f"{provider}:{pmid}"[:255] for pmid in provider_message_ids]
    early = Event.objects.filter(kind=UNMATCHED, detail__in=keys).order_by("id")
    for stored in early:
        provider_message_id = stored.detail.split(":", 1)[1]
        event = ReceiptEvent(
            provider=provider,
            provider_message_id=provider_message_id,
            status=stored.to_state,
            raw=stored.data.get("raw", {}),
            error_code=stored.data.get("error_code"),
            error_reason=stored.data.get("error_reason", ""),
        )
        if receipt_apply(event, replayed=True):
            Event.objects.filter(id=stored.id).update(kind="receipt.replayed")
