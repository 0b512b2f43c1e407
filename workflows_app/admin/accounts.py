"""Accounts and applications in the operator console: the status URL (edits are logged) and
the webhook secret's rotation."""

from django.contrib import admin, messages
from django.db import models

from workflows_app.admin.base import actor
from workflows_app.models import Account, Application
from workflows_app.services.operators import operator_log, operator_rotate_webhook_secret

# --- Accounts and applications -------------------------------------------------------------


class WebhookSecretOwnerAdmin(admin.ModelAdmin):
    """Admin for what owns a webhook secret (accounts, applications): an action that rotates
    the Standard Webhooks secret and shows the new one once; edits (the status URL) are logged
    as Events."""

    actions = ["rotate_webhook_secret"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # "example.com" is https

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
