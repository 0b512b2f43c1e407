"""The outbound webhook outbox: endpoints, deliveries (one per event) and attempts (one per try).

Imported by :mod:`workflows_app.models`; it imports nothing from there (foreign keys are named
by string) so the two modules load in either order.
"""

import base64
import secrets
from datetime import datetime

from django.db import models
from django.db.models import Q
from uuid6 import uuid7

from workflows_app.states import DeliveryState

WEBHOOK_SECRET_PREFIX = "whsec_"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes (the spec: 24–64)."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSecretFields(models.Model):
    """The Standard Webhooks signing secret of an account or application, with rotation.

    After a rotation the previous secret stays valid until ``webhook_secret_previous_until``,
    and every webhook sent meanwhile carries a signature made with each secret.
    """

    webhook_secret = models.CharField(max_length=100, default=new_webhook_secret)
    webhook_secret_previous = models.CharField(max_length=100, blank=True, default="")
    webhook_secret_previous_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def webhook_signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with at ``now``: the current one, then any still-valid previous."""
        found = [self.webhook_secret]
        until = self.webhook_secret_previous_until
        if self.webhook_secret_previous and until is not None and until > now:
            found.append(self.webhook_secret_previous)
        return found


class WebhookEndpoint(models.Model):
    """A caller's URL. A 410 Gone disables it; its deliveries wait until an operator re-enables."""

    account = models.ForeignKey(
        "workflows_app.Account", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "url"], name="webhook_endpoint_unique_url")
        ]

    def __str__(self) -> str:
        return self.url + (" (disabled)" if self.disabled_at else "")


class DeliveryKind(models.TextChoices):
    MESSAGE_STATUS = "message_status", "message status"
    WORKFLOW_REPORT = "workflow_report", "final report"


class WebhookDelivery(models.Model):
    """One event for a caller, written in the same transaction as the change it reports.

    ``body`` holds the exact bytes sent on every attempt (signatures cover them); ``webhook_id``
    is the same on every retry. Deliveries of one workflow go out in ``id`` order, one at a time.
    """

    webhook_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    account = models.ForeignKey(
        "workflows_app.Account", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    # Whose Standard Webhooks secret signs it: the application's, else (null) the account's.
    application = models.ForeignKey(
        "workflows_app.Application", null=True, blank=True, on_delete=models.SET_NULL
    )
    workflow = models.ForeignKey(
        "workflows_app.Workflow", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    step = models.ForeignKey(
        "workflows_app.Step",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_deliveries",
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=16, choices=DeliveryKind.choices)
    status = models.CharField(max_length=16, blank=True, default="")  # the status it reports
    body = models.TextField()
    state = models.CharField(
        max_length=16,
        choices=[(s.value, s.value) for s in DeliveryState],
        default=DeliveryState.PENDING,
    )
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)  # last time a task was queued
    lease_until = models.DateTimeField(null=True, blank=True)  # an attempt is in flight until
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow"],
                condition=Q(kind="workflow_report"),
                name="webhook_one_report_per_workflow",
            ),
            models.UniqueConstraint(
                fields=["step", "status"],
                condition=Q(kind="message_status"),
                name="webhook_one_event_per_message_status",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_pending_due",
                condition=Q(state="pending"),
            ),
            models.Index(fields=["workflow", "id"], name="webhook_workflow_order"),
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.kind} {self.status} → {self.endpoint.url} ({self.state})"

    @property
    def header_id(self) -> str:
        """The ``webhook-id`` header: stable across retries, no ``.`` (Standard Webhooks)."""
        return f"msg_{self.webhook_id.hex}"


class WebhookAttempt(models.Model):
    """One HTTP try of a delivery."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16)  # a states.WebhookAttemptOutcome
    error = models.CharField(max_length=500, blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"try {self.number}: {self.status_code or self.error}"
