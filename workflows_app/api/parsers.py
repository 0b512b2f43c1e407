"""The JSON parser for the API: any unparsable body is a 400, an oversized one a 413."""

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from workflows_app.api.problems import Problem, problem_body


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # DRF reads the WSGI stream directly, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            raw = stream.read(limit + 1) if stream is not None else b""
        except RequestDataTooBig as exc:
            raise Problem(413, problem_body(413)) from exc
        if len(raw) > limit:
            raise Problem(413, problem_body(413))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("the body is not valid UTF-8") from exc
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except RecursionError as exc:
            raise ParseError("the body is nested too deeply") from exc
        except ValueError as exc:
            raise ParseError(str(exc)) from exc


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
