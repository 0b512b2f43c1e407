"""Request validation of POST /beta/workflows and /v0.1/dispatch (reference/vonage-api.md §1.2).

Every rejected request must answer a 400 problem naming the field, and store nothing.
"""

import copy
import json
import re
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import CANONICAL_REQUEST
from workflows_app.models import ApiFlavour, Step, Workflow

from .conftest import ENDPOINTS, problem_of

MISSING = object()  # "delete this key" in a mutation


def mutate(body: dict, path: str, value: Any) -> dict:
    """A deep copy of ``body`` with ``path`` (like ``workflow[0].to.id``) set to ``value``.

    ``value`` may be :data:`MISSING` to delete the key.
    """
    result = copy.deepcopy(body)
    keys: list[str | int] = [
        int(index) if index else name for name, index in re.findall(r"(\w+)|\[(\d+)\]", path)
    ]
    target = result
    for key in keys[:-1]:
        target = target[key]
    if value is MISSING:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return result


def item(channel: str, *, failover: dict | None = None, **content: Any) -> dict:
    """A valid workflow item for ``channel`` (sandbox recipients end in 0: delivered)."""
    endpoints = {
        "sms": ({"number": "447700900001"}, {"number": "447700900000"}),
        "mms": ({"number": "14155550101"}, {"number": "14155550100"}),
        "messenger": ({"id": "100200300"}, {"id": "1000000000"}),
        "viber_service_msg": ({"id": "16273"}, {"number": "447700900000"}),
        "whatsapp": ({"number": "447700900001"}, {"number": "447700900000"}),
    }
    sender, recipient = endpoints[channel]
    if not content:
        if channel == "mms":
            content = {"type": "image", "image": {"url": "https://example.com/a.jpg"}}
        else:
            content = {"type": "text", "text": "Hello"}
    result = {
        "from": {"type": channel, **sender},
        "to": {"type": channel, **recipient},
        "message": {"content": content},
    }
    if failover is not None:
        result["failover"] = failover
    return result


def two_steps(first: dict, last: dict | None = None) -> dict:
    """A request whose first item is ``first`` and whose last is a plain SMS."""
    return {"template": "failover", "workflow": [first, last or item("sms")]}


READ_600 = {"expiry_time": 600, "condition_status": "read"}
DELIVERED_600 = {"expiry_time": 600, "condition_status": "delivered"}


@pytest.fixture
def rejects(post_body, store_counts):
    """``rejects(body, name, path=...)``: assert a 400 naming ``name`` that stores nothing."""

    def check(body: Any, name: str, path: str = "/beta/workflows") -> dict:
        before = store_counts()
        response = post_body(body, path=path)
        problem = problem_of(response, 400, name)
        assert problem["type"] == "https://www.nexmo.com/messages/Errors#InvalidParams"
        assert store_counts() == before
        return problem

    return check


@pytest.fixture
def accepts(post_body):
    """``accepts(body, path=...)``: assert a 202 with the flavour's id; return the Workflow."""

    def check(body: Any, path: str = "/beta/workflows") -> Workflow:
        response = post_body(body, path=path)
        assert response.status_code == 202, response.content
        assert response["Content-Type"] == "application/json"
        payload = response.json()
        assert list(payload) == [ENDPOINTS[path]]
        return Workflow.objects.get(id=payload[ENDPOINTS[path]])

    return check


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_it_accepts_the_canonical_request_on_both_endpoints(accepts, canonical_request, path):
    workflow = accepts(canonical_request, path=path)
    expected = ApiFlavour.WORKFLOWS if path == "/beta/workflows" else ApiFlavour.DISPATCH
    assert workflow.api_flavour == expected
    steps = list(Step.objects.filter(workflow=workflow).order_by("index"))
    assert [(s.index, s.channel, s.condition_status, s.expiry_time) for s in steps] == [
        (0, "messenger", "read", 600),
        (1, "sms", None, None),
    ]
    assert steps[1].recipient == {"type": "sms", "number": "447700900000"}


@pytest.mark.django_db
def test_it_accepts_a_three_step_workflow_in_any_channel_order(accepts):
    body = {
        "template": "failover",
        "workflow": [
            item("viber_service_msg", failover=READ_600),
            item("messenger", failover={"expiry_time": 15, "condition_status": "delivered"}),
            item("whatsapp"),
        ],
    }
    workflow = accepts(body)
    assert list(workflow.steps.values_list("channel", flat=True)) == [
        "viber_service_msg",
        "messenger",
        "whatsapp",
    ]


@pytest.mark.django_db
def test_it_accepts_a_single_item_without_failover(accepts):
    accepts({"template": "failover", "workflow": [item("sms")]})


# --- one invalid variant per parameter of the canonical request ------------------------------

CANONICAL_VARIANTS = [
    ("template", "send", "template"),
    ("template", MISSING, "template"),
    ("workflow", MISSING, "workflow"),
    ("workflow", [], "workflow"),
    ("workflow[0].from", MISSING, "workflow[0].from"),
    ("workflow[0].from.type", "email", "workflow[0].from.type"),
    ("workflow[0].from.type", MISSING, "workflow[0].from.type"),
    ("workflow[0].from.type", "sms", "workflow[0].from.type"),  # must match to.type
    ("workflow[0].from.id", MISSING, "workflow[0].from.id"),
    ("workflow[0].from.id", "", "workflow[0].from.id"),
    ("workflow[0].from.id", "1" * 51, "workflow[0].from.id"),
    ("workflow[0].to", MISSING, "workflow[0].to"),
    ("workflow[0].to.type", "fax", "workflow[0].to.type"),
    ("workflow[0].to.type", MISSING, "workflow[0].to.type"),
    ("workflow[0].to.id", MISSING, "workflow[0].to.id"),
    ("workflow[0].to.id", "", "workflow[0].to.id"),
    ("workflow[0].to.id", "1" * 51, "workflow[0].to.id"),
    ("workflow[0].message", MISSING, "workflow[0].message"),
    ("workflow[0].message.content", MISSING, "workflow[0].message.content"),
    ("workflow[0].message.content.type", "hologram", "workflow[0].message.content.type"),
    ("workflow[0].message.content.type", MISSING, "workflow[0].message.content.type"),
    ("workflow[0].message.content.text", MISSING, "workflow[0].message.content.text"),
    ("workflow[0].message.content.text", "", "workflow[0].message.content.text"),
    ("workflow[0].message.content.text", "x" * 641, "workflow[0].message.content.text"),
    ("workflow[0].failover", MISSING, "workflow[0].failover"),
    ("workflow[0].failover.expiry_time", MISSING, "workflow[0].failover.expiry_time"),
    ("workflow[0].failover.expiry_time", 14, "workflow[0].failover.expiry_time"),
    ("workflow[0].failover.expiry_time", 86401, "workflow[0].failover.expiry_time"),
    ("workflow[0].failover.expiry_time", 0, "workflow[0].failover.expiry_time"),
    ("workflow[0].failover.expiry_time", -600, "workflow[0].failover.expiry_time"),
    ("workflow[0].failover.condition_status", MISSING, "workflow[0].failover.condition_status"),
    ("workflow[0].failover.condition_status", "submitted", "workflow[0].failover.condition_status"),
    ("workflow[0].failover.condition_status", "READ", "workflow[0].failover.condition_status"),
    ("workflow[1].from.type", "whatsapp", "workflow[1].from.type"),
    ("workflow[1].from.number", MISSING, "workflow[1].from.number"),
    ("workflow[1].from.number", "", "workflow[1].from.number"),
    ("workflow[1].to.type", "messenger", "workflow[1].from.type"),  # from no longer matches
    ("workflow[1].to.number", MISSING, "workflow[1].to.number"),
    ("workflow[1].to.number", "+447700900000", "workflow[1].to.number"),
    ("workflow[1].to.number", "00447700900000", "workflow[1].to.number"),
    ("workflow[1].to.number", "44 7700 900000", "workflow[1].to.number"),
    ("workflow[1].to.number", "447700900000123", "workflow[1].to.number"),
    ("workflow[1].to.number", "4477009000001234", "workflow[1].to.number"),
    ("workflow[1].to.number", "123", "workflow[1].to.number"),
    ("workflow[1].to.number", "TO_NUMBER", "workflow[1].to.number"),
    ("workflow[1].message.content.text", "x" * 1001, "workflow[1].message.content.text"),
    ("workflow[1].failover", READ_600, "workflow[1].failover"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize(
    ("field", "value", "name"),
    CANONICAL_VARIANTS,
    ids=[
        f"{field}={'MISSING' if v is MISSING else repr(v)[:20]}"
        for field, v, _ in CANONICAL_VARIANTS
    ],
)
def test_it_names_the_invalid_parameter_of_the_canonical_request(
    rejects, canonical_request, path, field, value, name
):
    rejects(mutate(canonical_request, field, value), name, path=path)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "valid"),
    [
        ("workflow[0].to.type", "messenger, mms, rcs, sms, viber_service_msg, whatsapp"),
        ("workflow[0].from.type", "messenger, mms, rcs, sms, viber_service_msg, whatsapp"),
        (
            "workflow[0].message.content.type",
            "text, image, audio, video, file, template, custom, card, carousel",
        ),
        ("workflow[0].failover.condition_status", "delivered, read"),
        ("template", "failover"),
    ],
)
def test_an_unknown_choice_lists_the_valid_ones(rejects, canonical_request, field, valid):
    problem = rejects(mutate(canonical_request, field, "fax"), field)
    assert problem["invalid_parameters"]["reason"] == (
        f'"fax" is not a valid choice. Must be one of {valid}.'
    )


@pytest.mark.django_db
def test_the_problem_matches_the_workflows_error_schema(rejects, canonical_request):
    problem = rejects(mutate(canonical_request, "template", "send"), "template")
    assert problem["title"] == "Invalid Parameters"
    assert problem["detail"] == "Your request parameters did not validate."
    assert re.fullmatch(r"[0-9a-f]{32}", problem["instance"])


# --- failover placement and expiry_time ------------------------------------------------------


@pytest.mark.django_db
def test_every_item_but_the_last_needs_failover(rejects):
    body = {
        "template": "failover",
        "workflow": [item("messenger", failover=READ_600), item("viber_service_msg"), item("sms")],
    }
    rejects(body, "workflow[1].failover")


@pytest.mark.django_db
def test_it_refuses_more_steps_than_the_limit(rejects, settings):
    settings.WORKFLOWS_MAX_STEPS = 3
    body = {"template": "failover", "workflow": [item("sms", failover=DELIVERED_600)] * 3}
    body["workflow"].append(item("sms"))
    rejects(body, "workflow")


@pytest.mark.django_db
@pytest.mark.parametrize("expiry_time", [15, 86400, 15.0])
def test_it_accepts_expiry_time_at_the_bounds(accepts, canonical_request, expiry_time):
    # 15.0 is an integer in JSON Schema's sense (no fractional part); clients that serialise
    # every number as a float still get through.
    body = mutate(canonical_request, "workflow[0].failover.expiry_time", expiry_time)
    workflow = accepts(body)
    assert workflow.steps.get(index=0).expiry_time == int(expiry_time)


@pytest.mark.django_db
def test_the_minimum_expiry_time_comes_from_settings(accepts, rejects, canonical_request, settings):
    settings.WORKFLOWS_MIN_EXPIRY_TIME = 1
    accepts(mutate(canonical_request, "workflow[0].failover.expiry_time", 1))
    rejects(
        mutate(canonical_request, "workflow[0].failover.expiry_time", 0),
        "workflow[0].failover.expiry_time",
    )
    settings.WORKFLOWS_MIN_EXPIRY_TIME = 30
    rejects(
        mutate(canonical_request, "workflow[0].failover.expiry_time", 15),
        "workflow[0].failover.expiry_time",
    )


# --- per-channel rules -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "condition", "ok"),
    [
        ("messenger", "read", True),
        ("messenger", "delivered", True),
        ("viber_service_msg", "read", True),
        ("viber_service_msg", "delivered", True),
        ("whatsapp", "read", True),
        ("whatsapp", "delivered", True),
        ("sms", "delivered", True),
        ("sms", "read", False),
        ("mms", "delivered", True),
        ("mms", "read", False),
    ],
)
def test_condition_status_per_channel(accepts, rejects, channel, condition, ok):
    body = two_steps(item(channel, failover={"expiry_time": 60, "condition_status": condition}))
    if ok:
        accepts(body)
    else:
        rejects(body, "workflow[0].failover.condition_status")


TEXT_LIMITS = [("messenger", 640), ("sms", 1000), ("viber_service_msg", 1000), ("whatsapp", 4096)]


@pytest.mark.django_db
@pytest.mark.parametrize(("channel", "limit"), TEXT_LIMITS)
def test_text_length_per_channel(accepts, rejects, channel, limit):
    at_limit = item(channel, type="text", text="é" * limit)
    accepts({"template": "failover", "workflow": [at_limit]})
    over = item(channel, type="text", text="é" * (limit + 1))
    rejects({"template": "failover", "workflow": [over]}, "workflow[0].message.content.text")


@pytest.mark.django_db
def test_text_length_counts_characters_not_bytes(accepts):
    accepts({"template": "failover", "workflow": [item("messenger", type="text", text="🚚" * 640)]})


CONTENT_PER_CHANNEL = {
    "text": {"type": "text", "text": "Hi"},
    "image": {"type": "image", "image": {"url": "https://example.com/a.jpg"}},
    "audio": {"type": "audio", "audio": {"url": "https://example.com/a.mp3"}},
    "video": {"type": "video", "video": {"url": "https://example.com/a.mp4"}},
    "file": {"type": "file", "file": {"url": "https://example.com/a.pdf", "caption": "Invoice"}},
    "template": {
        "type": "template",
        "template": {"name": "whatsapp:hsm:ns:order", "parameters": [{"default": "42"}]},
    },
    "custom": {"type": "custom", "custom": {"attachment": {"type": "template"}}},
}
SUPPORTED = {
    "sms": {"text"},
    "mms": {"image"},
    "messenger": {"text", "image", "audio", "video", "file", "custom"},
    "viber_service_msg": {"text", "image", "template", "custom"},
    "whatsapp": {"text", "image", "audio", "video", "file", "template", "custom"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("channel", sorted(SUPPORTED))
@pytest.mark.parametrize("kind", sorted(CONTENT_PER_CHANNEL))
def test_content_types_per_channel(accepts, rejects, channel, kind):
    body = {"template": "failover", "workflow": [item(channel, **CONTENT_PER_CHANNEL[kind])]}
    if kind in SUPPORTED[channel]:
        accepts(body)
    else:
        rejects(body, "workflow[0].message.content.type")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "name"),
    [
        ({"type": "image"}, "workflow[0].message.content.image"),
        ({"type": "image", "image": {}}, "workflow[0].message.content.image.url"),
        ({"type": "image", "image": {"url": "not a url"}}, "workflow[0].message.content.image.url"),
        (
            {"type": "image", "image": {"url": "https://e.com/" + "a" * 2000}},
            "workflow[0].message.content.image.url",
        ),
        (
            {"type": "image", "image": {"url": "https://e.com/a.jpg", "caption": ""}},
            "workflow[0].message.content.image.caption",
        ),
        ({"type": "template"}, "workflow[0].message.content.template"),
        (
            {"type": "template", "template": {"parameters": []}},
            "workflow[0].message.content.template.name",
        ),
        (
            {"type": "template", "template": {"name": "n", "parameters": [{"x": "1"}]}},
            "workflow[0].message.content.template.parameters[0].default",
        ),
        ({"type": "custom", "custom": "text"}, "workflow[0].message.content.custom"),
    ],
)
def test_content_objects_are_checked(rejects, content, name):
    rejects({"template": "failover", "workflow": [item("whatsapp", **content)]}, name)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "side", "endpoint", "name"),
    [
        ("messenger", "to", {"number": "447700900000"}, "workflow[0].to.id"),
        ("messenger", "from", {"number": "447700900000"}, "workflow[0].from.id"),
        ("viber_service_msg", "to", {}, "workflow[0].to.id"),
        ("viber_service_msg", "to", {"id": "not a viber id"}, "workflow[0].to.id"),
        ("viber_service_msg", "from", {"number": "447700900001"}, "workflow[0].from.id"),
        ("sms", "to", {"id": "1000000000"}, "workflow[0].to.number"),
        ("sms", "from", {"id": "1000000000"}, "workflow[0].from.number"),
        ("sms", "from", {"number": "+447700900001"}, "workflow[0].from.number"),
        ("sms", "from", {"number": "00447700900001"}, "workflow[0].from.number"),
        ("sms", "from", {"number": "123"}, "workflow[0].from.number"),
        ("sms", "from", {"number": "MyShopIsTooLong"}, "workflow[0].from.number"),
        ("sms", "from", {"number": "My-Shop"}, "workflow[0].from.number"),
        ("sms", "from", {"number": "Café"}, "workflow[0].from.number"),
        ("whatsapp", "to", {"id": "1000000000"}, "workflow[0].to.number"),
        ("whatsapp", "from", {"number": "WhatsAppCo"}, "workflow[0].from.number"),
        ("whatsapp", "from", {"number": "+447700900001"}, "workflow[0].from.number"),
        ("mms", "to", {"number": "+14155550100"}, "workflow[0].to.number"),
        ("mms", "from", {"number": "MyShop"}, "workflow[0].from.number"),
        ("viber_service_msg", "to", {"number": "+447700900000"}, "workflow[0].to.number"),
    ],
)
def test_each_channel_needs_its_id_or_number(rejects, channel, side, endpoint, name):
    body = {"template": "failover", "workflow": [item(channel)]}
    body["workflow"][0][side] = {"type": channel, **endpoint}
    rejects(body, name)


@pytest.mark.django_db
@pytest.mark.parametrize("sender", ["MyShop", "My Shop", "Acme2024", "A", "ABCDEFGHIJK"])
def test_an_sms_sender_may_be_an_alphanumeric_sender_id(accepts, sender):
    body = {"template": "failover", "workflow": [item("sms")]}
    body["workflow"][0]["from"]["number"] = sender
    assert accepts(body).steps.get().sender == {"type": "sms", "number": sender}


@pytest.mark.django_db
def test_an_sms_sender_of_digits_is_checked_as_e164(rejects):
    body = {"template": "failover", "workflow": [item("sms")]}
    body["workflow"][0]["from"]["number"] = "4477009000001234"  # 16 digits
    problem = rejects(body, "workflow[0].from.number")
    assert "E.164" in problem["invalid_parameters"]["reason"]


VIBER_USER_IDS = ["01234567890A=", "EUzvj1T4vY0yXbY3t0VnTg==", "a+b/c=", "1000000000"]


@pytest.mark.django_db
@pytest.mark.parametrize("user_id", VIBER_USER_IDS)
def test_a_viber_user_id_goes_in_to_id(accepts, user_id):
    body = {"template": "failover", "workflow": [item("viber_service_msg")]}
    body["workflow"][0]["to"] = {"type": "viber_service_msg", "id": user_id}
    step = accepts(body).steps.get()
    assert step.recipient == {"type": "viber_service_msg", "id": user_id}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "number",
    [
        "４４７７００９０００００",  # fullwidth digits: str.isdigit() is True for these
        "٤٤٧٧٠٠٩٠٠٠٠٠",  # Arabic-Indic digits
        "447700９00000",
        "44770090000²",
        "447700900000\n",
    ],
)
def test_numbers_must_be_ascii_digits(rejects, number):
    body = {"template": "failover", "workflow": [item("sms")]}
    body["workflow"][0]["to"]["number"] = number
    rejects(body, "workflow[0].to.number")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"viber_service_msg": {"ttl": 29}}, "workflow[0].message.viber_service_msg.ttl"),
        ({"viber_service_msg": {"ttl": 86401}}, "workflow[0].message.viber_service_msg.ttl"),
        (
            {"viber_service_msg": {"category": "spam"}},
            "workflow[0].message.viber_service_msg.category",
        ),
        ({"messenger": {"category": "message_tag"}}, "workflow[0].message.messenger.tag"),
        ({"messenger": {"category": "promo"}}, "workflow[0].message.messenger.category"),
        ({"whatsapp": {"policy": "fallback"}}, "workflow[0].message.whatsapp.policy"),
        ({"whatsapp": {"locale": "english"}}, "workflow[0].message.whatsapp.locale"),
    ],
)
def test_channel_options_are_checked(rejects, options, name):
    body = {"template": "failover", "workflow": [item("sms")]}
    body["workflow"][0]["message"].update(options)
    rejects(body, name)


@pytest.mark.django_db
def test_channel_options_are_stored(accepts):
    body = {"template": "failover", "workflow": [item("viber_service_msg")]}
    body["workflow"][0]["message"]["viber_service_msg"] = {"category": "promotion", "ttl": 600}
    workflow = accepts(body)
    assert workflow.steps.get().message["viber_service_msg"] == {
        "category": "promotion",
        "ttl": 600,
    }


# --- wrong JSON types ----------------------------------------------------------------------------

WRONG_TYPES = [
    ("template", [1, True, None, ["failover"], {"name": "failover"}]),
    ("workflow", ["failover", 2, True, None, {"0": {}}]),
    ("workflow[0]", ["item", 1, True, None, []]),
    ("workflow[0].to", ["messenger", 1, None, []]),
    ("workflow[0].to.type", [1, True, None, ["messenger"]]),
    ("workflow[0].to.id", [1000000004, 1e9, True, None, ["1"], {"id": "1"}]),
    ("workflow[1].to.number", [447700900000, 4.477e11, False, None, ["447700900000"]]),
    ("workflow[1].from.number", [447700900001, None]),
    ("workflow[0].message", ["hi", 1, None, []]),
    ("workflow[0].message.content", ["hi", 1, None, []]),
    ("workflow[0].message.content.text", [1, 1.5, True, None, ["hi"], {"text": "hi"}]),
    ("workflow[0].failover", ["read", 600, True, None, []]),
    ("workflow[0].failover.expiry_time", ["600", "15", 15.5, True, False, None, [600], {"s": 600}]),
    ("workflow[0].failover.condition_status", [1, True, None, ["read"]]),
    ("client_ref", [1, True, ["ref"], {"ref": 1}]),
]
WRONG_TYPE_CASES = [(field, value) for field, values in WRONG_TYPES for value in values]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    WRONG_TYPE_CASES,
    ids=[f"{field}={json.dumps(value)}" for field, value in WRONG_TYPE_CASES],
)
def test_wrong_json_types_name_the_field(rejects, canonical_request, field, value):
    rejects(mutate(canonical_request, field, value), field)


@pytest.mark.django_db
def test_null_failover_on_the_last_item_is_rejected(rejects, canonical_request):
    rejects(mutate(canonical_request, "workflow[1].failover", None), "workflow[1].failover")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    ["[]", "[{}]", "null", "0", "1.5", '"failover"', "true", "false", "{}"],
)
def test_a_body_that_is_not_an_object_is_a_400(post_body, store_counts, body):
    response = post_body(body)
    problem = problem_of(response, 400)
    if body != "{}":
        assert problem["invalid_parameters"]["name"] == "body"
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_unknown_fields_are_ignored(accepts, canonical_request):
    body = mutate(canonical_request, "workflow[0].to.nickname", "x")
    body["extra"] = {"deep": [1, 2, 3]}
    accepts(body)


# --- properties ---------------------------------------------------------------------------

# Strings that have broken JSON APIs before, plus the values the schema expects, so that random
# bodies reach the deep validation often.
NASTY_STRINGS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\ufeff",
    "🚚",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "%s%n",
    "failover",
    "read",
    "delivered",
    "sms",
    "messenger",
    "text",
    "447700900000",
]
SCHEMA_KEYS = [
    "template", "workflow", "from", "to", "type", "id", "number", "message", "content", "text",
    "failover", "expiry_time", "condition_status", "client_ref", "custom",
]  # fmt: skip
any_text = st.text(st.characters(exclude_categories=()))  # NUL and lone surrogates too
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
    | st.sampled_from(NASTY_STRINGS)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(SCHEMA_KEYS) | any_text, children, max_size=5)
    ),
    max_leaves=30,
)


def _paths(value: Any, prefix: str = "") -> list[str]:
    """Every path (``workflow[0].to.id`` style) inside a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, f"{prefix}[{index}]")
    return found


@st.composite
def canonical_mutations(draw) -> dict:
    """The canonical request with one to three fields replaced by arbitrary JSON, or deleted."""
    body = copy.deepcopy(CANONICAL_REQUEST)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(body) or ["template"]))
        value = draw(st.just(MISSING) | st.sampled_from(NASTY_STRINGS) | json_values)
        try:
            body = mutate(body, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path's parent
    return body


def _check_never_a_server_error(post_body, store_counts, body: Any, path: str) -> None:
    before = store_counts()
    response = post_body(json.dumps(body), path=path)
    assert response.status_code < 500, response.content[:500]
    if response.status_code == 202:
        assert Workflow.objects.filter(id=response.json()[ENDPOINTS[path]]).exists()
    else:
        problem_of(response, response.status_code)
        assert 400 <= response.status_code < 500
        assert store_counts() == before


PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(body=json_values, path=st.sampled_from(list(ENDPOINTS)))
def test_arbitrary_json_never_causes_a_server_error(post_body, store_counts, body, path):
    _check_never_a_server_error(post_body, store_counts, body, path)


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(body=canonical_mutations(), path=st.sampled_from(list(ENDPOINTS)))
def test_mutated_canonical_requests_never_cause_a_server_error(post_body, store_counts, body, path):
    _check_never_a_server_error(post_body, store_counts, body, path)


def test_concurrent_requests_each_get_their_own_verdict():
    from concurrent.futures import ThreadPoolExecutor

    from workflows_app.api.fields import BodyInvalid
    from workflows_app.api.serializers import workflow_request

    bad = mutate(CANONICAL_REQUEST, "workflow[1].to.number", "12")

    def verdict(body: dict) -> list[dict] | None:
        try:
            workflow_request(body)
        except BodyInvalid as exc:
            return exc.parameters
        return None

    # Alternating good and bad bodies on threads (as gunicorn's): each gets its own verdict.
    bodies = [CANONICAL_REQUEST, bad] * 50
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(verdict, bodies))
    for body, found in zip(bodies, verdicts, strict=True):
        if body is bad:
            assert found == [{"name": "workflow[1].to.number", "reason": mock.ANY}]
        else:
            assert found is None
