"""What every operator-console module shares: read-only admin classes and inlines, the
operator's name for Events, and the permission check of actions."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from workflows_app.models import Attempt, WebhookAttempt


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
