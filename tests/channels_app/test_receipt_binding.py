"""A receipt changes only messages sent through the connection whose secret verified it
(issue 14.3): connection B's secret cannot move connection A's message, on B's URL, on the
connection-less URL, by message id, by our client_ref, or by a read watermark; and B's forgery
cannot pre-empt A's genuine receipt as a "duplicate"."""

import json
import time

import pytest
from django.test import Client

from tests.channels_app.conftest import SPECS, connect
from tests.channels_app.receipt_signing import receipt_body, sign
from tests.fixtures import start_run
from workflows_app.models import Event, Step
from workflows_app.services.sending import steps_send_due

pytestmark = pytest.mark.django_db

RECIPIENT = "447700900000"
TOKEN_OF_B = "the-token-of-connection-b-0123456789"


def post(path: str, signed) -> int:
    response = Client().generic(
        "POST", path, signed.body, content_type=signed.content_type, headers=signed.headers
    )
    return response.status_code


def send_through_first(account, simulator, provider: str, condition: str = "delivered"):
    """Connections A (preferred) and B (another secret) of ``provider``; a run whose first
    step went through A. Returns (A, B, step, attempt)."""
    spec = SPECS[provider]
    a = connect(spec, simulator.base_url, priority=1)
    b = connect(spec, simulator.base_url, priority=2, **{spec.secret_key: TOKEN_OF_B})
    simulator.fault(RECIPIENT, "drop_receipts")
    step = start_run(account, spec.step(RECIPIENT), spec.step(RECIPIENT), condition=condition)
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    attempt = step.attempts.get()
    assert (attempt.connection_id, step.message_status) == (str(a.id), "submitted")
    return a, b, step, attempt


def status_of(step: Step) -> tuple[str, str | None]:
    step.refresh_from_db()
    return step.state, step.message_status


def viber_receipt(message_id: str, secret: str, status: str = "delivered"):
    body = receipt_body("viber", message_id, status)
    body["user_id"] = RECIPIENT
    body["timestamp"] = int(time.time() * 1000) + 1000  # a watermark after the send
    return sign("viber", body, secret, "")


@pytest.mark.parametrize("url", ["own", "connection-less"])
def test_a_receipt_signed_by_another_connection_changes_nothing(account, simulator, url):
    a, b, step, attempt = send_through_first(account, simulator, "viber")
    path = f"/webhooks/receipts/viber/{b.id}" if url == "own" else "/webhooks/receipts/viber"
    assert post(path, viber_receipt(attempt.provider_message_ids[0], TOKEN_OF_B)) == 200
    assert status_of(step) == ("waiting", "submitted")
    assert Event.objects.filter(kind="receipt.unmatched").count() == 1


def test_a_forged_receipt_does_not_pre_empt_the_genuine_one(account, simulator):
    a, b, step, attempt = send_through_first(account, simulator, "viber")
    message_id = attempt.provider_message_ids[0]
    assert post(f"/webhooks/receipts/viber/{b.id}", viber_receipt(message_id, TOKEN_OF_B)) == 200
    secret = SPECS["viber"].config["auth_token"]
    assert post(f"/webhooks/receipts/viber/{a.id}", viber_receipt(message_id, secret)) == 200
    assert status_of(step) == ("succeeded", "delivered")


def test_on_the_connection_less_url_the_verifying_connection_decides(account, simulator):
    a, b, step, attempt = send_through_first(account, simulator, "viber")
    secret = SPECS["viber"].config["auth_token"]
    receipt = viber_receipt(attempt.provider_message_ids[0], secret)
    assert post("/webhooks/receipts/viber", receipt) == 200
    assert status_of(step) == ("succeeded", "delivered")


def test_a_read_watermark_of_another_connection_reads_nothing(account, simulator):
    a, b, step, attempt = send_through_first(account, simulator, "viber", condition="read")
    other_message = "5741311803571729999"  # B's own message: B may say it was seen
    assert post("/webhooks/receipts/viber", viber_receipt(other_message, TOKEN_OF_B, "read")) == 200
    assert Event.objects.filter(kind="receipt.watermark").count() == 1
    assert status_of(step) == ("waiting", "submitted")
    secret = SPECS["viber"].config["auth_token"]
    assert post("/webhooks/receipts/viber", viber_receipt(other_message, secret, "read")) == 200
    assert status_of(step) == ("succeeded", "read")


def test_our_client_ref_in_another_connections_receipt_changes_nothing(account, simulator):
    a, b, step, attempt = send_through_first(account, simulator, "vonage_messages")
    body = receipt_body("vonage_messages", "aaaaaaaa-bbbb-cccc-dddd-0123456789ab")
    body["client_ref"] = str(attempt.id)
    assert post(f"/webhooks/receipts/vonage_messages/{b.id}", sign_vm(body, TOKEN_OF_B)) == 200
    assert status_of(step) == ("waiting", "submitted")
    secret = SPECS["vonage_messages"].config["signature_secret"]
    assert post(f"/webhooks/receipts/vonage_messages/{a.id}", sign_vm(body, secret)) == 200
    assert status_of(step) == ("succeeded", "delivered")


def sign_vm(body: dict, secret: str):
    return sign("vonage_messages", json.dumps(body).encode(), secret, "")


def test_connections_that_share_a_secret_may_each_vouch_for_their_messages(account, simulator):
    spec = SPECS["viber"]
    connect(spec, simulator.base_url, priority=2)  # the same bot token on a second connection
    a, b, step, attempt = send_through_first(account, simulator, "viber")
    secret = spec.config["auth_token"]
    assert (
        post("/webhooks/receipts/viber", viber_receipt(attempt.provider_message_ids[0], secret))
        == 200
    )
    assert status_of(step) == ("succeeded", "delivered")
