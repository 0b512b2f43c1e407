"""The chaos checker's newer invariants can fail: a send the simulated provider got twice, and
webhooks the caller's receiver got twice, never, or under a second id."""

import json

import pytest

from tests.chaos import checker
from tests.fixtures import run_of, spec
from tests.webhook_receiver import Received
from workflows_app.models import Attempt, WebhookDelivery, WebhookEndpoint, Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(account):
    return run_of(account, spec("whatsapp", "44100000010", "read", 600), spec("sms", "44100000020"))


def _send(recipient: str, client_ref: str = "", outcome: str = "accepted", ids=()) -> dict:
    return {
        "provider": "whatsapp",
        "recipient": recipient,
        "client_ref": client_ref,
        "outcome": outcome,
        "provider_message_ids": list(ids),
        "fault": "",
    }


def _provider_violations(run, tmp_path, sends: list[dict]) -> checker.Verdict:
    log = tmp_path / "sends.jsonl"
    log.write_text("".join(json.dumps(s) + "\n" for s in sends))
    return checker.check([run.id], provider_log=log, require_settled=False)


def test_one_send_per_attempt_passes(run, tmp_path):
    step = run.steps.get(index=0)
    attempt = Attempt.objects.create(step=step, number=1, provider="whatsapp")
    verdict = _provider_violations(run, tmp_path, [_send("44100000010", str(attempt.id))])
    assert verdict.duplicates == 0
    assert not [v for v in verdict.violations if "simulated" in v or "unknown attempt" in v]


def test_an_attempt_sent_twice_is_a_duplicate(run, tmp_path):
    step = run.steps.get(index=0)
    attempt = Attempt.objects.create(step=step, number=1, provider="whatsapp")
    sends = [_send("44100000010", str(attempt.id)), _send("44100000010", str(attempt.id))]
    verdict = _provider_violations(run, tmp_path, sends)
    assert verdict.duplicates == 2  # once per attempt, once per step
    assert any("reached the simulated provider 2 times" in v for v in verdict.violations)


def test_a_step_accepted_twice_without_client_ref_is_a_duplicate(run, tmp_path):
    # Messenger and Twilio carry no client_ref: the step is found by its own recipient.
    sends = [_send("44100000020", ids=["m1"]), _send("44100000020", ids=["m2"])]
    verdict = _provider_violations(run, tmp_path, sends)
    assert any("accepted it 2 times" in v for v in verdict.violations)


def test_a_send_from_an_attempt_nobody_recorded_is_reported(run, tmp_path):
    sends = [_send("44100000010", "00000000-0000-0000-0000-000000000001")]
    verdict = _provider_violations(run, tmp_path, sends)
    assert any("unknown attempt" in v for v in verdict.violations)


def _report(run, account) -> WebhookDelivery:
    Workflow.objects.filter(id=run.id).update(status="completed")
    endpoint = WebhookEndpoint.objects.create(account=account.account, url="http://x.test/s")
    return WebhookDelivery.objects.create(
        account=account.account,
        workflow=run,
        endpoint=endpoint,
        kind="workflow_report",
        status="completed",
        body=json.dumps({"workflow_uuid": str(run.id), "status": "completed"}),
        state="delivered",
    )


def _received(delivery: WebhookDelivery, webhook_id: str = "") -> Received:
    return Received(
        headers={"webhook-id": webhook_id or delivery.header_id},
        body=delivery.body.encode(),
        jwt_claims={"iss": "test"},
        standard_ok=True,
        answered=200,
    )


def _webhook_violations(run, received) -> list[str]:
    verdict = checker.check([run.id], require_settled=False, received=received)
    words = ("webhook", "report", "event", "receiver")
    return [v for v in verdict.violations if any(w in v for w in words)]


def test_one_report_received_once_passes(run, account):
    delivery = _report(run, account)
    assert _webhook_violations(run, [_received(delivery)]) == []


def test_a_report_received_twice_or_never_or_unsigned_fails(run, account):
    delivery = _report(run, account)
    twice = _webhook_violations(run, [_received(delivery), _received(delivery)])
    assert any("reached the receiver 2 times" in v for v in twice)
    never = _webhook_violations(run, [])
    assert any("never got the final report" in v for v in never)
    unsigned = _received(delivery)
    unsigned.standard_ok = False
    assert any("did not verify" in v for v in _webhook_violations(run, [unsigned]))


def test_one_event_under_two_webhook_ids_fails(run, account):
    delivery = _report(run, account)
    violations = _webhook_violations(run, [_received(delivery), _received(delivery, "msg_other")])
    assert any("under 2 webhook ids" in v for v in violations)
    assert any("which the outbox never held" in v for v in violations)


def test_a_finished_workflow_without_its_report_fails(run, account):
    delivery = _report(run, account)
    WebhookDelivery.objects.filter(id=delivery.id).update(kind="message_status")
    violations = checker.check([run.id], require_settled=False).violations
    assert any("has 0 final reports" in v for v in violations)
