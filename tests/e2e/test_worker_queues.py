"""The timers worker keeps to its queue when an operator resumes sends the usual way."""

import pytest
from celery import Celery

from tests.services import STARTUP_TIMEOUT, wait_for


@pytest.mark.needs_services("redis")
def test_resuming_sends_without_a_destination_leaves_the_timers_worker_on_timers(stack):
    app = Celery(broker=stack.redis_url)
    names = {"worker": "worker@", "timers": "timers@"}

    def queues() -> dict[str, set[str]] | None:
        active = app.control.inspect(timeout=2).active_queues() or {}
        found = {
            role: {q["name"] for host, qs in active.items() if host.startswith(prefix) for q in qs}
            for role, prefix in names.items()
        }
        return found if all(found.values()) else None

    wait_for(queues, STARTUP_TIMEOUT, message="both workers to answer")
    try:
        replies = app.control.add_consumer("celery", reply=True, timeout=2)
        answers = {host: answer for reply in replies for host, answer in reply.items()}
        refused = [a for host, a in answers.items() if host.startswith("timers@")]
        assert refused and "error" in refused[0], answers
        assert "consumes timers only" in refused[0]["error"]
        assert any(host.startswith("worker@") and "ok" in a for host, a in answers.items())
        assert queues() == {"worker": {"celery"}, "timers": {"timers"}}
    finally:  # should it have been taken, undo it for the tests after this one
        timers = [
            host
            for host in (app.control.inspect(timeout=2).ping() or {})
            if host.startswith("timers@")
        ]
        if timers and "celery" in (queues() or {}).get("timers", set()):
            app.control.cancel_consumer("celery", destination=timers, reply=True)
