"""Correctly signed junk on every receipt endpoint (issue 14.2 and its fuzzing requirement).

The signature holds, so the provider's parser, not the signature check, gets the junk: bodies
that are not JSON, JSON nested thousands of levels deep, NUL characters, lone surrogates,
NaN, huge numbers, fields of the wrong type, junk forms for Twilio and Vonage SMS. Every such
receipt is a 200 (recorded) or a 400 (refused, nothing stored); never a 5xx, which a provider
would retry for days. FUZZ_EXAMPLES (tests/fuzzing.py) sets how many inputs each test tries.
"""

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from channels_app.models import ProviderConnection
from channels_app.simulator.providers import vonage_sms_sig
from tests.channels_app.conftest import SPECS, connect
from tests.channels_app.receipt_signing import SignedReceipt, receipt_body, sign
from tests.fuzzing import fuzz_settings
from workflows_app.models import Event, Step

pytestmark = pytest.mark.django_db

JSON_PROVIDERS = ["messenger", "whatsapp", "viber", "vonage_messages", "vonage_sms"]
FORM_PROVIDERS = ["twilio", "vonage_sms"]
MESSAGE_ID = {"viber": "5741311803571721087"}
DEEP = "__deep__"  # replaced by JSON nested that many levels deep, which json.dumps cannot write


def endpoint(provider: str) -> str:
    """The receipt URL of ``provider``'s connection (made by the first example of a test; the
    examples of one test share its database transaction)."""
    connection = ProviderConnection.objects.filter(provider=provider).first()
    return f"/webhooks/receipts/{provider}/{(connection or connect(SPECS[provider])).id}"


def secret_of(provider: str) -> str:
    return SPECS[provider].config[SPECS[provider].secret_key]


def post(path: str, signed: SignedReceipt) -> int:
    response = Client().generic(
        "POST", path, signed.body, content_type=signed.content_type, headers=signed.headers
    )
    return response.status_code


def snapshot() -> tuple[int, list]:
    return Event.objects.count(), list(Step.objects.values_list("id", "state", "message_status"))


def deep_json(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def json_text(value: Any, depth: int) -> bytes:
    """``value`` as JSON (lone surrogates escaped as ``\\udXXX``), with every ``DEEP`` marker
    replaced by ``depth`` levels of nesting."""
    return json.dumps(value).replace(json.dumps(DEEP), deep_json(depth)).encode()


def signed_json(provider: str, path: str, value: Any, depth: int = 3000) -> SignedReceipt:
    """A JSON body signed the way ``provider`` signs it (Vonage SMS: ``sig`` in the body)."""
    if provider != "vonage_sms":
        url = f"http://testserver{path}"
        return sign(provider, json_text(value, depth), secret_of(provider), url)
    params = dict(value) if isinstance(value, dict) else {}
    params |= {"timestamp": str(int(time.time())), "nonce": uuid.uuid4().hex}
    try:  # the parser signs each value's str(); a surrogate cannot be signed: a bad sig
        signed_view = {k: "" if v is None else str(v) for k, v in params.items()}
        params["sig"] = vonage_sms_sig(signed_view, secret_of(provider), "sha256")
    except (UnicodeEncodeError, RecursionError):
        params["sig"] = "0" * 64
    body = params if isinstance(value, dict) else value
    return SignedReceipt(json_text(body, depth), "application/json", {})


def assert_no_5xx_and_nothing_stored_on_refusal(
    path: str, signed: SignedReceipt, allowed: tuple[int, ...] = (200, 400, 413)
) -> None:
    """A 200, or a refusal (400 or 413 unless ``allowed`` says otherwise) that stored nothing."""
    before = snapshot()
    status = post(path, signed)
    assert status in allowed, (status, signed.body[:300])
    if status != 200:
        assert snapshot() == before, signed.body[:300]


def paths_of(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into ``value`` (``()`` is the value itself)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, (*prefix, index))
    return found


def replaced(value: Any, path: tuple, junk: Any) -> Any:
    """A copy of ``value`` with the part at ``path`` replaced by ``junk``."""
    if not path:
        return junk
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(copy[path[0]], path[1:], junk)
    return copy


def valid_body(provider: str) -> dict:
    return receipt_body(provider, MESSAGE_ID.get(provider, f"{provider}-msg-1"))


# --- the cases the hostile suite found (issue 14.2) -------------------------------------------


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
def test_json_nested_thousands_of_levels_deep_is_a_400(provider):
    path = endpoint(provider)
    body = valid_body(provider) | {"extra": DEEP}
    assert post(path, signed_json(provider, path, body, depth=5000)) == 400
    assert post(path, signed_json(provider, path, DEEP, depth=100_000)) in (400, 413)
    assert Event.objects.count() == 0


# A field of each provider's receipt that is stored with the event.
STORED_FIELD = {
    "messenger": ("entry", 0, "messaging", 0, "sender", "id"),
    "whatsapp": ("entry", 0, "changes", 0, "value", "statuses", 0, "recipient_id"),
    "viber": ("user_id",),
    "vonage_messages": ("to",),
    "vonage_sms": ("msisdn",),
}


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
@pytest.mark.parametrize("junk", ["a\x00b", "\ud800", "x\udfff"])
def test_an_unstorable_character_in_a_stored_field_is_a_400(provider, junk):
    path = endpoint(provider)
    body = replaced(valid_body(provider), STORED_FIELD[provider], junk)
    assert post(path, signed_json(provider, path, body)) == 400
    assert Event.objects.count() == 0


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
@pytest.mark.parametrize("junk", ["a\x00b", "\ud800"])
def test_an_unstorable_character_anywhere_is_a_400_or_harmless(provider, junk):
    path = endpoint(provider)
    body = valid_body(provider)
    for where in paths_of(body):
        if where:  # every field, one at a time
            signed = signed_json(provider, path, replaced(body, where, junk))
            assert_no_5xx_and_nothing_stored_on_refusal(path, signed)


@pytest.mark.parametrize("provider", ["messenger", "whatsapp"])
@pytest.mark.parametrize(
    "entry", [["x"], [1], [[{"messaging": 1}]], [{"messaging": ["x"]}], [{"changes": "x"}]]
)
def test_fields_of_the_wrong_type_are_a_400(provider, entry):
    path = endpoint(provider)
    body = valid_body(provider) | {"entry": entry}
    assert post(path, signed_json(provider, path, body)) in (200, 400)
    assert Event.objects.count() == 0


@pytest.mark.parametrize("provider", ["messenger", "viber", "whatsapp", "vonage_messages"])
@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400", "9" * 4000, "-" + "9" * 5000])
def test_out_of_range_numbers_are_a_400_or_harmless(provider, number):
    path = endpoint(provider)
    text = json.dumps(valid_body(provider) | {"timestamp": "@"}).replace('"@"', number)
    signed = sign(provider, text.encode(), secret_of(provider), "")
    assert_no_5xx_and_nothing_stored_on_refusal(path, signed)


@pytest.mark.parametrize("provider", FORM_PROVIDERS)
def test_a_nul_in_a_signed_form_field_is_a_400_or_harmless(provider):
    path = endpoint(provider)
    body = valid_body(provider)
    for name in body:
        url = f"http://testserver{path}"
        signed = sign(provider, body | {name: "a\x00b"}, secret_of(provider), url)
        assert_no_5xx_and_nothing_stored_on_refusal(path, signed)
    assert Event.objects.count() == 0


def test_a_nul_in_a_signed_vonage_sms_get_receipt_is_a_400():
    path = endpoint("vonage_sms")
    params = valid_body("vonage_sms") | {"msisdn": "44\x00", "timestamp": str(int(time.time()))}
    params["sig"] = vonage_sms_sig(params, secret_of("vonage_sms"), "sha256")
    assert Client().get(f"{path}?{urlencode(params)}").status_code == 400
    assert Event.objects.count() == 0


# --- fuzzing -----------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**4000), 10**4000),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["\x00", "\ud800", "\udfff", DEEP, "", "delivered", "read", "failed"]),
)
JSON_JUNK = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FORM_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30) | st.sampled_from(
    ["\x00", "", "delivered", "failed", "undelivered", "9" * 400]
)
BYTES = st.binary(max_size=200) | st.text(max_size=200).map(
    lambda text: text.encode("utf-8", "surrogatepass")
)


@st.composite
def junk_json_receipts(draw, provider: str) -> Any:
    """A valid receipt of ``provider`` with one part (perhaps the whole) replaced by junk."""
    body = valid_body(provider)
    path = draw(st.sampled_from(paths_of(body)))
    return replaced(body, path, draw(JSON_JUNK))


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
@fuzz_settings()
@given(data=st.data(), depth=st.integers(1, 20_000))
def test_no_signed_json_receipt_is_a_5xx_or_changes_anything_when_refused(provider, data, depth):
    endpoint(provider)
    path = f"/webhooks/receipts/{provider}"  # the connection-less URL: every candidate tries
    value = data.draw(junk_json_receipts(provider))
    allowed = (200, 400, 413)
    if provider == "vonage_sms" and DEEP in json.dumps(value):
        allowed = (
            200,
            400,
            403,
            413,
        )  # its sig covers str() of each value: deep ones cannot be signed
    signed = signed_json(provider, path, value, depth)
    assert_no_5xx_and_nothing_stored_on_refusal(path, signed, allowed)


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
@fuzz_settings()
@given(raw=BYTES)
def test_no_signed_byte_string_is_a_5xx(provider, raw):
    path = endpoint(provider)
    if provider == "vonage_sms":  # its signature lives in the body: junk is unsigned, or bad
        signed, allowed = SignedReceipt(raw, "application/json", {}), (400, 401, 403, 413)
    else:
        signed, allowed = sign(provider, raw, secret_of(provider), ""), (200, 400, 413)
    assert_no_5xx_and_nothing_stored_on_refusal(path, signed, allowed)


@pytest.mark.parametrize("provider", FORM_PROVIDERS)
@fuzz_settings()
@given(data=st.data())
def test_no_signed_form_receipt_is_a_5xx_or_changes_anything_when_refused(provider, data):
    path = endpoint(provider)
    body = valid_body(provider)
    changed = data.draw(st.dictionaries(st.sampled_from([*body, "Extra", "err-code"]), FORM_TEXT))
    extra = data.draw(st.dictionaries(FORM_TEXT.filter(bool), FORM_TEXT, max_size=3))
    params = {**body, **changed, **extra}
    signed = sign(provider, params, secret_of(provider), f"http://testserver{path}")
    assert_no_5xx_and_nothing_stored_on_refusal(path, signed)
