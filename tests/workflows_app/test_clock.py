"""The database clock, on whichever database the suite runs: microseconds on both, so a step
made due now is due for the very next claim, and a deadline is its acceptance plus its expiry,
never rounded down (SQLite's CURRENT_TIMESTAMP, whole seconds, broke both in embedded mode)."""

import time
from datetime import timedelta

import pytest

from tests.fixtures import run_of, spec
from workflows_app.models import Account, Step
from workflows_app.services.clock import ClockTimestamp, db_now
from workflows_app.services.scheduler import steps_expire_due
from workflows_app.services.sending import steps_send_due

pytestmark = pytest.mark.django_db


def test_the_database_clock_has_sub_second_precision_and_moves(account):
    def clock():  # clock_timestamp() in a query, as the claim query reads it
        query = Account.objects.annotate(now=ClockTimestamp()).values_list("now", flat=True)
        return query.get(id=account.account.id)

    stamps = []
    for _ in range(5):
        stamps.append(clock())
        time.sleep(0.003)
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert any(stamp.microsecond % 1000 for stamp in stamps), stamps  # finer than milliseconds
    assert abs((stamps[-1] - db_now()).total_seconds()) < 1


def test_the_next_step_after_a_rejection_is_due_for_the_very_next_claim(account):
    workflow = run_of(
        account, spec("sms", "447700900001", "delivered", 600), spec("sms", "447700900000")
    )
    assert steps_send_due(10) == 1  # the first step: rejected at once by the sandbox
    first, second = workflow.steps.order_by("index")
    assert (first.state, second.state) == ("failed_over", "pending")
    # Due now, by the database's clock, without waiting for the scheduler's re-dispatch.
    assert steps_send_due(10) == 1
    assert workflow.steps.get(index=1).state == "waiting"


def test_a_deadline_is_the_acceptance_plus_the_expiry_time_never_rounded_down(account):
    step = _sent_first_step(account)
    attempt = step.attempts.get()
    assert step.state == "waiting"
    assert step.deadline_at == step.sent_at + timedelta(seconds=600)
    # Accepted after the call started and ended: the deadline cannot precede either + expiry.
    assert step.send_started_at <= attempt.started_at <= step.sent_at
    assert attempt.finished_at <= step.sent_at


def test_a_timer_never_fires_before_its_deadline(account):
    step = _sent_first_step(account)
    deadline = db_now() + timedelta(seconds=0.4)
    Step.objects.filter(id=step.id).update(deadline_at=deadline)
    while db_now() < deadline - timedelta(seconds=0.05):
        assert steps_expire_due([step.id]) == 0 and steps_expire_due() == 0
        time.sleep(0.02)
    while db_now() < deadline:
        time.sleep(0.005)
    assert steps_expire_due([step.id]) == 1
    step.refresh_from_db()
    assert step.state == "failed_over" and step.finished_at >= deadline


def _sent_first_step(account) -> Step:
    """The first step of a two-step run (SMS, then SMS), sent: the sandbox accepts it and then
    stays silent, so it waits out its 600 s expiry."""
    workflow = run_of(
        account, spec("sms", "447700900003", "delivered", 600), spec("sms", "447700900000")
    )
    steps_send_due(10)
    return workflow.steps.get(index=0)
