"""Provider errors by kind. Adapters raise these; the engine decides from ``kind`` alone."""

from enum import StrEnum


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
