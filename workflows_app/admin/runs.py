"""Runs in the operator console: the list (with which channel delivered, the failover path,
what the run cost and whether the person got it on several channels), filters and search, the
timeline page (with each message's price), cancel and redeliver."""

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone

from workflows_app.admin.base import (
    AttemptInline,
    ReadOnlyAdmin,
    actor,
    require_change_permission,
)
from workflows_app.models import Attempt, Event, Step, WebhookDelivery, Workflow
from workflows_app.selectors import (
    runs_delivered_on_several_channels,
    workflow_timeline,
    workflow_webhook_deliveries,
)
from workflows_app.services.operators import operator_cancel
from workflows_app.webhooks.delivery import delivery_redeliver
from workflows_app.webhooks.payloads import DELIVERED_STATUSES, step_usage, usage_total

# --- Run filters ---------------------------------------------------------------------------


class ChannelFilter(admin.SimpleListFilter):
    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        channels = Step.objects.order_by("channel").values_list("channel", flat=True).distinct()
        return [(c, c) for c in channels]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(
                Exists(Step.objects.filter(workflow=OuterRef("pk"), channel=self.value()))
            )
        return queryset


class ProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        providers = Attempt.objects.order_by().values_list("provider", flat=True).distinct()
        return [(p, p) for p in sorted(providers)]

    def queryset(self, request, queryset):
        if self.value():
            used = Attempt.objects.filter(step__workflow=OuterRef("pk"), provider=self.value())
            return queryset.filter(Exists(used))
        return queryset


class YesNoFilter(admin.SimpleListFilter):
    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def condition(self) -> Q:
        raise NotImplementedError

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(self.condition())
        if self.value() == "no":
            return queryset.exclude(self.condition())
        return queryset


class HasErrorFilter(YesNoFilter):
    title = "has error"
    parameter_name = "has_error"

    def condition(self) -> Q:
        errored = Step.objects.filter(workflow=OuterRef("pk"), error__isnull=False)
        return Q(status="error") | Q(Exists(errored))


class LateReceiptFilter(YesNoFilter):
    title = "late receipt"
    parameter_name = "late_receipt"

    def condition(self) -> Q:
        return Q(Exists(Step.objects.filter(workflow=OuterRef("pk"), late_receipt=True)))


class DeliveredTwiceFilter(YesNoFilter):
    title = "delivered on several channels"
    parameter_name = "delivered_twice"

    def condition(self) -> Q:
        return Q(id__in=runs_delivered_on_several_channels())


# --- Runs ----------------------------------------------------------------------------------


def run_cost(steps) -> dict | None:
    """The run's cost as its final report's ``usage`` says it (the same functions), from
    prefetched steps, attempts and provider messages; None when no provider reported a price."""
    return usage_total([step_usage(step) for step in steps])


def cost_text(usage: dict | None) -> str:
    """``0.0333 EUR``; with several currencies ``0.01 EUR + 0.0075 USD``; "" when unknown."""
    if usage is None:
        return ""
    return " + ".join(f"{u['price']} {u['currency']}" for u in usage.get("by_currency") or [usage])


def run_outcome(workflow: Workflow) -> str:
    """Which channel delivered, at a glance: ``messenger``, or ``failed over from messenger →
    sms`` when earlier steps failed over; while running, the step in progress. Reads the
    prefetched steps."""
    steps = sorted(workflow.steps.all(), key=lambda step: step.index)
    failed_over = [step.channel for step in steps if step.state == "failed_over"]
    winner = next((step for step in steps if step.state == "succeeded"), None)
    if winner is not None:
        if not failed_over:
            return winner.channel
        return "failed over from " + " → ".join([*failed_over, winner.channel])
    current = next(
        (step for step in steps if step.state in ("pending", "sending", "waiting")), None
    )
    if current is not None and workflow.status == "running":
        where = f"{current.state} on {current.channel}"
        return f"{where} (after {' → '.join(failed_over)})" if failed_over else where
    tried = " → ".join(failed_over + [s.channel for s in steps if s.state == "failed"])
    return f"none ({workflow.status}" + (f"; tried {tried})" if tried else ")")


def with_seconds(value) -> str:
    """A time as the console shows it: local time with seconds ("" for none)."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    change_form_template = "admin/workflows_app/workflow/timeline.html"
    list_display = (
        "id",
        "status",
        "delivered_by",
        "delivered_twice",
        "channels",
        "cost",
        "account",
        "application",
        "api_flavour",
        "client_ref",
        "created",
        "finished",
    )
    list_filter = (
        "status",
        ChannelFilter,
        ProviderFilter,
        "account",
        "application",
        "created_at",
        HasErrorFilter,
        LateReceiptFilter,
        DeliveredTwiceFilter,
        "api_flavour",
    )
    search_fields = ("client_ref",)  # plus UUIDs and recipients: see get_search_results
    search_help_text = "Workflow or message UUID, recipient number or id, client_ref."
    date_hierarchy = "created_at"
    list_select_related = ("account", "application")
    actions = ["cancel_runs"]
    readonly_fields = (
        "id",
        "account",
        "application",
        "template",
        "api_flavour",
        "status",
        "client_ref",
        "webhook_url",
        "webhook_version",
        "created_at",
        "finished_at",
    )
    fields = readonly_fields

    @admin.display(description="channels")
    def channels(self, workflow: Workflow) -> str:
        return " → ".join(step.channel for step in workflow.steps.all())

    @admin.display(description="delivered by")
    def delivered_by(self, workflow: Workflow) -> str:
        return run_outcome(workflow)

    @admin.display(description="delivered twice", empty_value="")
    def delivered_twice(self, workflow: Workflow) -> str:
        """The person got it on N >= 2 channels (a late receipt after a failover)."""
        delivered = [s for s in workflow.steps.all() if s.message_status in DELIVERED_STATUSES]
        return f"delivered on {len(delivered)} channels" if len(delivered) > 1 else ""

    @admin.display(description="cost", empty_value="")
    def cost(self, workflow: Workflow) -> str:
        return cost_text(run_cost(workflow.steps.all()))

    @admin.display(description="created", ordering="created_at")
    def created(self, workflow: Workflow) -> str:
        return with_seconds(workflow.created_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, workflow: Workflow) -> str:
        return with_seconds(workflow.finished_at)

    def get_queryset(self, request):
        # The cost column reads every step's attempts and their parts: three queries a page.
        return (
            super()
            .get_queryset(request)
            .prefetch_related("steps", "steps__attempts__provider_messages")
        )

    def get_search_results(self, request, queryset, search_term):
        filtered = queryset  # the list filters already applied: the extra matches keep them
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return queryset, may_have_duplicates
        matches = Q(
            Exists(
                Step.objects.filter(workflow=OuterRef("pk")).filter(
                    Q(recipient__number=term) | Q(recipient__id=term)
                )
            )
        )
        try:
            key = uuid.UUID(term)
        except ValueError:
            pass
        else:
            matches |= Q(id=key) | Q(
                Exists(Step.objects.filter(workflow=OuterRef("pk"), message_uuid=key))
            )
        return queryset | filtered.filter(matches), may_have_duplicates

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<uuid:workflow_id>/cancel/", view(self.cancel_view), name="workflow_cancel"),
            path(
                "<uuid:workflow_id>/redeliver/<int:delivery_id>/",
                view(self.redeliver_view),
                name="workflow_redeliver",
            ),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        workflow = get_object_or_404(Workflow, pk=object_id)
        timeline = workflow_timeline(workflow)
        extra_context = {
            **(extra_context or {}),
            "timeline": timeline,
            "cost": cost_text(run_cost([item.step for item in timeline])),
            "deliveries": workflow_webhook_deliveries(workflow),
            "run_events": workflow.events.filter(step__isnull=True).order_by("id"),
            "can_act": request.user.has_perm("workflows_app.change_workflow"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def cancel_view(self, request, workflow_id):
        if request.method != "POST":
            raise PermissionDenied
        require_change_permission(request, Workflow)
        workflow = get_object_or_404(Workflow, pk=workflow_id)
        if operator_cancel(workflow, actor=actor(request)):
            self.message_user(request, "Run cancelled.", messages.SUCCESS)
        else:
            self.message_user(request, "The run had already ended.", messages.WARNING)
        return HttpResponseRedirect(
            reverse("admin:workflows_app_workflow_change", args=[workflow_id])
        )

    def redeliver_view(self, request, workflow_id, delivery_id):
        if request.method != "POST":
            raise PermissionDenied
        require_change_permission(request, Workflow)
        delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, workflow_id=workflow_id)
        if delivery_redeliver(delivery, actor=actor(request)):
            self.message_user(request, "Webhook queued for redelivery.", messages.SUCCESS)
        else:
            self.message_user(request, "An attempt is in flight; try again.", messages.WARNING)
        return HttpResponseRedirect(
            reverse("admin:workflows_app_workflow_change", args=[workflow_id])
        )

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_runs(self, request, queryset):
        cancelled = sum(operator_cancel(w, actor=actor(request)) for w in queryset)
        self.message_user(request, f"Cancelled {cancelled} of {queryset.count()} run(s).")

    def has_operate_permission(self, request):
        return request.user.has_perm("workflows_app.change_workflow")


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = (
        "workflow",
        "index",
        "channel",
        "state",
        "message_status",
        "failover_reason",
        "late_receipt",
        "deadline",
    )
    list_filter = ("state", "channel", "message_status", "failover_reason", "late_receipt")
    search_fields = ("=workflow__id", "=message_uuid")
    inlines = [AttemptInline]

    @admin.display(description="deadline", ordering="deadline_at")
    def deadline(self, step: Step) -> str:
        return with_seconds(step.deadline_at)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("created", "kind", "workflow", "step", "from_state", "to_state", "detail")
    list_filter = ("kind",)
    search_fields = ("=workflow__id", "detail")

    @admin.display(description="created", ordering="created_at")
    def created(self, event: Event) -> str:
        return with_seconds(event.created_at)
