"""GET /beta/workflows/{uuid} (and /v0.1/dispatch/{uuid}) and POST .../{uuid}/cancel.

Vonage never offered these; they are our extension, scoped to the caller's account.
"""

import uuid
from datetime import datetime, timedelta

import pytest

from workflows_app.models import Event, Step, Workflow
from workflows_app.services.clock import db_now
from workflows_app.services.transitions import steps_transition, workflow_transition
from workflows_app.services.workflows import steps_fail_over, steps_start_waiting
from workflows_app.states import FailoverReason, StepState, WorkflowStatus

from .conftest import ENDPOINTS, problem_of

THREE_STEPS = {
    "template": "failover",
    "client_ref": "order-42",
    "workflow": [
        {
            "from": {"type": "messenger", "id": "100200300"},
            "to": {"type": "messenger", "id": "1000000004"},
            "message": {"content": {"type": "text", "text": "Shipped (Messenger)"}},
            "failover": {"expiry_time": 600, "condition_status": "read"},
        },
        {
            "from": {"type": "viber_service_msg", "id": "16273"},
            "to": {"type": "viber_service_msg", "number": "447700900004"},
            "message": {"content": {"type": "text", "text": "Shipped (Viber)"}},
            "failover": {"expiry_time": 30, "condition_status": "delivered"},
        },
        {
            "from": {"type": "sms", "number": "447700900001"},
            "to": {"type": "sms", "number": "447700900000"},
            "message": {"content": {"type": "text", "text": "Shipped (SMS)"}},
        },
    ],
}


@pytest.fixture
def create(api_client):
    """``create(body, path=...)``: POST a valid request and return the new workflow's UUID."""

    def post(body: dict, path: str = "/beta/workflows") -> str:
        response = api_client.post(path, body, format="json")
        assert response.status_code == 202, response.content
        return response.json()[ENDPOINTS[path]]

    return post


def read(client, workflow_id: str, path: str = "/beta/workflows"):
    response = client.get(f"{path}/{workflow_id}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- GET -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_run_shows_its_steps_in_order_and_nothing_sent(api_client, create):
    workflow_id = create(THREE_STEPS)
    body = read(api_client, workflow_id)
    assert body["workflow_uuid"] == workflow_id
    assert body["template"] == "failover"
    assert body["status"] == "running"
    assert body["client_ref"] == "order-42"
    assert body["finished_at"] is None
    steps = body["steps"]
    assert [s["index"] for s in steps] == [0, 1, 2]
    assert [s["channel"] for s in steps] == ["messenger", "viber_service_msg", "sms"]
    for step, item in zip(steps, THREE_STEPS["workflow"], strict=True):
        assert step["to"] == item["to"]
        assert step["from"] == item["from"]
        assert step["message_uuid"] is None
        assert step["status"] is None
        assert step["failover_reason"] is None
        assert step["deadline_at"] is None
        assert step["state"] == "pending"
    assert [(s["condition_status"], s["expiry_time"]) for s in steps] == [
        ("read", 600),
        ("delivered", 30),
        (None, None),
    ]


@pytest.mark.django_db
def test_a_dispatch_run_is_read_with_its_dispatch_uuid(api_client, create, canonical_request):
    workflow_id = create(canonical_request, path="/v0.1/dispatch")
    body = read(api_client, workflow_id, path="/v0.1/dispatch")
    assert body["dispatch_uuid"] == workflow_id
    assert "workflow_uuid" not in body
    assert body["client_ref"] is None


def _start_waiting(workflow_id: str, index: int = 0) -> tuple[Step, uuid.UUID, datetime]:
    """Move a step pending → sending → waiting as a worker would after the provider accepted."""
    step = Step.objects.get(workflow_id=workflow_id, index=index)
    assert steps_transition([step], StepState.SENDING, send_started_at=db_now())
    message_uuid = uuid.uuid4()
    accepted = db_now()
    assert steps_start_waiting(
        [step], now=accepted, message_uuid=message_uuid, message_status="submitted"
    )
    return step, message_uuid, accepted


@pytest.mark.django_db
def test_a_waiting_step_shows_its_message_and_deadline(api_client, create, canonical_request):
    workflow_id = create(canonical_request)
    _, message_uuid, started = _start_waiting(workflow_id)
    first, second = read(api_client, workflow_id)["steps"]
    assert first["state"] == "waiting"
    assert first["message_uuid"] == str(message_uuid)
    assert first["status"] == "submitted"
    assert parse_time(first["deadline_at"]) == started + timedelta(seconds=600)
    assert second["message_uuid"] is None and second["deadline_at"] is None


@pytest.mark.django_db
def test_a_failed_over_step_shows_why(api_client, create, canonical_request):
    workflow_id = create(canonical_request)
    step, _, _ = _start_waiting(workflow_id)
    steps_fail_over([step], FailoverReason.EXPIRED)
    first, second = read(api_client, workflow_id)["steps"]
    assert (first["state"], first["failover_reason"]) == ("failed_over", "expired")
    assert (second["state"], second["failover_reason"]) == ("pending", None)


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_another_accounts_run_is_not_found(create, other_client, canonical_request, path):
    workflow_id = create(canonical_request)
    problem = problem_of(other_client.get(f"{path}/{workflow_id}"), 404)
    assert problem["type"].endswith("#not-found")
    assert workflow_id not in problem["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize(
    "workflow_id",
    [
        str(uuid.uuid4()),
        "not-a-uuid",
        "00000000-0000-0000-0000-00000000000g",
        "%00",
        "%F0%9F%9A%9A",
        "%ED%A0%80",  # an encoded lone surrogate
        "1" * 5000,
        "' OR 1=1 --",
    ],
)
def test_an_unknown_or_malformed_id_is_not_found(api_client, path, workflow_id):
    problem_of(api_client.get(f"{path}/{workflow_id}"), 404)
    problem_of(api_client.post(f"{path}/{workflow_id}/cancel"), 404)


# --- cancel --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_cancelling_a_running_run_cancels_its_unsent_steps(api_client, create, path):
    workflow_id = create(THREE_STEPS, path=path)
    response = api_client.post(f"{path}/{workflow_id}/cancel")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body[ENDPOINTS[path]] == workflow_id
    assert body["status"] == "cancelled"
    assert body["finished_at"] is not None
    assert [s["state"] for s in body["steps"]] == ["cancelled"] * 3
    assert read(api_client, workflow_id, path=path)["status"] == "cancelled"
    assert Workflow.objects.get(id=workflow_id).status == WorkflowStatus.CANCELLED


@pytest.mark.django_db
def test_cancelling_a_run_that_waits_cancels_the_waiting_step(api_client, create):
    workflow_id = create(THREE_STEPS)
    _start_waiting(workflow_id)
    body = api_client.post(f"/beta/workflows/{workflow_id}/cancel").json()
    assert [s["state"] for s in body["steps"]] == ["cancelled"] * 3


@pytest.mark.django_db
def test_cancelling_twice_is_a_conflict(api_client, create, canonical_request):
    workflow_id = create(canonical_request)
    assert api_client.post(f"/beta/workflows/{workflow_id}/cancel").status_code == 200
    events = Event.objects.count()
    problem = problem_of(api_client.post(f"/beta/workflows/{workflow_id}/cancel"), 409)
    assert problem["type"].endswith("#conflict")
    assert "cancelled" in problem["detail"]
    assert Event.objects.count() == events


@pytest.mark.django_db
@pytest.mark.parametrize("final", [WorkflowStatus.COMPLETED, WorkflowStatus.ERROR])
def test_cancelling_a_finished_run_is_a_conflict(api_client, create, canonical_request, final):
    workflow_id = create(canonical_request)
    assert workflow_transition(workflow_id, WorkflowStatus.RUNNING, final)
    steps_before = list(Step.objects.filter(workflow_id=workflow_id).values_list("state"))
    problem = problem_of(api_client.post(f"/beta/workflows/{workflow_id}/cancel"), 409)
    assert final in problem["detail"]
    assert Workflow.objects.get(id=workflow_id).status == final
    assert list(Step.objects.filter(workflow_id=workflow_id).values_list("state")) == steps_before


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_another_account_cannot_cancel(create, other_client, store_counts, canonical_request, path):
    workflow_id = create(canonical_request)
    before = store_counts()
    problem_of(other_client.post(f"{path}/{workflow_id}/cancel"), 404)
    assert Workflow.objects.get(id=workflow_id).status == WorkflowStatus.RUNNING
    assert store_counts() == before
