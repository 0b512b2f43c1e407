"""The bodies we send, in the format of the API that created the run.

- v0.1 (Workflows, Dispatch, Messages v0.1): the Messages v0.1 status webhook
  (reference/vonage-api.md §2.4), plus ``_links.workflow`` for Workflows/Dispatch runs (§1.5).
- v1 (Messages v1, or a run whose ``webhook_version`` is ``v1``): the v1 status webhook with the
  ``workflow`` object when failover was used (§3).
- The final report (§1.5): one per workflow run, after it ends.

Builders are pure: they read the rows they are given and return a dict.
"""

import contextlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from channels_app.adapters.base import address_of
from workflows_app.models import ApiFlavour, Step, Workflow
from workflows_app.states import FAILURE_STATUSES, MessageStatus

ID_FIELD = {ApiFlavour.DISPATCH: "dispatch_uuid"}
HREF_PREFIX = {ApiFlavour.DISPATCH: "/v0.1/dispatch/"}
WORKFLOW_FLAVOURS = (ApiFlavour.WORKFLOWS, ApiFlavour.DISPATCH)
# v1 names a channel differently from v0.1 in one case (reference/vonage-api.md §3).
V1_CHANNEL = {"viber_service_msg": "viber_service"}
V1_ERROR_TYPE = "https://developer.vonage.com/api-errors/messages#{code}"
DELIVERED_STATUSES = (MessageStatus.DELIVERED, MessageStatus.READ)


def webhook_version(workflow: Workflow) -> str:
    """``v1`` for Messages v1 runs (or an explicit override), else ``v0.1``."""
    if workflow.webhook_version:
        return workflow.webhook_version
    return "v1" if workflow.api_flavour == ApiFlavour.MESSAGES_V1 else "v0.1"


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Vonage sends: ``2020-01-01T14:00:00.000Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def step_usage(step: Step) -> dict[str, str] | None:
    """The price a provider reported for the step's accepted attempt, if any did."""
    for attempt in step.attempts.all():
        usage = (attempt.response or {}).get("usage")
        if isinstance(usage, dict) and "price" in usage:
            return {"currency": str(usage.get("currency", "EUR")), "price": str(usage["price"])}
    return None


def workflow_link(workflow: Workflow) -> dict[str, str]:
    flavour = ApiFlavour(workflow.api_flavour)
    return {
        ID_FIELD.get(flavour, "workflow_uuid"): str(workflow.id),
        "href": HREF_PREFIX.get(flavour, "/beta/workflows/") + str(workflow.id),
    }


def message_status_body(step: Step, status: str, moment: datetime) -> dict[str, Any]:
    """The status event for ``step`` having reached ``status`` at ``moment``."""
    workflow = step.workflow
    if webhook_version(workflow) == "v1":
        return _v1_status_body(step, status, moment)
    body: dict[str, Any] = {
        "message_uuid": str(step.message_uuid),
        "to": step.recipient,
        "from": step.sender,
        "timestamp": iso_timestamp(moment),
        "status": status,
    }
    if status in FAILURE_STATUSES and step.error:
        body["error"] = {"code": step.error.get("code"), "reason": step.error.get("reason")}
    usage = step_usage(step)
    if usage:
        body["usage"] = usage
    if workflow.client_ref:
        body["client_ref"] = workflow.client_ref
    if workflow.api_flavour in WORKFLOW_FLAVOURS:
        body["_links"] = {"workflow": workflow_link(workflow)}
    return body


def _v1_status_body(step: Step, status: str, moment: datetime) -> dict[str, Any]:
    workflow = step.workflow
    body: dict[str, Any] = {
        "message_uuid": str(step.message_uuid),
        "to": address_of(step.recipient),
        "from": address_of(step.sender),
        "channel": V1_CHANNEL.get(step.channel, step.channel),
        "timestamp": iso_timestamp(moment),
        "status": status,
    }
    if status in FAILURE_STATUSES and step.error:
        code = step.error.get("code")
        body["error"] = {
            "type": V1_ERROR_TYPE.format(code=code),
            "title": str(code),
            "detail": step.error.get("reason", ""),
            "instance": str(step.message_uuid),
        }
    if workflow.client_ref:
        body["client_ref"] = workflow.client_ref
    usage = step_usage(step)
    if usage:
        body["usage"] = usage
    total = workflow.steps.count()
    if total > 1:
        body["workflow"] = {
            "workflow_id": str(workflow.id),
            "items_number": str(step.index + 1),
            "items_total": str(total),
        }
    return body


def workflow_report_body(workflow: Workflow, moment: datetime) -> dict[str, Any]:
    """The final report: the run's outcome and every message that was sent.

    ``delivered_on_channels`` lists each channel whose message reached the person (delivered
    or read). More than one entry means a late receipt arrived for a step that had already
    failed over: the person got the message twice. Those messages carry ``late_receipt: true``.
    """
    v1 = webhook_version(workflow) == "v1"
    sent = [s for s in workflow.steps.prefetch_related("attempts") if s.message_uuid]
    total = Decimal("0")
    currency = "EUR"
    messages = []
    for step in sent:
        usage = step_usage(step)
        if usage:
            currency = usage["currency"]
            with contextlib.suppress(InvalidOperation):
                total += Decimal(usage["price"])
        messages.append(
            {
                "message_uuid": str(step.message_uuid),
                "channel": V1_CHANNEL.get(step.channel, step.channel) if v1 else step.channel,
                "status": step.message_status,
                "usage": usage,
                "late_receipt": step.late_receipt,
            }
        )
    body: dict[str, Any] = workflow_link(workflow) if not v1 else {}
    body.pop("href", None)
    if v1:
        body["workflow"] = {"workflow_id": str(workflow.id), "items_total": str(len(messages))}
    body.update(
        {
            "template": workflow.template,
            "status": workflow.status,
            "timestamp": iso_timestamp(moment),
            "usage": {"currency": currency, "price": str(total)},
            "delivered_on_channels": [
                m["channel"] for m in messages if m["status"] in DELIVERED_STATUSES
            ],
            "_links": {"messages": messages},
        }
    )
    if workflow.client_ref:
        body["client_ref"] = workflow.client_ref
    if not v1:
        body["_links"]["workflow"] = workflow_link(workflow)
    return body
