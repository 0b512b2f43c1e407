"""Webhook deliveries and endpoints in the operator console: read, redeliver, re-enable."""

from django.contrib import admin
from django.utils.html import format_html

from workflows_app.admin.base import ReadOnlyAdmin, WebhookAttemptInline, actor
from workflows_app.models import WebhookDelivery, WebhookEndpoint
from workflows_app.webhooks.delivery import delivery_redeliver, endpoint_enable

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
