"""What an operator may do from the console. Every action is logged as an Event with its actor."""

from typing import Any

from django.db import transaction

from workflows_app.models import Event, Workflow
from workflows_app.services.workflows import workflow_cancel
from workflows_app.states import EventKind
from workflows_app.webhooks.signing import webhook_secret_rotate


def operator_log(kind: str, actor: str, detail: str, workflow_id: Any = None, **data: Any) -> None:
    Event.objects.create(
        workflow_id=workflow_id,
        kind=EventKind(f"admin.{kind}"),  # ValueError for a kind states.EventKind lacks
        detail=f"{actor}: {detail}"[:255],
        data={"actor": actor, **data},
    )


def operator_cancel(workflow: Workflow, *, actor: str) -> bool:
    """Cancel a running run (as the API's cancel does). False if it had already ended."""
    with transaction.atomic():
        cancelled = workflow_cancel(workflow)
        operator_log(
            "cancel",
            actor,
            "cancelled the run" if cancelled else "tried to cancel a finished run",
            workflow.id,
            cancelled=cancelled,
        )
    return cancelled


def operator_rotate_webhook_secret(owner: Any, *, actor: str) -> str:
    """Rotate an account's or application's webhook secret; returns the new one (shown once)."""
    with transaction.atomic():
        secret = webhook_secret_rotate(owner)
        operator_log(
            "rotate_webhook_secret",
            actor,
            f"rotated the webhook secret of {type(owner).__name__} {owner.pk}",
            owner=f"{type(owner).__name__}:{owner.pk}",
        )
    return secret
