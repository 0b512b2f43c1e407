"""RCS in the API: a Workflows/Dispatch step type and a Messages v1 channel, with the v1 RCS
message types, ttl, and failover to and from RCS."""

import json

import pytest

from channels_app.adapters.base import OutboundMessage
from channels_app.adapters.google_rbm import agent_message
from channels_app.registry import ADAPTERS
from workflows_app.models import Step, Workflow

CARD = {
    "title": "Your order",
    "text": "Shipped today",
    "media_url": "https://example.com/box.png",
    "media_height": "SHORT",
    "suggestions": [{"type": "reply", "text": "Thanks", "postback_data": "thanks"}],
}


def rcs_item(content: dict | None = None, **extra) -> dict:
    return {
        "from": {"type": "rcs", "id": "acme-agent"},
        "to": {"type": "rcs", "number": "447700900000"},
        "message": {"content": content or {"type": "text", "text": "Shipped (RCS)"}, **extra},
    }


def sms_item() -> dict:
    return {
        "from": {"type": "sms", "number": "447700900001"},
        "to": {"type": "sms", "number": "447700900000"},
        "message": {"content": {"type": "text", "text": "Shipped (SMS)"}},
    }


def rcs_v1(**fields) -> dict:
    return {
        "to": "447700900000",
        "from": "acme-agent",
        "channel": "rcs",
        "message_type": "text",
        "text": "Shipped (RCS)",
        **fields,
    }


def sms_v1() -> dict:
    return {
        "to": "447700900000",
        "from": "447700900001",
        "channel": "sms",
        "message_type": "text",
        "text": "Shipped (SMS)",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("condition", ["delivered", "read"])
def test_rcs_is_a_workflow_step_type_that_waits_for_delivered_or_read(api_client, condition):
    first = {**rcs_item(), "failover": {"expiry_time": 600, "condition_status": condition}}
    body = {"template": "failover", "workflow": [first, sms_item()]}
    response = api_client.post("/beta/workflows", body, format="json")
    assert response.status_code == 202, response.content
    step = Step.objects.get(index=0)
    assert (step.channel, step.condition_status, step.sender) == (
        "rcs",
        condition,
        {"type": "rcs", "id": "acme-agent"},
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content",
    [
        {"type": "card", "card": CARD},
        {"type": "carousel", "carousel": {"cards": [CARD, CARD]}},
        {"type": "image", "image": {"url": "https://example.com/a.png"}},
        {"type": "custom", "custom": {"contentMessage": {"text": "hi"}}},
    ],
)
def test_rcs_steps_carry_the_rich_content_types(api_client, content):
    item = rcs_item(content, rcs={"card_orientation": "HORIZONTAL", "ttl": 300})
    body = {"template": "failover", "workflow": [item]}
    response = api_client.post("/v0.1/dispatch", body, format="json")
    assert response.status_code == 202, response.content
    stored = Step.objects.get().message
    assert stored["content"]["type"] == content["type"]
    assert stored["rcs"] == {"card_orientation": "HORIZONTAL", "ttl": 300}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "item",
    [
        rcs_item({"type": "template", "template": {"name": "t"}}),
        rcs_item({"type": "card", "card": {**CARD, "media_url": "not a url"}}),
        rcs_item({"type": "carousel", "carousel": {"cards": [CARD]}}),
        rcs_item(rcs={"ttl": 10}),
        {**rcs_item(), "to": {"type": "rcs", "id": "someone"}},
    ],
)
def test_invalid_rcs_steps_are_refused_and_change_nothing(api_client, item):
    response = api_client.post(
        "/beta/workflows", {"template": "failover", "workflow": [item]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert Workflow.objects.count() == 0


@pytest.mark.django_db
def test_v1_rcs_fails_over_to_sms_with_its_ttl(api_client):
    body = rcs_v1(message_type="card", card=CARD, ttl=20, text=None, failover=[sms_v1()])
    del body["text"]
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    first, second = Step.objects.order_by("index")
    assert (first.channel, first.message["ttl"], first.message["content"]["type"]) == (
        "rcs",
        20,
        "card",
    )
    assert second.channel == "sms"


@pytest.mark.django_db
def test_v1_sms_can_fail_over_to_rcs(api_client):
    body = {**sms_v1(), "failover": [rcs_v1()]}
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    assert [s.channel for s in Step.objects.order_by("index")] == ["sms", "rcs"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "name"),
    [
        (rcs_v1(ttl=19), "ttl"),
        (rcs_v1(ttl=259201), "ttl"),
        (rcs_v1(message_type="audio", audio={"url": "https://example.com/a.mp3"}), "message_type"),
        (rcs_v1(message_type="carousel"), "carousel"),
    ],
)
def test_invalid_v1_rcs_messages_are_a_422(api_client, body, name):
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 422, response.content
    names = [p["name"] for p in json.loads(response.content)["invalid_parameters"]]
    assert name in names
    assert Workflow.objects.count() == 0


@pytest.mark.django_db
def test_the_openapi_document_shows_rcs(client):
    document = client.get("/openapi.json").content.decode()
    assert '"rcs"' in document and "RcsCard" in document


def suggestion(**fields) -> dict:
    return {"type": "reply", "text": "Thanks", "postback_data": "thanks", **fields}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("card", "name", "reason"),
    [
        (
            {**CARD, "suggestions": [suggestion(type="open_url")]},
            "card.suggestions[0].url",
            "Required when type is open_url.",
        ),
        (
            {**CARD, "suggestions": [suggestion(type="dial", phone_number="12")]},
            "card.suggestions[0].phone_number",
            "Must be an E.164 number, e.g. +447700900000.",
        ),
        (
            {**CARD, "suggestions": [suggestion()] * 5},
            "card.suggestions",
            "Ensure this field has no more than 4 elements.",
        ),
        ({**CARD, "media_force_refresh": "yes"}, "card.media_force_refresh", None),
        ({**CARD, "media_height": "short"}, "card.media_height", None),
        ({**CARD, "title": ""}, "card.title", "This field may not be blank."),
    ],
)
def test_an_invalid_card_names_its_field(api_client, card, name, reason):
    item = rcs_item({"type": "card", "card": card})
    response = api_client.post(
        "/beta/workflows", {"template": "failover", "workflow": [item]}, format="json"
    )
    assert response.status_code == 400, response.content
    problem = json.loads(response.content)["invalid_parameters"]
    assert problem["name"] == f"workflow[0].message.content.{name}"
    if reason:
        assert problem["reason"] == reason
    assert Workflow.objects.count() == 0


@pytest.mark.django_db
def test_a_one_card_carousel_says_how_many_it_needs(api_client):
    body = rcs_v1(message_type="carousel", carousel={"cards": [CARD]})
    del body["text"]
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 422, response.content
    [problem] = json.loads(response.content)["invalid_parameters"]
    assert problem == {
        "name": "carousel.cards",
        "reason": "Ensure this field has at least 2 elements.",
    }


@pytest.mark.django_db
def test_what_the_api_stores_is_what_the_rcs_adapters_send(api_client):
    body = rcs_v1(
        message_type="carousel",
        carousel={"cards": [CARD, CARD]},
        rcs={"card_width": "SMALL"},
        ttl=600,
    )
    del body["text"]
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    step = Step.objects.get()
    message = OutboundMessage(step.channel, step.sender, step.recipient, step.message, "ref-1")
    rbm = agent_message(message)
    carousel = rbm["contentMessage"]["richCard"]["carouselCard"]
    assert (carousel["cardWidth"], len(carousel["cardContents"]), rbm["ttl"]) == (
        "SMALL",
        2,
        "600s",
    )
    assert carousel["cardContents"][0]["media"]["height"] == "SHORT"
    assert carousel["cardContents"][0]["suggestions"] == [
        {"reply": {"text": "Thanks", "postbackData": "thanks"}}
    ]
    vonage = ADAPTERS["vonage_messages"].payload(message, {})
    assert (vonage["channel"], vonage["message_type"], vonage["ttl"]) == ("rcs", "carousel", 600)
    assert vonage["carousel"] == {"cards": [CARD, CARD]}
    assert vonage["rcs"] == {"card_width": "SMALL"}
