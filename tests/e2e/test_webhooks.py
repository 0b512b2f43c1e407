"""Status webhooks through the real stack: the worker's on-commit fast path, the scheduler's
retries, and a receiver on loopback that verifies every signature independently."""

from collections import Counter

import pytest

from tests.fixtures import messenger, run, sms
from tests.services import free_port, wait_for
from tests.webhook_receiver import Receiver
from workflows_app.models import Account, WebhookAttempt, WebhookDelivery

pytestmark = pytest.mark.e2e


def test_a_receiver_that_is_down_for_a_while_gets_every_event_once_in_order(client, account):
    owner = Account.objects.get(id=account.account.id)
    receiver = Receiver(owner.signature_secret, owner.webhook_secret)
    port = free_port()
    Account.objects.filter(id=owner.id).update(status_url=f"http://127.0.0.1:{port}/status")

    workflow_uuid = client.create(
        run(messenger("1000000001", condition="read", expiry=60), sms("447700900000"))
    )
    client.wait_until_finished(workflow_uuid)
    wait_for(
        lambda: (
            WebhookAttempt.objects.filter(
                delivery__workflow_id=workflow_uuid, status_code=None
            ).count()
            >= 3
        ),
        20,
        message="attempts that fail while the receiver is down",
    )
    receiver.start(port)
    try:
        wait_for(
            lambda: (
                not WebhookDelivery.objects.filter(
                    workflow_id=workflow_uuid, state="pending"
                ).exists()
            ),
            30,
            message="every delivery to go out",
        )
    finally:
        receiver.stop()

    expected = list(WebhookDelivery.objects.filter(workflow_id=workflow_uuid))
    assert [(d.kind, d.status, d.state) for d in expected] == [
        ("message_status", "rejected", "delivered"),  # rejected at once: never submitted
        ("message_status", "submitted", "delivered"),
        ("message_status", "delivered", "delivered"),
        ("workflow_report", "completed", "delivered"),
    ]
    got = receiver.accepted()
    assert all(r.jwt_claims and r.standard_ok for r in got)
    # Nothing arrived twice under different ids; each event is one webhook-id.
    by_content = Counter((r.json.get("message_uuid"), r.json["status"]) for r in got)
    assert set(by_content.values()) == {1}
    assert [r.webhook_id for r in got] == [d.header_id for d in expected]
    first = WebhookDelivery.objects.get(workflow_id=workflow_uuid, status="rejected")
    assert first.attempt_count > 1  # it really was retried


def test_the_running_stack_is_ready_and_exports_metrics(stack):
    import requests

    assert requests.get(stack.base_url + "/healthz", timeout=5).status_code == 200
    wait_for(
        lambda: requests.get(stack.base_url + "/readyz", timeout=5).status_code == 200,
        15,
        message="/readyz to report database, broker and scheduler ready",
    )
    token = stack.env["METRICS_TOKEN"]
    response = requests.get(
        stack.base_url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    assert "orchestrator_queue_depth" in response.text
    assert requests.get(stack.base_url + "/metrics", timeout=5).status_code == 401
