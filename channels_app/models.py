"""Provider connections: which provider account sends which channel, for which senders."""

import uuid
from typing import Any

from django.db import models

from channels_app.crypto import decrypt_config, encrypt_config


class ProviderConnection(models.Model):
    """One provider account serving one channel. Credentials are stored encrypted
    (:mod:`channels_app.crypto`) and never shown back in admin, responses, logs or Events."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=32)
    channel = models.CharField(max_length=32)
    # `from` numbers or ids this connection sends for; empty means every sender.
    senders = models.JSONField(default=list, blank=True)
    # Lower is tried first.
    priority = models.IntegerField(default=100)
    enabled = models.BooleanField(default=True)
    config_encrypted = models.TextField(blank=True, default="")
    base_url = models.URLField(
        max_length=500, blank=True, default="", help_text="Regional endpoint, proxy or simulator."
    )
    # Health: set when the provider refuses our credentials or configuration.
    configuration_error = models.BooleanField(default=False)
    last_error = models.CharField(max_length=500, blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel", "priority", "created_at"]
        indexes = [models.Index(fields=["channel", "priority"], name="connection_channel_prio")]

    def __str__(self) -> str:
        return f"{self.name or self.provider} ({self.channel}, {self.id})"

    @property
    def config(self) -> dict[str, Any]:
        return decrypt_config(self.config_encrypted)

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        self.config_encrypted = encrypt_config(value)

    def serves(self, sender: str) -> bool:
        wanted = {str(s).lstrip("+") for s in self.senders or []}
        return not wanted or sender.lstrip("+") in wanted


class ConnectionRate(models.Model):
    """A connection's rate-limit state when no Redis is configured (embedded mode): every worker
    process reads and writes this row with a compare-and-set on ``version``
    (:mod:`channels_app.ratelimit`). With Redis the same state lives in a Redis hash."""

    key = models.CharField(max_length=100, primary_key=True)
    state = models.CharField(max_length=200, blank=True, default="")  # GCRA's TAT, in µs
    paused_until_us = models.BigIntegerField(default=0)  # a 429's Retry-After: send nothing
    slowed_until_us = models.BigIntegerField(default=0)  # then half the rate until this
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"rate state of {self.key}"


class SandboxRevocation(models.Model):
    """The sandbox's memory of an RCS message's race between delivery and revoke.

    Whichever comes first, the delivered receipt or the revoke, inserts the row and wins; the
    other sees it and backs off (a revoked message is never reported delivered; a delivered one
    cannot be revoked). Only revocable (RCS) sandbox messages get a row.
    """

    provider_message_id = models.CharField(max_length=64, primary_key=True)
    outcome = models.CharField(max_length=16)  # "delivered" or "revoked"
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.provider_message_id}: {self.outcome}"
