"""The polling backstop: a waiting step whose receipt was lost is checked with the provider's
status API before its deadline decides."""

import time

import pytest

from tests.channels_app.conftest import SPECS, connect
from tests.fixtures import start_run
from workflows_app.services.polling import step_provider_poll
from workflows_app.services.scheduler import scheduler_tick
from workflows_app.services.sending import steps_send_due

pytestmark = pytest.mark.django_db


def test_a_lost_receipt_is_recovered_by_polling_before_the_deadline(account, simulator, settings):
    settings.POLL_BEFORE_DEADLINE = 30
    connect(SPECS["twilio"], simulator.base_url)
    simulator.fault("447700900000", "drop_receipts")
    spec = SPECS["twilio"]
    step = start_run(
        account,
        spec.step("447700900000"),
        spec.step("447700900000"),
        condition="delivered",
        expiry=20,
    )
    steps_send_due(ids=[step.id])
    time.sleep(0.5)  # the simulated handset gets it; the callback is lost
    step.refresh_from_db()
    assert (step.state, step.message_status) == ("waiting", "submitted")

    assert scheduler_tick().polled == 1
    assert scheduler_tick().polled == 0  # polled once per step
    assert step_provider_poll(step.id) == 1
    step.refresh_from_db()
    assert (step.state, step.message_status) == ("succeeded", "delivered")


def test_steps_far_from_their_deadline_or_on_unpollable_providers_are_not_polled(
    account, simulator, settings
):
    settings.POLL_BEFORE_DEADLINE = 5
    connect(SPECS["twilio"], simulator.base_url)
    connect(SPECS["messenger"], simulator.base_url)
    twilio, messenger = SPECS["twilio"], SPECS["messenger"]
    far = start_run(
        account,
        twilio.step("447700900003"),
        twilio.step("447700900003"),
        condition="delivered",
        expiry=600,
    )
    unpollable = start_run(
        account,
        messenger.step("447700900003"),
        messenger.step("447700900003"),
        condition="read",
        expiry=2,
    )
    steps_send_due(ids=[far.id])
    steps_send_due(ids=[unpollable.id])
    assert scheduler_tick().polled == 0
