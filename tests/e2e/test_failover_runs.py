"""The engine end to end: the API over HTTP, a real Celery worker and the scheduler, on
PostgreSQL and Redis, with the sandbox provider deciding each message's fate by its recipient."""

import pytest

from tests.fixtures import messenger, run, sms, summary, viber

pytestmark = pytest.mark.e2e


def test_the_canonical_request_fails_over_when_read_is_not_reached_in_time(
    client, canonical_request
):
    canonical_request["workflow"][0]["failover"]["expiry_time"] = 2
    result = client.wait_until_finished(client.create(canonical_request))
    assert result["status"] == "completed"
    assert summary(result) == [
        ("messenger", "failed_over", "delivered", "expired"),
        ("sms", "succeeded", "delivered", None),
    ]
    assert all(step["message_uuid"] for step in result["steps"])


def test_it_fails_over_at_once_when_the_first_message_is_rejected(client):
    result = client.wait_until_finished(
        client.create(
            run(messenger("1000000001", condition="read", expiry=600), sms("447700900000"))
        )
    )
    assert result["status"] == "completed"
    assert summary(result) == [
        ("messenger", "failed_over", "rejected", "rejected"),
        ("sms", "succeeded", "delivered", None),
    ]
    assert result["steps"][0]["error"] == {"code": 1250, "reason": "Unroutable"}


def test_it_does_not_fail_over_when_the_condition_is_met_in_time(client):
    result = client.wait_until_finished(
        client.create(
            run(messenger("1000000000", condition="read", expiry=30), sms("447700900000"))
        )
    )
    assert result["status"] == "completed"
    assert summary(result) == [
        ("messenger", "succeeded", "read", None),
        ("sms", "skipped", None, None),
    ]
    assert result["steps"][1]["message_uuid"] is None


def test_a_three_step_chain_runs_to_the_last_channel(client):
    body = run(
        messenger("1000000003", condition="delivered", expiry=1),  # silence: expires
        viber("447700900002", condition="read", expiry=30),  # accepted, then undeliverable
        sms("447700900000"),
    )
    result = client.wait_until_finished(client.create(body))
    assert result["status"] == "completed"
    assert summary(result) == [
        ("messenger", "failed_over", "submitted", "expired"),
        ("viber_service_msg", "failed_over", "undeliverable", "undeliverable"),
        ("sms", "succeeded", "delivered", None),
    ]


def test_the_run_ends_in_error_when_the_last_step_fails(client):
    result = client.wait_until_finished(
        client.create(
            run(messenger("1000000001", condition="read", expiry=60), sms("447700900001"))
        )
    )
    assert result["status"] == "error"
    assert summary(result) == [
        ("messenger", "failed_over", "rejected", "rejected"),
        ("sms", "failed", "rejected", "rejected"),
    ]


def test_a_transient_provider_error_is_retried_on_the_same_step(client):
    result = client.wait_until_finished(
        client.create(
            run(sms("447700900005", condition="delivered", expiry=30), sms("447700900000"))
        )
    )
    assert result["status"] == "completed"
    assert summary(result)[0] == ("sms", "succeeded", "delivered", None)


def test_the_dispatch_endpoint_runs_the_same_engine(client, canonical_request):
    canonical_request["workflow"][0]["to"]["id"] = "1000000000"
    response = client.session.post(
        client.base_url + "/v0.1/dispatch", json=canonical_request, timeout=10
    )
    assert response.status_code == 202
    result = client.wait_until_finished(response.json()["dispatch_uuid"])
    assert result["status"] == "completed"
