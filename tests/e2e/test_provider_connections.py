"""Real adapters end to end: the stack's worker sends through provider connections to the
provider simulator, which posts signed receipts back to gunicorn."""

import pytest

from tests.channels_app import conftest as channels
from tests.channels_app.conftest import SPECS, connect
from tests.fixtures import run, summary

pytestmark = pytest.mark.e2e

# The provider simulator fixtures, shared with tests/channels_app.
simulator_server = channels.simulator_server
simulator = channels.simulator


def test_messenger_expires_unread_then_sms_via_twilio_is_delivered(client, stack, simulator):
    messenger = connect(SPECS["messenger"], simulator.base_url)
    simulator.webhook(
        "messenger", f"{stack.base_url}/webhooks/receipts/messenger/{messenger.id}", "app-secret"
    )
    connect(SPECS["twilio"], simulator.base_url)  # receipts: StatusCallback from PUBLIC_BASE_URL
    first = SPECS["messenger"].step("1000000004")  # delivered, never read
    second = SPECS["twilio"].step("447700900000")
    body = run(
        {
            "from": first["sender"],
            "to": first["recipient"],
            "message": first["message"],
            "failover": {"condition_status": "read", "expiry_time": 2},
        },
        {"from": second["sender"], "to": second["recipient"], "message": second["message"]},
    )
    result = client.wait_until_finished(client.create(body), timeout=30)
    assert summary(result) == [
        ("messenger", "failed_over", "delivered", "expired"),
        ("sms", "succeeded", "delivered", None),
    ], stack.logs()


def test_messenger_rejected_fails_over_at_once_to_vonage_sms(client, stack, simulator):
    connect(SPECS["messenger"], simulator.base_url)
    sms = connect(SPECS["vonage_sms"], simulator.base_url)
    secret = SPECS["vonage_sms"].config["signature_secret"]
    simulator.webhook(
        "vonage_sms", f"{stack.base_url}/webhooks/receipts/vonage_sms/{sms.id}", secret, "sha256"
    )
    first = SPECS["messenger"].step("1000000001")  # rejected at once
    second = SPECS["vonage_sms"].step("447700900000")
    body = run(
        {
            "from": first["sender"],
            "to": first["recipient"],
            "message": first["message"],
            "failover": {"condition_status": "read", "expiry_time": 600},
        },
        {"from": second["sender"], "to": second["recipient"], "message": second["message"]},
    )
    result = client.wait_until_finished(client.create(body), timeout=30)
    assert summary(result) == [
        ("messenger", "failed_over", "rejected", "rejected"),
        ("sms", "succeeded", "delivered", None),
    ], stack.logs()
    assert result["steps"][0]["error"]["code"] == 1300
