"""Whether a parsed JSON value can be stored and echoed back, whoever sent it.

PostgreSQL refuses NUL in ``text`` and both NUL and lone surrogates (``\\ud800``) in ``jsonb``;
UTF-8 cannot encode a lone surrogate at all (SQLite and every JSON response fail on it); no
JSON column stores NaN or infinity; and ``json.dumps`` recurses, so a value nested thousands of
levels deep cannot even be serialised. The API's JSON parser and the receipt endpoints both
refuse such values with :func:`first_unstorable` before anything is stored.
"""

import math
import re
from dataclasses import dataclass
from typing import Any

# json.loads turns "\ud800" into a lone surrogate; a valid pair becomes one astral character.
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Unstorable:
    """Why a value cannot be stored: ``where`` is a path like ``workflow[0].to.id`` ("" for the
    value itself); ``too_deep`` tells nesting apart from a bad string or number."""

    where: str
    reason: str
    too_deep: bool = False


def first_unstorable(value: Any, max_depth: int) -> Unstorable | None:
    """The first reason ``value`` (dicts, lists, strings, numbers) cannot be stored, or None.

    Nesting counts containers: ``{"a": [1]}`` is two levels deep. Walks iteratively, so no
    input can exhaust the stack here.
    """
    pending: list[tuple[Any, str, int]] = [(value, "", 1)]
    while pending:
        node, path, depth = pending.pop()
        if isinstance(node, dict | list) and depth > max_depth:
            return Unstorable(path, f"nested more than {max_depth} levels deep", too_deep=True)
        if isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and UNSTORABLE_CHARACTER.search(key):
                    return Unstorable(path, _string_reason(key))
                pending.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, list | tuple):
            pending.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(node))
        elif isinstance(node, str):
            if UNSTORABLE_CHARACTER.search(node):
                return Unstorable(path, _string_reason(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return Unstorable(path, "Numbers must be finite.")
    return None


def _string_reason(text: str) -> str:
    found = UNSTORABLE_CHARACTER.search(text)
    if found is not None and found.group() == "\x00":
        return "Null characters are not allowed."
    return "Unpaired surrogate characters are not allowed."
