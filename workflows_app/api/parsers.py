"""The JSON parser for the API: it returns only JSON that every later layer can handle.

Contract of :class:`StrictJSONParser`: the parsed value contains finite numbers only, is nested at
most :data:`MAX_DEPTH` levels, and its strings (object keys included) hold no NUL character and
no unpaired surrogate, so a value that passed validation can always be stored (PostgreSQL text
and ``jsonb`` refuse NUL; UTF-8 cannot encode a lone surrogate) and echoed in an error response.
Anything else is refused before validation: a body that is not JSON, or is nested too deeply, is
a 400 ``invalid-json`` problem; an unstorable string is a 400 ``InvalidParams`` problem naming
where it is; a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413.
"""

import json
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from orchestrator.storable import first_unstorable
from workflows_app.api.problems import InvalidParameter, Problem, problem_body

# The deepest valid request is about ten levels (body → workflow → item → message → content →
# template → parameters → …); a caller's `custom` payload gets room to spare, but no more.
MAX_DEPTH = 32


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        """Parse the body as UTF-8 JSON; raise ParseError, InvalidParameter or a 413 Problem."""
        value = _loads(_decode(_read_capped(stream)))
        _check_storable(value)
        return value


def _read_capped(stream) -> bytes:
    """At most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes of the body, else a 413.

    Django's ``request.body`` already enforces the cap (its ``RequestDataTooBig`` becomes a 413
    in :func:`workflows_app.api.problems.exception_handler`); reading at most one byte past it
    keeps the cap when a DRF version hands the parser the raw WSGI stream instead.
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        raw = stream.read(limit + 1) if stream is not None else b""
    except RequestDataTooBig as exc:
        raise Problem(413, problem_body(413)) from exc
    if len(raw) > limit:
        raise Problem(413, problem_body(413))
    return raw


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("the body is not valid UTF-8") from exc


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise ParseError("the body is nested too deeply") from exc
    except ValueError as exc:
        raise ParseError(str(exc)) from exc


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one beyond a double's range (1e400) is refused
    rather than silently becoming infinity, which no JSON column can store."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _check_storable(value: Any) -> None:
    """Raise ParseError past :data:`MAX_DEPTH`, InvalidParameter for an unstorable string."""
    found = first_unstorable(value, MAX_DEPTH)
    if found is None:
        return
    if found.too_deep:
        raise ParseError(f"the body is {found.reason}")
    raise InvalidParameter(found.where or "body", found.reason)
