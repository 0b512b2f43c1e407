"""RFC 7807 problem responses in the shape the Vonage APIs used.

Validation errors use the Messages/Workflows ``InvalidParams`` type with ``invalid_parameters``
naming the field; everything else uses Vonage's generic error slugs
(``https://developer.nexmo.com/api-errors#<slug>``).
"""

import logging
import sys
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from workflows_app.api.fields import BodyInvalid

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
INVALID_PARAMS_TYPE = "https://www.nexmo.com/messages/Errors#InvalidParams"
GENERIC_TYPE = "https://developer.nexmo.com/api-errors#{slug}"

# slug, title, detail per HTTP status for the generic errors.
GENERIC: dict[int, tuple[str, str, str]] = {
    400: ("bad-request", "Bad Request", "The request could not be understood."),
    401: ("unauthorized", "Unauthorized", "You did not provide correct credentials."),
    403: ("forbidden", "Forbidden", "You are not allowed to do this."),
    404: (
        "not-found",
        "Not Found",
        "The requested resource does not exist, or you do not have access to it.",
    ),
    405: ("wrong-verb", "Wrong HTTP verb", "This endpoint does not support that HTTP method."),
    406: (
        "accept-header",
        "Invalid Accept header",
        "This endpoint only produces application/json.",
    ),
    409: ("conflict", "Conflict", "The resource is not in a state that allows this."),
    413: ("payload-too-large", "Payload Too Large", "The request body is too large."),
    415: (
        "content-type-header",
        "Invalid Content-Type header",
        "Send the body as application/json.",
    ),
    422: ("unprocessable", "Unprocessable Entity", "The request could not be processed."),
    429: ("throttled", "Too Many Requests", "You have sent too many requests."),
    500: ("internal-error", "Internal Error", "Something went wrong on our side."),
    503: ("unavailable", "Service Unavailable", "Please try again shortly."),
}


def trace_id() -> str:
    return uuid.uuid4().hex


def problem_body(
    http_status: int,
    *,
    slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    default_slug, default_title, default_detail = GENERIC.get(http_status, GENERIC[400])
    body = {
        "type": GENERIC_TYPE.format(slug=slug or default_slug),
        "title": title or default_title,
        "detail": detail or default_detail,
        "instance": trace_id(),
    }
    body.update(extra)
    return body


def invalid_params_body(name: str, reason: str) -> dict[str, Any]:
    return {
        "type": INVALID_PARAMS_TYPE,
        "title": "Invalid Parameters",
        "detail": "Your request parameters did not validate.",
        "instance": trace_id(),
        "invalid_parameters": {"name": name, "reason": reason},
    }


# What Django raises when the database cannot be reached, or drops the connection mid-request
# (a restart, a failover, pg_terminate_backend): the caller should retry, not see a 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def database_unavailable() -> tuple[dict[str, Any], dict[str, str]]:
    """The 503 body and headers for a request that failed because the database is unreachable.

    Whatever the request changed was rolled back, unless the connection died during COMMIT
    itself, when the outcome is unknown (a retried POST may then start a second run).
    """
    logger.warning("database unavailable", exc_info=True)
    body = problem_body(
        503,
        slug="database-unavailable",
        detail="The database is unavailable; please retry after the time in Retry-After.",
    )
    return body, {"Retry-After": str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)}


class Problem(exceptions.APIException):
    """Raise from a view to answer with a specific problem body."""

    def __init__(
        self, http_status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(body.get("detail"))
        self.status_code = http_status
        self.body = body
        self.headers = headers or {}


class InvalidParameter(Problem):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(status.HTTP_400_BAD_REQUEST, invalid_params_body(name, reason))


def first_invalid_parameter(errors: Any, path: str = "") -> tuple[str, str]:
    """Flatten DRF's nested error structure to the first ``(name, reason)``.

    Names read like ``workflow[0].failover.expiry_time``.
    """
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key in ("non_field_errors", "__all__"):
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            return first_invalid_parameter(value, child)
        return path or "body", "invalid"
    if isinstance(errors, list) and errors:
        if all(isinstance(item, str) for item in errors):
            return path or "body", str(errors[0])
        for index, item in enumerate(errors):
            if item:
                return first_invalid_parameter(item, f"{path}[{index}]")
    return path or "body", str(errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every error the API raises becomes a problem response."""
    headers: dict[str, str] = {}
    if isinstance(exc, DATABASE_UNAVAILABLE):
        http_status = 503
        body, headers = database_unavailable()
    elif isinstance(exc, RequestDataTooBig):
        # Raised by Django's `request.body` when DRF reads a body over the cap.
        http_status, body = 413, problem_body(413)
    elif isinstance(exc, Problem):
        http_status, body, headers = exc.status_code, exc.body, exc.headers
    elif isinstance(exc, BodyInvalid):  # a Workflows, Dispatch or v0.1 body: the first is named
        http_status = 400
        body = invalid_params_body(**exc.parameters[0])
    elif isinstance(exc, exceptions.ValidationError):  # query parameters
        http_status = 400
        body = invalid_params_body(*first_invalid_parameter(exc.detail))
    elif isinstance(exc, exceptions.ParseError):
        http_status = 400
        body = problem_body(
            400,
            slug="invalid-json",
            title="Invalid JSON",
            detail=f"The request body did not contain valid JSON: {exc.detail}",
        )
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        http_status = 401
        body = problem_body(
            401,
            detail=str(exc.detail) if isinstance(exc, exceptions.AuthenticationFailed) else None,
        )
        headers["WWW-Authenticate"] = 'Basic realm="api"'
    elif isinstance(exc, exceptions.Throttled):
        http_status = 429
        body = problem_body(429)
        wait = exc.wait  # type: ignore[attr-defined]  # set by Throttled.__init__; not in drf-stubs
        if wait is not None:
            headers["Retry-After"] = str(int(wait) + 1)
    elif isinstance(exc, exceptions.APIException):
        http_status = exc.status_code
        body = problem_body(http_status)
    else:
        return None
    return Response(body, status=http_status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_json_response(http_status: int, **kwargs: Any) -> JsonResponse:
    """A problem response outside DRF (Django's 400/404/500 handlers)."""
    return JsonResponse(
        problem_body(http_status, **kwargs), status=http_status, content_type=PROBLEM_CONTENT_TYPE
    )


def handler400(request, exception=None):
    """Django's 400 handler, which also receives a body over the cap read outside DRF."""
    if isinstance(exception, RequestDataTooBig):
        return problem_json_response(413)
    return problem_json_response(400)


def handler403(request, exception=None):
    return problem_json_response(403)


def handler404(request, exception=None):
    return problem_json_response(404)


def handler500(request):
    """Django's 500 handler. Called inside the ``except`` that caught the error, so a database
    outage outside DRF (admin, middleware) is recognised here and answered with a 503."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        body, headers = database_unavailable()
        return JsonResponse(body, status=503, content_type=PROBLEM_CONTENT_TYPE, headers=headers)
    return problem_json_response(500)
