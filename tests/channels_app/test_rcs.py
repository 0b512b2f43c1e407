"""RCS through Google RBM and the Vonage Messages API, against the simulator over loopback:
what is sent, capability checks, revokes, service-account tokens, webhook confirmation, and
the prices each provider reports. No HTTP is mocked."""

import uuid

import pytest
import requests
from django.test import Client

from channels_app import http
from channels_app.adapters.base import OutboundMessage, RevokeOutcome
from channels_app.errors import ErrorKind, ProviderError
from channels_app.receipts.google_rbm import GoogleRbmReceiptParser
from channels_app.receipts.vonage_messages import VonageMessagesReceiptParser
from channels_app.registry import ADAPTERS, connection_config
from channels_app.simulator.providers.google_rbm import envelope
from channels_app.statuses import Price
from tests.channels_app.conftest import SPECS, connect, service_account_key
from tests.services import free_port, wait_for
from workflows_app.models import Event

pytestmark = pytest.mark.django_db

CARD = {
    "title": "Your order",
    "text": "Shipped today",
    "media_url": "https://example.com/box.png",
    "media_height": "short",
    "suggestions": [
        {"type": "reply", "text": "Thanks", "postback_data": "thanks"},
        {"type": "open_url", "text": "Track", "postback_data": "t", "url": "https://x.test/t"},
    ],
}


def rcs_message(recipient: str, content: dict | None = None, **message) -> OutboundMessage:
    return OutboundMessage(
        channel="rcs",
        sender={"type": "rcs", "id": "acme-agent"},
        recipient={"type": "rcs", "number": recipient},
        message={"content": content or {"type": "text", "text": "hi"}, **message},
        client_ref=str(uuid.uuid4()),
    )


def rbm_config(simulator, **overrides) -> dict:
    return connection_config(connect(SPECS["google_rbm"], simulator.base_url, **overrides))


def vonage_rcs_config(simulator) -> dict:
    row = connect(SPECS["vonage_messages"], simulator.base_url, channel="rcs")
    return connection_config(row)


def revokes(simulator) -> list[dict]:
    return requests.get(f"{simulator.base_url}/_simulator/revokes", timeout=5).json()["revokes"]


def sent(simulator, message_id: str) -> dict:
    return simulator.messages()[message_id]


# -- Google RBM ---------------------------------------------------------------------------


def test_rbm_sends_under_our_message_id_with_the_ttl(simulator):
    message = rcs_message("447700900000", ttl=600)
    result = http.run(ADAPTERS["google_rbm"].send(message, rbm_config(simulator)))
    assert result.provider_message_ids == [message.client_ref]
    assert sent(simulator, message.client_ref)["extra"] == {"kind": ["text"], "ttl": "600s"}
    assert result.price is None  # RBM reports no price: unknown, not zero


def test_rbm_sends_cards_and_carousels_as_rich_cards(simulator):
    config = rbm_config(simulator)
    for content in (
        {"type": "card", "card": CARD},
        {"type": "carousel", "carousel": {"cards": [CARD, CARD]}},
    ):
        message = rcs_message("447700900000", content)
        http.run(ADAPTERS["google_rbm"].send(message, config))
        assert sent(simulator, message.client_ref)["extra"]["kind"] == ["richCard"]


def test_rbm_fetches_one_token_for_many_sends(simulator):
    config = rbm_config(simulator, service_account=service_account_key("cached@acme.iam"))
    for _ in range(3):
        http.run(ADAPTERS["google_rbm"].send(rcs_message("447700900000"), config))
    answer = requests.get(f"{simulator.base_url}/_simulator/revokes", timeout=5).json()
    assert answer["tokens"] == 1


def test_a_phone_without_rcs_is_a_permanent_rejection_by_the_capability_check(simulator):
    message = rcs_message("447700900001", {"type": "card", "card": CARD})
    with pytest.raises(ProviderError) as raised:
        http.run(ADAPTERS["google_rbm"].send(message, rbm_config(simulator)))
    assert (raised.value.kind, raised.value.code) == (ErrorKind.PERMANENT, 1300)
    assert simulator.messages() == {}


def test_a_phone_without_rcs_is_a_permanent_rejection_by_the_send(simulator):
    with pytest.raises(ProviderError) as raised:
        http.run(ADAPTERS["google_rbm"].send(rcs_message("447700900001"), rbm_config(simulator)))
    assert (raised.value.kind, raised.value.code) == (ErrorKind.PERMANENT, 1300)


def test_an_unreadable_200_from_rbm_is_still_accepted_because_the_id_is_ours(simulator):
    simulator.fault("447700900000", "malformed")
    message = rcs_message("447700900000")
    result = http.run(ADAPTERS["google_rbm"].send(message, rbm_config(simulator)))
    assert result.provider_message_ids == [message.client_ref]


def test_an_unreachable_token_endpoint_is_transient_and_nothing_is_sent(simulator):
    config = rbm_config(
        simulator,
        service_account=service_account_key("down@acme.iam"),
        token_url=f"http://127.0.0.1:{free_port()}/token",
    )
    with pytest.raises(ProviderError) as raised:
        http.run(ADAPTERS["google_rbm"].send(rcs_message("447700900000"), config))
    assert raised.value.kind == ErrorKind.TRANSIENT
    assert simulator.messages() == {}


def test_a_refused_service_account_is_a_configuration_error(simulator):
    config = rbm_config(
        simulator,
        service_account=service_account_key("refused@acme.iam"),
        token_url=f"{simulator.base_url}/not-a-token-endpoint",
    )
    with pytest.raises(ProviderError) as raised:
        http.run(ADAPTERS["google_rbm"].send(rcs_message("447700900000"), config))
    assert raised.value.kind == ErrorKind.CONFIGURATION
    assert simulator.messages() == {}


def test_rbm_revokes_an_undelivered_message_and_it_is_never_delivered(simulator):
    config = rbm_config(simulator)
    message = rcs_message("447700900003")  # accepted, then silence
    http.run(ADAPTERS["google_rbm"].send(message, config))
    outcome = http.run(ADAPTERS["google_rbm"].revoke(message.client_ref, "447700900003", config))
    assert outcome == RevokeOutcome.REVOKED
    assert [r["outcome"] for r in revokes(simulator)] == ["revoked"]
    assert sent(simulator, message.client_ref)["status"] == "revoked"


def test_a_revoke_after_delivery_is_too_late(simulator):
    config = rbm_config(simulator)
    message = rcs_message("447700900004")  # delivered after 0.2 s
    http.run(ADAPTERS["google_rbm"].send(message, config))
    wait_for(lambda: sent(simulator, message.client_ref)["status"] == "delivered", 5)
    outcome = http.run(ADAPTERS["google_rbm"].revoke(message.client_ref, "447700900004", config))
    assert outcome == RevokeOutcome.TOO_LATE


def test_a_failing_revoke_raises_by_kind(simulator):
    config = rbm_config(simulator)
    message = rcs_message("447700900003")
    http.run(ADAPTERS["google_rbm"].send(message, config))
    simulator.fault("revoke:447700900003", "http_500")
    with pytest.raises(ProviderError) as raised:
        http.run(ADAPTERS["google_rbm"].revoke(message.client_ref, "447700900003", config))
    assert raised.value.kind == ErrorKind.TRANSIENT


def test_the_webhook_confirmation_echoes_the_secret_only_for_our_client_token(simulator):
    row = connect(SPECS["google_rbm"], simulator.base_url)
    path = f"/webhooks/receipts/google_rbm/{row.id}"
    token = SPECS["google_rbm"].config["client_token"]
    ok = Client().post(path, {"clientToken": token, "secret": "1234567890"}, "application/json")
    assert (ok.status_code, ok.content) == (200, b"1234567890")
    bad = Client().post(path, {"clientToken": "guess", "secret": "1"}, "application/json")
    assert bad.status_code == 403


def test_the_simulators_signed_events_verify_and_parse():
    """The simulator builds RBM's envelope independently of the parser under test."""
    event = {"eventType": "READ", "messageId": "m-1", "senderPhoneNumber": "+447700900000"}
    _, headers, body = envelope(event, "tok", "")
    row = connect(SPECS["google_rbm"], client_token="tok")
    response = Client().generic(
        "POST",
        f"/webhooks/receipts/google_rbm/{row.id}",
        body,
        content_type="application/json",
        headers={"X-Goog-Signature": headers["X-Goog-Signature"]},
    )
    assert response.status_code == 200
    assert Event.objects.filter(kind="receipt.unmatched").exists()


def test_an_rbm_expiry_revoke_event_means_undeliverable():
    parser = GoogleRbmReceiptParser()
    event = {"eventType": "TTL_EXPIRATION_REVOKED", "messageId": "m-2", "phoneNumber": "+4477"}
    _, headers, body = envelope(event, "tok", "")
    from channels_app.receipts.base import Incoming

    incoming = Incoming("POST", "http://x/", headers, body, None, "application/json")  # type: ignore[arg-type]
    [receipt] = parser.parse(incoming)
    assert (receipt.status, receipt.error_code, receipt.client_ref) == (
        "undeliverable",
        1360,
        "m-2",
    )


# -- Vonage Messages RCS --------------------------------------------------------------------


def test_vonage_sends_rcs_cards_with_the_ttl(simulator):
    message = rcs_message("447700900000", {"type": "card", "card": CARD}, ttl=300)
    result = http.run(ADAPTERS["vonage_messages"].send(message, vonage_rcs_config(simulator)))
    record = sent(simulator, result.provider_message_ids[0])
    assert (record["channel"], record["extra"]["message_type"]) == ("rcs", "card")


def test_vonage_revokes_rcs_with_a_patch(simulator):
    config = vonage_rcs_config(simulator)
    result = http.run(ADAPTERS["vonage_messages"].send(rcs_message("447700900003"), config))
    uuid_ = result.provider_message_ids[0]
    assert http.run(ADAPTERS["vonage_messages"].revoke(uuid_, "447700900003", config)) == "revoked"
    assert [(r["provider"], r["message_id"]) for r in revokes(simulator)] == [
        ("vonage_messages", uuid_)
    ]


def test_vonage_reports_a_phone_without_rcs_as_rejected_after_accepting(simulator):
    config = vonage_rcs_config(simulator)
    result = http.run(ADAPTERS["vonage_messages"].send(rcs_message("447700900001"), config))
    uuid_ = result.provider_message_ids[0]
    wait_for(lambda: sent(simulator, uuid_)["status"] == "rejected", 5)


# -- Prices -------------------------------------------------------------------------------


def send(provider: str, recipient: str, simulator, **step):
    spec = SPECS[provider]
    shaped = spec.step(recipient, **step)
    message = OutboundMessage(
        shaped["channel"], shaped["sender"], shaped["recipient"], shaped["message"], "ref-1"
    )
    config = connection_config(connect(spec, simulator.base_url))
    return http.run(ADAPTERS[provider].send(message, config)), config


def test_vonage_sms_reports_the_price_of_every_part(simulator):
    result, _ = send("vonage_sms", "447700900000", simulator)
    assert result.price == Price("0.0333", "EUR")
    long, _ = send(
        "vonage_sms", "447700900000", simulator, content={"type": "text", "text": "x" * 400}
    )
    assert long.price == Price("0.0999", "EUR")


def test_twilio_reports_no_price_at_send_and_its_price_once_polled(simulator):
    result, config = send("twilio", "447700900004", simulator)
    assert result.price is None
    sid = result.provider_message_ids[0]
    wait_for(lambda: sent(simulator, sid)["status"] == "delivered", 5)
    [receipt] = http.run(ADAPTERS["twilio"].poll(sid, config))
    assert receipt.price == Price("0.00750", "USD")


def test_vonage_messages_status_webhooks_carry_usage():
    from channels_app.receipts.base import Incoming

    usage = b'"usage": {"price": "0.0150", "currency": "EUR"}'
    body = b'{"message_uuid": "u", "status": "delivered", ' + usage + b"}"
    [receipt] = VonageMessagesReceiptParser().parse(
        Incoming("POST", "http://x/", {}, body, None, "application/json")  # type: ignore[arg-type]
    )
    assert receipt.price == Price("0.0150", "EUR")


@pytest.mark.parametrize(
    ("amount", "currency", "price"),
    [
        ("0.0333", "EUR", Price("0.0333", "EUR")),
        ("-0.00750", "usd", Price("0.00750", "USD")),
        (None, "EUR", None),
        ("", "EUR", None),
        ("0.01", None, None),
        ("NaN", "EUR", None),
        ("abc", "EUR", None),
    ],
)
def test_a_price_is_only_what_was_reported(amount, currency, price):
    assert Price.reported(amount, currency) == price
