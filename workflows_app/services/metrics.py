"""Prometheus metrics computed from the database at scrape time (docs/operations.md).

Web, worker and scheduler are separate processes (several of each), so in-process counters would
each see a slice. Every number here is a query instead: counters are counts of durable rows
(workflows, attempts, failed-over steps, webhook attempts) and gauges are the current queue.
Counters therefore drop when ``purge_runs`` deletes old rows; Prometheus treats that as a reset.
"""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from workflows_app.models import (
    Attempt,
    Event,
    ProviderMessage,
    Step,
    WebhookAttempt,
    WebhookDelivery,
    Workflow,
)
from workflows_app.selectors import runs_delivered_on_several_channels
from workflows_app.services.clock import db_now
from workflows_app.states import EventKind, StepState

LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class DatabaseCollector:
    """A prometheus_client collector whose every sample is read from the database."""

    def collect(self):
        yield from _workflow_metrics()
        yield from _send_metrics()
        yield _timer_lateness()
        yield from _webhook_metrics()
        yield from _queue_metrics()
        yield from _cost_metrics()


def _counter(name: str, doc: str, labels: list[str], rows) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for row in rows:
        family.add_metric([str(row[label] or "") for label in labels], row["n"])
    return family


def _workflow_metrics():
    rows = Workflow.objects.values("api_flavour").annotate(n=Count("id")).order_by()
    yield _counter(
        "orchestrator_workflows_accepted",
        "Workflows accepted, by the API that created them.",
        ["api_flavour"],
        [{"api_flavour": r["api_flavour"], "n": r["n"]} for r in rows],
    )
    statuses = Workflow.objects.values("status").annotate(n=Count("id")).order_by()
    gauge = GaugeMetricFamily("orchestrator_workflows", "Workflows by status.", labels=["status"])
    for row in statuses:
        gauge.add_metric([row["status"]], row["n"])
    yield gauge


def _send_metrics():
    rows = (
        Attempt.objects.values("step__channel", "provider", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    yield _counter(
        "orchestrator_sends",
        "Provider calls, by channel, provider and outcome (accepted, error, '' = in flight).",
        ["channel", "provider", "outcome"],
        [{"channel": r["step__channel"], **r} for r in rows],
    )
    failovers = (
        Step.objects.filter(failover_reason__isnull=False)
        .values("failover_reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    yield _counter(
        "orchestrator_failovers",
        "Steps that failed over (or failed, when last), by reason.",
        ["reason"],
        [{"reason": r["failover_reason"], "n": r["n"]} for r in failovers],
    )


def _reported_spend(workflow_ids=None) -> dict[tuple[str, ...], Decimal]:
    """What providers reported, by (channel, provider, connection, currency): each message's
    send-answer price, else the prices its receipts carried (payloads.attempt_price's rule),
    for every run or for those of ``workflow_ids``."""
    attempts = Attempt.objects.filter(price_amount__isnull=False)
    parts = ProviderMessage.objects.filter(
        price_amount__isnull=False, attempt__price_amount__isnull=True
    )
    if workflow_ids is not None:
        attempts = attempts.filter(step__workflow_id__in=workflow_ids)
        parts = parts.filter(attempt__step__workflow_id__in=workflow_ids)
    sent = attempts.values_list("step__channel", "provider", "connection_id", "price_currency")
    received = parts.values_list(
        "attempt__step__channel", "provider", "attempt__connection_id", "price_currency"
    )
    spend: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for query in (sent, received):
        for row in query.annotate(total=Sum("price_amount")).order_by():
            spend[tuple(str(k or "") for k in row[:4])] += row[4] or 0
    return spend


def _cost_metrics():
    """Spend as providers reported it, and the runs whose person got the message on two or
    more channels with what those runs cost. Read from the rows at each scrape, so a late
    receipt after the final report is counted as soon as it lands."""
    family = CounterMetricFamily(
        "orchestrator_spend",
        "Reported message cost, by channel, provider, connection, currency.",
        labels=["channel", "provider", "connection", "currency"],
    )
    for labelled, total in sorted(_reported_spend().items()):
        family.add_metric(list(labelled), float(total))
    yield family
    twice = runs_delivered_on_several_channels()
    gauge = GaugeMetricFamily(
        "orchestrator_runs_delivered_twice", "Runs delivered on two or more channels."
    )
    gauge.add_metric([], Workflow.objects.filter(id__in=twice).count())
    yield gauge
    cost = CounterMetricFamily(
        "orchestrator_runs_delivered_twice_spend",
        "What the runs delivered on two or more channels cost (as reported), by currency.",
        labels=["currency"],
    )
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for (_, _, _, currency), total in _reported_spend(twice).items():
        by_currency[currency] += total
    for currency, total in sorted(by_currency.items()):
        cost.add_metric([currency], float(total))
    yield cost


def _timer_lateness() -> HistogramMetricFamily:
    """How long after its deadline each expired step was failed over (timer precision)."""
    late = ExpressionWrapper(F("created_at") - F("step__deadline_at"), output_field=DurationField())
    expired = Event.objects.filter(
        kind=EventKind.STEP_TRANSITION,
        step__failover_reason="expired",
        to_state__in=["failed_over", "failed"],
    ).annotate(late=late)
    counts = expired.aggregate(
        total=Count("id"),
        **{
            f"le_{i}": Count("id", filter=Q(late__lte=timedelta(seconds=bound)))
            for i, bound in enumerate(LATENESS_BUCKETS)
        },
    )
    total_seconds = sum(
        max(0.0, row.total_seconds()) for row in expired.values_list("late", flat=True)[:10000]
    )
    buckets = [(str(b), counts[f"le_{i}"]) for i, b in enumerate(LATENESS_BUCKETS)]
    buckets.append(("+Inf", counts["total"]))
    return HistogramMetricFamily(
        "orchestrator_timer_lateness_seconds",
        "Seconds between a step's deadline and its failover.",
        buckets=buckets,
        sum_value=total_seconds,
    )


def _webhook_metrics():
    rows = WebhookAttempt.objects.values("outcome").annotate(n=Count("id")).order_by()
    yield _counter(
        "orchestrator_webhook_attempts",
        "Webhook HTTP attempts, by outcome (delivered, failed, gone).",
        ["outcome"],
        rows,
    )
    states = WebhookDelivery.objects.values("state").annotate(n=Count("id")).order_by()
    gauge = GaugeMetricFamily(
        "orchestrator_webhook_deliveries", "Webhook deliveries by state.", labels=["state"]
    )
    for row in states:
        gauge.add_metric([row["state"]], row["n"])
    yield gauge


def _queue_metrics():
    now = db_now()
    depth = GaugeMetricFamily(
        "orchestrator_queue_depth", "Work waiting in Postgres, by kind.", labels=["kind"]
    )
    depth.add_metric(
        ["step_due_to_send"],
        Step.objects.filter(state=StepState.PENDING, ready_at__lte=now).count(),
    )
    depth.add_metric(["step_waiting"], Step.objects.filter(state=StepState.WAITING).count())
    depth.add_metric(
        ["webhook_due"],
        WebhookDelivery.objects.filter(state="pending", next_attempt_at__lte=now).count(),
    )
    yield depth
    oldest = Step.objects.filter(state=StepState.WAITING, deadline_at__lt=now).aggregate(
        oldest=Min("deadline_at")
    )["oldest"]
    yield GaugeMetricFamily(
        "orchestrator_oldest_overdue_step_seconds",
        "How far past its deadline the most overdue waiting step is (0 when none).",
        value=(now - oldest).total_seconds() if oldest else 0.0,
    )


def metrics_text() -> bytes:
    """The Prometheus text exposition of every metric above (a fresh registry per scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
