"""Helpers shared by the test modules: the requests, runs and receipts tests build.

Test modules import these from here, never from one another; pytest fixtures live in the
``conftest.py`` beside the tests that use them.
"""

from django.db import transaction

from channels_app.statuses import ReceiptEvent, ReceiptStatus
from tests.services import wait_for
from workflows_app.models import Step, Workflow
from workflows_app.services.sending import steps_send_due
from workflows_app.services.workflows import StepSpec, steps_fail_over, workflow_create
from workflows_app.states import FailoverReason

# Webhook retries at once, to receivers on loopback (tests/webhook_receiver.py).
FAST_RETRIES = {"WEBHOOK_RETRY_SCHEDULE": [0.0] * 6, "WEBHOOKS_ALLOW_PRIVATE": True}


# In-process runs (the services, no HTTP).


def spec(channel: str, recipient: str, condition: str | None = None, expiry: int | None = None):
    to_key = "id" if channel == "messenger" else "number"
    return StepSpec(
        channel=channel,
        sender={"type": channel, to_key: "100200300" if to_key == "id" else "447700900001"},
        recipient={"type": channel, to_key: recipient},
        message={"content": {"type": "text", "text": "hi"}},
        condition_status=condition,
        expiry_time=expiry,
    )


def run_of(account, *specs: StepSpec) -> Workflow:
    """A Workflows API run of ``specs`` for the ``account`` fixture, nothing sent yet."""
    return workflow_create(account=account.account, flavour="workflows", steps=list(specs))


def receipt(step: Step, status: ReceiptStatus) -> ReceiptEvent:
    attempt = step.attempts.get()
    return ReceiptEvent(
        provider="sandbox",
        provider_message_id=attempt.provider_message_ids[0],
        status=status,
        raw={"status": status.value},
        connection_ids=(attempt.connection_id,),
    )


def start_run(account, *steps: dict, condition: str | None = None, expiry: int = 600) -> Step:
    specs = [
        StepSpec(
            **step,
            condition_status=condition if i < len(steps) - 1 else None,
            expiry_time=expiry if i < len(steps) - 1 else None,
        )
        for i, step in enumerate(steps)
    ]
    workflow = workflow_create(account=account.account, flavour="workflows", steps=specs)
    return workflow.steps.get(index=0)


def two_step_run(account, flavour="workflows", first="1000000003", **fields) -> Workflow:
    """Messenger waiting for `read` (a silent sandbox recipient unless told), then SMS."""
    workflow = workflow_create(
        account=account.account,
        flavour=flavour,
        steps=[spec("messenger", first, "read", 600), spec("sms", "447700900003")],
        client_ref="order-42",
    )
    if fields:
        Workflow.objects.filter(id=workflow.id).update(**fields)
    steps_send_due(ids=[workflow.steps.get(index=0).id])
    return workflow


def expire_first_step(workflow: Workflow) -> None:
    """The first step's deadline passes (as the scheduler would decide)."""
    with transaction.atomic():
        steps_fail_over([workflow.steps.get(index=0)], FailoverReason.EXPIRED)


# End-to-end request bodies (the API over HTTP).

# channel → (sender, the `to` field it addresses by, a label for the text)
SENDERS = {
    "messenger": ({"type": "messenger", "id": "100200300"}, "id", "Messenger"),
    "viber_service_msg": (
        {"type": "viber_service_msg", "id": "viber-service-1"},
        "number",
        "Viber",
    ),
    "sms": ({"type": "sms", "number": "447700900001"}, "number", "SMS"),
}


def item(channel: str, recipient: str, condition: str | None = None, expiry: int | None = None):
    """One workflow item; ``condition`` (with ``expiry``) adds its failover."""
    sender, to_field, label = SENDERS[channel]
    body = {
        "from": sender,
        "to": {"type": channel, to_field: recipient},
        "message": {"content": {"type": "text", "text": f"Your order has shipped ({label})"}},
    }
    if condition:
        body["failover"] = {"condition_status": condition, "expiry_time": expiry}
    return body


def messenger(recipient: str, *, condition: str | None = None, expiry: int | None = None) -> dict:
    return item("messenger", recipient, condition, expiry)


def viber(recipient: str, *, condition: str | None = None, expiry: int | None = None) -> dict:
    return item("viber_service_msg", recipient, condition, expiry)


def sms(recipient: str, *, condition: str | None = None, expiry: int | None = None) -> dict:
    return item("sms", recipient, condition, expiry)


# A Messages v1 request (POST /v1/messages): one SMS, no failover.
SMS_V1 = {
    "to": "447700900000",
    "from": "447700900001",
    "channel": "sms",
    "message_type": "text",
    "text": "Hi",
}


def run(*items: dict) -> dict:
    return {"template": "failover", "workflow": list(items)}


def summary(result: dict) -> list[tuple]:
    return [(s["channel"], s["state"], s["status"], s["failover_reason"]) for s in result["steps"]]


def wait_for_state(step: Step, state: str) -> Step:
    def settled():
        step.refresh_from_db()
        return step.state == state

    wait_for(settled, 10, message=f"step to be {state}")
    return step
