"""Revoke before fallback and what a run cost, through the engine and real adapters to the
simulator over loopback, receipts coming back over HTTP to a live server."""

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from tests.channels_app.conftest import SPECS, connect
from tests.fixtures import start_run, wait_for_state
from tests.services import wait_for
from workflows_app.models import Attempt, Event, Step
from workflows_app.services.scheduler import steps_expire_due
from workflows_app.services.sending import steps_send_due
from workflows_app.webhooks.payloads import workflow_report_body

pytestmark = pytest.mark.django_db(transaction=True)

SMS = SPECS["vonage_sms"]


@pytest.fixture
def rcs_then_sms(live_server, simulator, settings):
    """RBM on `rcs` and Vonage SMS on `sms`, both on the simulator, receipts to the server."""
    settings.PUBLIC_BASE_URL = live_server.url
    for spec in (SPECS["google_rbm"], SMS):
        row = connect(spec, simulator.base_url)
        url = f"{live_server.url}/webhooks/receipts/{spec.provider}/{row.id}"
        method = spec.config.get("signature_method", "md5hash")
        simulator.webhook(spec.provider, url, spec.config[spec.secret_key], method)
    return simulator


def run(account, recipient: str, condition: str) -> Step:
    first = start_run(
        account,
        SPECS["google_rbm"].step(recipient),
        SMS.step("447700900000"),
        condition=condition,
        expiry=15,
    )
    steps_send_due(ids=[first.id])
    first.refresh_from_db()
    assert first.state == "waiting"
    return first


def expire_and_send_fallback(first: Step) -> Step:
    Step.objects.filter(id=first.id).update(deadline_at=timezone.now() - timedelta(seconds=1))
    assert steps_expire_due(ids=[first.id]) == 1
    second = first.workflow.steps.get(index=1)
    steps_send_due(ids=[second.id])
    first.refresh_from_db()
    return first


def log(simulator) -> tuple[list[dict], list[dict]]:
    revokes = requests.get(f"{simulator.base_url}/_simulator/revokes", timeout=5).json()
    sends = requests.get(f"{simulator.base_url}/_simulator/sends", timeout=5).json()
    return revokes["revokes"], sends["sends"]


def test_an_undelivered_rcs_message_is_revoked_before_the_fallback_is_sent(account, rcs_then_sms):
    first = expire_and_send_fallback(run(account, "447700900003", "delivered"))  # silent
    revokes, sends = log(rcs_then_sms)
    sms = [s for s in sends if s["provider"] == "vonage_sms"]
    assert [r["outcome"] for r in revokes] == ["revoked"] and len(sms) == 1
    assert revokes[0]["at"] < sms[0]["at"]  # the revoke reached the provider first
    assert first.revoke_state == "revoked"
    assert Event.objects.filter(step=first, kind="revoke.revoked").count() == 1
    report = workflow_report_body(first.workflow, timezone.now())
    assert report["_links"]["messages"][0]["revoke"] == "revoked"


def test_a_message_delivered_before_its_read_deadline_is_not_revoked(account, rcs_then_sms):
    first = run(account, "447700900004", "read")  # delivered, never read
    wait_for(lambda: Step.objects.get(id=first.id).message_status == "delivered", 10)
    first = expire_and_send_fallback(first)
    revokes, sends = log(rcs_then_sms)
    assert revokes == []  # no request: it cannot be revoked
    assert [s["provider"] for s in sends] == ["google_rbm", "vonage_sms"]  # the fallback went
    assert first.revoke_state == "too_late"
    assert Event.objects.filter(step=first, kind="revoke.too_late").exists()


def test_a_slow_revoke_delays_the_fallback_only_by_the_bound(account, rcs_then_sms, settings):
    settings.REVOKE_TIMEOUT = 0.5
    rcs_then_sms.fault("revoke:447700900003", "slow", delay=3)
    first = expire_and_send_fallback(run(account, "447700900003", "delivered"))
    revokes, sends = log(rcs_then_sms)
    assert [s["provider"] for s in sends] == ["google_rbm", "vonage_sms"]
    sms_sent = next(s["at"] for s in sends if s["provider"] == "vonage_sms")
    assert first.revoke_state == "failed"
    assert Event.objects.get(step=first, kind="revoke.failed").detail.startswith("ambiguous")
    assert not revokes or sms_sent < revokes[0]["at"]  # the send did not wait for the answer


def test_the_final_report_usage_is_the_sum_of_the_prices_reported(
    account, live_server, simulator, settings
):
    settings.PUBLIC_BASE_URL = live_server.url
    row = connect(SMS, simulator.base_url)
    url = f"{live_server.url}/webhooks/receipts/vonage_sms/{row.id}"
    simulator.webhook("vonage_sms", url, SMS.config["signature_secret"], "sha256")
    first = start_run(
        account, SMS.step("447700900002"), SMS.step("447700900000"), condition="delivered"
    )
    steps_send_due(ids=[first.id])
    wait_for_state(first, "failed_over")  # undeliverable
    second = first.workflow.steps.get(index=1)
    steps_send_due(ids=[second.id])
    wait_for_state(second, "succeeded")
    # What the simulator reported: each SMS send answer's message-price (and each DLR's price).
    reported = [
        Decimal(a.price_amount) for a in Attempt.objects.filter(step__workflow=first.workflow)
    ]
    assert reported == [Decimal("0.0333"), Decimal("0.0333")]
    report = workflow_report_body(first.workflow, timezone.now())
    assert report["usage"] == {"currency": "EUR", "price": format(sum(reported).normalize(), "f")}
    assert [m["usage"] for m in report["_links"]["messages"]] == [
        {"currency": "EUR", "price": "0.0333"},
        {"currency": "EUR", "price": "0.0333"},
    ]


def test_metrics_export_spend_and_runs_delivered_twice(account, client, simulator):
    from workflows_app.services.metrics import metrics_text

    connect(SMS, simulator.base_url)
    first = start_run(
        account, SMS.step("447700900000"), SMS.step("447700900000"), condition="delivered"
    )
    steps_send_due(ids=[first.id])
    second = first.workflow.steps.get(index=1)
    Step.objects.filter(workflow=first.workflow).update(message_status="delivered")
    text = metrics_text().decode()
    assert 'orchestrator_spend_total{channel="sms",connection=' in text
    assert 'currency="EUR",provider="vonage_sms"} 0.0333' in text
    assert "orchestrator_runs_delivered_twice 1.0" in text
    assert 'orchestrator_runs_delivered_twice_spend_total{currency="EUR"} 0.0333' in text
    assert second.index == 1
