"""Request shapes of the Workflows / Dispatch API and Messages v0.1 (reference/vonage-api.md §1.2,
§2.2), the rules across their fields, and the run's output serializer.

Each request shape is one pydantic ``TypedDict`` validator (:class:`~workflows_app.api.fields.
Shape`), which also gives the OpenAPI schema. Structure is checked field by field; the
per-channel rules (which of ``id``/``number``, content types, text length, allowed
``condition_status``) come from :mod:`workflows_app.api.channels`, checked by
:func:`item_rules` once an item's fields are valid, and by :func:`workflow_rules` once every
item is.
"""

import string
from typing import Annotated, Any, NotRequired

from django.conf import settings
from pydantic import AfterValidator
from rest_framework import serializers
from typing_extensions import TypedDict

from workflows_app.api.channels import CHANNELS, CONTENT_TYPES, E164, E164_OR_SENDER_ID, VIBER_ID
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
    is_e164_without_plus,
    is_sender_id,
)
from workflows_app.api.rcs import RcsCard, RcsCarousel, RcsOptions
from workflows_app.models import ApiFlavour, Workflow
from workflows_app.services.workflows import StepSpec

E164_REASON = "Must be an E.164 number without a leading + or 00, e.g. 447700900000."
SENDER_REASON = (
    "Must be an E.164 number without a leading + or 00, e.g. 447700900000, or an alphanumeric "
    "sender ID of at most 11 letters, digits and spaces."
)
VIBER_ID_REASON = "Must be a Viber user id (letters, digits, +, /, =, - and _), e.g. 01234567890A=."
VIBER_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "+/=-_")


def _content_rules(content: dict) -> dict:
    kind = content["type"]
    if kind not in content:
        raise Invalid((kind,), f"Required when type is {kind}.")
    return content


def _messenger_rules(options: dict) -> dict:
    if options.get("category") == "message_tag" and not options.get("tag"):
        raise Invalid(("tag",), "Required when category is message_tag.")
    return options


def _expiry_time(value: int) -> int:
    low, high = settings.WORKFLOWS_MIN_EXPIRY_TIME, settings.WORKFLOWS_MAX_EXPIRY_TIME
    if not low <= value <= high:
        raise Invalid((), f"Must be between {low} and {high} seconds.")
    return value


class Endpoint(TypedDict):
    type: Annotated[str, Choice(*sorted(CHANNELS))]
    id: NotRequired[Address]
    number: NotRequired[Address]


class Media(TypedDict):
    url: Url
    caption: NotRequired[Annotated[str, Text(3000)]]


class TemplateParameter(TypedDict):
    default: Annotated[str, Text(1000, blank=True)]


class Template(TypedDict):
    name: Annotated[str, Text(512)]
    parameters: NotRequired[Annotated[list[TemplateParameter], at_most(100)]]


class Content(TypedDict):
    type: Annotated[str, Choice(*CONTENT_TYPES)]
    text: NotRequired[Annotated[str, Text(4096, trim=False)]]
    image: NotRequired[Media]
    audio: NotRequired[Media]
    video: NotRequired[Media]
    file: NotRequired[Media]
    template: NotRequired[Template]
    custom: NotRequired[Object]
    card: NotRequired[RcsCard]
    carousel: NotRequired[RcsCarousel]


class ViberOptions(TypedDict):
    category: NotRequired[Annotated[str, Choice("transaction", "promotion")]]
    ttl: NotRequired[Annotated[int, Integer(ge=30, le=86400)]]


class MessengerOptions(TypedDict):
    category: NotRequired[Annotated[str, Choice("response", "update", "message_tag")]]
    tag: NotRequired[Annotated[str, Text(64)]]


Messenger = Annotated[MessengerOptions, AfterValidator(_messenger_rules)]


class WhatsappOptions(TypedDict):
    policy: NotRequired[
        Annotated[
            str,
            Choice(
                "deterministic",
                reason="Only deterministic is supported; fallback was retired in 2020.",
            ),
        ]
    ]
    locale: NotRequired[Annotated[str, Text(35, pattern=r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]]


class Message(TypedDict):
    content: Annotated[Content, AfterValidator(_content_rules)]
    viber_service_msg: NotRequired[ViberOptions]
    messenger: NotRequired[Messenger]
    whatsapp: NotRequired[WhatsappOptions]
    rcs: NotRequired[RcsOptions]


class Failover(TypedDict):
    expiry_time: Annotated[int, Integer(), AfterValidator(_expiry_time)]
    condition_status: Annotated[str, Choice("delivered", "read")]


def _item_rules(item: dict) -> dict:
    return item_rules(item)  # looked up per call, so that a test can count the calls


WorkflowItem = TypedDict(
    "WorkflowItem",
    {"to": Endpoint, "message": Message, "failover": NotRequired[Failover], "from": Endpoint},
)


def _workflow_rules(items: list) -> list:
    return workflow_rules(items)


class WorkflowRequest(TypedDict):
    template: Annotated[str, Choice("failover")]
    workflow: Annotated[
        list[Annotated[WorkflowItem, AfterValidator(_item_rules)]],
        Items(
            limit=lambda: settings.WORKFLOWS_MAX_STEPS,
            reason=lambda n: f"At most {n} items are allowed.",
            min_length=1,
        ),
        AfterValidator(_workflow_rules),
    ]
    client_ref: NotRequired[Annotated[str, Text(100, blank=True)]]


MessageRequest = TypedDict(
    "MessageRequest",
    {
        "to": Endpoint,
        "message": Message,
        "client_ref": NotRequired[Annotated[str, Text(40, blank=True)]],
        "from": Endpoint,
    },
)

WORKFLOW_REQUEST = Shape(WorkflowRequest, name="StartWorkflow")
# ``POST /v0.1/messages`` (and ``/beta/messages``): one item of a workflow without ``failover``,
# plus ``client_ref`` (up to 40 characters; reference/vonage-api.md §2.2).
MESSAGE_REQUEST = Shape(
    Annotated[MessageRequest, AfterValidator(_item_rules)], name="SendMessageV01"
)


def workflow_request(data: Any) -> tuple[list[StepSpec], str]:
    """The steps and ``client_ref`` of a valid workflow request body; raises BodyInvalid."""
    body = WORKFLOW_REQUEST.validate(data)
    return [step_spec(item) for item in body["workflow"]], body.get("client_ref", "")


def message_request(data: Any, message_uuid) -> tuple[StepSpec, str]:
    """The one step (with ``message_uuid``) and ``client_ref`` of a valid v0.1 body."""
    body = MESSAGE_REQUEST.validate(data)
    return step_spec(body, message_uuid=message_uuid), body.get("client_ref", "")


def step_spec(item: dict, **extra: Any) -> StepSpec:
    failover = item.get("failover", {})
    return StepSpec(
        channel=item["to"]["type"],
        sender=item["from"],
        recipient=item["to"],
        message=item["message"],
        condition_status=failover.get("condition_status"),
        expiry_time=failover.get("expiry_time"),
        **extra,
    )


# --- rules across fields -----------------------------------------------------------------------


def item_rules(item: dict) -> dict:
    """The rules across one item's fields (its channel's), on structurally valid data."""
    channel = item["to"]["type"]
    rules = CHANNELS[channel]
    if item["from"]["type"] != channel:
        raise Invalid(("from", "type"), "Must match to.type.")
    recipient = [(name, check) for name, check in rules.to_fields if name in item["to"]]
    if not recipient:
        raise Invalid(("to", rules.to_fields[0][0]), f"Required for {rules.label}.")
    name, check = rules.from_field
    if name not in item["from"]:
        raise Invalid(("from", name), f"Required for {rules.label}.")
    for to_name, to_check in recipient:
        _check_address("to", to_name, to_check, item["to"][to_name])
    _check_address("from", name, check, item["from"][name])
    _content_type_rules(item["message"]["content"], rules)
    return item


def _check_address(side: str, name: str, check: str, value: str) -> None:
    if check == E164 and not is_e164_without_plus(value):
        raise Invalid((side, name), E164_REASON)
    if check == E164_OR_SENDER_ID and not (is_e164_without_plus(value) or is_sender_id(value)):
        raise Invalid((side, name), SENDER_REASON)
    if check == VIBER_ID and not set(value) <= VIBER_ID_CHARACTERS:
        raise Invalid((side, name), VIBER_ID_REASON)


def _content_type_rules(content: dict, rules) -> None:
    kind = content["type"]
    if kind not in rules.content_types:
        raise Invalid(
            ("message", "content", "type"),
            f"{rules.label} does not support {kind} content; it supports "
            f"{', '.join(sorted(rules.content_types))}.",
        )
    if kind == "text" and len(content["text"]) > rules.max_text:
        raise Invalid(
            ("message", "content", "text"),
            f"{rules.label} text is limited to {rules.max_text} characters.",
        )


def workflow_rules(items: list) -> list:
    """Rules across items: where ``failover`` belongs, then which ``condition_status`` each
    channel allows (a misplaced failover is reported as such, not as a condition the channel
    does not support). The step limit is checked before any item (:func:`Items`)."""
    last = len(items) - 1
    for index, item in enumerate(items):
        if index < last and "failover" not in item:
            raise Invalid((index, "failover"), "Required on every item but the last.")
        if index == last and "failover" in item:
            raise Invalid((index, "failover"), "Not allowed on the last item.")
    for index, item in enumerate(items[:last]):
        rules = CHANNELS[item["to"]["type"]]
        if item["failover"]["condition_status"] not in rules.conditions:
            allowed = ", ".join(sorted(rules.conditions))
            raise Invalid(
                (index, "failover", "condition_status"), f"{rules.label} supports only {allowed}."
            )
    return items


# --- output ------------------------------------------------------------------------------------

ID_FIELD: dict[str, str] = {
    ApiFlavour.WORKFLOWS: "workflow_uuid",
    ApiFlavour.DISPATCH: "dispatch_uuid",
}


class BlankAsNullCharField(serializers.CharField):
    """Shows an empty string as null (``client_ref`` is stored as "" when not given)."""

    def to_representation(self, value):
        return value or None


class StepSerializer(serializers.Serializer):
    """One step of a run, as GET, list and cancel show it."""

    index = serializers.IntegerField()
    channel = serializers.CharField()
    to = serializers.DictField(source="recipient")
    message_uuid = serializers.UUIDField(allow_null=True)
    status = serializers.CharField(source="message_status", allow_null=True)
    state = serializers.CharField()
    condition_status = serializers.CharField(allow_null=True)
    expiry_time = serializers.IntegerField(allow_null=True)
    failover_reason = serializers.CharField(allow_null=True)
    error = serializers.DictField(allow_null=True)
    late_receipt = serializers.BooleanField()
    deadline_at = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_fields(self):
        ordered: dict[str, serializers.Field] = {}
        for name, field in super().get_fields().items():
            if name == "to":  # `from` is a Python keyword, so it is added here, before `to`
                ordered["from"] = serializers.DictField(source="sender")
            ordered[name] = field
        return ordered


class RunSerializer(serializers.Serializer):
    """A run as GET, list and cancel show it. Its id is ``workflow_uuid``, or ``dispatch_uuid``
    for the Dispatch API (``context["flavour"]``)."""

    workflow_uuid = serializers.UUIDField(source="id", required=False)
    dispatch_uuid = serializers.UUIDField(source="id", required=False)
    template = serializers.CharField()
    status = serializers.ChoiceField(["running", "completed", "error", "cancelled"])
    client_ref = BlankAsNullCharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = StepSerializer(many=True)

    def to_representation(self, instance: Workflow) -> dict:
        shown = super().to_representation(instance)
        keep = ID_FIELD.get(self.context.get("flavour", ""), "workflow_uuid")
        shown.pop("dispatch_uuid" if keep == "workflow_uuid" else "workflow_uuid")
        return shown


def run_representation(workflow: Workflow, flavour: str) -> dict:
    return RunSerializer(workflow, context={"flavour": flavour}).data


class WorkflowListFilterSerializer(serializers.Serializer):
    """Query parameters of ``GET /beta/workflows`` (our extension)."""

    status = serializers.ChoiceField(
        choices=["running", "completed", "error", "cancelled"], required=False
    )
    client_ref = serializers.CharField(max_length=100, required=False, trim_whitespace=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=100, required=False)

    def validate_client_ref(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.")
        return value

    def validate(self, attrs):
        attrs.pop("cursor", None)  # read by the paginator
        attrs.pop("page_size", None)
        return attrs
