"""Accounts, applications, and the runs: Workflow → Step → Attempt, with an append-only Event log.

Only :mod:`workflows_app.services.transitions` writes ``Step.state`` and ``Workflow.status``.
"""

import hashlib
import hmac
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from uuid6 import uuid7

from .states import EventKind, FailoverReason, MessageStatus, StepState, WorkflowStatus
from .webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecretFields,
)

__all__ = ["WebhookAttempt", "WebhookDelivery", "WebhookEndpoint"]


def hash_secret(secret: str) -> str:
    """SHA-256 of an API secret.

    Secrets are 128-bit random values we generate, so a fast hash is safe (nothing to brute
    force) and keeps Basic auth cheap on every request, unlike a password KDF.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


URL_MAX_LENGTH = 2000
_HTTP_URL = URLValidator(schemes=["http", "https"])


def validate_http_url(value: str) -> None:
    """Raise ValidationError unless ``value`` is an absolute http:// or https:// URL that fits
    its column (PostgreSQL refuses NUL, so it is refused here too). Where it points (private or
    link-local addresses) is checked when a webhook is sent (:mod:`workflows_app.webhooks`)."""
    try:
        if "\x00" in value or len(value) > URL_MAX_LENGTH:
            raise ValidationError("")
        _HTTP_URL(value)
    except ValidationError:
        shown = value if len(value) <= 100 else value[:100] + "..."
        raise ValidationError(
            f"Enter an absolute http:// or https:// URL of at most {URL_MAX_LENGTH} characters "
            f"(not {shown!r}).",
            code="invalid_url",
        ) from None


class Account(WebhookSecretFields):
    name = models.CharField(max_length=200)
    api_key = models.CharField(max_length=32, unique=True)
    api_secret_hash = models.CharField(max_length=64)
    signature_secret = models.CharField(max_length=128)
    status_url = models.URLField(
        max_length=URL_MAX_LENGTH, blank=True, default="", validators=[validate_http_url]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.api_key})"

    def check_secret(self, secret: str) -> bool:
        return hmac.compare_digest(self.api_secret_hash, hash_secret(secret))


class Application(WebhookSecretFields):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="applications")
    name = models.CharField(max_length=200)
    public_key = models.TextField()
    status_url = models.URLField(
        max_length=URL_MAX_LENGTH, blank=True, default="", validators=[validate_http_url]
    )
    inbound_url = models.URLField(
        max_length=URL_MAX_LENGTH, blank=True, default="", validators=[validate_http_url]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class ApiFlavour(models.TextChoices):
    WORKFLOWS = "workflows", "Workflows (/beta/workflows)"
    DISPATCH = "dispatch", "Dispatch (/v0.1/dispatch)"
    MESSAGES_V01 = "messages_v0.1", "Messages v0.1"
    MESSAGES_V1 = "messages_v1", "Messages v1"


class Workflow(models.Model):
    # Keys we generate for rows written on every accept or send are UUIDv7: time-ordered, so
    # their indexes (this key, and the workflow_id of steps and events) grow at one end. A
    # random UUIDv4 lands on a random index page, and at a million runs each accept then wrote
    # ~19 KB of WAL (full-page images after every checkpoint) instead of ~3 KB.
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No index of its own: the (account, -created_at) index serves every lookup by account.
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="workflows", db_index=False
    )
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflows"
    )
    template = models.CharField(max_length=32, default="failover")
    api_flavour = models.CharField(max_length=16, choices=ApiFlavour.choices)
    status = models.CharField(
        max_length=16,
        choices=[(s.value, s.value) for s in WorkflowStatus],
        default=WorkflowStatus.RUNNING,
    )
    client_ref = models.CharField(max_length=100, blank=True, default="")
    # A per-run status URL and format (Messages v1 `webhook_url` / `webhook_version`); when
    # null, the application's status_url (else the account's) and the flavour's format apply.
    webhook_url = models.URLField(max_length=2000, null=True, blank=True)
    webhook_version = models.CharField(
        max_length=8, null=True, blank=True, choices=[("v0.1", "v0.1"), ("v1", "v1")]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return str(self.id)


class Step(models.Model):
    # No index of its own: step_unique_index (workflow, index) serves every lookup by workflow.
    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    index = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=32)
    sender = models.JSONField()  # the request's `from` object
    recipient = models.JSONField()  # the request's `to` object
    message = models.JSONField()  # the request's `message` object (content + channel options)
    condition_status = models.CharField(max_length=16, null=True, blank=True)
    expiry_time = models.PositiveIntegerField(null=True, blank=True)
    # The run's last step: it has no failover, and its failure ends the run in `error`.
    is_last = models.BooleanField(default=False)

    state = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in StepState], default=StepState.PENDING
    )
    # Set when it is this step's turn to be sent (or retried); the scheduler re-dispatches a
    # pending step whose ready_at passed long ago and which no worker picked up.
    ready_at = models.DateTimeField(null=True, blank=True)
    # When its send was last queued; the scheduler's re-dispatch moves it into the future to
    # back off (workflows_app/services/scheduler.py).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    message_uuid = models.UUIDField(null=True, blank=True, unique=True)
    message_status = models.CharField(
        max_length=16, null=True, blank=True, choices=[(s.value, s.value) for s in MessageStatus]
    )
    error = models.JSONField(null=True, blank=True)  # {"code": int, "reason": str}
    failover_reason = models.CharField(
        max_length=16, null=True, blank=True, choices=[(s.value, s.value) for s in FailoverReason]
    )
    send_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    timer_armed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A receipt that arrived after the step had already failed over (the person may have got
    # the message on two channels).
    late_receipt = models.BooleanField(default=False)
    # Revoke before fallback (RCS): "pending" once the step failed over on expiry with its
    # message undelivered, then what the revoke achieved: "revoked", "too_late" or "failed".
    revoke_state = models.CharField(max_length=16, null=True, blank=True)
    # When the provider was last asked for this step's status (the receipt backstop).
    polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow", "index"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "index"], name="step_unique_index"),
        ]
        indexes = [
            models.Index(
                fields=["deadline_at"],
                name="step_waiting_deadline",
                condition=Q(state=StepState.WAITING),
            ),
            # The scheduler arms countdowns for waiting steps not yet armed (timers.py,
            # _arm_near); without it each tick walks every armed step inside the horizon.
            models.Index(
                fields=["deadline_at"],
                name="step_unarmed_deadline",
                condition=Q(state=StepState.WAITING, timer_armed_at__isnull=True),
            ),
            models.Index(
                fields=["ready_at"],
                name="step_pending_ready",
                condition=Q(state=StepState.PENDING, ready_at__isnull=False),
            ),
            models.Index(
                fields=["send_started_at"],
                name="step_sending_started",
                condition=Q(state=StepState.SENDING),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}#{self.index} {self.channel} {self.state}"


class Attempt(models.Model):
    """One provider call for a step. Its id is the ``client_ref`` we give the provider."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    provider = models.CharField(max_length=32)
    connection_id = models.CharField(max_length=64, blank=True, default="")
    request_summary = models.JSONField(default=dict)
    outcome = models.CharField(max_length=16, blank=True, default="")  # a states.AttemptOutcome
    error_kind = models.CharField(max_length=16, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_detail = models.TextField(blank=True, default="")
    provider_message_ids = models.JSONField(default=list)
    response = models.JSONField(null=True, blank=True)
    # What the send's answer said the message cost (null: it said nothing; never a made-up 0).
    price_amount = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    price_currency = models.CharField(max_length=3, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["step", "number"]
        constraints = [
            models.UniqueConstraint(fields=["step", "number"], name="attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.step_id} via {self.provider}"


class ProviderMessage(models.Model):
    """Maps a provider's message id to our attempt, so receipts find their step.

    A long SMS is several provider messages (parts) of one attempt, each with its own receipts:
    ``status`` is this part's, and the step's message status follows the least advanced part.
    ``recipient`` and ``sent_at`` let a watermark receipt ("everything sent to this person
    before T was read") find every message it covers.
    """

    provider = models.CharField(max_length=32)
    provider_message_id = models.CharField(max_length=255)
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="provider_messages")
    recipient = models.CharField(max_length=255, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, null=True, blank=True, choices=[(s.value, s.value) for s in MessageStatus]
    )
    # What this part's receipts said it cost (the latest that said anything), or null.
    price_amount = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    price_currency = models.CharField(max_length=3, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_message_id"], name="provider_message_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["provider", "recipient", "sent_at"], name="provider_message_recipient"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_message_id}"


class Event(models.Model):
    """Append-only: every transition and every receipt, with the raw payload."""

    # No index of its own: the (workflow, id) index serves every lookup by workflow.
    workflow = models.ForeignKey(
        Workflow,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
    )
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=32)  # a states.EventKind
    from_state = models.CharField(max_length=16, blank=True, default="")
    to_state = models.CharField(max_length=16, blank=True, default="")
    detail = models.CharField(max_length=255, blank=True, default="")
    data = models.JSONField(default=dict)
    # Receipts carry provider:message:status here, so a duplicate receipt is a no-op insert
    # (the partial unique constraint below: most events have none, and index nothing).
    dedupe_key = models.CharField(max_length=300, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["workflow", "id"]),
            # Every accepted send looks for receipts that beat it here
            # (services/receipts.py: replay_unmatched_receipts); without this index that is a
            # scan of the whole event log, whose cost grows with every run ever accepted.
            models.Index(
                fields=["detail"],
                name="event_unmatched_detail",
                condition=Q(kind=EventKind.RECEIPT_UNMATCHED),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                name="event_dedupe_key",
                condition=Q(dedupe_key__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.from_state}→{self.to_state}"


class Heartbeat(models.Model):
    """When a long-running loop (the scheduler) last completed a round; ``/readyz`` reads it."""

    name = models.CharField(max_length=32, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at}"


class IdempotencyKey(models.Model):
    """The first answer to a POST carrying ``Idempotency-Key``, replayed for a repeat.

    Unique per (account, key), so two concurrent requests with one key cannot both create a run:
    the loser of the insert race waits for, then replays, the winner's answer.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # Null while the first request is still being processed.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="idempotency_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.key}"


class CacheEntry(models.Model):
    """The table of the shared cache when there is no Redis (``orchestrator.cache.
    DatabaseCache``, embedded mode): the columns Django's ``createcachetable`` would make, made
    by a migration instead so that every way of starting the service has it."""

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "orchestrator_cache"

    def __str__(self) -> str:
        return self.cache_key
