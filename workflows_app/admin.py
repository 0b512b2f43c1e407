"""The operator console: find runs, read each as a timeline, cancel a run, redeliver a webhook.

Everything is read-only except those actions (and an account's or application's status URL);
every action is logged as an Event with the operator's name. Staff only (Django admin's rule);
actions also need the model's change permission.
"""

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from workflows_app.models import (
    Account,
    Application,
    Attempt,
    Event,
    Step,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    Workflow,
)
from workflows_app.selectors import workflow_timeline, workflow_webhook_deliveries
from workflows_app.services.operators import (
    operator_cancel,
    operator_log,
    operator_rotate_webhook_secret,
)
from workflows_app.webhooks.delivery import delivery_redeliver, endpoint_enable


def actor(request: HttpRequest) -> str:
    return request.user.get_username()


def require_change_permission(request: HttpRequest, model) -> None:
    opts = model._meta
    if not request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"):
        raise PermissionDenied


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = (
        "number",
        "provider",
        "connection_id",
        "outcome",
        "error_kind",
        "error_code",
        "error_detail",
        "provider_message_ids",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ("number", "url", "status_code", "outcome", "error", "duration_ms", "started_at")
    readonly_fields = fields


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


# --- Runs ----------------------------------------------------------------------------------


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    change_form_template = "admin/workflows_app/workflow/timeline.html"
    list_display = (
        "id",
        "status",
        "channels",
        "account",
        "application",
        "api_flavour",
        "client_ref",
        "created_at",
        "finished_at",
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

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("steps")

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
        extra_context = {
            **(extra_context or {}),
            "timeline": workflow_timeline(workflow),
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
        "deadline_at",
    )
    list_filter = ("state", "channel", "message_status", "failover_reason", "late_receipt")
    search_fields = ("=workflow__id", "=message_uuid")
    inlines = [AttemptInline]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "workflow", "step", "from_state", "to_state", "detail")
    list_filter = ("kind",)
    search_fields = ("=workflow__id", "detail")


# --- Webhooks ------------------------------------------------------------------------------


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "workflow",
        "kind",
        "status",
        "state",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "endpoint",
        "created_at",
    )
    list_filter = ("state", "kind", "status", "created_at")
    search_fields = ("=workflow__id", "=webhook_id", "endpoint__url")
    list_select_related = ("workflow", "endpoint")
    exclude = ("body",)
    readonly_fields = ("pretty_body",)
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.display(description="body (exact bytes sent)")
    def pretty_body(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", delivery.body)

    @admin.action(description="Redeliver selected webhooks", permissions=["operate"])
    def redeliver(self, request, queryset):
        done = sum(delivery_redeliver(d, actor=actor(request)) for d in queryset)
        self.message_user(request, f"Queued {done} webhook(s) for redelivery.")

    def has_operate_permission(self, request):
        return request.user.has_perm("workflows_app.change_workflow")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("url", "account", "disabled_at", "disabled_reason", "created_at")
    list_filter = ("disabled_at",)
    search_fields = ("url",)
    actions = ["enable"]

    @admin.action(description="Re-enable selected endpoints", permissions=["operate"])
    def enable(self, request, queryset):
        for endpoint in queryset:
            endpoint_enable(endpoint, actor=actor(request))
        self.message_user(request, f"Re-enabled {queryset.count()} endpoint(s).")

    def has_operate_permission(self, request):
        return request.user.has_perm("workflows_app.change_webhookendpoint")


# --- Accounts and applications -------------------------------------------------------------


class WebhookSecretOwnerAdmin(admin.ModelAdmin):
    """Admin for what owns a webhook secret (accounts, applications): an action that rotates
    the Standard Webhooks secret and shows the new one once; edits (the status URL) are logged
    as Events."""

    actions = ["rotate_webhook_secret"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = ", ".join(form.changed_data) or "nothing"
        operator_log("edit", actor(request), f"edited {obj} ({changed})", fields=form.changed_data)

    @admin.action(description="Rotate webhook secret (the old one signs too for a while)")
    def rotate_webhook_secret(self, request, queryset):
        for owner in queryset:
            secret = operator_rotate_webhook_secret(owner, actor=actor(request))
            self.message_user(
                request, f"New webhook secret for {owner} (shown once): {secret}", messages.WARNING
            )


@admin.register(Account)
class AccountAdmin(WebhookSecretOwnerAdmin):
    list_display = ("name", "api_key", "status_url", "created_at")
    search_fields = ("name", "api_key")
    fields = ("name", "api_key", "status_url", "created_at")
    readonly_fields = ("api_key", "created_at")

    def has_add_permission(self, request):
        return False  # accounts are created with `manage.py create_account` (it shows the secret)


@admin.register(Application)
class ApplicationAdmin(WebhookSecretOwnerAdmin):
    list_display = ("name", "id", "account", "status_url", "created_at")
    search_fields = ("name", "=id")
    fields = ("id", "account", "name", "status_url", "inbound_url", "public_key", "created_at")
    readonly_fields = ("id", "account", "public_key", "created_at")
