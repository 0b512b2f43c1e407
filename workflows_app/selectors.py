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


def workflow_list_for_account(
    account: Account,
    *,
    status: str | None = None,
    client_ref: str | None = None,
    created_after=None,
    created_before=None,
):
    """The account's runs with their steps, filtered; the caller orders and paginates."""
    runs = Workflow.objects.filter(account=account).prefetch_related("steps")
    if status is not None:
        runs = runs.filter(status=status)
    if client_ref is not None:
        runs = runs.filter(client_ref=client_ref)
    if created_after is not None:
        runs = runs.filter(created_at__gt=created_after)
    if created_before is not None:
        runs = runs.filter(created_at__lt=created_before)
    return runs
