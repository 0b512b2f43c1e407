"""The field types of every request body, and how their errors are worded.

Request bodies are validated by pydantic (v2) against ``TypedDict`` shapes built from the types
below (:mod:`workflows_app.api.serializers`, :mod:`workflows_app.api.messages_v1`); the same
shapes give the OpenAPI schema (:mod:`workflows_app.api.schema`). A valid body comes back as
plain dicts and lists holding only the fields the shape names, in the shape's order.

No field coerces: a number where a string belongs is an error, not a string. Errors read as
they did under DRF's serializers ("This field is required.", "Must be a string.", ...):
:class:`Shape` words them, and names each field ``workflow[0].to.number``. A rule across
fields raises :class:`Invalid` with the path of the field it blames, relative to where it runs.
"""

import math
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import phonenumbers
from annotated_types import Ge, GroupedMetadata, Le, MinLen
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import core_schema


class Invalid(ValueError):
    """A value breaks a rule: ``reason`` about the field at ``path`` (keys and list indexes)
    below the value being validated; ``()`` is the value itself."""

    def __init__(self, path: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.path, self.reason = path, reason


class BodyInvalid(Exception):
    """A body broke its shape: ``parameters`` is every ``{name, reason}``, in field order."""

    def __init__(self, parameters: list[dict[str, str]]) -> None:
        super().__init__(parameters[0]["reason"] if parameters else "invalid")
        self.parameters = parameters


class Shape:
    """One request shape: ``validate(data)`` returns the valid body or raises BodyInvalid."""

    def __init__(self, shape: Any, *, name: str) -> None:
        self.name = name  # the OpenAPI component's name
        self.adapter = TypeAdapter(shape)

    def validate(self, data: Any) -> Any:
        try:
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            raise BodyInvalid([_parameter(error) for error in exc.errors()]) from None

    def json_schema(self, ref_template: str) -> dict[str, Any]:
        return self.adapter.json_schema(ref_template=ref_template)


# --- wording -----------------------------------------------------------------------------------

MESSAGES = {
    "missing": "This field is required.",
    "string_type": "Must be a string.",
    "string_too_short": "This field may not be blank.",
    "string_too_long": "Ensure this field has no more than {max_length} characters.",
    "string_pattern_mismatch": "This value does not match the required pattern.",
    "int_type": "Must be an integer.",
    "bool_type": "Must be a valid boolean.",
    "greater_than_equal": "Ensure this value is greater than or equal to {ge}.",
    "less_than_equal": "Ensure this value is less than or equal to {le}.",
    "dict_type": "Invalid data. Expected a dictionary, but got {input_type}.",
    "list_type": 'Expected a list of items but got type "{input_type}".',
    "too_short": "Ensure this field has at least {min_length} elements.",
}


def _parameter(error: Any) -> dict[str, str]:
    """One pydantic error as ``{name, reason}``."""
    path, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    cause = ctx.get("error")
    if kind != "missing" and error.get("input", "") is None:
        reason = "This field may not be null."
    elif kind == "value_error" and isinstance(cause, Invalid):
        path, reason = path + cause.path, cause.reason
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == ADDRESS_PATTERN:
        reason = _foreign_digit(error["input"])
    elif kind in MESSAGES:
        reason = MESSAGES[kind].format(input_type=type(error.get("input")).__name__, **ctx)
    else:  # not reached by any shape here; pydantic's own words beat a 500
        reason = str(error["msg"])
    return {"name": field_name(path), "reason": reason}


def field_name(path: Sequence[str | int]) -> str:
    """``("workflow", 0, "to")`` → ``workflow[0].to``; the body itself is ``body``."""
    name = ""
    for key in path:
        name += f"[{key}]" if isinstance(key, int) else (f".{key}" if name else str(key))
    return name or "body"


# --- field types -------------------------------------------------------------------------------


class Text(GroupedMetadata):
    """``Annotated[str, Text(n)]``: a string of at most ``n`` characters; empty only with
    ``blank``; with ``trim``, surrounding whitespace is removed first (as DRF's CharField did)."""

    def __init__(
        self, max_length: int, *, blank: bool = False, trim: bool = True, pattern: str | None = None
    ) -> None:
        # A BeforeValidator runs before everything listed ahead of it, so trimming goes last.
        self.metadata: list[Any] = [
            Strict(),
            StringConstraints(min_length=0 if blank else 1, max_length=max_length, pattern=pattern),
        ]
        self.metadata += [BeforeValidator(_strip)] if trim else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.metadata)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class Choice:
    """``Annotated[str, Choice(*values)]``: one of ``values``; the error lists them (or is
    ``reason``); the schema is their enum."""

    def __init__(self, *values: str, reason: str | None = None) -> None:
        self.values, self.allowed, self.reason = list(values), frozenset(values), reason

    def check(self, value: Any) -> Any:
        if value is None:
            raise Invalid((), "This field may not be null.")
        if not (isinstance(value, str) and value in self.allowed):
            shown = str(value) if len(str(value)) <= 100 else str(value)[:100] + "…"
            listing = ", ".join(self.values)
            raise Invalid(
                (), self.reason or f'"{shown}" is not a valid choice. Must be one of {listing}.'
            )
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return {**handler(schema), "enum": self.values}


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 15.0 is 15 (clients that write every number as a float)."""
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


class Integer(GroupedMetadata):
    """``Annotated[int, Integer(ge=.., le=..)]``: an integer, never a bool or a string."""

    def __init__(self, *, ge: int | None = None, le: int | None = None) -> None:
        self.metadata: list[Any] = [Strict()]
        self.metadata += [Ge(ge)] if ge is not None else []
        self.metadata += [Le(le)] if le is not None else []
        self.metadata += [BeforeValidator(_integral)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.metadata)


def _object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise Invalid((), "Must be an object.")
    return value


# A JSON object passed through unchanged (the parser has already bounded its depth and strings).
Object = Annotated[dict[str, Any], BeforeValidator(_object)]

_url = URLValidator()


def _check_url(value: str) -> str:
    try:
        _url(value)
    except DjangoValidationError:
        raise Invalid((), "Enter a valid URL.") from None
    return value


Url = Annotated[str, Text(2000), AfterValidator(_check_url)]


class Items(GroupedMetadata):
    """``Annotated[list[X], Items(limit=.., reason=..)]``: a list refused by its length before
    any item is looked at: a body of thousands of items costs one ``len()``, not thousands of
    validations. ``limit`` is read per request (settings may change it)."""

    def __init__(
        self,
        *,
        limit: Callable[[], int],
        reason: Callable[[int], str] = lambda n: (
            f"Ensure this field has no more than {n} elements."
        ),
        min_length: int = 0,
    ) -> None:
        self.limit, self.reason = limit, reason
        self.metadata: list[Any] = [MinLen(min_length), BeforeValidator(self.count)]

    def count(self, value: Any) -> Any:
        if isinstance(value, list) and len(value) > self.limit():
            raise Invalid((), self.reason(self.limit()))
        return value

    def __iter__(self) -> Iterator[Any]:
        return iter(self.metadata)


def at_most(limit: int) -> Items:
    return Items(limit=lambda: limit)


# --- addresses ---------------------------------------------------------------------------------


# Digits in an id or number are ASCII: `４` (fullwidth) or `٤` (Arabic-Indic) would be stored as
# sent and read as no digit at all by the sandbox and by providers. Checked by pydantic's (Rust)
# regex engine: any number character but 0-9 is refused.
ADDRESS_PATTERN = r"^(?:[0-9]|[^\p{N}])*$"

# An endpoint's `id` or `number`, a v1 `to` or `from`: 1-50 characters, kept exactly as sent.
Address = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=50, pattern=ADDRESS_PATTERN)
]


def _foreign_digit(value: str) -> str:
    """Why ``value`` broke :data:`ADDRESS_PATTERN`: its first number character that is not 0-9."""
    char = next(c for c in value if unicodedata.category(c)[0] == "N" and not c.isascii())
    return f"Digits must be ASCII 0-9; {char} (U+{ord(char):04X}) is not."


def is_e164_without_plus(value: str) -> bool:
    """E.164 digits without a leading ``+`` or ``00``, of a length some country allows."""
    # isascii(): isdigit() alone also accepts fullwidth, Arabic-Indic and superscript digits.
    ascii_digits = value.isascii() and value.isdigit()
    if not ascii_digits or value.startswith("0") or not 7 <= len(value) <= 15:
        return False
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse("+" + value))
    except phonenumbers.NumberParseException:
        return False


def is_sender_id(value: str) -> bool:
    """An alphanumeric SMS sender ID: 1-11 ASCII letters, digits and spaces, at least one letter
    (GSM's limit; all digits is a phone number, checked as E.164)."""
    return (
        len(value) <= 11
        and value.isascii()
        and any(char.isalpha() for char in value)
        and all(char.isalnum() or char == " " for char in value)
    )
