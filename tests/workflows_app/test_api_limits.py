"""Limits of every request body: lists refused by their length before their items are looked at,
digits that are ASCII in every id and number, and generated junk at the size limits, for the
three request shapes (Workflows/Dispatch, Messages v0.1, Messages v1)."""

import copy
import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import CANONICAL_REQUEST
from tests.fixtures import SMS_V1
from workflows_app.api import messages_v1, serializers
from workflows_app.api.fields import BodyInvalid
from workflows_app.api.messages_v1 import V1_REQUEST
from workflows_app.api.serializers import MESSAGE_REQUEST, WORKFLOW_REQUEST
from workflows_app.models import Workflow

from .conftest import problem_of

MESSENGER_V1 = {**SMS_V1, "to": "1000000000", "from": "100200300", "channel": "messenger"}
SMS_V01 = {
    "to": {"type": "sms", "number": "447700900000"},
    "from": {"type": "sms", "number": "447700900001"},
    "message": {"content": {"type": "text", "text": "Hi"}},
}


def parameters(shape, body: Any) -> list[dict[str, str]]:
    """What ``shape`` finds wrong with ``body`` (every parameter, in order)."""
    with pytest.raises(BodyInvalid) as caught:
        shape.validate(body)
    return caught.value.parameters


# --- lists are counted before their items are validated ----------------------------------------


def test_a_huge_failover_list_is_refused_by_count_alone():
    body = {**MESSENGER_V1, "failover": [{"channel": "junk", "to": 1}] * 5500}
    assert parameters(V1_REQUEST, body) == [
        {"name": "failover", "reason": "At most 9 failover messages are allowed."}
    ]


def test_a_huge_failover_list_of_valid_messages_checks_none_of_them():
    body = {**MESSENGER_V1, "failover": [SMS_V1] * 5500}
    with mock.patch.object(messages_v1, "item_rules", wraps=messages_v1.item_rules) as rules:
        assert parameters(V1_REQUEST, body)[0]["name"] == "failover"
    assert rules.call_count == 0  # not even the first message's: its field failed


def test_a_huge_workflow_list_checks_none_of_its_items():
    item = CANONICAL_REQUEST["workflow"][0]
    body = {**CANONICAL_REQUEST, "workflow": [item] * 5500}
    with mock.patch.object(serializers, "item_rules", wraps=serializers.item_rules) as rules:
        assert parameters(WORKFLOW_REQUEST, body) == [
            {"name": "workflow", "reason": "At most 10 items are allowed."}
        ]
    assert rules.call_count == 0
    junk = {**CANONICAL_REQUEST, "workflow": [{"to": 1}] * 5500}
    assert [p["name"] for p in parameters(WORKFLOW_REQUEST, junk)] == ["workflow"]


def test_at_the_limit_every_item_is_checked(settings):
    item = CANONICAL_REQUEST["workflow"][0]
    body = {**CANONICAL_REQUEST, "workflow": [item] * (settings.WORKFLOWS_MAX_STEPS - 1)}
    body["workflow"].append(CANONICAL_REQUEST["workflow"][1])
    with mock.patch.object(serializers, "item_rules", wraps=serializers.item_rules) as rules:
        WORKFLOW_REQUEST.validate(body)
    assert rules.call_count == settings.WORKFLOWS_MAX_STEPS


@pytest.mark.parametrize(
    ("shape", "body", "name"),
    [
        (
            MESSAGE_REQUEST,
            {**SMS_V01, "message": {"content": {"type": "template", "template": {}}}},
            "message.content.template.parameters",
        ),
        (
            WORKFLOW_REQUEST,
            {
                "template": "failover",
                "workflow": [{"message": {"content": {"type": "template", "template": {}}}}],
            },
            "workflow[0].message.content.template.parameters",
        ),
        (V1_REQUEST, {**SMS_V1, "message_type": "template", "template": {}}, "template.parameters"),
    ],
)
def test_template_parameters_are_counted_before_they_are_checked(shape, body, name):
    body = copy.deepcopy(body)
    template = _find(body, "template", dict)
    template["parameters"] = [{"junk": 1}] * 5000
    found = [p for p in parameters(shape, body) if p["name"].endswith("parameters")]
    assert found == [{"name": name, "reason": "Ensure this field has no more than 100 elements."}]


def _find(value: Any, key: str, kind: type) -> Any:
    """The first ``key`` in ``value`` holding a ``kind``, depth first."""
    if isinstance(value, dict) and isinstance(value.get(key), kind):
        return value[key]
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    )
    for child in children:
        found = _find(child, key, kind)
        if found is not None:
            return found
    return None


@pytest.mark.django_db
def test_a_huge_failover_list_is_a_422_over_http(api_client, store_counts):
    body = {**MESSENGER_V1, "failover": [SMS_V1] * 5500}
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 422, response.content[:300]
    assert json.loads(response.content)["invalid_parameters"] == [
        {"name": "failover", "reason": "At most 9 failover messages are allowed."}
    ]
    assert store_counts() == (0, 0, 0)


# --- digits are ASCII in every id and number ---------------------------------------------------

FOREIGN_DIGITS = ["１０００００００００", "٤٤٧٧٠٠٩٠٠٠٠٠", "100000000０", "10000000²"]
# (shape, body, path to replace, the parameter's name) for every id and number field.
ADDRESS_FIELDS = [
    (WORKFLOW_REQUEST, CANONICAL_REQUEST, ("workflow", 0, "to", "id"), "workflow[0].to.id"),
    (WORKFLOW_REQUEST, CANONICAL_REQUEST, ("workflow", 0, "from", "id"), "workflow[0].from.id"),
    (
        WORKFLOW_REQUEST,
        CANONICAL_REQUEST,
        ("workflow", 1, "to", "number"),
        "workflow[1].to.number",
    ),
    (
        WORKFLOW_REQUEST,
        CANONICAL_REQUEST,
        ("workflow", 1, "from", "number"),
        "workflow[1].from.number",
    ),
    (MESSAGE_REQUEST, SMS_V01, ("to", "number"), "to.number"),
    (MESSAGE_REQUEST, SMS_V01, ("from", "number"), "from.number"),
    (
        MESSAGE_REQUEST,
        {**SMS_V01, "to": {"type": "sms", "id": "1"}},
        ("to", "id"),
        "to.id",
    ),
    (
        MESSAGE_REQUEST,
        {**SMS_V01, "from": {"type": "sms", "id": "1"}},
        ("from", "id"),
        "from.id",
    ),
    (V1_REQUEST, MESSENGER_V1, ("to",), "to"),
    (V1_REQUEST, MESSENGER_V1, ("from",), "from"),
    (V1_REQUEST, {**MESSENGER_V1, "failover": [SMS_V1]}, ("failover", 0, "to"), "failover[0].to"),
    (
        V1_REQUEST,
        {**MESSENGER_V1, "failover": [SMS_V1]},
        ("failover", 0, "from"),
        "failover[0].from",
    ),
]


@pytest.mark.parametrize("digits", FOREIGN_DIGITS)
@pytest.mark.parametrize(
    ("shape", "body", "path", "name"), ADDRESS_FIELDS, ids=[f[3] for f in ADDRESS_FIELDS]
)
def test_every_id_and_number_refuses_digits_that_are_not_ascii(shape, body, path, name, digits):
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = digits
    found = parameters(shape, body)
    assert found[0]["name"] == name
    assert found[0]["reason"].startswith("Digits must be ASCII 0-9")


@pytest.mark.django_db
def test_a_fullwidth_messenger_id_is_refused_over_http(post_body, store_counts):
    body = copy.deepcopy(CANONICAL_REQUEST)
    body["workflow"][0]["to"]["id"] = "１０００００００００４"
    problem = problem_of(post_body(body), 400, "workflow[0].to.id")
    assert "U+FF11" in problem["invalid_parameters"]["reason"]
    assert store_counts() == (0, 0, 0)


# --- Viber user ids in Messages v1 -------------------------------------------------------------

VIBER_V1 = {**SMS_V1, "channel": "viber_service", "from": "16273"}


@pytest.mark.parametrize(
    ("to", "recipient"),
    [
        ("01234567890A=", {"type": "viber_service_msg", "id": "01234567890A="}),
        ("447700900000", {"type": "viber_service_msg", "number": "447700900000"}),
    ],
)
def test_a_v1_viber_to_is_a_user_id_unless_it_is_all_digits(to, recipient):
    body = V1_REQUEST.validate({**VIBER_V1, "to": to})
    assert messages_v1.step_specs(body, None)[0].recipient == recipient


def test_a_v1_viber_to_of_digits_is_checked_as_a_phone_number():
    assert parameters(V1_REQUEST, {**VIBER_V1, "to": "+447700900000"})[0]["name"] == "to"
    assert parameters(V1_REQUEST, {**VIBER_V1, "to": "not an id"})[0]["name"] == "to"


# --- generated junk at the size limits never breaks a validator --------------------------------

any_text = st.text(st.characters(codec="utf-8"), max_size=60)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _near(limit: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=max(0, limit - 1), max_value=limit + 1)


@st.composite
def long_strings(draw, limits=(40, 50, 100, 512, 640, 1000, 4096)) -> str:
    return draw(st.sampled_from("x7é🚚 ")) * draw(_near(draw(st.sampled_from(limits))))


@st.composite
def items_near(draw, valid: dict, limit: int) -> list:
    """A list of ``limit - 1`` to ``limit + 1`` entries, each valid, junk, or valid with one
    field replaced by junk or a string at a length limit."""
    entries = []
    for _ in range(draw(_near(limit))):
        entry = copy.deepcopy(valid)
        kind = draw(st.sampled_from(["valid", "junk", "field"]))
        if kind == "junk":
            entry = draw(junk)
        elif kind == "field":
            entry[draw(st.sampled_from(sorted(entry)))] = draw(junk | long_strings())
        entries.append(entry)
    return entries


def _workflow_bodies():
    first, last = CANONICAL_REQUEST["workflow"]
    return st.builds(
        lambda items, tail, ref: {
            "template": "failover",
            "workflow": [*items, tail],
            "client_ref": ref,
        },
        items_near(first, 9),
        st.just(last) | junk,
        long_strings() | junk,
    )


def _v01_bodies():
    template = {"type": "template", "template": {"name": "n"}}
    return st.builds(
        lambda params, text, ref: {
            **SMS_V01,
            "message": {"content": {**template, "template": {"name": text, "parameters": params}}},
            "client_ref": ref,
        },
        items_near({"default": "x"}, 100),
        long_strings() | junk,
        long_strings() | junk,
    )


def _v1_bodies():
    return st.builds(
        lambda failover, to, text: {**MESSENGER_V1, "to": to, "text": text, "failover": failover},
        items_near(SMS_V1, 9),
        long_strings() | st.just("1000000000"),
        long_strings() | junk,
    )


SHAPES = {
    "workflow": (WORKFLOW_REQUEST, _workflow_bodies()),
    "v0.1": (MESSAGE_REQUEST, _v01_bodies()),
}
SHAPES["v1"] = (V1_REQUEST, _v1_bodies())
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_junk_at_the_size_limits_is_valid_or_named(shape_name):
    shape, bodies = SHAPES[shape_name]

    @PROPERTY_SETTINGS
    @given(body=bodies)
    def check(body):
        try:
            shape.validate(body)
        except BodyInvalid as exc:
            assert exc.parameters
            assert all(p["name"] and p["reason"] for p in exc.parameters)

    check()


ENDPOINT_BODIES = [
    ("/beta/workflows", _workflow_bodies()),
    ("/v0.1/messages", _v01_bodies()),
    ("/v1/messages", _v1_bodies()),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "bodies"), ENDPOINT_BODIES, ids=[p for p, _ in ENDPOINT_BODIES])
def test_junk_at_the_size_limits_never_causes_a_server_error(post_body, store_counts, path, bodies):
    @hypothesis_settings(PROPERTY_SETTINGS, max_examples=40)
    @given(body=bodies)
    def check(body):
        before = store_counts()
        response = post_body(json.dumps(body), path=path)
        assert response.status_code < 500, response.content[:500]
        if response.status_code == 202:
            answer = response.json()
            assert (
                Workflow.objects.filter(
                    id=answer.get("workflow_uuid") or answer.get("workflow_id")
                ).exists()
                or "message_uuid" in answer
            )
        else:
            problem_of(response, response.status_code)
            assert store_counts() == before

    check()
