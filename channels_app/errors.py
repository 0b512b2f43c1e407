"""Provider errors by kind. Adapters raise these; the engine decides from ``kind`` alone.

Each adapter maps its provider's error codes to kinds in one visible table of
:class:`ErrorRule` rows, read by :func:`error_from_table`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    PERMANENT = "permanent"  # invalid recipient, outside the window, blocked: fail over now
    TRANSIENT = "transient"  # 5xx, 429, timeout before acceptance: retry with backoff
    CONFIGURATION = "configuration"  # bad token, missing permission: fail over, alert operators
    AMBIGUOUS = "ambiguous"  # the provider may have accepted: never resend blindly


class ProviderError(Exception):
    """A provider call that did not end in acceptance.

    ``code`` and ``reason`` follow Vonage's asynchronous error table where a mapping exists
    (``reference/vonage-api.md`` §2.7), so callers see familiar codes whatever the provider.
    """

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        *,
        code: int | None = None,
        provider_code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = ErrorKind(kind)
        self.reason = reason
        self.code = code
        self.provider_code = provider_code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ProviderError({self.kind}, {self.reason!r}, code={self.code})"


@dataclass(frozen=True)
class ErrorRule:
    """How one provider error code is handled, and the Vonage code/reason callers see."""

    kind: ErrorKind
    code: int | None
    reason: str

    @classmethod
    def permanent(cls, code: int | None, reason: str) -> "ErrorRule":
        """An error no retry can fix (invalid recipient, outside the window): fail over."""
        return cls(ErrorKind.PERMANENT, code, reason)

    @classmethod
    def transient(cls, code: int | None, reason: str) -> "ErrorRule":
        """An error worth retrying (throttling, a provider outage)."""
        return cls(ErrorKind.TRANSIENT, code, reason)

    @classmethod
    def configuration(cls, code: int | None, reason: str) -> "ErrorRule":
        """An error in our connection's setup (bad token, missing permission)."""
        return cls(ErrorKind.CONFIGURATION, code, reason)


def error_from_table(
    table: Mapping[Any, ErrorRule],
    provider_code: Any,
    *,
    fallback: ErrorRule,
    detail: str = "",
    retry_after: float | None = None,
) -> ProviderError:
    """Build the ProviderError for ``provider_code`` from an adapter's table."""
    rule = table.get(provider_code, fallback)
    reason = rule.reason if not detail else f"{rule.reason}: {detail}"
    return ProviderError(
        rule.kind,
        reason[:500],
        code=rule.code,
        provider_code=str(provider_code),
        retry_after=retry_after,
    )
