"""Writing webhook events into the outbox, inside the transaction that made the change.

The engine calls :func:`message_status_changed` and :func:`workflow_finished` while it holds
its transaction; the delivery row commits (or rolls back) with the change it reports, and a
task is queued only after the commit (the scheduler is the sure path if that task is lost).
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflows_app.models import (
    ApiFlavour,
    Application,
    Step,
    WebhookDelivery,
    WebhookEndpoint,
    Workflow,
)
from workflows_app.services.clock import db_now
from workflows_app.services.dispatch import DELIVER_WEBHOOKS, enqueue_on_commit
from workflows_app.webhooks.models import DeliveryKind
from workflows_app.webhooks.payloads import message_status_body, workflow_report_body

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    url: str
    application: Application | None  # whose Standard Webhooks secret signs; None: the account's


def webhook_target(workflow: Workflow) -> Target | None:
    """Where a run's events go: its own ``webhook_url``, else its application's ``status_url``,
    else its account's ``status_url``; None when nobody asked for webhooks."""
    application = workflow.application
    if workflow.webhook_url:
        return Target(workflow.webhook_url, application)
    if application is not None and application.status_url:
        return Target(application.status_url, application)
    if workflow.account.status_url:
        return Target(workflow.account.status_url, None)
    return None


def reports_at_end(workflow: Workflow) -> bool:
    """Workflows/Dispatch runs always get a final report; a Messages run only when it used
    failover (a plain single message has nothing to report beyond its status events)."""
    if workflow.api_flavour in (ApiFlavour.WORKFLOWS, ApiFlavour.DISPATCH):
        return True
    return workflow.steps.count() > 1


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _run_loaded(step: Step) -> bool:
    if not Step.workflow.is_cached(step):
        return False
    workflow = step.workflow
    return Workflow.account.is_cached(workflow) and (
        workflow.application_id is None or Workflow.application.is_cached(workflow)
    )


def _workflow(workflow_id: Any) -> Workflow:
    return Workflow.objects.select_related("account", "application").get(id=workflow_id)


def message_status_changed(step: Step, status: str) -> None:
    """Queue the status event for ``step`` reaching ``status``. Call inside the transaction
    that changed ``step.message_status``; a repeat for the same (step, status) is a no-op.

    A step read with ``select_related("workflow__account", "workflow__application")`` saves
    the lookup of its run."""
    workflow = step.workflow if _run_loaded(step) else _workflow(step.workflow_id)
    target = webhook_target(workflow)
    if target is None:
        return
    step.workflow = workflow
    now = db_now()
    _enqueue(
        workflow,
        target,
        now,
        kind=DeliveryKind.MESSAGE_STATUS,
        status=str(status),
        step=step,
        body=encode(message_status_body(step, str(status), now)),
    )


def workflow_finished(workflow_id: Any) -> None:
    """Queue the run's final report. Call inside the transaction that moved the run out of
    ``running``; a unique constraint keeps it to one per workflow."""
    workflow = _workflow(workflow_id)
    target = webhook_target(workflow)
    if target is None or not reports_at_end(workflow):
        return
    now = db_now()
    _enqueue(
        workflow,
        target,
        now,
        kind=DeliveryKind.WORKFLOW_REPORT,
        status=workflow.status,
        step=None,
        body=encode(workflow_report_body(workflow, now)),
    )


def _endpoint(account_id: int, url: str) -> WebhookEndpoint:
    # INSERT … ON CONFLICT DO NOTHING: a race with another transaction must not abort ours.
    WebhookEndpoint.objects.bulk_create(
        [WebhookEndpoint(account_id=account_id, url=url)], ignore_conflicts=True
    )
    return WebhookEndpoint.objects.get(account_id=account_id, url=url)


def _enqueue(
    workflow: Workflow, target: Target, now: datetime, *, kind: str, status: str, step, body: str
) -> None:
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                account_id=workflow.account_id,
                application=target.application,
                workflow=workflow,
                step=step,
                endpoint=_endpoint(workflow.account_id, target.url),
                kind=kind,
                status=status,
                body=body,
                next_attempt_at=now,
                dispatched_at=now,
            )
        ],
        ignore_conflicts=True,
    )
    enqueue_on_commit(DELIVER_WEBHOOKS, str(workflow.id))
