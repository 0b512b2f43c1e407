"""Messages API v1 (``POST /v1/messages``): a flat message, optionally with a ``failover`` list.

Reference/vonage-api.md §3. Each v1 message is translated into a Workflows item and validated by
:class:`~workflows_app.api.serializers.WorkflowItemSerializer`, so channel rules live in one place
(:mod:`workflows_app.api.channels`); error names are translated back to v1 field names.

Failover semantics: Vonage moves to the next message when the previous one is ``rejected`` (we
also move on ``undeliverable``). Each non-last message becomes a step with
``condition_status="delivered"`` and no ``expiry_time``: delivered (or read) completes the run,
a failure fails over at once, and silence fails over only after WORKFLOWS_FINAL_STEP_TIMEOUT
(24 h), since Vonage has no timer. Our extension ``failover_condition`` (not Vonage's) sets a
real ``condition_status``/``expiry_time`` per message, as Dispatch had.
"""

from typing import Any

from django.conf import settings
from rest_framework import serializers

from workflows_app.api.channels import CHANNELS
from workflows_app.api.fields import StrictCharField, StrictDictField, StrictIntegerField
from workflows_app.api.problems import all_invalid_parameters, trace_id
from workflows_app.api.rcs import (
    RCS_TTL,
    RcsCardSerializer,
    RcsCarouselSerializer,
    RcsOptionsSerializer,
)
from workflows_app.api.serializers import (
    FailoverSerializer,
    MediaSerializer,
    MessengerOptionsSerializer,
    WhatsappOptionsSerializer,
    WorkflowItemSerializer,
    _plain,
)
from workflows_app.services.workflows import StepSpec

# v1 channel name → our channel name (v1 calls Viber Service Messages "viber_service").
V1_CHANNELS = {
    "sms": "sms",
    "mms": "mms",
    "whatsapp": "whatsapp",
    "messenger": "messenger",
    "viber_service": "viber_service_msg",
    "rcs": "rcs",
}
NOT_OFFERED = {"email"}
MESSAGE_TYPES = (
    "text",
    "image",
    "audio",
    "video",
    "file",
    "template",
    "custom",
    "card",
    "carousel",
)
# Top-level ttl ranges per channel (v1 spec 1.20.0); Viber's ttl is viber_service.ttl.
TTL_RANGES = {"sms": (20, 604800), "mms": (300, 259200), "rcs": RCS_TTL}
INVALID_PARAMS_TYPE = "https://developer.vonage.com/api-errors/messages#1150"


class V1TemplateSerializer(serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=512)
    parameters = serializers.ListField(
        child=StrictCharField(max_length=1000, allow_blank=True), required=False, max_length=100
    )


class V1ViberOptionsSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=["transaction", "promotion"], required=False)
    ttl = StrictIntegerField(min_value=30, max_value=259200, required=False)
    type = StrictCharField(min_length=1, max_length=50, required=False)


class V1MessageSerializer(serializers.Serializer):
    """One complete v1 message (the request itself, or one ``failover`` entry)."""

    to = StrictCharField(min_length=1, max_length=50, trim_whitespace=False)
    channel = serializers.CharField()
    message_type = serializers.ChoiceField(choices=MESSAGE_TYPES)
    text = StrictCharField(min_length=1, max_length=4096, required=False, trim_whitespace=False)
    image = MediaSerializer(required=False)
    audio = MediaSerializer(required=False)
    video = MediaSerializer(required=False)
    file = MediaSerializer(required=False)
    template = V1TemplateSerializer(required=False)
    custom = StrictDictField(required=False)
    card = RcsCardSerializer(required=False)
    carousel = RcsCarouselSerializer(required=False)
    client_ref = StrictCharField(max_length=100, required=False, allow_blank=True)
    webhook_url = serializers.URLField(max_length=2000, required=False)
    webhook_version = serializers.ChoiceField(choices=["v0.1", "v1"], required=False)
    ttl = StrictIntegerField(required=False)
    messenger = MessengerOptionsSerializer(required=False)
    viber_service = V1ViberOptionsSerializer(required=False)
    whatsapp = WhatsappOptionsSerializer(required=False)
    rcs = RcsOptionsSerializer(required=False)
    failover_condition = FailoverSerializer(required=False)  # our extension

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = StrictCharField(min_length=1, max_length=50, trim_whitespace=False)
        return fields

    def to_internal_value(self, data):
        if isinstance(data, dict) and "failover" in data and self.parent is not None:
            raise serializers.ValidationError({"failover": "A failover entry cannot nest one."})
        return super().to_internal_value(data)

    def validate_channel(self, value: str) -> str:
        if value in NOT_OFFERED:
            raise serializers.ValidationError(f"The {value} channel is not offered here.")
        if value not in V1_CHANNELS:
            raise serializers.ValidationError(f"Must be one of {', '.join(V1_CHANNELS)}.")
        return value

    def validate(self, attrs):
        kind, channel = attrs["message_type"], attrs["channel"]
        if kind not in attrs:
            raise serializers.ValidationError({kind: f"Required when message_type is {kind}."})
        if "ttl" in attrs:
            _validate_ttl(channel, attrs["ttl"])
        item = WorkflowItemSerializer(data=_workflow_item(attrs))
        if not item.is_valid():
            raise serializers.ValidationError(
                {_v1_name(p["name"]): p["reason"] for p in all_invalid_parameters(item.errors)}
            )
        attrs["step"] = item.validated_data
        return attrs


class V1RequestSerializer(V1MessageSerializer):
    """The request body: a message with an optional ``failover`` list of complete messages."""

    failover = serializers.ListField(child=V1MessageSerializer(), min_length=1, required=False)

    def validate_failover(self, items):
        limit = settings.WORKFLOWS_MAX_STEPS - 1
        if len(items) > limit:
            raise serializers.ValidationError(f"At most {limit} failover messages are allowed.")
        return items

    def validate(self, attrs):
        attrs = super().validate(attrs)
        messages = [attrs, *attrs.get("failover", [])]
        if "failover_condition" in messages[-1]:
            name = f"failover[{len(messages) - 2}]" if len(messages) > 1 else ""
            raise serializers.ValidationError(
                {_join(name, "failover_condition"): "Not allowed on the last message."}
            )
        for index, message in enumerate(messages[:-1]):
            condition = message.get("failover_condition")
            rules = CHANNELS[V1_CHANNELS[message["channel"]]]
            if condition and condition["condition_status"] not in rules.conditions:
                name = f"failover[{index - 1}]" if index else ""
                raise serializers.ValidationError(
                    {
                        _join(name, "failover_condition.condition_status"): (
                            f"{rules.label} supports only {', '.join(sorted(rules.conditions))}."
                        )
                    }
                )
        return attrs

    def step_specs(self, message_uuid) -> list[StepSpec]:
        """The run's steps; the first gets ``message_uuid`` (returned in the 202)."""
        messages = [self.validated_data, *self.validated_data.get("failover", [])]
        last = len(messages) - 1
        specs = []
        for index, message in enumerate(messages):
            step = message["step"]
            condition = message.get("failover_condition")
            if index == last:
                condition_status, expiry_time = None, None
            elif condition:
                condition_status, expiry_time = (
                    condition["condition_status"],
                    condition["expiry_time"],
                )
            else:
                condition_status, expiry_time = "delivered", None
            specs.append(
                StepSpec(
                    channel=step["to"]["type"],
                    sender=dict(step["from"]),
                    recipient=dict(step["to"]),
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
        raise serializers.ValidationError({"ttl": f"Not supported for {channel}; use {where}."})
    low, high = TTL_RANGES[channel]
    if not low <= ttl <= high:
        raise serializers.ValidationError({"ttl": f"Must be between {low} and {high} seconds."})


def _workflow_item(attrs: dict[str, Any]) -> dict[str, Any]:
    """The Workflows item a v1 message means (without Viber options, whose v1 ttl range is
    wider than Dispatch's; they are validated by :class:`V1ViberOptionsSerializer`)."""
    channel = V1_CHANNELS[attrs["channel"]]
    rules = CHANNELS[channel]
    kind = attrs["message_type"]
    content: dict[str, Any] = {"type": kind, kind: attrs[kind]}
    if kind == "template":
        template = dict(attrs["template"])
        template["parameters"] = [{"default": p} for p in template.get("parameters", [])]
        content["template"] = template
    message: dict[str, Any] = {"content": _plain(content)}
    for option in ("messenger", "whatsapp", "rcs"):
        if option in attrs:
            message[option] = _plain(attrs[option])
    return {
        "to": {"type": channel, rules.to_field: attrs["to"]},
        "from": {"type": channel, rules.from_field: attrs["from"]},
        "message": message,
    }


def _stored_message(step: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    stored = _plain(step["message"])
    if "viber_service" in message:
        stored["viber_service_msg"] = _plain(message["viber_service"])
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
