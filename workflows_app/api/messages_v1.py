"""Messages API v1 (``POST /v1/messages``): a flat message, optionally with a ``failover`` list.

Reference/vonage-api.md §3. Each v1 message is checked field by field (sharing the Workflows
field types), then translated into a Workflows item and checked by
:func:`~workflows_app.api.serializers.item_rules`, so channel rules live in one place
(:mod:`workflows_app.api.channels`); error names are translated back to v1 field names.

Failover semantics: Vonage moves to the next message when the previous one is ``rejected`` (we
also move on ``undeliverable``). Each non-last message becomes a step with
``condition_status="delivered"`` and no ``expiry_time``: delivered (or read) completes the run,
a failure fails over at once, and silence fails over only after WORKFLOWS_FINAL_STEP_TIMEOUT
(24 h), since Vonage has no timer. Our extension ``failover_condition`` (not Vonage's) sets a
real ``condition_status``/``expiry_time`` per message, as Dispatch had.
"""

from typing import Annotated, Any, NotRequired

from django.conf import settings
from pydantic import AfterValidator, BeforeValidator
from typing_extensions import TypedDict

from workflows_app.api.channels import CHANNELS, CONTENT_TYPES, V1_CHANNELS
from workflows_app.api.fields import (
    Address,
    Choice,
    Integer,
    Invalid,
    Items,
    Object,
    Shape,
    Text,
    Url,
    at_most,
    field_name,
)
from workflows_app.api.problems import trace_id
from workflows_app.api.rcs import RCS_TTL, RcsCard, RcsCarousel, RcsOptions
from workflows_app.api.serializers import (
    Failover,
    Media,
    Messenger,
    WhatsappOptions,
    item_rules,
)
from workflows_app.services.workflows import StepSpec

NOT_OFFERED = {"email"}
MESSAGE_TYPES = CONTENT_TYPES
# Top-level ttl ranges per channel (v1 spec 1.20.0); Viber's ttl is viber_service.ttl.
TTL_RANGES = {"sms": (20, 604800), "mms": (300, 259200), "rcs": RCS_TTL}
INVALID_PARAMS_TYPE = "https://developer.vonage.com/api-errors/messages#1150"


def _channel(value: Any) -> Any:
    if not isinstance(value, str):
        raise Invalid((), "This field may not be null." if value is None else "Must be a string.")
    if value in NOT_OFFERED:
        raise Invalid((), f"The {value} channel is not offered here.")
    if value not in V1_CHANNELS:
        raise Invalid((), f"Must be one of {', '.join(V1_CHANNELS)}.")
    return value


# _channel words the errors (it runs first: a BeforeValidator wraps what is listed before it).
Channel = Annotated[str, Choice(*V1_CHANNELS), BeforeValidator(_channel)]


class V1Template(TypedDict):
    name: Annotated[str, Text(512)]
    parameters: NotRequired[Annotated[list[Annotated[str, Text(1000, blank=True)]], at_most(100)]]


class V1ViberOptions(TypedDict):
    category: NotRequired[Annotated[str, Choice("transaction", "promotion")]]
    ttl: NotRequired[Annotated[int, Integer(ge=30, le=259200)]]
    type: NotRequired[Annotated[str, Text(50)]]


V1Message = TypedDict(
    "V1Message",
    {
        "to": Address,
        "channel": Channel,
        "message_type": Annotated[str, Choice(*MESSAGE_TYPES)],
        "text": NotRequired[Annotated[str, Text(4096, trim=False)]],
        "image": NotRequired[Media],
        "audio": NotRequired[Media],
        "video": NotRequired[Media],
        "file": NotRequired[Media],
        "template": NotRequired[V1Template],
        "custom": NotRequired[Object],
        "card": NotRequired[RcsCard],
        "carousel": NotRequired[RcsCarousel],
        "client_ref": NotRequired[Annotated[str, Text(100, blank=True)]],
        "webhook_url": NotRequired[Url],
        "webhook_version": NotRequired[Annotated[str, Choice("v0.1", "v1")]],
        "ttl": NotRequired[Annotated[int, Integer()]],
        "messenger": NotRequired[Messenger],
        "viber_service": NotRequired[V1ViberOptions],
        "whatsapp": NotRequired[WhatsappOptions],
        "rcs": NotRequired[RcsOptions],
        "failover_condition": NotRequired[Failover],  # our extension
        "from": Address,
    },
)


def _not_nested(value: Any) -> Any:
    if isinstance(value, dict) and "failover" in value:
        raise Invalid(("failover",), "A failover entry cannot nest one.")
    return value


def _message_rules(message: dict) -> dict:
    """One message's rules across fields: its content field, its ttl, then its channel's
    rules (those of the Workflows item it means, named by their v1 fields)."""
    kind, channel = message["message_type"], message["channel"]
    if kind not in message:
        raise Invalid((kind,), f"Required when message_type is {kind}.")
    if "ttl" in message:
        _validate_ttl(channel, message["ttl"])
    try:
        item_rules(_workflow_item(message))
    except Invalid as exc:
        raise Invalid((_v1_name(field_name(exc.path)),), exc.reason) from None
    return message


FailoverEntry = Annotated[V1Message, BeforeValidator(_not_nested), AfterValidator(_message_rules)]


class V1Request(V1Message):
    """The request body: a message with an optional ``failover`` list of complete messages."""

    failover: NotRequired[
        Annotated[
            list[FailoverEntry],
            Items(
                limit=lambda: settings.WORKFLOWS_MAX_STEPS - 1,
                reason=lambda n: f"At most {n} failover messages are allowed.",
                min_length=1,
            ),
        ]
    ]


def _request_rules(body: dict) -> dict:
    messages = [body, *body.get("failover", [])]
    if "failover_condition" in messages[-1]:
        name = f"failover[{len(messages) - 2}]" if len(messages) > 1 else ""
        raise Invalid((_join(name, "failover_condition"),), "Not allowed on the last message.")
    for index, message in enumerate(messages[:-1]):
        condition = message.get("failover_condition")
        rules = CHANNELS[V1_CHANNELS[message["channel"]]]
        if condition and condition["condition_status"] not in rules.conditions:
            name = f"failover[{index - 1}]" if index else ""
            raise Invalid(
                (_join(name, "failover_condition.condition_status"),),
                f"{rules.label} supports only {', '.join(sorted(rules.conditions))}.",
            )
    return body


V1_REQUEST = Shape(
    Annotated[V1Request, AfterValidator(_message_rules), AfterValidator(_request_rules)],
    name="SendMessageV1",
)


def v1_request(data: Any) -> dict[str, Any]:
    """A valid v1 body (the SDK's wrapped shape unwrapped); raises BodyInvalid."""
    return V1_REQUEST.validate(unwrap_sdk_shape(data))


def step_specs(body: dict[str, Any], message_uuid) -> list[StepSpec]:
    """The run's steps; the first gets ``message_uuid`` (returned in the 202)."""
    messages = [body, *body.get("failover", [])]
    last = len(messages) - 1
    specs = []
    for index, message in enumerate(messages):
        step = _workflow_item(message)
        condition = message.get("failover_condition")
        if index == last:
            condition_status, expiry_time = None, None
        elif condition:
            condition_status, expiry_time = condition["condition_status"], condition["expiry_time"]
        else:
            condition_status, expiry_time = "delivered", None
        specs.append(
            StepSpec(
                channel=step["to"]["type"],
                sender=step["from"],
                recipient=step["to"],
                message=_stored_message(step, message),
                condition_status=condition_status,
                expiry_time=expiry_time,
                message_uuid=message_uuid if index == 0 else None,
            )
        )
    return specs


def unwrap_sdk_shape(data: Any) -> Any:
    """Accept ``{"message": {...}, "failover": [...]}`` as well as the flat body.

    Reference §3 says the Python SDK posts that shape; vonage-messages 1.8.1 (SDK 4.9.1) in fact
    merges ``failover`` into the flat message, but older SDK releases and hand-written clients
    that followed the SDK's signature may still wrap it.
    """
    if isinstance(data, dict) and isinstance(data.get("message"), dict) and "channel" not in data:
        flat = dict(data["message"])
        if "failover" in data:
            flat["failover"] = data["failover"]
        return flat
    return data


def invalid_params_v1(parameters: list[dict[str, str]]) -> dict[str, Any]:
    """The v1 422 body: ``invalid_parameters`` is an array (reference/vonage-api.md §3)."""
    return {
        "type": INVALID_PARAMS_TYPE,
        "title": "Invalid params",
        "detail": "The value of one or more parameters is invalid.",
        "instance": trace_id(),
        "invalid_parameters": parameters,
    }


def _validate_ttl(channel: str, ttl: int) -> None:
    if channel not in TTL_RANGES:
        where = "viber_service.ttl" if channel == "viber_service" else "nothing"
        raise Invalid(("ttl",), f"Not supported for {channel}; use {where}.")
    low, high = TTL_RANGES[channel]
    if not low <= ttl <= high:
        raise Invalid(("ttl",), f"Must be between {low} and {high} seconds.")


def _workflow_item(message: dict[str, Any]) -> dict[str, Any]:
    """The Workflows item a valid v1 message means (without Viber options, whose v1 ttl range
    is wider than Dispatch's; :class:`V1ViberOptions` checks them)."""
    channel = V1_CHANNELS[message["channel"]]
    rules = CHANNELS[channel]
    kind = message["message_type"]
    content: dict[str, Any] = {"type": kind, kind: message[kind]}
    if kind == "template":
        template = dict(message["template"])
        template["parameters"] = [{"default": p} for p in template.get("parameters", [])]
        content["template"] = template
    item: dict[str, Any] = {"content": content}
    for option in ("messenger", "whatsapp", "rcs"):
        if option in message:
            item[option] = message[option]
    return {
        "to": {"type": channel, rules.recipient_field(message["to"]): message["to"]},
        "from": {"type": channel, rules.from_field[0]: message["from"]},
        "message": item,
    }


def _stored_message(step: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    stored = dict(step["message"])
    if "viber_service" in message:
        stored["viber_service_msg"] = message["viber_service"]
    if "ttl" in message:
        stored["ttl"] = message["ttl"]
    return stored


def _v1_name(name: str) -> str:
    """A Workflows field name as the v1 field that was sent: ``message.content.text`` → ``text``."""
    head = name.split(".")[0]
    if head in ("to", "from"):
        return head
    if name in ("message.content", "message.content.type"):
        return "message_type"
    return name.removeprefix("message.content.").removeprefix("message.")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
