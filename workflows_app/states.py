"""The state machine, as data, and the engine's other vocabularies.

Every step and workflow state change is one row of a table here, applied by
:mod:`workflows_app.services.transitions` as a compare-and-set with an Event. Webhook
deliveries have a machine of their own (``DELIVERY_TRANSITIONS``), applied by
:mod:`workflows_app.webhooks.delivery`, and so does revoke before fallback
(``REVOKE_TRANSITIONS``, applied by :mod:`workflows_app.services.revoke`). Event kinds and
attempt outcomes are enums here too, so that no module spells them as bare strings.
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


class EventKind(StrEnum):
    """What an Event row records (``Event.kind``)."""

    WORKFLOW_CREATED = "workflow.created"
    WORKFLOW_TRANSITION = "workflow.transition"
    STEP_TRANSITION = "step.transition"
    RECEIPT = "receipt"  # a receipt for one of our messages
    RECEIPT_UNMATCHED = "receipt.unmatched"  # no attempt known (yet): replayed after the send
    RECEIPT_REPLAYED = "receipt.replayed"  # an unmatched receipt, applied once its send was
    RECEIPT_WATERMARK = "receipt.watermark"  # "everything before T": see receipts.py
    RECEIPT_LATE = "receipt.late"  # reached the person after the step had failed over
    REVOKE_REVOKED = "revoke.revoked"  # the undelivered message was withdrawn before fallback
    REVOKE_TOO_LATE = "revoke.too_late"  # it had been delivered: nothing to withdraw
    REVOKE_FAILED = "revoke.failed"  # the provider did not answer in time, or refused
    ADMIN_CANCEL = "admin.cancel"
    ADMIN_EDIT = "admin.edit"
    ADMIN_ROTATE_WEBHOOK_SECRET = "admin.rotate_webhook_secret"
    ADMIN_REDELIVER_WEBHOOK = "admin.redeliver_webhook"
    ADMIN_ENABLE_ENDPOINT = "admin.enable_endpoint"


RECEIPT_KINDS = (
    EventKind.RECEIPT,
    EventKind.RECEIPT_UNMATCHED,
    EventKind.RECEIPT_REPLAYED,
    EventKind.RECEIPT_WATERMARK,
    EventKind.RECEIPT_LATE,
)


class RevokeState(StrEnum):
    """``Step.revoke_state``: revoke before fallback (an RCS message failed over on expiry)."""

    PENDING = "pending"
    REVOKED = "revoked"
    TOO_LATE = "too_late"
    FAILED = "failed"


REVOKE_EVENTS = {
    RevokeState.REVOKED: EventKind.REVOKE_REVOKED,
    RevokeState.TOO_LATE: EventKind.REVOKE_TOO_LATE,
    RevokeState.FAILED: EventKind.REVOKE_FAILED,
}


class AttemptOutcome(StrEnum):
    """How a provider call ended (``Attempt.outcome``; empty while it is in flight)."""

    ACCEPTED = "accepted"
    ERROR = "error"


class DeliveryState(StrEnum):
    """A webhook delivery's progress (``WebhookDelivery.state``)."""

    PENDING = "pending"  # waiting for its turn, its next attempt, or its endpoint
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # every scheduled retry failed; an operator may redeliver


class WebhookAttemptOutcome(StrEnum):
    """How one HTTP try of a delivery ended (``WebhookAttempt.outcome``)."""

    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the endpoint is disabled
    FAILED = "failed"  # anything else: retried on schedule


class IllegalTransition(Exception):
    """A transition that is not in its table: a programming error, never user input."""


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

D = DeliveryState
DELIVERY_TRANSITIONS: dict[tuple[DeliveryState, DeliveryState], str] = {
    (D.PENDING, D.DELIVERED): "the endpoint answered 2xx",
    (D.PENDING, D.FAILED): "the retry schedule ran out",
    (D.PENDING, D.PENDING): "redelivered by an operator while pending",
    (D.DELIVERED, D.PENDING): "redelivered by an operator",
    (D.FAILED, D.PENDING): "redelivered by an operator",
}


def delivery_move_check(source: DeliveryState, to: DeliveryState) -> None:
    """Raise IllegalTransition unless a delivery may move from ``source`` to ``to``."""
    if (source, to) not in DELIVERY_TRANSITIONS:
        raise IllegalTransition(f"webhook delivery {source} → {to}")


R = RevokeState
# ``None``: never marked. Marked when its step fails over on expiry; settled once, by the
# provider-call thread that sends the fallback (services/revoke.py).
REVOKE_TRANSITIONS: dict[tuple[RevokeState | None, RevokeState], str] = {
    (None, R.PENDING): "failed over on expiry, undelivered: withdraw it before the fallback",
    (None, R.TOO_LATE): "delivered before it failed over: nothing to withdraw",
    (R.PENDING, R.REVOKED): "the provider withdrew it",
    (R.PENDING, R.TOO_LATE): "the provider had delivered it",
    (R.PENDING, R.FAILED): "the revoke request failed or timed out",
}


def revoke_move_check(source: RevokeState | None, to: RevokeState) -> None:
    """Raise IllegalTransition unless a step's revoke state may move from ``source`` to ``to``."""
    if (source, to) not in REVOKE_TRANSITIONS:
        raise IllegalTransition(f"revoke {source} → {to}")


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
