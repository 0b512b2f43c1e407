"""Timers live in the database: losing the broker (Redis, or the embedded filesystem transport),
a worker, or a message changes nothing that matters."""

import time
from datetime import timedelta

import pytest

from tests.fixtures import messenger, run, sms, summary
from tests.services import wait_for
from workflows_app.models import Event, Step

pytestmark = pytest.mark.e2e


def wait_for_state(workflow_uuid: str, index: int, state: str, timeout: float = 10) -> Step:
    return wait_for(
        lambda: Step.objects.filter(workflow_id=workflow_uuid, index=index, state=state).first(),
        timeout,
        message=f"step {index} to be {state}",
    )


def failover_event(step: Step) -> Event:
    return Event.objects.get(step=step, kind="step.transition", to_state="failed_over")


def test_a_waiting_run_fails_over_on_time_after_redis_loses_everything(client, stack):
    workflow_uuid = client.create(
        run(messenger("1000000003", condition="read", expiry=4), sms("447700900000"))
    )
    step = wait_for_state(workflow_uuid, 0, "waiting")
    # The armed countdown lives in the broker and in the timers worker's memory: lose both.
    # (The send worker too, as a host going down would.)
    for name in ("worker", "timers"):
        stack.processes[name].kill()
    stack.lose_broker()
    for name in ("worker", "timers"):
        stack.start(name)

    result = client.wait_until_finished(workflow_uuid, timeout=30)
    assert summary(result) == [
        ("messenger", "failed_over", "submitted", "expired"),
        ("sms", "succeeded", "delivered", None),
    ]
    step.refresh_from_db()
    fired = failover_event(step)
    assert "scheduler" in fired.detail  # the countdown was lost; Postgres remembered
    lateness = (fired.created_at - step.deadline_at).total_seconds()
    assert 0 <= lateness < float(stack.env["SCHEDULER_INTERVAL"]) + 1.0


def test_a_send_lost_with_the_broker_is_dispatched_again(client, stack):
    stack.processes["worker"].kill()
    workflow_uuid = client.create(
        run(messenger("1000000000", condition="read", expiry=30), sms("447700900000"))
    )
    stack.lose_broker()  # the queued send is gone
    stack.start("worker")
    result = client.wait_until_finished(workflow_uuid, timeout=30)
    assert result["status"] == "completed"
    assert summary(result)[0] == ("messenger", "succeeded", "read", None)


def test_a_failover_fires_within_a_second_of_its_deadline(client):
    workflow_uuid = client.create(
        run(messenger("1000000003", condition="delivered", expiry=2), sms("447700900000"))
    )
    client.wait_until_finished(workflow_uuid)
    step = Step.objects.get(workflow_id=workflow_uuid, index=0)
    lateness = (failover_event(step).created_at - step.deadline_at).total_seconds()
    assert 0 <= lateness < 1.0


def test_a_countdown_delivered_twice_fails_over_once(client):
    from workflows_app.tasks import expire_step

    workflow_uuid = client.create(
        run(messenger("1000000003", condition="delivered", expiry=60), sms("447700900000"))
    )
    step = wait_for_state(workflow_uuid, 0, "waiting")
    # Bring the deadline forward, then deliver the expiry task three times at once.
    Step.objects.filter(id=step.id).update(deadline_at=step.deadline_at - timedelta(seconds=60))
    for _ in range(3):
        expire_step.delay(step.id)
    client.wait_until_finished(workflow_uuid)
    time.sleep(1)  # let any duplicate run to its end
    assert Event.objects.filter(step=step, to_state="failed_over").count() == 1
    next_step = Step.objects.get(workflow_id=workflow_uuid, index=1)
    assert next_step.attempt_count == 1
    assert Event.objects.filter(step=next_step, to_state="sending").count() == 1
