"""Receipts: recorded once, status only forward, late ones never reopen a run."""

import pytest

from channels_app import receipts
from channels_app.statuses import ReceiptEvent, ReceiptStatus
from tests.fixtures import receipt, run_of, spec
from workflows_app.models import Event, Step, Workflow
from workflows_app.services.sending import steps_send_due


@pytest.fixture
def waiting_run(account):
    """A two-step run whose first step (a silent sandbox recipient) is waiting for `read`."""
    workflow = run_of(
        account, spec("messenger", "1000000003", "read", 600), spec("sms", "447700900000")
    )
    first = workflow.steps.get(index=0)
    steps_send_due(ids=[first.id])
    first.refresh_from_db()
    assert first.state == "waiting"
    return workflow, first


def test_a_duplicate_receipt_changes_nothing(waiting_run):
    workflow, step = waiting_run
    receipts.ingest([receipt(step, ReceiptStatus.DELIVERED)])
    events_after_first = Event.objects.count()
    receipts.ingest([receipt(step, ReceiptStatus.DELIVERED)])
    assert Event.objects.count() == events_after_first
    step.refresh_from_db()
    assert (step.state, step.message_status) == ("waiting", "delivered")


def test_status_never_moves_backwards(waiting_run):
    workflow, step = waiting_run
    receipts.ingest([receipt(step, ReceiptStatus.DELIVERED)])
    receipts.ingest([receipt(step, ReceiptStatus.SUBMITTED)])
    step.refresh_from_db()
    assert step.message_status == "delivered"


def test_read_meets_the_condition_and_skips_later_steps(waiting_run):
    workflow, step = waiting_run
    receipts.ingest([receipt(step, ReceiptStatus.READ)])
    workflow.refresh_from_db()
    assert workflow.status == "completed"
    assert list(workflow.steps.values_list("state", flat=True)) == ["succeeded", "skipped"]


def test_a_receipt_after_failover_is_recorded_but_never_reopens_the_run(waiting_run):
    workflow, step = waiting_run
    receipts.ingest([receipt(step, ReceiptStatus.UNDELIVERABLE)])
    step.refresh_from_db()
    assert (step.state, step.failover_reason) == ("failed_over", "undeliverable")
    receipts.ingest([receipt(step, ReceiptStatus.READ)])
    step.refresh_from_db()
    assert step.state == "failed_over"
    assert step.message_status == "undeliverable"  # a failure is final


def test_a_late_positive_receipt_is_flagged(waiting_run):
    workflow, step = waiting_run
    Step.objects.filter(id=step.id).update(deadline_at=step.deadline_at.replace(year=2000))
    from workflows_app.services.scheduler import steps_expire_due

    assert steps_expire_due([step.id]) == 1
    assert steps_expire_due([step.id]) == 0  # a second delivery of the timer is a no-op
    receipts.ingest([receipt(step, ReceiptStatus.READ)])
    step.refresh_from_db()
    assert (step.state, step.message_status, step.late_receipt) == ("failed_over", "read", True)
    workflow.refresh_from_db()
    assert workflow.status == "running"  # the SMS step decides now


def test_a_receipt_for_an_unknown_message_is_recorded(db):
    receipts.ingest(
        [
            ReceiptEvent(
                provider="sandbox", provider_message_id="nope", status=ReceiptStatus.DELIVERED
            )
        ]
    )
    assert Event.objects.filter(kind="receipt.unmatched").count() == 1


def test_a_receipt_that_beats_the_send_record_is_applied_once_the_send_is_recorded(
    account, monkeypatch
):
    workflow = run_of(
        account, spec("messenger", "1000000003", "delivered", 600), spec("sms", "447700900000")
    )
    first = workflow.steps.get(index=0)
    from channels_app.adapters.base import SendResult
    from workflows_app.services import sending

    original = sending.outcomes_record

    def deliver_first(outcomes, revoked=()):
        [(_attempt, result)] = outcomes
        assert isinstance(result, SendResult)
        receipts.ingest(
            [
                ReceiptEvent(
                    provider="sandbox",
                    provider_message_id=result.provider_message_ids[0],
                    status=ReceiptStatus.DELIVERED,
                    connection_ids=("sandbox",),
                )
            ]
        )
        original(outcomes, revoked)

    monkeypatch.setattr(sending, "outcomes_record", deliver_first)
    steps_send_due(ids=[first.id])
    first.refresh_from_db()
    assert (first.state, first.message_status) == ("succeeded", "delivered")
    assert Workflow.objects.get(id=workflow.id).status == "completed"
