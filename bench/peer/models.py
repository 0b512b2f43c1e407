"""A run and its messages, one row each: what a user's own failover app would keep."""

from django.db import models


class Run(models.Model):
    status = models.CharField(max_length=16, default="running")  # running | completed | error
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"run {self.id}"


class Message(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="messages")
    index = models.IntegerField()
    sender = models.CharField(max_length=64)
    to = models.CharField(max_length=64)
    text = models.TextField()
    expiry_time = models.IntegerField(null=True)
    condition_status = models.CharField(max_length=16, null=True)
    status = models.CharField(max_length=16, default="")  # "" | submitted | delivered | ...
    provider_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    sent_at = models.DateTimeField(null=True)
    failed_over_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"message {self.index} of run {self.run_id}"
