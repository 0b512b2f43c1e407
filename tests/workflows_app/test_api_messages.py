"""Messages API v0.1 (/v0.1/messages, /beta/messages) and v1 (/v1/messages with failover)."""

import copy
import json

import pytest

from workflows_app.models import ApiFlavour, Step, Workflow

from .conftest import problem_of

V01_PATHS = ["/v0.1/messages", "/beta/messages"]

# One valid v0.1 message per channel and content type of reference/vonage-api.md §2.2.
V01_MESSAGES = {
    "sms text": (
        {"type": "sms", "number": "447700900000"},
        {"type": "sms", "number": "447700900001"},
        {"content": {"type": "text", "text": "Hi"}},
    ),
    "messenger image with tag": (
        {"type": "messenger", "id": "1000000000"},
        {"type": "messenger", "id": "100200300"},
        {
            "content": {"type": "image", "image": {"url": "https://example.com/a.png"}},
            "messenger": {"category": "message_tag", "tag": "SHIPPING_UPDATE"},
        },
    ),
    "messenger file": (
        {"type": "messenger", "id": "1000000000"},
        {"type": "messenger", "id": "100200300"},
        {"content": {"type": "file", "file": {"url": "https://example.com/a.pdf"}}},
    ),
    "viber text with options": (
        {"type": "viber_service_msg", "number": "447700900000"},
        {"type": "viber_service_msg", "id": "16273"},
        {
            "content": {"type": "text", "text": "Hi"},
            "viber_service_msg": {"category": "transaction", "ttl": 600},
        },
    ),
    "whatsapp template": (
        {"type": "whatsapp", "number": "447700900000"},
        {"type": "whatsapp", "number": "447700900001"},
        {
            "content": {
                "type": "template",
                "template": {"name": "ns:order", "parameters": [{"default": "42"}]},
            },
            "whatsapp": {"policy": "deterministic", "locale": "en-GB"},
        },
    ),
    "whatsapp video": (
        {"type": "whatsapp", "number": "447700900000"},
        {"type": "whatsapp", "number": "447700900001"},
        {"content": {"type": "video", "video": {"url": "https://example.com/a.mp4"}}},
    ),
    "mms image": (
        {"type": "mms", "number": "14155550100"},
        {"type": "mms", "number": "14155550101"},
        {
            "content": {
                "type": "image",
                "image": {"url": "https://example.com/a.jpg", "caption": "c"},
            }
        },
    ),
}


def v01(case: str, **extra) -> dict:
    to, sender, message = copy.deepcopy(V01_MESSAGES[case])
    return {"to": to, "from": sender, "message": message, **extra}


@pytest.mark.django_db
@pytest.mark.parametrize("path", V01_PATHS)
@pytest.mark.parametrize("case", sorted(V01_MESSAGES))
def test_a_v01_message_is_accepted_as_a_one_step_run(api_client, path, case):
    body = v01(case, client_ref="order-1")
    response = api_client.post(path, body, format="json")
    assert response.status_code == 202, response.content
    assert set(response.json()) == {"message_uuid"}
    step = Step.objects.select_related("workflow").get()
    assert str(step.message_uuid) == response.json()["message_uuid"]
    assert step.workflow.api_flavour == ApiFlavour.MESSAGES_V01
    assert step.workflow.client_ref == "order-1"
    assert step.condition_status is None  # the only step: no failover
    assert step.channel == body["to"]["type"]
    assert step.message == body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mutate", "name"),
    [
        (lambda b: b["to"].pop("number"), "to.number"),
        (lambda b: b["message"]["content"].update(type="image"), "message.content.image"),
        (lambda b: b.update(client_ref="x" * 41), "client_ref"),
        (lambda b: b["from"].update(type="whatsapp"), "from.type"),
    ],
)
def test_an_invalid_v01_message_is_a_400_invalid_params(api_client, assert_problem, mutate, name):
    body = v01("sms text")
    mutate(body)
    response = api_client.post("/v0.1/messages", body, format="json")
    assert_problem(response, 400, name)
    assert Workflow.objects.count() == 0


# --- v1 -------------------------------------------------------------------------------------------


def sms_v1(to: str = "447700900000", **extra) -> dict:
    return {
        "to": to,
        "from": "447700900001",
        "channel": "sms",
        "message_type": "text",
        "text": "Hi",
        **extra,
    }


V1_MESSAGES = {
    "sms": sms_v1(ttl=600),
    "messenger": {
        "to": "1000000000",
        "from": "100200300",
        "channel": "messenger",
        "message_type": "text",
        "text": "Hi",
        "messenger": {"category": "update"},
    },
    "viber_service": {
        "to": "447700900000",
        "from": "16273",
        "channel": "viber_service",
        "message_type": "image",
        "image": {"url": "https://example.com/a.png"},
        "viber_service": {"category": "promotion", "ttl": 172800},
    },
    "whatsapp": {
        "to": "447700900000",
        "from": "447700900001",
        "channel": "whatsapp",
        "message_type": "template",
        "template": {"name": "ns:order", "parameters": ["42"]},
        "whatsapp": {"policy": "deterministic", "locale": "en_GB"},
    },
    "mms": {
        "to": "14155550100",
        "from": "14155550101",
        "channel": "mms",
        "message_type": "image",
        "image": {"url": "https://example.com/a.jpg", "caption": "c"},
    },
}
INTERNAL_CHANNEL = {"viber_service": "viber_service_msg"}


@pytest.mark.django_db
@pytest.mark.parametrize("channel", sorted(V1_MESSAGES))
def test_a_v1_message_is_a_one_step_run_on_our_channel(api_client, channel):
    response = api_client.post("/v1/messages", V1_MESSAGES[channel], format="json")
    assert response.status_code == 202, response.content
    assert set(response.json()) == {"message_uuid"}
    step = Step.objects.select_related("workflow").get()
    assert str(step.message_uuid) == response.json()["message_uuid"]
    assert step.workflow.api_flavour == ApiFlavour.MESSAGES_V1
    assert step.channel == INTERNAL_CHANNEL.get(channel, channel)
    assert step.condition_status is None


@pytest.mark.django_db
def test_v1_viber_and_template_are_stored_in_our_message_shape(api_client):
    api_client.post("/v1/messages", V1_MESSAGES["viber_service"], format="json")
    api_client.post("/v1/messages", V1_MESSAGES["whatsapp"], format="json")
    viber, whatsapp = Step.objects.order_by("id")
    assert viber.recipient == {"type": "viber_service_msg", "number": "447700900000"}
    assert viber.sender == {"type": "viber_service_msg", "id": "16273"}
    assert viber.message["viber_service_msg"] == {"category": "promotion", "ttl": 172800}
    assert whatsapp.message["content"]["template"]["parameters"] == [{"default": "42"}]
    assert whatsapp.message["whatsapp"]["locale"] == "en_GB"


@pytest.mark.django_db
def test_v1_failover_becomes_steps_that_move_on_only_when_a_message_fails(api_client):
    body = {
        **V1_MESSAGES["messenger"],
        "client_ref": "c" * 100,
        "webhook_url": "https://example.com/hook",
        "webhook_version": "v1",
        "failover": [V1_MESSAGES["viber_service"], sms_v1()],
    }
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    answer = response.json()
    run = Workflow.objects.get(id=answer["workflow_id"])
    assert (run.client_ref, run.webhook_url, run.webhook_version) == (
        "c" * 100,
        "https://example.com/hook",
        "v1",
    )
    steps = list(run.steps.order_by("index"))
    assert [s.channel for s in steps] == ["messenger", "viber_service_msg", "sms"]
    assert [(s.condition_status, s.expiry_time) for s in steps] == [
        ("delivered", None),
        ("delivered", None),
        (None, None),
    ]
    assert str(steps[0].message_uuid) == answer["message_uuid"]


@pytest.mark.django_db
def test_the_python_sdk_wrapped_shape_is_accepted(api_client):
    body = {"message": V1_MESSAGES["messenger"], "failover": [sms_v1()]}
    response = api_client.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    assert Workflow.objects.get(id=response.json()["workflow_id"]).steps.count() == 2


@pytest.mark.django_db
def test_failover_condition_is_our_extension_for_timers_and_read(api_client):
    primary = {
        **V1_MESSAGES["messenger"],
        "failover_condition": {"condition_status": "read", "expiry_time": 600},
    }
    response = api_client.post("/v1/messages", {**primary, "failover": [sms_v1()]}, format="json")
    assert response.status_code == 202, response.content
    first = Step.objects.get(index=0)
    assert (first.condition_status, first.expiry_time) == ("read", 600)


def v1_problem(response, names: list[str]) -> dict:
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert isinstance(body["invalid_parameters"], list), body
    assert [p["name"] for p in body["invalid_parameters"]] == names, body
    assert all(p["reason"] for p in body["invalid_parameters"])
    return body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "names"),
    [
        (sms_v1(channel="email"), ["channel"]),
        (sms_v1(channel="telegram"), ["channel"]),
        (sms_v1(to="+447700900000"), ["to"]),
        (sms_v1(message_type="image"), ["image"]),
        (sms_v1(ttl=10), ["ttl"]),
        (sms_v1(client_ref="c" * 101), ["client_ref"]),
        (sms_v1(webhook_version="v2"), ["webhook_version"]),
        ({**V1_MESSAGES["messenger"], "text": "x" * 641}, ["text"]),
        ({**V1_MESSAGES["messenger"], "messenger": {"category": "message_tag"}}, ["messenger.tag"]),
        (sms_v1(failover=[]), ["failover"]),
        (
            sms_v1(failover=[{"channel": "sms"}]),
            ["failover[0].to", "failover[0].message_type", "failover[0].from"],
        ),
        (sms_v1(failover=[sms_v1(failover=[sms_v1()])]), ["failover[0].failover"]),
        (
            sms_v1(
                failover_condition={"condition_status": "read", "expiry_time": 60},
                failover=[sms_v1()],
            ),
            ["failover_condition.condition_status"],
        ),
        (
            sms_v1(
                failover=[
                    sms_v1(failover_condition={"condition_status": "delivered", "expiry_time": 60})
                ]
            ),
            ["failover[0].failover_condition"],
        ),
        ({"to": "447700900000", "text": 5}, None),
    ],
)
def test_an_invalid_v1_message_is_a_422_listing_every_invalid_parameter(api_client, body, names):
    response = api_client.post("/v1/messages", body, format="json")
    problem = v1_problem(response, names) if names else None
    if names is None:
        assert response.status_code == 422
        assert len(json.loads(response.content)["invalid_parameters"]) >= 3
    assert Workflow.objects.count() == 0
    assert problem is None or problem["title"]


@pytest.mark.django_db
def test_v1_invalid_json_is_a_400_problem(post_body):
    response = post_body(b"{not json", path="/v1/messages")
    problem_of(response, 400)
