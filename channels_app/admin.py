"""Provider connections in admin. Credentials are write-only: the form shows which keys are
stored, never their values, and an empty field keeps what is stored."""

import json

from django import forms
from django.contrib import admin
from django.db import models

from channels_app.crypto import CredentialsUnreadable
from channels_app.models import ProviderConnection
from channels_app.registry import ADAPTERS


def masked(connection: ProviderConnection) -> str:
    try:
        keys = sorted(connection.config)
    except CredentialsUnreadable:
        return "unreadable with the current CREDENTIALS_KEY"
    return ", ".join(f"{key}=••••••" for key in keys) or "(none)"


def https_by_default(field: models.Field, **kwargs) -> forms.Field | None:
    """A model field's form field, URLs without a scheme taken as https (Django 6's default)."""
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return field.formfield(**kwargs)


class ProviderConnectionForm(forms.ModelForm):
    provider = forms.ChoiceField(
        choices=[(name, name) for name in ADAPTERS if name not in ("unrouted",)]
    )
    new_config = forms.CharField(
        label="Credentials (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the stored credentials.",
    )

    class Meta:
        model = ProviderConnection
        formfield_callback = https_by_default
        fields = ("name", "provider", "channel", "senders", "priority", "enabled", "base_url")

    def clean_new_config(self):
        raw = self.cleaned_data["new_config"].strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("Not valid JSON.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def save(self, commit=True):
        connection = super().save(commit=False)
        if self.cleaned_data.get("new_config") is not None:
            connection.config = self.cleaned_data["new_config"]
        if commit:
            connection.save()
        return connection


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(admin.ModelAdmin):
    form = ProviderConnectionForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # as the form's own
    list_display = (
        "__str__",
        "provider",
        "channel",
        "priority",
        "enabled",
        "configuration_error",
        "last_error_at",
    )
    list_filter = ("provider", "channel", "enabled", "configuration_error")
    readonly_fields = ("id", "stored_credentials", "last_error", "last_error_at", "created_at")
    fields = (
        "id",
        "name",
        "provider",
        "channel",
        "senders",
        "priority",
        "enabled",
        "base_url",
        "stored_credentials",
        "new_config",
        "configuration_error",
        "last_error",
        "last_error_at",
        "created_at",
    )
    actions = ["clear_configuration_error"]

    @admin.display(description="Stored credentials")
    def stored_credentials(self, obj: ProviderConnection) -> str:
        return masked(obj) if obj.pk else "—"

    @admin.action(description="Clear the configuration error flag")
    def clear_configuration_error(self, request, queryset):
        queryset.update(configuration_error=False)
