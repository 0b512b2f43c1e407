"""Every adapter against the provider simulator over loopback: what is sent, what comes back,
and how each failure is classified. No HTTP is mocked."""

import uuid

import pytest
import requests

from channels_app import http
from channels_app.adapters.base import OutboundMessage
from channels_app.errors import ErrorKind, ProviderError
from channels_app.registry import ADAPTERS, connection_config
from tests.channels_app.conftest import PROVIDERS, SPECS, connect

pytestmark = pytest.mark.django_db


def outbound(provider: str, recipient: str, **step) -> OutboundMessage:
    spec = SPECS[provider]
    shaped = spec.step(recipient, **step)
    return OutboundMessage(
        channel=shaped["channel"],
        sender=shaped["sender"],
        recipient=shaped["recipient"],
        message=shaped["message"],
        client_ref=str(uuid.uuid4()),
    )


def send(provider: str, recipient: str, base_url: str, *, config: dict | None = None, **step):
    connection = connect(SPECS[provider], base_url, **(config or {}))
    message = outbound(provider, recipient, **step)
    return http.run(ADAPTERS[provider].send(message, connection_config(connection)))


def failure(provider: str, recipient: str, base_url: str, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        send(provider, recipient, base_url, **kwargs)
    return raised.value


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_accepted_message_returns_the_providers_message_id(provider, simulator):
    result = send(provider, "447700900000", simulator.base_url)
    assert len(result.provider_message_ids) == 1
    assert result.provider_message_ids[0] in simulator.messages()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_rejected_recipient_is_a_permanent_error(provider, simulator):
    error = failure(provider, "447700900001", simulator.base_url)
    assert error.kind == ErrorKind.PERMANENT
    assert error.code is not None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_flaky_recipient_fails_transiently_then_succeeds(provider, simulator):
    assert failure(provider, "447700900005", simulator.base_url).kind == ErrorKind.TRANSIENT
    assert send(provider, "447700900005", simulator.base_url).provider_message_ids


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_server_error_is_transient(provider, simulator):
    simulator.fault("447700900000", "http_500")
    assert failure(provider, "447700900000", simulator.base_url).kind == ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    "provider", ["messenger", "twilio", "whatsapp", "vonage_messages", "google_rbm"]
)
def test_a_429_is_transient_and_carries_retry_after(provider, simulator):
    simulator.fault("447700900000", "http_429", retry_after=7)
    error = failure(provider, "447700900000", simulator.base_url)
    assert (error.kind, error.retry_after) == (ErrorKind.TRANSIENT, 7.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_connection_reset_after_sending_is_ambiguous(provider, simulator):
    simulator.fault("447700900000", "reset")
    assert failure(provider, "447700900000", simulator.base_url).kind == ErrorKind.AMBIGUOUS
    assert simulator.messages() == {}


def test_a_send_whose_kept_alive_connection_drops_is_never_made_again(simulator):
    """aiohttp makes a request again when a connection it kept alive turns out closed, but
    only for idempotent methods: a send's POST that may have arrived must never be repeated."""
    send("twilio", "447700900000", simulator.base_url)  # leaves a kept-alive connection
    simulator.fault("447700910000", "reset", times=0)  # every request for it is dropped
    assert failure("twilio", "447700910000", simulator.base_url).kind == ErrorKind.AMBIGUOUS
    sends = requests.get(f"{simulator.base_url}/_simulator/sends", timeout=5).json()["sends"]
    assert [send["recipient"] for send in sends].count("447700910000") == 1


@pytest.mark.parametrize("provider", ["messenger", "vonage_sms", "twilio"])
def test_a_read_timeout_after_acceptance_is_ambiguous(provider, simulator):
    simulator.fault("447700900000", "timeout_after_accept", delay=1.0)
    error = failure(provider, "447700900000", simulator.base_url, config={"read_timeout": 0.3})
    assert error.kind == ErrorKind.AMBIGUOUS
    assert len(simulator.messages()) == 1  # the provider did take it: resending would duplicate


# RBM's message id is ours: any 2xx means that id was accepted, whatever the body says
# (test_google_rbm.py).
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "google_rbm"])
def test_an_unreadable_success_is_ambiguous(provider, simulator):
    simulator.fault("447700900000", "malformed")
    assert failure(provider, "447700900000", simulator.base_url).kind == ErrorKind.AMBIGUOUS


def test_a_slow_answer_within_the_read_timeout_succeeds(simulator):
    simulator.fault("447700900000", "slow", delay=0.3)
    assert send("twilio", "447700900000", simulator.base_url).provider_message_ids


@pytest.mark.parametrize("provider", ["messenger", "twilio"])
def test_a_refused_connection_is_transient_because_nothing_was_sent(provider, db):
    from tests.services import free_port

    error = failure(provider, "447700900000", f"http://127.0.0.1:{free_port()}")
    assert error.kind == ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    "provider,content",
    [
        ("vonage_sms", {"type": "image", "image": {"url": "https://x/a.png"}}),
        ("twilio", {"type": "audio", "audio": {"url": "https://x/a.mp3"}}),
        ("viber", {"type": "audio", "audio": {"url": "https://x/a.mp3"}}),
        ("messenger", {"type": "template", "template": {"name": "t"}}),
    ],
)
def test_content_a_provider_cannot_send_is_a_permanent_error(provider, content, simulator):
    error = failure(provider, "447700900000", simulator.base_url, content=content)
    assert error.kind == ErrorKind.PERMANENT
    assert simulator.messages() == {}


REQUIRED = [(p, key) for p in PROVIDERS for key in ADAPTERS[p].required_config]


def test_every_real_adapter_declares_the_config_it_requires():
    assert {p for p, _ in REQUIRED} == set(PROVIDERS)


@pytest.mark.parametrize(("provider", "key"), REQUIRED)
def test_a_missing_required_key_is_a_configuration_error_and_nothing_is_sent(
    provider, key, simulator
):
    error = failure(provider, "447700900000", simulator.base_url, config={key: ""})
    assert error.kind == ErrorKind.CONFIGURATION
    assert error.provider_code == "missing-config" and key in str(error)
    assert simulator.messages() == {}


def test_messenger_sends_the_requests_message_tag(simulator):
    result = send(
        "messenger",
        "447700900000",
        simulator.base_url,
        category="message_tag",
        tag="account_update",
    )
    sent = simulator.messages()[result.provider_message_ids[0]]
    assert sent["extra"] == {"messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE"}


def test_whatsapp_sends_templates(simulator):
    content = {"type": "template", "template": {"name": "order_update", "parameters": ["A1"]}}
    result = send("whatsapp", "447700900000", simulator.base_url, content=content)
    assert simulator.messages()[result.provider_message_ids[0]]["extra"] == {"type": "template"}


def test_twilio_sends_mms_images(simulator):
    content = {"type": "image", "image": {"url": "https://example.com/a.png"}}
    connection = connect(SPECS["twilio"], simulator.base_url, channel="mms")
    message = outbound("twilio", "447700900000", content=content)
    message = OutboundMessage(**{**message.__dict__, "channel": "mms"})
    result = http.run(ADAPTERS["twilio"].send(message, connection_config(connection)))
    assert result.provider_message_ids[0].startswith("MM")


def test_a_long_sms_is_sent_in_parts_each_with_its_own_id(simulator):
    content = {"type": "text", "text": "x" * 400}
    result = send("vonage_sms", "447700900000", simulator.base_url, content=content)
    assert len(result.provider_message_ids) == 3


def test_twilio_can_be_polled_for_a_messages_status(simulator):
    connection = connect(SPECS["twilio"], simulator.base_url)
    config = connection_config(connection)
    adapter = ADAPTERS["twilio"]
    sid = http.run(adapter.send(outbound("twilio", "447700900004"), config)).provider_message_ids[0]
    [receipt] = http.run(adapter.poll(sid, config))
    assert (receipt.provider_message_id, receipt.status) == (sid, "submitted")
