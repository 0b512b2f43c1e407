"""Reads. Every query that serves a caller is scoped to the caller's account."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Count, QuerySet

from channels_app.adapters.base import address_of
from workflows_app.models import Account, Event, Step, WebhookDelivery, Workflow
from workflows_app.states import RECEIPT_KINDS, AttemptOutcome, EventKind
from workflows_app.webhooks.payloads import DELIVERED_STATUSES, step_usage


def workflow_get_for_account(account: Account, workflow_id: str) -> Workflow | None:
    """The account's workflow with its steps prefetched, or None (also for a malformed id)."""
    try:
        key = uuid.UUID(str(workflow_id))
    except ValueError:
        return None
    return Workflow.objects.filter(account=account, id=key).prefetch_related("steps").first()


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime | None
    kind: str  # send | attempt | receipt | transition | deadline | failover | webhook
    title: str
    detail: str = ""
    tone: str = ""  # ok | bad | warn | "" (neutral): how the console colours it


def runs_delivered_on_several_channels() -> QuerySet:
    """The ids (``workflow_id`` values) of runs whose person got the message on two or more
    channels: a late receipt for a step that had already failed over. Read from the steps'
    message status, so it stays right when that receipt lands after the final report."""
    return (
        Step.objects.filter(message_status__in=DELIVERED_STATUSES)
        .values("workflow_id")
        .annotate(channels=Count("id"))
        .filter(channels__gte=2)
        .values("workflow_id")
    )


@dataclass
class StepTimeline:
    step: Step
    entries: list[TimelineEntry] = field(default_factory=list)

    @property
    def recipient(self) -> str:
        return address_of(self.step.recipient)

    @property
    def usage(self) -> dict[str, str] | None:
        """What the step's message cost, as the final report says it (None: not reported)."""
        return step_usage(self.step)


def workflow_timeline(workflow: Workflow) -> list[StepTimeline]:
    """Each step's story in time order: attempts, transitions, receipts, deadline, failover.

    For the operator console; reads only.
    """
    steps = workflow.steps.prefetch_related("attempts__provider_messages", "events").order_by(
        "index"
    )
    return [StepTimeline(step, sorted(_step_entries(step), key=_entry_order)) for step in steps]


# Entries at the same instant (one transaction writes an attempt and its transitions) read in
# cause-and-effect order.
_KIND_ORDER = {"attempt": 0, "transition": 1, "receipt": 2, "deadline": 3, "failover": 4}


def _entry_order(entry: TimelineEntry) -> tuple:
    return (
        entry.at is None,
        entry.at or datetime.max.replace(tzinfo=UTC),
        _KIND_ORDER.get(entry.kind, 1),
    )


def _step_entries(step: Step) -> list[TimelineEntry]:
    entries = []
    for attempt in step.attempts.all():
        bad = attempt.outcome == AttemptOutcome.ERROR
        error = f"{attempt.error_kind} {attempt.error_code}: {attempt.error_detail}".strip()
        entries.append(
            TimelineEntry(
                attempt.started_at,
                "attempt",
                f"attempt {attempt.number} via {attempt.provider}: "
                f"{attempt.outcome or 'in flight'}",
                error if bad else ", ".join(attempt.provider_message_ids),
                "bad" if bad else "ok",
            )
        )
    for event in step.events.all():
        entries.append(_event_entry(step, event))
    if step.deadline_at:
        entries.append(_deadline_entry(step))
    return entries


def _deadline_entry(step: Step) -> TimelineEntry:
    """The step's deadline, saying what the quiet time before it was: waiting for the wanted
    status (a failover by expiry otherwise reads as an unexplained gap)."""
    expired = step.failover_reason == "expired"
    wanted = step.condition_status or "delivered"
    window = f"{step.expiry_time} s" if step.expiry_time else "the final-step timeout"
    if expired:
        detail = f"waited {window} for {wanted} (expiry_time); it did not come, so it failed over"
    elif step.state == "waiting":
        detail = f"waiting up to {window} for {wanted} (expiry_time)"
    elif step.expiry_time:
        detail = f"expiry_time {step.expiry_time} s"
    else:
        detail = "final-step timeout"
    return TimelineEntry(
        step.deadline_at,
        "deadline",
        f"deadline {step.deadline_at:%Y-%m-%d %H:%M:%S} UTC for {wanted}"
        + (": passed" if expired else ""),
        detail,
        "warn" if expired else "",
    )


def _event_entry(step: Step, event: Event) -> TimelineEntry:
    if event.kind in RECEIPT_KINDS:
        late = event.kind == EventKind.RECEIPT_LATE
        failed = event.to_state in ("rejected", "undeliverable")
        title = f"receipt: {event.to_state}" + (" (late: after failover)" if late else "")
        return TimelineEntry(
            event.created_at,
            "receipt",
            title,
            event.detail,
            "warn" if late else ("bad" if failed else "ok"),
        )
    if event.to_state == "failed_over":
        return TimelineEntry(
            event.created_at,
            "failover",
            f"failed over: {step.failover_reason}",
            event.detail,
            "bad",
        )
    return TimelineEntry(
        event.created_at,
        "transition",
        f"{event.from_state} → {event.to_state}" if event.from_state else event.kind,
        event.detail,
        "ok" if event.to_state == "succeeded" else ("bad" if event.to_state == "failed" else ""),
    )


def workflow_webhook_deliveries(workflow: Workflow) -> list[WebhookDelivery]:
    """The run's webhook deliveries in send order, with their endpoint and attempts."""
    return list(
        WebhookDelivery.objects.filter(workflow=workflow)
        .select_related("endpoint", "step")
        .prefetch_related("attempts")
        .order_by("id")
    )


def workflow_list_for_account(
    account: Account,
    *,
    status: str | None = None,
    client_ref: str | None = None,
    created_after=None,
    created_before=None,
):
    """The account's runs with their steps, filtered; the caller orders and paginates."""
    runs = Workflow.objects.filter(account=account).prefetch_related("steps")
    if status is not None:
        runs = runs.filter(status=status)
    if client_ref is not None:
        runs = runs.filter(client_ref=client_ref)
    if created_after is not None:
        runs = runs.filter(created_at__gt=created_after)
    if created_before is not None:
        runs = runs.filter(created_at__lt=created_before)
    return runs
