"""Outbound status webhooks: the outbox, the payloads, both signatures and delivery, against a
real HTTP receiver on loopback that verifies with independent code (tests/webhook_receiver.py).
"""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from channels_app import receipts
from channels_app.statuses import ReceiptStatus
from tests.fixtures import FAST_RETRIES, expire_first_step, receipt, two_step_run
from tests.webhook_receiver import Receiver
from workflows_app.models import Account, WebhookDelivery, Workflow
from workflows_app.services.sending import steps_send_due
from workflows_app.services.workflows import workflow_cancel
from workflows_app.webhooks import outbox
from workflows_app.webhooks.delivery import webhooks_dispatch_due, workflow_webhooks_deliver
from workflows_app.webhooks.signing import webhook_secret_rotate


def fail_over_and_deliver(workflow: Workflow) -> None:
    """The first message is undeliverable; the SMS is sent and delivered: run completed."""
    first = workflow.steps.get(index=0)
    receipts.ingest([receipt(first, ReceiptStatus.UNDELIVERABLE)])
    second = workflow.steps.get(index=1)
    steps_send_due(ids=[second.id])
    receipts.ingest([receipt(second, ReceiptStatus.DELIVERED)])


def deliveries(workflow: Workflow) -> list[tuple[str, str]]:
    return [(d.kind, d.status) for d in WebhookDelivery.objects.filter(workflow=workflow)]


def drain(workflow: Workflow, rounds: int = 20) -> None:
    for _ in range(rounds):
        workflow_webhooks_deliver(workflow.id)
        if not WebhookDelivery.objects.filter(workflow=workflow, state="pending").exists():
            return


def test_every_status_change_and_one_final_report_are_queued_in_order(account, receiver):
    workflow = two_step_run(account)
    fail_over_and_deliver(workflow)
    assert deliveries(workflow) == [
        ("message_status", "submitted"),
        ("message_status", "undeliverable"),
        ("message_status", "submitted"),
        ("message_status", "delivered"),
        ("workflow_report", "completed"),
    ]
    outbox.workflow_finished(workflow.id)  # a repeat never makes a second report
    assert deliveries(workflow)[-1:] == [("workflow_report", "completed")]
    assert len(deliveries(workflow)) == 5


def test_a_rolled_back_status_change_leaves_nothing_in_the_outbox(account, receiver):
    workflow = two_step_run(account)
    first = workflow.steps.get(index=0)
    with pytest.raises(RuntimeError), transaction.atomic():
        receipts.ingest([receipt(first, ReceiptStatus.DELIVERED)])
        assert ("message_status", "delivered") in deliveries(workflow)
        raise RuntimeError("the status change rolls back")
    assert deliveries(workflow) == [("message_status", "submitted")]


def test_no_url_means_no_webhook(account):
    workflow = two_step_run(account)
    assert deliveries(workflow) == []


def test_the_v01_status_body_carries_the_workflow_link(account, receiver):
    workflow = two_step_run(account, flavour="dispatch", first="1000000001")  # rejected at once
    rejected = json.loads(WebhookDelivery.objects.get(workflow=workflow, status="rejected").body)
    step = workflow.steps.get(index=0)
    assert rejected == {
        "message_uuid": str(step.message_uuid),
        "to": {"type": "messenger", "id": "1000000001"},
        "from": {"type": "messenger", "id": "100200300"},
        "timestamp": rejected["timestamp"],
        "status": "rejected",
        "error": {"code": 1250, "reason": "Unroutable"},
        "client_ref": "order-42",
        "_links": {
            "workflow": {"dispatch_uuid": str(workflow.id), "href": f"/v0.1/dispatch/{workflow.id}"}
        },
    }
    assert rejected["timestamp"].endswith("Z") and len(rejected["timestamp"]) == 24


def test_the_v1_status_body_carries_the_workflow_object(account, receiver):
    workflow = two_step_run(account, first="1000000001", webhook_version="v1")
    body = json.loads(WebhookDelivery.objects.get(workflow=workflow, status="rejected").body)
    step = workflow.steps.get(index=0)
    assert body["to"] == "1000000001" and body["channel"] == "messenger"
    assert body["error"] == {
        "type": "https://developer.vonage.com/api-errors/messages#1250",
        "title": "1250",
        "detail": "Unroutable",
        "instance": str(step.message_uuid),
    }
    assert body["workflow"] == {
        "workflow_id": str(workflow.id),
        "items_number": "1",
        "items_total": "2",
    }
    assert "_links" not in body


@override_settings(**FAST_RETRIES)
def test_the_receiver_verifies_both_signatures_on_every_webhook(account, receiver):
    workflow = two_step_run(account)
    fail_over_and_deliver(workflow)
    drain(workflow)
    assert len(receiver.received) == 5
    for item in receiver.received:
        assert item.jwt_claims is not None, item.jwt_error
        assert item.jwt_claims["iss"] == "Vonage"
        assert item.jwt_claims["api_key"] == account.account.api_key
        assert "application_id" not in item.jwt_claims
        assert item.standard_ok
    assert len({item.jwt_claims["jti"] for item in receiver.received}) == 5
    report = receiver.received[-1].json
    assert report["status"] == "completed" and report["workflow_uuid"] == str(workflow.id)
    assert [m["status"] for m in report["_links"]["messages"]] == ["undeliverable", "delivered"]
    assert report["delivered_on_channels"] == ["sms"]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


@override_settings(**FAST_RETRIES)
def test_a_tampered_body_fails_both_checks(account, receiver):
    workflow = two_step_run(account)
    drain(workflow)
    item = receiver.received[0]
    forged = item.body.replace(b"submitted", b"delivered")
    check = receiver.verify(item.headers, forged)
    assert check.jwt_claims is None and "payload_hash" in check.jwt_error
    assert not check.standard_ok


@override_settings(**FAST_RETRIES)
def test_during_a_secret_rotation_both_secrets_sign_and_afterwards_only_the_new(account, receiver):
    owner = Account.objects.get(id=account.account.id)
    old = owner.webhook_secret
    new = webhook_secret_rotate(owner, overlap_hours=1)
    workflow = two_step_run(account)
    drain(workflow)
    headers, body = receiver.received[0].headers, receiver.received[0].body
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Receiver(owner.signature_secret, secret).verify(headers, body).standard_ok
    Account.objects.filter(id=owner.id).update(
        webhook_secret_previous_until=timezone.now() - timedelta(seconds=1)
    )
    workflow_cancel(workflow)
    drain(workflow)
    headers, body = receiver.received[-1].headers, receiver.received[-1].body
    assert receiver.received[-1].json["status"] == "cancelled"
    assert Receiver(owner.signature_secret, new).verify(headers, body).standard_ok
    assert not Receiver(owner.signature_secret, old).verify(headers, body).standard_ok


@override_settings(**FAST_RETRIES)
def test_a_failing_receiver_gets_the_same_webhook_id_until_it_answers_2xx(account, receiver):
    answers = iter([500, 302, 404, 200])
    receiver.answer = lambda item: next(answers, 200)
    workflow = two_step_run(account)
    drain(workflow)
    assert [r.answered for r in receiver.received] == [500, 302, 404, 200]
    assert len({r.webhook_id for r in receiver.received}) == 1
    delivery = WebhookDelivery.objects.get(workflow=workflow)
    assert delivery.state == "delivered"
    attempts = list(delivery.attempts.values_list("status_code", "outcome"))
    assert attempts == [(500, "failed"), (302, "failed"), (404, "failed"), (200, "delivered")]
    assert not any("169.254" in r.headers.get("host", "") for r in receiver.received)


@override_settings(**FAST_RETRIES)
def test_a_later_event_waits_for_an_earlier_one_of_the_same_run(account, receiver):
    receiver.answer = lambda item: 503
    workflow = two_step_run(account)
    first = workflow.steps.get(index=0)
    receipts.ingest([receipt(first, ReceiptStatus.DELIVERED)])
    for _ in range(3):
        workflow_webhooks_deliver(workflow.id)
    assert {r.json["status"] for r in receiver.received} == {"submitted"}
    receiver.answer = lambda item: 200
    drain(workflow)
    statuses = [r.json["status"] for r in receiver.accepted()]
    assert statuses == ["submitted", "delivered"]


@override_settings(WEBHOOKS_ALLOW_PRIVATE=True, WEBHOOK_RETRY_SCHEDULE=[5.0])
def test_429_honours_retry_after_and_the_schedule_ends_in_failed(account, receiver):
    receiver.answer = lambda item: 429
    workflow = two_step_run(account)
    workflow_webhooks_deliver(workflow.id)
    delivery = WebhookDelivery.objects.get(workflow=workflow)
    wait = (delivery.next_attempt_at - delivery.attempts.get().started_at).total_seconds()
    assert wait >= 120  # the receiver's Retry-After, not the 5 s of the schedule
    WebhookDelivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())
    workflow_webhooks_deliver(workflow.id)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count, delivery.next_attempt_at) == ("failed", 2, None)


@override_settings(**FAST_RETRIES)
def test_410_disables_the_endpoint_until_an_operator_enables_it(account, receiver):
    from workflows_app.webhooks.delivery import endpoint_enable

    receiver.answer = lambda item: 410
    workflow = two_step_run(account)
    workflow_cancel(workflow)
    for _ in range(3):
        workflow_webhooks_deliver(workflow.id)
    assert webhooks_dispatch_due(100) == 0
    assert len(receiver.received) == 1
    endpoint = WebhookDelivery.objects.filter(workflow=workflow).first().endpoint
    assert endpoint.disabled_at is not None and "410" in endpoint.disabled_reason
    receiver.answer = lambda item: 200
    endpoint_enable(endpoint, actor="test")
    drain(workflow)
    assert [r.json["status"] for r in receiver.accepted()] == ["submitted", "cancelled"]


@override_settings(WEBHOOKS_ALLOW_PRIVATE=False, WEBHOOK_RETRY_SCHEDULE=[0.0])
def test_loopback_is_refused_when_private_addresses_are_not_allowed(account, receiver):
    Account.objects.filter(id=account.account.id).update(
        status_url=receiver.url.replace("127.0.0.1", "localhost")
    )
    workflow = two_step_run(account)
    workflow_webhooks_deliver(workflow.id)
    attempt = WebhookDelivery.objects.get(workflow=workflow).attempts.get()
    assert attempt.status_code is None and "loopback or private" in attempt.error
    assert receiver.received == []


@override_settings(**FAST_RETRIES)
def test_a_late_receipt_after_the_report_is_still_sent_as_a_status_event(account, receiver):
    workflow = two_step_run(account)
    expire_first_step(workflow)
    second = workflow.steps.get(index=1)
    steps_send_due(ids=[second.id])
    receipts.ingest([receipt(second, ReceiptStatus.DELIVERED)])
    assert deliveries(workflow)[-1] == ("workflow_report", "completed")
    # A `read` from the first channel after it failed over: the person saw it there too.
    receipts.ingest([receipt(workflow.steps.get(index=0), ReceiptStatus.READ)])
    assert deliveries(workflow)[-1] == ("message_status", "read")
    drain(workflow)
    assert [r.json.get("status") for r in receiver.accepted()][-2:] == ["completed", "read"]


@override_settings(**FAST_RETRIES)
def test_the_report_names_every_channel_that_reached_the_person(account, receiver):
    workflow = two_step_run(account)
    expire_first_step(workflow)
    # The first message's `delivered` arrives late, before the SMS is delivered.
    receipts.ingest([receipt(workflow.steps.get(index=0), ReceiptStatus.DELIVERED)])
    second = workflow.steps.get(index=1)
    steps_send_due(ids=[second.id])
    receipts.ingest([receipt(second, ReceiptStatus.DELIVERED)])
    report = json.loads(WebhookDelivery.objects.get(workflow=workflow, kind="workflow_report").body)
    assert report["delivered_on_channels"] == ["messenger", "sms"]
    assert [m["late_receipt"] for m in report["_links"]["messages"]] == [True, False]


@pytest.mark.parametrize(
    ("address", "allowed", "refused_when_private_off"),
    [
        ("169.254.169.254", False, True),  # cloud metadata: refused even when private is on
        ("::ffff:169.254.169.254", False, True),
        ("fe80::1", False, True),
        ("100.100.100.200", False, True),
        ("0.0.0.0", False, True),
        ("0.1.2.3", False, True),
        ("224.0.0.1", False, True),
        ("127.0.0.1", True, True),
        ("10.1.2.3", True, True),
        ("::1", True, True),
        ("93.184.215.14", True, False),
    ],
)
def test_which_addresses_may_be_called(address, allowed, refused_when_private_off):
    from workflows_app.webhooks.transport import address_refusal

    assert (address_refusal(address, allow_private=True) is None) == allowed
    assert (address_refusal(address, allow_private=False) is not None) == refused_when_private_off


def test_the_commands_show_the_webhook_secret_once_and_rotate_it(db):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("create_account", "--name", "shop", stdout=out)
    created = json.loads(out.getvalue())
    assert created["webhook_secret"].startswith("whsec_")
    out = io.StringIO()
    call_command("rotate_webhook_secret", "--api-key", created["api_key"], stdout=out)
    rotated = json.loads(out.getvalue())
    account = Account.objects.get(api_key=created["api_key"])
    assert account.webhook_secret == rotated["webhook_secret"] != created["webhook_secret"]
    assert account.webhook_signing_secrets(timezone.now()) == [
        rotated["webhook_secret"],
        created["webhook_secret"],
    ]


@override_settings(**FAST_RETRIES, WEBHOOK_DISPATCH_GRACE=0.0)
def test_an_attempt_whose_worker_died_is_retried_after_its_lease(account, receiver):
    from workflows_app.webhooks.delivery import _claim_head

    workflow = two_step_run(account)
    claim = _claim_head(workflow.id)  # a worker claims the delivery, then dies before sending
    assert claim is not None and _claim_head(workflow.id) is None  # the lease holds others off
    assert webhooks_dispatch_due(100) == 0
    WebhookDelivery.objects.filter(id=claim.delivery_id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert webhooks_dispatch_due(100) == 1  # the scheduler queues it again
    workflow_webhooks_deliver(workflow.id)
    delivery = WebhookDelivery.objects.get(id=claim.delivery_id)
    assert (delivery.state, delivery.attempt_count) == ("delivered", 2)
    assert [r.webhook_id for r in receiver.received] == [delivery.header_id]
