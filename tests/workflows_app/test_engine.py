"""The state machine and the scheduler's recovery paths, driven through the services."""

from datetime import timedelta

import pytest

from channels_app import http
from tests.fixtures import run_of, spec
from workflows_app.models import Event, Step
from workflows_app.services.clock import db_now
from workflows_app.services.revoke import RevokeTask, revokes_record
from workflows_app.services.scheduler import (
    REDISPATCH_BACKOFF_CAP,
    scheduler_round,
    scheduler_tick,
    seconds_to_next_deadline,
    steps_expire_due,
)
from workflows_app.services.sending import steps_send_due
from workflows_app.services.transitions import IllegalTransition, steps_transition
from workflows_app.services.workflows import workflow_cancel, workflow_create
from workflows_app.states import STEP_TRANSITIONS, RevokeState, StepState, revoke_move_check


@pytest.fixture
def two_steps(account):
    return run_of(
        account, spec("messenger", "1000000003", "read", 600), spec("sms", "447700900000")
    )


def test_every_transition_in_the_table_leaves_an_allowed_state():
    sources = {source for source, _ in STEP_TRANSITIONS}
    assert StepState.SUCCEEDED not in sources and StepState.SKIPPED not in sources


def test_a_transition_not_in_the_table_is_refused(two_steps):
    step = two_steps.steps.get(index=0)
    with pytest.raises(IllegalTransition):
        steps_transition([step], StepState.SUCCEEDED)  # pending → succeeded is not allowed


def test_a_revoke_is_settled_once_as_its_table_allows(two_steps):
    step = two_steps.steps.get(index=0)
    Step.objects.filter(id=step.id).update(revoke_state=RevokeState.PENDING)
    task = RevokeTask(step.id, two_steps.id, "msg-1", "447700900000", None)
    revokes_record([(task, RevokeState.REVOKED, "withdrawn")])
    revokes_record([(task, RevokeState.FAILED, "a second answer")])  # settled: changes nothing
    step.refresh_from_db()
    assert step.revoke_state == RevokeState.REVOKED
    assert [e.kind for e in Event.objects.filter(step=step, kind__startswith="revoke.")] == [
        "revoke.revoked"
    ]
    with pytest.raises(IllegalTransition):
        revoke_move_check(RevokeState.REVOKED, RevokeState.PENDING)
    with pytest.raises(IllegalTransition):
        revoke_move_check(None, RevokeState.REVOKED)  # never asked, so never revoked


def test_a_lost_race_changes_nothing(two_steps):
    step = two_steps.steps.get(index=0)
    stale = Step.objects.get(id=step.id)
    assert steps_transition([step], StepState.SENDING) == [step]
    events = Event.objects.count()
    assert steps_transition([stale], StepState.SENDING) == []  # read as pending, now sending
    assert Event.objects.count() == events


def test_sending_twice_makes_one_attempt(two_steps):
    step = two_steps.steps.get(index=0)
    steps_send_due(ids=[step.id])
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    assert step.state == "waiting"
    assert step.attempts.count() == 1


def test_the_scheduler_fails_over_a_step_whose_deadline_passed(two_steps):
    step = two_steps.steps.get(index=0)
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    Step.objects.filter(id=step.id).update(deadline_at=step.deadline_at - timedelta(days=1))
    report = scheduler_tick()
    assert report.expired == 1
    step.refresh_from_db()
    assert (step.state, step.failover_reason) == ("failed_over", "expired")
    second = two_steps.steps.get(index=1)
    assert second.state == "pending" and second.ready_at is not None
    assert scheduler_tick().expired == 0


def test_the_scheduler_settles_a_step_whose_worker_died_mid_send(two_steps):
    step = two_steps.steps.get(index=0)
    stale = Step.objects.get(id=step.id)
    steps_transition(
        [stale], StepState.SENDING, send_started_at=stale.created_at - timedelta(hours=1)
    )
    report = scheduler_tick()
    assert report.settled == 1
    step.refresh_from_db()
    # The provider may have accepted: never resent, counted as submitted, the timer decides.
    assert (step.state, step.message_status) == ("waiting", "submitted")
    assert step.attempts.count() == 0


def test_the_scheduler_redispatches_a_pending_step_nobody_picked_up(two_steps, settings):
    step = two_steps.steps.get(index=0)
    long_ago = step.created_at - timedelta(minutes=5)
    Step.objects.filter(id=step.id).update(ready_at=long_ago, dispatched_at=long_ago)
    assert scheduler_tick().redispatched == 1
    assert scheduler_tick().redispatched == 0  # dispatched_at moved: not again at once
    step.refresh_from_db()
    # It had waited five minutes: the next re-dispatch backs off, but never past the cap.
    wait = step.dispatched_at - step.ready_at
    assert timedelta(minutes=5) + REDISPATCH_BACKOFF_CAP <= wait < timedelta(minutes=7)


def test_a_redispatch_backs_off_by_as_long_as_the_step_has_waited(two_steps):
    step = two_steps.steps.get(index=0)
    ago = step.created_at - timedelta(seconds=20)
    Step.objects.filter(id=step.id).update(ready_at=ago, dispatched_at=ago)
    assert scheduler_tick().redispatched == 1
    step.refresh_from_db()
    assert timedelta(seconds=40) <= step.dispatched_at - step.ready_at < timedelta(seconds=50)


def test_the_scheduler_arms_timers_only_inside_the_horizon(account, settings):
    settings.TIMER_HORIZON = 60
    workflow = run_of(
        account, spec("messenger", "1000000003", "read", 3600), spec("sms", "447700900000")
    )
    step = workflow.steps.get(index=0)
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    assert step.timer_armed_at is None  # an hour away: Postgres holds it, no countdown
    assert scheduler_tick().armed == 0
    Step.objects.filter(id=step.id).update(deadline_at=step.deadline_at - timedelta(minutes=59))
    assert scheduler_tick().armed == 1


def test_cancelling_cancels_what_has_not_finished(two_steps):
    steps_send_due(ids=[two_steps.steps.get(index=0).id])
    assert workflow_cancel(two_steps) is True
    assert list(two_steps.steps.values_list("state", flat=True)) == ["cancelled", "cancelled"]
    assert workflow_cancel(two_steps) is False


def test_cancelling_during_a_send_stops_the_run_there(two_steps):
    from workflows_app.services import send_record, sending

    step = two_steps.steps.get(index=0)
    [(attempt, route, outbound, _)] = sending._claim(Step.objects.filter(id=step.id), 1)
    assert workflow_cancel(two_steps) is True
    send_record.outcomes_record([(attempt, http.run(route.adapter.send(outbound, route.config)))])
    step.refresh_from_db()
    assert step.state == "cancelled"
    assert step.attempts.get().outcome == "accepted"  # recorded, but the run stays cancelled
    assert two_steps.steps.get(index=1).state == "cancelled"


def _waiting_past_deadline(account, count: int, steps_per_run: int = 2) -> list:
    """``count`` runs (of one or two steps) whose first step waits, its deadline a day ago."""
    runs = []
    for _ in range(count):
        if steps_per_run == 1:  # a last step: no condition, the final-step timeout
            specs = [spec("sms", "447700900003")]
        else:
            specs = [spec("messenger", "1000000003", "read", 600), spec("sms", "447700900000")]
        run = workflow_create(account=account.account, flavour="workflows", steps=specs)
        first = run.steps.get(index=0)
        steps_send_due(ids=[first.id])
        first.refresh_from_db()
        Step.objects.filter(id=first.id).update(deadline_at=first.deadline_at - timedelta(days=1))
        runs.append(run)
    return runs


def test_the_scheduler_fails_over_a_burst_of_deadlines_in_one_batch(account):
    """Many due steps, some the last of their run: each fails over once, through the table,
    with its Event; each next step becomes due; each one-step run ends in error."""
    runs = _waiting_past_deadline(account, 6) + _waiting_past_deadline(account, 2, 1)
    report = scheduler_tick()
    assert report.expired == 8
    for run in runs[:6]:
        first, second = run.steps.order_by("index")
        assert (first.state, first.failover_reason) == ("failed_over", "expired")
        assert second.state == "pending" and second.ready_at is not None
        assert first.events.filter(to_state="failed_over").count() == 1
        run.refresh_from_db()
        assert run.status == "running"
    for run in runs[6:]:
        (only,) = run.steps.all()
        assert (only.state, only.failover_reason) == ("failed", "expired")
        run.refresh_from_db()
        assert run.status == "error"
    assert scheduler_tick().expired == 0


def test_a_batch_transition_refuses_what_the_table_refuses(two_steps):
    step = two_steps.steps.get(index=0)
    with pytest.raises(IllegalTransition):
        steps_transition([step], StepState.SUCCEEDED)
    assert Step.objects.get(id=step.id).state == "pending"


def test_the_scheduler_sleeps_until_the_next_deadline(account, settings):
    settings.TIMER_RESOLUTION = 0.05
    assert seconds_to_next_deadline(limit=1.0) == 1.0  # nothing waits
    run = _waiting_past_deadline(account, 1)[0]
    assert seconds_to_next_deadline(limit=1.0) == 0.05  # overdue: wake at once (at the floor)
    first = run.steps.get(index=0)
    Step.objects.filter(id=first.id).update(deadline_at=first.deadline_at + timedelta(days=1))
    assert 0.05 < seconds_to_next_deadline(limit=900.0) <= 600  # its expiry, from now
    assert steps_expire_due() == 0


def test_an_idle_tick_is_one_round_trip(two_steps, django_assert_num_queries):
    """The tick asks the database once which phases have work; with none it does nothing else
    (the heartbeat is written by the first tick, then only every HEARTBEAT_EVERY seconds)."""
    scheduler_tick()
    steps_send_due(ids=[two_steps.steps.get(index=0).id])  # waiting, deadline ten minutes away
    with django_assert_num_queries(1):
        report = scheduler_tick()
    assert (report.expired, report.armed, report.redispatched) == (0, 0, 0)


def test_a_scheduler_round_fires_a_deadline_that_falls_between_ticks(two_steps, settings):
    """The tick finds nothing due; the round then wakes for the deadline 0.3 s later and fails
    the step over before the next tick (one second after the first)."""
    settings.TIMER_RESOLUTION = 0.05
    step = two_steps.steps.get(index=0)
    steps_send_due(ids=[step.id])
    Step.objects.filter(id=step.id).update(deadline_at=db_now() + timedelta(seconds=0.3))
    report = scheduler_round(1.0)
    assert report is not None and report.expired == 0
    step.refresh_from_db()
    assert (step.state, step.failover_reason) == ("failed_over", "expired")
    assert step.events.get(to_state="failed_over").created_at < step.deadline_at + timedelta(
        seconds=0.5
    )
