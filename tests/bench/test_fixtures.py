"""The benchmark's bulk SQL must write exactly what the service writes for a waiting run.

The bulk SQL is PostgreSQL's (``generate_series``, ``SET LOCAL``), as ``make bench`` is.
"""

from datetime import timedelta

import pytest

from bench.fixtures import (
    MESSENGER_SENDER,
    MESSENGER_TEXT,
    SMS_SENDER,
    SMS_TEXT,
    insert_waiting_workflows,
)
from workflows_app.models import Attempt, Event, ProviderMessage, Step, Workflow
from workflows_app.services.sending import steps_send_due
from workflows_app.services.workflows import StepSpec, workflow_create

pytestmark = pytest.mark.needs_services("postgresql")

# Columns that differ between any two runs: ids, generated uuids, recipients and clocks.
VOLATILE = {
    "id",
    "workflow_id",
    "step_id",
    "attempt_id",
    "message_uuid",
    "provider_message_id",
    "provider_message_ids",
    "response",
    "recipient",
    "request_summary",
    "expiry_time",
    "created_at",
    "updated_at",
    "ready_at",
    "dispatched_at",
    "send_started_at",
    "sent_at",
    "deadline_at",
    "started_at",
    "finished_at",
}


def run_through_the_service(account) -> Workflow:
    workflow = workflow_create(
        account=account,
        flavour="workflows",
        steps=[
            StepSpec(
                channel="messenger",
                sender={"type": "messenger", "id": MESSENGER_SENDER},
                recipient={"type": "messenger", "id": "1000000013"},
                message={"content": {"type": "text", "text": MESSENGER_TEXT}},
                condition_status="read",
                expiry_time=600,
            ),
            StepSpec(
                channel="sms",
                sender={"type": "sms", "number": SMS_SENDER},
                recipient={"type": "sms", "number": "447700900013"},
                message={"content": {"type": "text", "text": SMS_TEXT}},
            ),
        ],
    )
    steps_send_due(ids=[workflow.steps.get(index=0).id])
    return workflow


def rows_of(workflow_id) -> dict[str, list[dict]]:
    def stable(rows):
        return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]

    return {
        "workflow": stable(Workflow.objects.filter(id=workflow_id).values()),
        "steps": stable(Step.objects.filter(workflow_id=workflow_id).order_by("index").values()),
        "attempts": stable(Attempt.objects.filter(step__workflow_id=workflow_id).values()),
        "provider_messages": stable(
            ProviderMessage.objects.filter(attempt__step__workflow_id=workflow_id).values()
        ),
        "events": stable(Event.objects.filter(workflow_id=workflow_id).order_by("id").values()),
    }


@pytest.mark.django_db
def test_bulk_inserted_runs_match_what_the_service_writes(account):
    reference = run_through_the_service(account.account)
    insert_waiting_workflows(
        account_id=account.account.id, count=3, deadlines_from_s=60, deadlines_to_s=120
    )
    bulk = Workflow.objects.exclude(id=reference.id).order_by("created_at")
    assert bulk.count() == 3
    expected = rows_of(reference.id)
    assert expected["steps"][0]["state"] == "waiting"
    for workflow in bulk:
        assert rows_of(workflow.id) == expected
        # The generated keys are shaped like the service's: UUIDv7.
        attempt = Attempt.objects.get(step__workflow=workflow)
        step = workflow.steps.get(index=0)
        keys = [workflow.id, attempt.id, step.message_uuid, reference.id]
        assert [key.version for key in keys] == [7, 7, 7, 7]


@pytest.mark.django_db
def test_bulk_inserted_deadlines_follow_expiry_and_spread_over_the_window(account):
    insert_waiting_workflows(
        account_id=account.account.id, count=5, deadlines_from_s=60, deadlines_to_s=120, batch=2
    )
    first_steps = list(Step.objects.filter(index=0).order_by("deadline_at"))
    assert len(first_steps) == 5
    for step in first_steps:
        assert step.deadline_at == step.send_started_at + timedelta(seconds=step.expiry_time)
        attempt = step.attempts.get()
        assert (
            ProviderMessage.objects.get(attempt=attempt).provider_message_id
            == (attempt.provider_message_ids[0])
        )
        assert step.recipient["id"].endswith("3")
    spread = first_steps[-1].deadline_at - first_steps[0].deadline_at
    assert abs(spread - timedelta(seconds=60)) < timedelta(seconds=1)  # batches timed apart
    assert len({step.recipient["id"] for step in first_steps}) == 5
