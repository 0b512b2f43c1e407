"""Delivering the outbox: at least once, in order per workflow, durable in Postgres.

A workflow's deliveries go out one at a time in ``id`` order (so a later event for a message is
never delivered before an earlier one). Each attempt is three steps, the HTTP call outside any
transaction:

1. claim the workflow's head delivery: lock it, check it is due and not leased, set
   ``lease_until`` and count the attempt — commit;
2. sign and POST it;
3. record a :class:`WebhookAttempt` and the outcome — commit. A 2xx delivers it and moves on to
   the next; 410 disables the endpoint; anything else (3xx, 4xx, 429, 5xx, timeout, refused
   address) schedules the next try from ``WEBHOOK_RETRY_SCHEDULE`` with jitter, honouring
   ``Retry-After``, until the schedule runs out (then ``failed``).

The ``deliver_webhooks`` task (queued on commit) is the fast path; :func:`webhooks_dispatch_due`,
a phase of the scheduler tick, re-queues whatever is due and not in flight: retries, lost
tasks, attempts whose worker died (lease expired).
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from workflows_app.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from workflows_app.services.clock import db_now
from workflows_app.services.dispatch import DELIVER_WEBHOOKS, enqueue_on_commit
from workflows_app.states import (
    DeliveryState,
    EventKind,
    WebhookAttemptOutcome,
    delivery_move_check,
)
from workflows_app.webhooks import transport
from workflows_app.webhooks.signing import Signer, signed_headers

logger = logging.getLogger(__name__)
DRAIN_LIMIT = 50


@dataclass(frozen=True)
class DeliveryClaim:
    """The head delivery of a workflow, leased for one attempt: what to POST, where, how signed."""

    delivery_id: int
    number: int
    url: str
    body: bytes
    header_id: str
    signer: Signer
    started_at: datetime


def workflow_webhooks_deliver(workflow_id: Any, limit: int = DRAIN_LIMIT) -> int:
    """Send a workflow's due deliveries in order, until one fails or none is due.

    Called by the ``deliver_webhooks`` task. Returns how many were delivered. Safe to run
    twice at once: the head delivery's lease admits one attempt at a time.
    """
    delivered = 0
    for _ in range(limit):
        claim = _claim_head(workflow_id)
        if claim is None:
            return delivered
        headers = signed_headers(claim.signer, claim.header_id, claim.body, claim.started_at)
        outcome = transport.post(claim.url, claim.body, headers)
        if not _attempt_record(claim, outcome):
            return delivered
        delivered += 1
    enqueue_on_commit(DELIVER_WEBHOOKS, str(workflow_id))  # more remain: in a fresh task
    return delivered


def _claim_head(workflow_id: Any) -> DeliveryClaim | None:
    with transaction.atomic():
        now = db_now()
        head = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint", "account", "application")
            .filter(workflow_id=workflow_id, state=DeliveryState.PENDING)
            .order_by("id")
            .first()
        )
        if head is None or head.endpoint.disabled_at is not None:
            return None
        if head.next_attempt_at is None or head.next_attempt_at > now:
            return None
        if head.lease_until is not None and head.lease_until > now:
            return None
        number = head.attempt_count + 1
        WebhookDelivery.objects.filter(id=head.id).update(
            attempt_count=number,
            lease_until=now + timedelta(seconds=settings.WEBHOOK_LEASE),
            updated_at=now,
        )
        owner = head.application or head.account
        signer = Signer(
            api_key=head.account.api_key,
            signature_secret=head.account.signature_secret,
            application_id=str(head.application_id) if head.application_id else None,
            webhook_secrets=owner.webhook_signing_secrets(now),
        )
    return DeliveryClaim(
        delivery_id=head.id,
        number=number,
        url=head.endpoint.url,
        body=head.body.encode(),
        header_id=head.header_id,
        signer=signer,
        started_at=now,
    )


def retry_delay(attempts_made: int, retry_after: float | None) -> float | None:
    """Seconds until the next try after ``attempts_made`` tries, or None when out of tries."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.WEBHOOK_MAX_RETRY_AFTER))
    return delay


def _attempt_record(claim: DeliveryClaim, outcome: transport.HttpOutcome) -> bool:
    """Store the attempt and its consequence. Returns True when the delivery was delivered."""
    code = outcome.status_code
    with transaction.atomic():
        now = db_now()
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(id=claim.delivery_id)
        )
        attempt = WebhookAttempt(
            delivery=delivery,
            number=claim.number,
            url=claim.url,
            status_code=code,
            error=outcome.error[:500],
            response_excerpt=outcome.excerpt,
            duration_ms=outcome.duration_ms,
            started_at=claim.started_at,
        )
        current = delivery.attempt_count == claim.number and delivery.state == DeliveryState.PENDING
        fields: dict[str, Any] = {"lease_until": None, "last_status_code": code, "updated_at": now}
        if code is not None and 200 <= code < 300:
            attempt.outcome = WebhookAttemptOutcome.DELIVERED
            fields.update(state=DeliveryState.DELIVERED, delivered_at=now, next_attempt_at=None)
        elif code == 410:
            attempt.outcome = WebhookAttemptOutcome.GONE
            _endpoint_disable(delivery.endpoint, now, "answered 410 Gone")
        else:
            attempt.outcome = WebhookAttemptOutcome.FAILED
            delay = retry_delay(claim.number, outcome.retry_after)
            if delay is None:
                fields.update(state=DeliveryState.FAILED, next_attempt_at=None)
            else:
                attempt.retry_at = now + timedelta(seconds=delay)
                fields.update(next_attempt_at=attempt.retry_at)
        attempt.save()
        if current:
            delivery_move_check(DeliveryState.PENDING, fields.get("state", DeliveryState.PENDING))
            WebhookDelivery.objects.filter(id=delivery.id).update(**fields)
    if attempt.outcome != WebhookAttemptOutcome.DELIVERED:
        logger.info(
            "webhook %s try %d to %s: %s",
            claim.header_id,
            claim.number,
            claim.url,
            code or outcome.error,
            extra={"workflow_uuid": str(delivery.workflow_id)},
        )
    return attempt.outcome == WebhookAttemptOutcome.DELIVERED and current


def _endpoint_disable(endpoint: WebhookEndpoint, now: datetime, reason: str) -> None:
    WebhookEndpoint.objects.filter(id=endpoint.id, disabled_at__isnull=True).update(
        disabled_at=now, disabled_reason=reason
    )
    logger.warning("webhook endpoint %s disabled: %s", endpoint.url, reason)


def webhooks_due(now: Any) -> QuerySet[WebhookDelivery]:
    """Deliveries whose workflow should be queued for delivery at ``now`` (a datetime, or the
    database clock as an expression): due, not in flight, not queued within
    ``WEBHOOK_DISPATCH_GRACE``, and the head of their workflow's queue."""
    grace = now - timedelta(seconds=settings.WEBHOOK_DISPATCH_GRACE)
    earlier = WebhookDelivery.objects.filter(
        workflow_id=OuterRef("workflow_id"), state=DeliveryState.PENDING, id__lt=OuterRef("id")
    )
    return (
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING,
            next_attempt_at__lte=now,
            endpoint__disabled_at__isnull=True,
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .filter(
            Q(dispatched_at__isnull=True)
            | Q(dispatched_at__lt=F("next_attempt_at"))
            | Q(dispatched_at__lte=grace)
        )
        .exclude(Exists(earlier))
    )


def webhooks_dispatch_due(batch: int, now: Any = None) -> int:
    """The scheduler's webhook phase: queue delivery for the workflows of
    :func:`webhooks_due` deliveries. Returns how many deliveries."""
    with transaction.atomic():
        now = now or db_now()
        due = list(
            webhooks_due(now)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at")
            .values_list("id", "workflow_id")[:batch]
        )
        WebhookDelivery.objects.filter(id__in=[d[0] for d in due]).update(dispatched_at=now)
        for workflow_id in {d[1] for d in due}:
            enqueue_on_commit(DELIVER_WEBHOOKS, str(workflow_id))
    return len(due)


def delivery_redeliver(delivery: WebhookDelivery, *, actor: str) -> bool:
    """Send a delivery again now, with the same ``webhook-id`` (receivers dedupe on it).

    For the operator console. Returns False while an attempt is in flight. Logged as an Event.
    """
    delivery_move_check(DeliveryState(delivery.state), DeliveryState.PENDING)
    with transaction.atomic():
        now = db_now()
        changed = (
            WebhookDelivery.objects.filter(id=delivery.id)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .update(
                state=DeliveryState.PENDING,
                next_attempt_at=now,
                lease_until=None,
                dispatched_at=now,
                updated_at=now,
            )
        )
        if not changed:
            return False
        Event.objects.create(
            workflow_id=delivery.workflow_id,
            step_id=delivery.step_id,
            kind=EventKind.ADMIN_REDELIVER_WEBHOOK,
            detail=f"{actor} redelivered {delivery.header_id}"[:255],
            data={"delivery_id": delivery.id, "actor": actor},
        )
        enqueue_on_commit(DELIVER_WEBHOOKS, str(delivery.workflow_id))
    return True


def endpoint_enable(endpoint: WebhookEndpoint, *, actor: str) -> None:
    """Re-enable an endpoint a 410 disabled; its waiting deliveries resume. Logged as an Event."""
    with transaction.atomic():
        WebhookEndpoint.objects.filter(id=endpoint.id).update(disabled_at=None, disabled_reason="")
        Event.objects.create(
            kind=EventKind.ADMIN_ENABLE_ENDPOINT,
            detail=f"{actor} re-enabled {endpoint.url}"[:255],
            data={"endpoint_id": endpoint.id, "actor": actor},
        )
        waiting = WebhookDelivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING)
        for workflow_id in set(waiting.values_list("workflow_id", flat=True)):
            enqueue_on_commit(DELIVER_WEBHOOKS, str(workflow_id))
