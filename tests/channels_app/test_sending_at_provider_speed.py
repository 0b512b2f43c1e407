"""Sending at real providers' speed: many calls in flight, a kept-alive connection per provider
connection, connections' rate limits applied before a claim, a 429 slowing the connection, and
timers on their own queue."""

import time

import pytest
import requests
from celery import current_app
from django.utils import timezone

from channels_app.ratelimit import rate_reset
from tests.channels_app.conftest import SPECS, connect
from tests.fixtures import start_run
from workflows_app.models import Step
from workflows_app.services import dispatch, sending
from workflows_app.services.sending import sends_finish, steps_send_due


def stats(simulator) -> dict:
    return requests.get(simulator.base_url + "/_simulator/stats", timeout=5).json()


def runs(account, count: int, first_digit: str = "0") -> list[Step]:
    return [
        start_run(account, SPECS["twilio"].step(f"4477009{first_digit}{n:04d}3"))
        for n in range(count)
    ]


@pytest.mark.django_db
def test_calls_stay_in_flight_together_so_slow_answers_overlap(account, simulator, settings):
    settings.SEND_BATCH_SIZE = 8
    connect(SPECS["twilio"], simulator.base_url)
    simulator.post("latency", {"seconds": 0.5})
    steps = runs(account, 24)
    began = time.monotonic()
    assert steps_send_due(budget=30) == 24
    # 24 answers of 0.5 s each, three claims of 8: one after another would take 12 s.
    assert time.monotonic() - began < 4
    assert Step.objects.filter(id__in=[s.id for s in steps], state="waiting").count() == 24


@pytest.mark.django_db(transaction=True)  # the calls are recorded by another thread
def test_a_loop_whose_time_is_up_leaves_its_calls_to_be_recorded_as_they_end(
    account, simulator, settings
):
    """It does not wait a provider latency with nothing claimed: the next loop claims while a
    thread of the same process records what this one sent."""
    settings.SEND_BATCH_SIZE = 4
    connect(SPECS["twilio"], simulator.base_url)
    simulator.post("latency", {"seconds": 1.0})
    ids = [step.id for step in runs(account, 12)]
    assert steps_send_due(budget=0.2) == 12  # three full claims, then nothing more is due
    assert Step.objects.filter(id__in=ids, state="sending").count() == 12  # no answer yet
    sends_finish()
    assert Step.objects.filter(id__in=ids, state="waiting").count() == 12
    assert all(
        step.attempts.get().outcome == "accepted" for step in Step.objects.filter(id__in=ids)
    )


@pytest.mark.django_db(transaction=True)
def test_calls_a_loop_took_but_did_not_record_are_recorded_by_the_thread_it_leaves(
    account, simulator
):
    connect(SPECS["twilio"], simulator.base_url)
    ids = [step.id for step in runs(account, 3, first_digit="7")]
    calls = sending._Calls()
    calls.start(sending._claim(Step.objects.filter(id__in=ids), 3))
    calls.take(None)
    calls.gather(3)
    assert len(calls.finished) == 3  # every call has ended: none is left to wake the thread
    sending._finish_elsewhere(calls)
    sends_finish(timeout=10)
    assert not sending._finishing
    assert Step.objects.filter(id__in=ids, state="waiting").count() == 3


@pytest.mark.django_db
def test_sends_through_a_connection_reuse_its_kept_alive_connections(account, simulator):
    connect(SPECS["twilio"], simulator.base_url)
    for step in runs(account, 10, first_digit="1"):
        before = stats(simulator)["connections_opened"]
        steps_send_due(ids=[step.id])
        opened = stats(simulator)["connections_opened"] - before
        assert opened <= 2  # the stats request's own, and at most one for the first send
    assert Step.objects.filter(state="waiting").count() == 10
    before = stats(simulator)["connections_opened"]
    for step in runs(account, 10, first_digit="2"):
        steps_send_due(ids=[step.id])
    assert stats(simulator)["connections_opened"] - before == 1  # only the stats request's


@pytest.mark.django_db
def test_a_connection_over_its_rate_holds_steps_back_without_claiming_them(account, simulator):
    row = connect(SPECS["twilio"], simulator.base_url, max_per_second=2, burst=1)
    rate_reset(str(row.id))
    steps = runs(account, 5, first_digit="3")
    assert steps_send_due() == 1
    held = Step.objects.filter(id__in=[s.id for s in steps], state="pending").order_by("ready_at")
    assert held.count() == 4 and not any(step.attempts.exists() for step in held)
    gaps = [(b.ready_at - a.ready_at).total_seconds() for a, b in zip(held, held[1:], strict=False)]
    assert all(0.45 <= gap <= 0.55 for gap in gaps)  # one every half second, as allowed
    assert held[0].ready_at > timezone.now()


@pytest.mark.django_db
def test_a_429_with_retry_after_pauses_the_connection(account, simulator, settings):
    settings.SEND_RETRY_BASE_DELAY = 0.01
    row = connect(SPECS["twilio"], simulator.base_url)
    rate_reset(str(row.id))
    first, *others = runs(account, 3, first_digit="4")
    simulator.fault(first.recipient["number"], "http_429", retry_after=30)
    steps_send_due(ids=[first.id])
    first.refresh_from_db()
    assert first.state == "pending"  # to be retried after the 30 s it was told
    assert steps_send_due() == 0  # the others wait too: the provider asked for a pause
    assert all(Step.objects.get(id=s.id).ready_at > timezone.now() for s in others)


def test_timers_and_receipts_have_their_own_queue():
    router = current_app.amqp.router

    def queue(name: str) -> str:
        return router.route({}, name)["queue"].name

    assert queue(dispatch.EXPIRE_STEP) == "timers"
    assert queue(dispatch.SCHEDULER_TICK) == "timers"
    assert queue("sandbox.emit_receipt") == "timers"
    assert queue(dispatch.SEND_DUE) == "celery"
    assert queue(dispatch.DELIVER_WEBHOOKS) == "celery"
