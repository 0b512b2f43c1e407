"""OpenAPI descriptions of the endpoints (drf-spectacular), kept apart from the views.

Served at ``/openapi.json``, with Swagger UI at ``/docs`` and ReDoc at ``/redoc``. Nothing here
restates a shape: request bodies are the validators' own pydantic schemas (:class:`ShapeExtension`)
and a run is :class:`~workflows_app.api.serializers.RunSerializer`, which the views render with;
tests/workflows_app/test_openapi.py checks the live app against the document.
"""

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
)
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from workflows_app.api.messages_v1 import V1_REQUEST
from workflows_app.api.serializers import (
    MESSAGE_REQUEST,
    WORKFLOW_REQUEST,
    RunSerializer,
    WorkflowListFilterSerializer,
)
from workflows_app.management.commands.demo_setup import canonical_request

PROBLEM = "application/problem+json"
JSON = "application/json"


class ShapeExtension(OpenApiSerializerExtension):
    """A request :class:`~workflows_app.api.fields.Shape` in the schema: pydantic's JSON schema
    of the very validator the view calls, its nested shapes as components."""

    target_class = "workflows_app.api.fields.Shape"

    def get_name(self, auto_schema, direction):
        return self.target.name

    def map_serializer(self, auto_schema, direction):
        schema = self.target.json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            auto_schema.registry.register_on_missing(
                ResolvedComponent(
                    name=name, type=ResolvedComponent.SCHEMA, object=name, schema=definition
                )
            )
        return schema


class InvalidParameterSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 7807 problem; Workflows/Dispatch/Messages v0.1 name one invalid parameter."""

    type = serializers.CharField()
    title = serializers.CharField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    invalid_parameters = InvalidParameterSerializer(required=False)


class V1ProblemSerializer(serializers.Serializer):
    """Messages v1 problem: ``invalid_parameters`` is an array."""

    type = serializers.CharField()
    title = serializers.CharField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    invalid_parameters = InvalidParameterSerializer(many=True, required=False)


def _run_ids() -> dict:
    """``workflow_uuid`` under /beta/workflows, ``dispatch_uuid`` under /v0.1/dispatch."""
    return {
        "workflow_uuid": serializers.UUIDField(required=False),
        "dispatch_uuid": serializers.UUIDField(required=False),
    }


# The bodies /docs opens with: README's curl (the sandbox's Messenger → SMS failover), and its
# Messages v1 counterpart (docs/api.md).
WORKFLOW_EXAMPLE = OpenApiExample(
    "Messenger, then SMS", value=canonical_request(), request_only=True
)
V01_EXAMPLE = OpenApiExample(
    "An SMS",
    value={
        "from": {"type": "sms", "number": "447700900001"},
        "to": {"type": "sms", "number": "447700900000"},
        "message": {"content": {"type": "text", "text": "Your order has shipped"}},
    },
    request_only=True,
)
V1_EXAMPLE = OpenApiExample(
    "Messenger, failing over to SMS",
    value={
        "to": "1000000001",
        "from": "100200300",
        "channel": "messenger",
        "message_type": "text",
        "text": "Your order has shipped (Messenger)",
        "failover": [
            {
                "to": "447700900000",
                "from": "447700900001",
                "channel": "sms",
                "message_type": "text",
                "text": "Your order has shipped (SMS)",
            }
        ],
    },
    request_only=True,
)


class AccountAuthenticationScheme(OpenApiAuthenticationExtension):
    """Basic (API key and secret) or Bearer (an application's RS256 JWT), never both."""

    target_class = "workflows_app.api.auth.AccountAuthentication"
    name = ["basicAuth", "bearerAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "basic"},
            {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        ]


def _errors(*codes: int, v1: bool = False) -> dict:
    problem = V1ProblemSerializer if v1 else ProblemSerializer
    common = {401, 406, 429}
    return {(code, PROBLEM): problem for code in sorted(common | set(codes))}


IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Our extension: repeat a POST safely for 24 h (same key + same body → same "
    "answer, nothing new created; same key + another body → 422).",
)
RUN_ID = OpenApiParameter("workflow_id", OpenApiTypes.STR, OpenApiParameter.PATH)


def workflow_create_schema(view_func):
    """POST /beta/workflows and /v0.1/dispatch (one schema; the id field differs)."""
    return extend_schema(
        summary="Start a failover workflow (Workflows API / Dispatch API)",
        request=WORKFLOW_REQUEST,
        examples=[WORKFLOW_EXAMPLE],
        parameters=[IDEMPOTENCY],
        responses={
            (202, JSON): inline_serializer("RunCreated", _run_ids()),
            **_errors(400, 413, 415, 422),
        },
    )(view_func)


def workflow_list_schema(view_func):
    return extend_schema(
        summary="List your runs, newest first (our extension)",
        parameters=[WorkflowListFilterSerializer],
        responses={
            (200, JSON): inline_serializer(
                "RunPage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": RunSerializer(many=True),
                },
            ),
            **_errors(400, 404),
        },
    )(view_func)


def workflow_detail_schema(view_func):
    return extend_schema(
        summary="Read one of your runs (our extension)",
        parameters=[RUN_ID],
        responses={(200, JSON): RunSerializer, **_errors(404)},
    )(view_func)


def workflow_cancel_schema(view_func):
    return extend_schema(
        summary="Cancel one of your running runs (our extension)",
        request=None,
        parameters=[RUN_ID, IDEMPOTENCY],
        responses={
            (200, JSON): RunSerializer,
            **_errors(400, 404, 409, 413, 422),
        },
    )(view_func)


def messages_v01_schema(view_func):
    return extend_schema(
        summary="Send a message (Messages API v0.1)",
        request=MESSAGE_REQUEST,
        examples=[V01_EXAMPLE],
        parameters=[IDEMPOTENCY],
        responses={
            (202, JSON): inline_serializer(
                "MessageCreated", {"message_uuid": serializers.UUIDField()}
            ),
            **_errors(400, 413, 415, 422),
        },
    )(view_func)


def messages_v1_schema(view_func):
    return extend_schema(
        summary="Send a message, with optional failover (Messages API v1)",
        description="`failover_condition` is our extension, not Vonage's.",
        request=V1_REQUEST,
        examples=[V1_EXAMPLE],
        parameters=[IDEMPOTENCY],
        responses={
            (202, JSON): inline_serializer(
                "V1MessageCreated",
                {
                    "message_uuid": serializers.UUIDField(),
                    "workflow_id": serializers.CharField(required=False),
                },
            ),
            **_errors(400, 413, 415, 422, v1=True),
        },
    )(view_func)
