"""Fields that do not coerce: a number where a string belongs is an error, not a string."""

import math
from typing import Any

import phonenumbers
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and (not math.isfinite(data) or not data.is_integer()):
            self.fail("invalid")
        return super().to_internal_value(int(data))


class SharedChildListField(serializers.ListField):
    """A ListField whose copies share one child.

    DRF deep-copies a serializer's declared fields for every instance, and with them a nested
    child serializer and all its fields: for a workflow request, some thirty fields built anew
    per request, a third of the cost of validating it. The child keeps no state between calls
    (it returns values or raises; nothing here reads ``context``), so the copies can share it,
    and its fields are built once per process.
    """

    _args: tuple[Any, ...]  # the constructor's arguments, kept by Field.__new__
    _kwargs: dict[str, Any]

    def __deepcopy__(self, memo):
        kwargs = {key: value for key, value in self._kwargs.items() if key != "child"}
        clone = type(self)(*self._args, **kwargs)
        clone.child, clone._kwargs = self.child, self._kwargs  # bound to its first list: fine
        return clone


class StrictDictField(serializers.DictField):
    default_error_messages = {"not_a_dict": "Must be an object."}


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
