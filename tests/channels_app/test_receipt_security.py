"""The security suite every receipt endpoint passes (parametrized over providers): only a
correctly signed, well-formed, reasonably sized receipt changes anything."""

import pytest
from django.test import Client

from tests.channels_app.conftest import PROVIDERS, SPECS, connect
from tests.channels_app.receipt_signing import (
    receipt_body,
    sign,
    strip_signature,
    tamper,
)
from workflows_app.models import Event

pytestmark = pytest.mark.django_db

MESSAGE_ID = {
    "viber": "5741311803571721087",
    "vonage_messages": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
}


@pytest.fixture(params=PROVIDERS)
def endpoint(request):
    """A connection for the provider, its receipt URL and its signing secret."""
    spec = SPECS[request.param]
    connection = connect(spec)
    path = f"/webhooks/receipts/{spec.provider}/{connection.id}"
    return spec.provider, path, spec.config[spec.secret_key]


def post(path: str, signed) -> int:
    return (
        Client()
        .generic(
            "POST", path, signed.body, content_type=signed.content_type, headers=signed.headers
        )
        .status_code
    )


def receipts_recorded() -> int:
    return Event.objects.filter(kind__startswith="receipt").count()


def signed_receipt(provider: str, path: str, secret: str, status: str = "delivered"):
    message_id = MESSAGE_ID.get(provider, f"{provider}-msg-1")
    return sign(
        provider, receipt_body(provider, message_id, status), secret, f"http://testserver{path}"
    )


def test_a_correctly_signed_receipt_for_an_unknown_message_is_accepted_and_recorded(endpoint):
    provider, path, secret = endpoint
    assert post(path, signed_receipt(provider, path, secret)) == 200
    assert Event.objects.filter(kind="receipt.unmatched").count() >= 1


def test_a_receipt_without_a_signature_is_refused_and_changes_nothing(endpoint):
    provider, path, secret = endpoint
    assert post(path, strip_signature(provider, signed_receipt(provider, path, secret))) == 401
    assert receipts_recorded() == 0


def test_a_receipt_whose_body_was_changed_after_signing_is_refused(endpoint):
    provider, path, secret = endpoint
    message_id = MESSAGE_ID.get(provider, f"{provider}-msg-1")
    assert post(path, tamper(signed_receipt(provider, path, secret), message_id)) == 403
    assert receipts_recorded() == 0


def test_a_receipt_signed_with_another_secret_is_refused(endpoint):
    provider, path, secret = endpoint
    forged = signed_receipt(provider, path, "not-the-secret-" + secret)
    assert post(path, forged) == 403
    assert receipts_recorded() == 0


def test_a_receipt_for_another_connection_is_refused(endpoint, db):
    provider, path, secret = endpoint
    other = connect(
        SPECS[provider], **{SPECS[provider].secret_key: "other-secret-0123456789abcdef"}
    )
    other_path = f"/webhooks/receipts/{provider}/{other.id}"
    assert post(other_path, signed_receipt(provider, other_path, secret)) == 403


def test_a_replayed_receipt_changes_nothing_the_second_time(endpoint):
    provider, path, secret = endpoint
    signed = signed_receipt(provider, path, secret)
    assert post(path, signed) == 200
    recorded = receipts_recorded()
    assert post(path, signed) == 200
    assert receipts_recorded() == recorded


def test_a_duplicate_event_signed_afresh_changes_nothing(endpoint):
    provider, path, secret = endpoint
    assert post(path, signed_receipt(provider, path, secret)) == 200
    recorded = receipts_recorded()
    assert post(path, signed_receipt(provider, path, secret)) == 200
    assert receipts_recorded() == recorded


def test_an_oversized_body_is_refused_before_anything_else(endpoint, settings):
    provider, path, secret = endpoint
    settings.RECEIPT_MAX_BODY_BYTES = 200
    padded = receipt_body(provider, MESSAGE_ID.get(provider, "m1"))
    if provider in ("twilio", "vonage_sms"):
        padded["Padding"] = "x" * 500
    else:
        padded["padding"] = "x" * 500
    assert post(path, sign(provider, padded, secret, f"http://testserver{path}")) == 413
    assert receipts_recorded() == 0


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_correctly_signed_but_malformed_body_is_a_400(endpoint, garbage):
    provider, path, secret = endpoint
    payload: bytes | dict = garbage
    if provider in ("vonage_sms", "twilio") and garbage != b"\xff\xfe":
        # Forms cannot be malformed JSON: a signed form without the receipt's fields is.
        payload = {"unrelated": "1"}
    status = post(path, sign(provider, payload, secret, f"http://testserver{path}"))
    assert status == 400
    assert receipts_recorded() == 0


def test_the_provider_endpoint_without_a_connection_id_tries_every_connection(endpoint):
    provider, path, secret = endpoint
    bare = f"/webhooks/receipts/{provider}"
    assert post(bare, signed_receipt(provider, bare, secret)) == 200
