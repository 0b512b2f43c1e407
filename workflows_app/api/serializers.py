"""Request validation for the Workflows / Dispatch API (reference/vonage-api.md §1.2).

Structure is checked field by field; the per-channel rules (which of ``id``/``number``, content
types, text length, allowed ``condition_status``) come from :mod:`workflows_app.api.channels`.
"""

from typing import Any

from django.conf import settings
from rest_framework import serializers

from workflows_app.api.channels import CHANNELS, CONTENT_TYPES
from workflows_app.api.fields import (
    SharedChildListField,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    is_e164_without_plus,
)
from workflows_app.api.rcs import RcsCardSerializer, RcsCarouselSerializer, RcsOptionsSerializer
from workflows_app.services.workflows import StepSpec

E164_REASON = "Must be an E.164 number without a leading + or 00, e.g. 447700900000."


class EndpointSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=sorted(CHANNELS))
    id = StrictCharField(min_length=1, max_length=50, required=False, trim_whitespace=False)
    number = StrictCharField(min_length=1, max_length=50, required=False, trim_whitespace=False)


class MediaSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    caption = StrictCharField(min_length=1, max_length=3000, required=False)


class TemplateParameterSerializer(serializers.Serializer):
    default = StrictCharField(max_length=1000, allow_blank=True)


class TemplateSerializer(serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=512)
    parameters = serializers.ListField(
        child=TemplateParameterSerializer(), required=False, max_length=100
    )


class ContentSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=CONTENT_TYPES)
    text = StrictCharField(min_length=1, max_length=4096, required=False, trim_whitespace=False)
    image = MediaSerializer(required=False)
    audio = MediaSerializer(required=False)
    video = MediaSerializer(required=False)
    file = MediaSerializer(required=False)
    template = TemplateSerializer(required=False)
    custom = StrictDictField(required=False)
    card = RcsCardSerializer(required=False)
    carousel = RcsCarouselSerializer(required=False)

    def validate(self, attrs):
        kind = attrs["type"]
        if kind not in attrs:
            raise serializers.ValidationError({kind: f"Required when type is {kind}."})
        return attrs


class ViberOptionsSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=["transaction", "promotion"], required=False)
    ttl = StrictIntegerField(min_value=30, max_value=86400, required=False)


class MessengerOptionsSerializer(serializers.Serializer):
    category = serializers.ChoiceField(
        choices=["response", "update", "message_tag"], required=False
    )
    tag = StrictCharField(min_length=1, max_length=64, required=False)

    def validate(self, attrs):
        if attrs.get("category") == "message_tag" and not attrs.get("tag"):
            raise serializers.ValidationError({"tag": "Required when category is message_tag."})
        return attrs


class WhatsappOptionsSerializer(serializers.Serializer):
    policy = serializers.ChoiceField(
        choices=["deterministic"],
        required=False,
        error_messages={
            "invalid_choice": "Only deterministic is supported; fallback was retired in 2020."
        },
    )
    locale = serializers.RegexField(
        r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", max_length=35, required=False
    )


class MessageSerializer(serializers.Serializer):
    content = ContentSerializer()
    viber_service_msg = ViberOptionsSerializer(required=False)
    messenger = MessengerOptionsSerializer(required=False)
    whatsapp = WhatsappOptionsSerializer(required=False)
    rcs = RcsOptionsSerializer(required=False)


class FailoverSerializer(serializers.Serializer):
    expiry_time = StrictIntegerField()
    condition_status = serializers.ChoiceField(choices=["delivered", "read"])

    def validate_expiry_time(self, value: int) -> int:
        low, high = settings.WORKFLOWS_MIN_EXPIRY_TIME, settings.WORKFLOWS_MAX_EXPIRY_TIME
        if not low <= value <= high:
            raise serializers.ValidationError(f"Must be between {low} and {high} seconds.")
        return value


class WorkflowItemSerializer(serializers.Serializer):
    to = EndpointSerializer()
    message = MessageSerializer()
    failover = FailoverSerializer(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = EndpointSerializer()  # `from` is a Python keyword
        return fields

    def validate(self, attrs):
        return item_rules(attrs)


class WorkflowRequestSerializer(serializers.Serializer):
    template = serializers.ChoiceField(choices=["failover"])
    workflow = SharedChildListField(child=WorkflowItemSerializer(), min_length=1)
    client_ref = StrictCharField(max_length=100, required=False, allow_blank=True)

    def validate_workflow(self, items):
        return workflow_rules(items)

    def step_specs(self) -> list[StepSpec]:
        return [_step_spec(item) for item in self.validated_data["workflow"]]


def workflow_request(data: Any) -> tuple[list[StepSpec], str]:
    """The steps and ``client_ref`` of a valid workflow request body; raises ValidationError
    for any other.

    Most bodies are plain: text messages, nothing optional but ``failover`` and ``client_ref``.
    :func:`_plain_request` takes those in some tens of microseconds, under the same rules (the
    functions below, shared with the serializers); everything else, including every body that
    breaks a rule, goes through :class:`WorkflowRequestSerializer`, which decides and words the
    error. DRF's field machinery costs ~0.3 ms a request, a tenth of an accept
    (docs/benchmarks.md, fix 24). tests/workflows_app/test_api_validation.py checks, on
    generated bodies, that the plain path never takes one the serializer refuses and returns
    what the serializer returns.
    """
    plain = _plain_request(data)
    if plain is not None:
        return plain
    serializer = WorkflowRequestSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.step_specs(), serializer.validated_data.get("client_ref", "")


def item_rules(attrs: dict) -> dict:
    """The rules across one item's fields (its channel's), on structurally valid data."""
    channel = attrs["to"]["type"]
    rules = CHANNELS[channel]
    if attrs["from"]["type"] != channel:
        raise serializers.ValidationError({"from": {"type": "Must match to.type."}})
    for side, field_name in (("to", rules.to_field), ("from", rules.from_field)):
        if not attrs[side].get(field_name):
            raise serializers.ValidationError({side: {field_name: f"Required for {rules.label}."}})
    number = attrs["to"].get("number")
    if rules.to_field == "number" and not is_e164_without_plus(number):
        raise serializers.ValidationError({"to": {"number": E164_REASON}})
    sender = attrs["from"].get("number")
    if channel in ("whatsapp", "mms") and not is_e164_without_plus(sender):
        raise serializers.ValidationError({"from": {"number": E164_REASON}})
    _validate_content(attrs["message"]["content"], rules)
    return attrs


def _validate_content(content, rules) -> None:
    kind = content["type"]
    if kind not in rules.content_types:
        raise serializers.ValidationError(
            {
                "message": {
                    "content": {
                        "type": f"{rules.label} does not support {kind} content; it supports "
                        f"{', '.join(sorted(rules.content_types))}."
                    }
                }
            }
        )
    if kind == "text" and len(content["text"]) > rules.max_text:
        raise serializers.ValidationError(
            {
                "message": {
                    "content": {
                        "text": f"{rules.label} text is limited to {rules.max_text} characters."
                    }
                }
            }
        )


def workflow_rules(items: list) -> list:
    """Rules across items: the step limit, then where ``failover`` belongs, then which
    ``condition_status`` each channel allows (a misplaced failover is reported as such,
    not as a condition the channel does not support)."""
    limit = settings.WORKFLOWS_MAX_STEPS
    if len(items) > limit:
        raise serializers.ValidationError(f"At most {limit} items are allowed.")
    last = len(items) - 1
    for index, item in enumerate(items):
        if index < last and "failover" not in item:
            raise item_error(index, {"failover": "Required on every item but the last."})
        if index == last and "failover" in item:
            raise item_error(index, {"failover": "Not allowed on the last item."})
    for index, item in enumerate(items[:last]):
        _validate_condition(index, item)
    return items


def _step_spec(item: dict) -> StepSpec:
    return StepSpec(
        channel=item["to"]["type"],
        sender=dict(item["from"]),
        recipient=dict(item["to"]),
        message=_plain(item["message"]),
        condition_status=item.get("failover", {}).get("condition_status"),
        expiry_time=item.get("failover", {}).get("expiry_time"),
    )


# --- The plain path (see workflow_request) -----------------------------------------------------
# Each check below is one the serializers make, or stricter; a body outside them goes to the
# serializers. Keys are built in the serializers' field order, as their validated data is.


def _plain_request(data: Any) -> tuple[list[StepSpec], str] | None:
    if type(data) is not dict or not data.keys() <= {"template", "workflow", "client_ref"}:
        return None
    items, client_ref = data.get("workflow"), data.get("client_ref", "")
    if data.get("template") != "failover" or type(items) is not list or not items:
        return None
    if not _plain_text(client_ref, 0, 100, trimmed=True):
        return None
    maybe = [_plain_item(item) for item in items]
    attrs = [item for item in maybe if item is not None]
    if len(attrs) != len(maybe):
        return None
    try:
        for item in attrs:
            item_rules(item)
        workflow_rules(attrs)
    except serializers.ValidationError:
        return None
    return [_step_spec(item) for item in attrs], client_ref


def _plain_item(item: Any) -> dict | None:
    if type(item) is not dict or not item.keys() <= {"from", "to", "message", "failover"}:
        return None
    recipient, sender = _plain_endpoint(item.get("to")), _plain_endpoint(item.get("from"))
    message = item.get("message")
    if recipient is None or sender is None or type(message) is not dict:
        return None
    content = message.get("content")
    if message.keys() != {"content"} or type(content) is not dict:
        return None
    if content.keys() != {"type", "text"} or content["type"] != "text":
        return None
    if not _plain_text(content["text"], 1, 4096):
        return None
    attrs: dict[str, Any] = {
        "to": recipient,
        "message": {"content": {"type": "text", "text": content["text"]}},
    }
    if "failover" in item:
        failover = item["failover"]
        if type(failover) is not dict or failover.keys() != {"expiry_time", "condition_status"}:
            return None
        expiry, condition = failover["expiry_time"], failover["condition_status"]
        low, high = settings.WORKFLOWS_MIN_EXPIRY_TIME, settings.WORKFLOWS_MAX_EXPIRY_TIME
        if type(expiry) is not int or not low <= expiry <= high:  # not a bool, not a float
            return None
        if type(condition) is not str or condition not in ("delivered", "read"):
            return None
        attrs["failover"] = {"expiry_time": expiry, "condition_status": condition}
    attrs["from"] = sender
    return attrs


def _plain_endpoint(value: Any) -> dict | None:
    if type(value) is not dict or not value.keys() <= {"type", "id", "number"}:
        return None
    kind = value.get("type")
    if type(kind) is not str or kind not in CHANNELS:
        return None
    if not all(_plain_text(value[key], 1, 50) for key in ("id", "number") if key in value):
        return None
    return {key: value[key] for key in ("type", "id", "number") if key in value}


def _plain_text(value: Any, shortest: int, longest: int, *, trimmed: bool = False) -> bool:
    """A string DRF's CharField takes as it is: no NUL, no lone surrogate (its default
    validators), and, where it trims whitespace, none to trim."""
    if type(value) is not str or not shortest <= len(value) <= longest or "\x00" in value:
        return False
    if trimmed and value != value.strip():
        return False
    try:
        value.encode()  # a lone surrogate does not encode
    except UnicodeEncodeError:
        return False
    return True


def item_error(index: int, detail: dict[str, Any]) -> serializers.ValidationError:
    """A validation error about item ``index`` of the ``workflow`` list. The int key is
    deliberate: problems.py names it ``workflow[0]`` (drf-stubs type the keys as str; DRF
    itself takes any)."""
    return serializers.ValidationError({index: detail})  # type: ignore[dict-item]


def _validate_condition(index: int, item: dict) -> None:
    """Raise unless the item's channel can report its ``failover.condition_status``."""
    rules = CHANNELS[item["to"]["type"]]
    if item["failover"]["condition_status"] not in rules.conditions:
        allowed = ", ".join(sorted(rules.conditions))
        reason = f"{rules.label} supports only {allowed}."
        raise item_error(index, {"failover": {"condition_status": reason}})


def _plain(value):
    """Validated data as plain dicts and lists, ready for a JSON column."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class MessageRequestSerializer(WorkflowItemSerializer):
    """``POST /v0.1/messages`` (and ``/beta/messages``): one item of a workflow without
    ``failover``, plus ``client_ref`` (up to 40 characters; reference/vonage-api.md §2.2)."""

    client_ref = StrictCharField(max_length=40, required=False, allow_blank=True)

    def get_fields(self):
        fields = super().get_fields()
        fields.pop("failover")
        return fields

    def step_spec(self, message_uuid) -> StepSpec:
        item = self.validated_data
        return StepSpec(
            channel=item["to"]["type"],
            sender=dict(item["from"]),
            recipient=dict(item["to"]),
            message=_plain(item["message"]),
            message_uuid=message_uuid,
        )


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
