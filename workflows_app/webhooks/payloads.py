"""The bodies we send, in the format of the API that created the run.

- v0.1 (Workflows, Dispatch, Messages v0.1): the Messages v0.1 status webhook
  (reference/vonage-api.md §2.4), plus ``_links.workflow`` for Workflows/Dispatch runs (§1.5).
- v1 (Messages v1, or a run whose ``webhook_version`` is ``v1``): the v1 status webhook with the
  ``workflow`` object when failover was used (§3).
- The final report (§1.5): one per workflow run, after it ends.

Builders are pure: they read the rows they are given and return a dict.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from channels_app.adapters.base import address_of
from workflows_app.models import ApiFlavour, Step, Workflow
from workflows_app.states import FAILURE_STATUSES, AttemptOutcome, MessageStatus

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


def attempt_price(attempt: Any) -> tuple[Decimal, str] | None:
    """What one sent message cost, as its provider reported: the send answer's price, else the
    sum of its parts' receipt prices. None when the provider reported nothing."""
    if attempt.price_amount is not None:
        return Decimal(attempt.price_amount), attempt.price_currency
    parts = [p for p in attempt.provider_messages.all() if p.price_amount is not None]
    if not parts:
        return None
    return sum((Decimal(p.price_amount) for p in parts), Decimal(0)), parts[0].price_currency


def step_usage(step: Step) -> dict[str, str] | None:
    """The step's message cost ``{currency, price}`` (every accepted attempt's, normally one),
    or None when no provider reported a price: unknown, never a made-up zero."""
    prices = [
        price
        for attempt in step.attempts.all()
        if attempt.outcome == AttemptOutcome.ACCEPTED
        for price in [attempt_price(attempt)]
        if price is not None
    ]
    if not prices:
        return None
    return {"currency": prices[0][1], "price": amount(sum((p for p, _ in prices), Decimal(0)))}


def amount(value: Decimal) -> str:
    """A price as Vonage writes it (``"0.0333"``): no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def usage_total(usages: list[dict[str, str] | None]) -> dict[str, Any] | None:
    """The run's total: ``{currency, price}`` when every priced message shares a currency;
    with several currencies ``{currency: null, price: null, by_currency: [{currency, price}]}``
    (docs/webhooks.md); None when nothing was priced."""
    totals: dict[str, Decimal] = {}
    for usage in usages:
        if usage:
            totals[usage["currency"]] = totals.get(usage["currency"], Decimal(0)) + Decimal(
                usage["price"]
            )
    if not totals:
        return None
    if len(totals) == 1:
        [(currency, price)] = totals.items()
        return {"currency": currency, "price": amount(price)}
    by_currency = [{"currency": c, "price": amount(p)} for c, p in sorted(totals.items())]
    return {"currency": None, "price": None, "by_currency": by_currency}


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
    sent = [
        s for s in workflow.steps.prefetch_related("attempts__provider_messages") if s.message_uuid
    ]
    messages: list[dict[str, Any]] = []
    for step in sent:
        message: dict[str, Any] = {
            "message_uuid": str(step.message_uuid),
            "channel": V1_CHANNEL.get(step.channel, step.channel) if v1 else step.channel,
            "status": step.message_status,
            "usage": step_usage(step),
            "late_receipt": step.late_receipt,
        }
        if step.revoke_state:  # revoke before fallback: revoked, too_late, failed (or pending)
            message["revoke"] = step.revoke_state
        messages.append(message)
    body: dict[str, Any] = workflow_link(workflow) if not v1 else {}
    body.pop("href", None)
    if v1:
        body["workflow"] = {"workflow_id": str(workflow.id), "items_total": str(len(messages))}
    body.update(
        {
            "template": workflow.template,
            "status": workflow.status,
            "timestamp": iso_timestamp(moment),
            "usage": usage_total([m["usage"] for m in messages]),
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
