"""The state machine, as data. Every step and workflow state change is one row of a table here,
applied by :mod:`workflows_app.services.transitions` as a compare-and-set with an Event.
"""

from enum import StrEnum


class StepState(StrEnum):
    PENDING = "pending"  # not sent yet (``ready_at`` set once it is this step's turn)
    SENDING = "sending"  # an attempt is in flight, outside any transaction
    WAITING = "waiting"  # provider accepted; waiting for the condition until ``deadline_at``
    SUCCEEDED = "succeeded"
    FAILED_OVER = "failed_over"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class WorkflowStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    READ = "read"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"


class FailoverReason(StrEnum):
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"


S = StepState
STEP_TRANSITIONS: dict[tuple[StepState, StepState], str] = {
    (S.PENDING, S.SENDING): "attempt started",
    (S.PENDING, S.SKIPPED): "an earlier step met its condition",
    (S.PENDING, S.CANCELLED): "run cancelled",
    (S.SENDING, S.WAITING): "provider accepted (or the outcome is ambiguous)",
    (S.SENDING, S.PENDING): "transient error: retry later",
    (S.SENDING, S.SUCCEEDED): "condition reached before the send was recorded",
    (S.SENDING, S.FAILED_OVER): "permanent error: fail over now",
    (S.SENDING, S.FAILED): "permanent error on the last step",
    (S.SENDING, S.CANCELLED): "run cancelled while the attempt was in flight",
    (S.WAITING, S.SUCCEEDED): "condition reached in time",
    (S.WAITING, S.FAILED_OVER): "rejected, undeliverable or deadline passed",
    (S.WAITING, S.FAILED): "the last step failed",
    (S.WAITING, S.CANCELLED): "run cancelled",
}

W = WorkflowStatus
WORKFLOW_TRANSITIONS: dict[tuple[WorkflowStatus, WorkflowStatus], str] = {
    (W.RUNNING, W.COMPLETED): "a step met its condition",
    (W.RUNNING, W.ERROR): "the last step failed",
    (W.RUNNING, W.CANCELLED): "cancelled",
}

ACTIVE_STEP_STATES = (S.PENDING, S.SENDING, S.WAITING)
FINAL_STEP_STATES = (S.SUCCEEDED, S.FAILED_OVER, S.FAILED, S.SKIPPED, S.CANCELLED)

# Message status only moves forward: submitted < delivered < read; a failure is final and only
# replaces "not sent" or "submitted" (a message that reached the handset cannot be unsent).
MESSAGE_STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.SUBMITTED: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
    MessageStatus.REJECTED: 2,
    MessageStatus.UNDELIVERABLE: 2,
}
FAILURE_STATUSES = (MessageStatus.REJECTED, MessageStatus.UNDELIVERABLE)


def statuses_replaceable_by(new: MessageStatus) -> tuple[str | None, ...]:
    """The current message statuses that ``new`` may overwrite (``None`` = never sent)."""
    if new in FAILURE_STATUSES:
        return (None, MessageStatus.SUBMITTED)
    if new == MessageStatus.SUBMITTED:
        return (None,)
    if new == MessageStatus.DELIVERED:
        return (None, MessageStatus.SUBMITTED)
    return (None, MessageStatus.SUBMITTED, MessageStatus.DELIVERED)  # read


def condition_met(condition: str, status: str | None) -> bool:
    """Whether a message in ``status`` satisfies a step's ``condition_status``."""
    if status is None or status in FAILURE_STATUSES:
        return False
    rank = MESSAGE_STATUS_RANK
    return rank[MessageStatus(status)] >= rank[MessageStatus(condition)]
