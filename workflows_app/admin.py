"""Operator views of runs: find a run by its UUID, read its steps, attempts and events."""

from django.contrib import admin

from workflows_app.models import Account, Application, Attempt, Event, Step, Workflow


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class StepInline(ReadOnlyInline):
    model = Step
    fields = (
        "index",
        "channel",
        "recipient",
        "state",
        "message_status",
        "failover_reason",
        "condition_status",
        "expiry_time",
        "deadline_at",
        "sent_at",
        "message_uuid",
    )
    readonly_fields = fields


class EventInline(ReadOnlyInline):
    model = Event
    fields = ("created_at", "kind", "step", "from_state", "to_state", "detail", "data")
    readonly_fields = fields


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


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "account",
        "api_flavour",
        "status",
        "client_ref",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "api_flavour", "created_at")
    search_fields = ("=id", "client_ref", "=steps__message_uuid")
    date_hierarchy = "created_at"
    inlines = [StepInline, EventInline]


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = (
        "workflow",
        "index",
        "channel",
        "state",
        "message_status",
        "failover_reason",
        "deadline_at",
    )
    list_filter = ("state", "channel", "message_status", "failover_reason")
    search_fields = ("=workflow__id", "=message_uuid")
    inlines = [AttemptInline]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "workflow", "step", "from_state", "to_state", "detail")
    list_filter = ("kind",)
    search_fields = ("=workflow__id", "detail")


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "api_key", "created_at")
    search_fields = ("name", "api_key")
    fields = ("name", "api_key", "status_url", "created_at")
    readonly_fields = ("api_key", "created_at")

    def has_add_permission(self, request):
        return False  # accounts are created with `manage.py create_account` (it shows the secret)


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "account", "created_at")
    search_fields = ("name", "=id")
    readonly_fields = ("id", "account", "public_key", "created_at")
