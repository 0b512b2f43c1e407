"""Reads. Every query that serves a caller is scoped to the caller's account."""

import uuid

from workflows_app.models import Account, Workflow


def workflow_get_for_account(account: Account, workflow_id: str) -> Workflow | None:
    """The account's workflow with its steps prefetched, or None (also for a malformed id)."""
    try:
        key = uuid.UUID(str(workflow_id))
    except ValueError:
        return None
    return Workflow.objects.filter(account=account, id=key).prefetch_related("steps").first()
