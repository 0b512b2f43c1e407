"""The engine sending through real adapters to the simulator: retries move to the next
connection, configuration errors flag the connection, and signed receipts come back over
HTTP to a live server and decide the step."""

import pytest
from django.utils import timezone

from channels_app import receipts
from channels_app.models import ProviderConnection
from channels_app.statuses import ReceiptEvent, ReceiptStatus
from tests.channels_app.conftest import PROVIDERS, SPECS, connect
from tests.fixtures import start_run, wait_for_state
from tests.services import wait_for
from workflows_app.models import Step, Workflow
from workflows_app.services.sending import steps_send_due


def send_until_settled(step: Step) -> Step:
    """Send, and run every retry at once (instead of after its backoff)."""
    for _ in range(10):
        steps_send_due(ids=[step.id])
        step.refresh_from_db()
        if step.state != "pending":
            return step
        Step.objects.filter(id=step.id).update(ready_at=timezone.now())
    raise AssertionError("step never settled")


@pytest.mark.django_db
def test_transient_errors_retry_then_move_to_the_next_connection(account, simulator, settings):
    settings.SEND_MAX_ATTEMPTS = 2
    settings.SEND_RETRY_BASE_DELAY = 0.01
    connect(SPECS["twilio"], simulator.base_url, priority=1)
    connect(SPECS["vonage_sms"], simulator.base_url, priority=2)
    simulator.fault("447700900004", "http_500", times=2)
    step = send_until_settled(start_run(account, SPECS["twilio"].step("447700900004")))
    assert step.state == "waiting"
    attempts = list(step.attempts.values_list("provider", "error_kind"))
    assert attempts == [("twilio", "transient"), ("twilio", "transient"), ("vonage_sms", "")]


@pytest.mark.django_db
def test_a_configuration_error_fails_over_at_once_and_flags_the_connection(account, simulator):
    row = connect(SPECS["twilio"], simulator.base_url)
    simulator.fault("447700900000", "http_401")  # the provider refuses our credentials
    step = start_run(
        account,
        SPECS["twilio"].step("447700900000"),
        SPECS["twilio"].step("447700900000"),
        condition="delivered",
    )
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    assert (step.state, step.attempt_count) == ("failed_over", 1)
    row.refresh_from_db()
    assert row.configuration_error
    assert "401" in row.last_error and row.last_error_at is not None


@pytest.mark.django_db
def test_a_connection_missing_a_credential_is_skipped_and_the_next_one_sends(account, simulator):
    skipped = connect(SPECS["twilio"], simulator.base_url, auth_token="", priority=1)
    connect(SPECS["vonage_sms"], simulator.base_url, priority=2)
    step = send_until_settled(start_run(account, SPECS["twilio"].step("447700900000")))
    assert step.state == "waiting"
    assert list(step.attempts.values_list("provider", "error_kind")) == [("vonage_sms", "")]
    skipped.refresh_from_db()
    assert not skipped.configuration_error and skipped.last_error == ""


@pytest.mark.django_db
def test_a_channel_whose_only_connection_lacks_a_credential_fails_over_unrouted(account, simulator):
    connect(SPECS["twilio"], simulator.base_url, auth_token="")
    step = start_run(
        account,
        SPECS["twilio"].step("447700900000"),
        SPECS["messenger"].step("1000000000"),
        condition="delivered",
    )
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    assert step.state == "failed_over"
    assert list(step.attempts.values_list("provider", "error_kind")) == [
        ("unrouted", "configuration")
    ]
    assert simulator.messages() == {}  # nothing reached the provider, nor the sandbox


@pytest.mark.django_db
def test_an_ambiguous_timeout_is_never_resent(account, simulator):
    connect(SPECS["messenger"], simulator.base_url, read_timeout=0.3)
    simulator.fault("1000000004", "timeout_after_accept", delay=1.0)
    step = start_run(account, SPECS["messenger"].step("1000000004"))
    steps_send_due(ids=[step.id])
    step.refresh_from_db()
    assert (step.state, step.message_status, step.attempt_count) == ("waiting", "submitted", 1)
    assert len(simulator.messages()) == 1


@pytest.fixture
def receipts_to_live_server(live_server, simulator, settings):
    """Connections on the simulator whose receipts come back to the live server."""
    settings.PUBLIC_BASE_URL = live_server.url

    def make(provider: str, **overrides) -> ProviderConnection:
        spec = SPECS[provider]
        row = connect(spec, simulator.base_url, **overrides)
        url = f"{live_server.url}/webhooks/receipts/{provider}/{row.id}"
        secret = spec.config[spec.secret_key]
        simulator.webhook(provider, url, secret, spec.config.get("signature_method", "md5hash"))
        return row

    return make


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_delivery_receipt_from_the_provider_completes_the_run(
    provider, account, receipts_to_live_server
):
    receipts_to_live_server(provider)
    step = start_run(account, SPECS[provider].step("447700900000"))
    steps_send_due(ids=[step.id])
    step = wait_for_state(step, "succeeded")
    assert step.message_status in ("delivered", "read")
    # The run completes in the receipt's transaction; in-memory SQLite shares one connection
    # between the live server's thread and ours, so wait for that transaction to end.
    wait_for(
        lambda: Workflow.objects.get(id=step.workflow_id).status == "completed",
        10,
        message="the run to complete",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["messenger", "viber", "whatsapp", "google_rbm"])
def test_a_read_receipt_meets_a_read_condition(provider, account, receipts_to_live_server):
    receipts_to_live_server(provider)
    spec = SPECS[provider]
    step = start_run(
        account, spec.step("447700900000"), spec.step("447700900000"), condition="read"
    )
    steps_send_due(ids=[step.id])
    step = wait_for_state(step, "succeeded")
    assert step.message_status == "read"


@pytest.mark.django_db(transaction=True)
def test_an_undeliverable_receipt_fails_over(account, receipts_to_live_server):
    receipts_to_live_server("twilio")
    step = start_run(
        account,
        SPECS["twilio"].step("447700900002"),
        SPECS["twilio"].step("447700900000"),
        condition="delivered",
    )
    steps_send_due(ids=[step.id])
    step = wait_for_state(step, "failed_over")
    assert (step.message_status, step.failover_reason) == ("undeliverable", "undeliverable")


@pytest.mark.django_db
def test_a_read_watermark_reads_every_earlier_message_to_that_person(account, simulator):
    connection = connect(SPECS["messenger"], simulator.base_url)
    spec = SPECS["messenger"]
    first, second = (
        start_run(account, spec.step("psid-77"), spec.step("psid-77"), condition="read")
        for _ in range(2)
    )
    for step in (first, second):
        simulator.fault("psid-77", "drop_receipts")
        steps_send_due(ids=[step.id])
    watermark = timezone.now()
    later = start_run(account, spec.step("psid-77"), spec.step("psid-77"), condition="read")
    simulator.fault("psid-77", "drop_receipts")
    steps_send_due(ids=[later.id])
    receipts.ingest(
        [
            ReceiptEvent(
                "messenger",
                "",
                ReceiptStatus.READ,
                recipient="psid-77",
                watermark=watermark,
                connection_ids=(str(connection.id),),
            )
        ]
    )
    states = [Step.objects.get(id=s.id).message_status for s in (first, second, later)]
    assert states == ["read", "read", "submitted"]


@pytest.mark.django_db
def test_a_long_sms_is_delivered_only_when_every_part_is(account, simulator):
    connection = connect(SPECS["vonage_sms"], simulator.base_url)
    simulator.fault("447700900000", "drop_receipts")
    long_text = {"type": "text", "text": "y" * 400}
    step = start_run(account, SPECS["vonage_sms"].step("447700900000", content=long_text))
    steps_send_due(ids=[step.id])
    parts = step.attempts.get().provider_message_ids
    assert len(parts) == 3
    for part in parts:
        step.refresh_from_db()
        assert step.message_status == "submitted"
        receipts.ingest(
            [
                ReceiptEvent(
                    "vonage_sms",
                    part,
                    ReceiptStatus.DELIVERED,
                    connection_ids=(str(connection.id),),
                )
            ]
        )
    step.refresh_from_db()
    assert (step.message_status, step.state) == ("delivered", "succeeded")


@pytest.mark.django_db
def test_a_receipt_that_beats_the_send_record_is_applied_once_the_send_is_recorded(account):
    from channels_app.adapters.base import SendResult
    from workflows_app.services.send_record import outcomes_record
    from workflows_app.services.sending import _claim

    step = start_run(account, SPECS["twilio"].step("447700900003"))
    [(attempt, _route, _outbound, _revoke)] = _claim(Step.objects.filter(id=step.id), 1)
    receipts.ingest(
        [ReceiptEvent("sandbox", "early-id", ReceiptStatus.DELIVERED, connection_ids=("sandbox",))]
    )
    step.refresh_from_db()
    assert step.message_status is None
    outcomes_record([(attempt, SendResult(["early-id"]))])
    step.refresh_from_db()
    assert (step.message_status, step.state) == ("delivered", "succeeded")
