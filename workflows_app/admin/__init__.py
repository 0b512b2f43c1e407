"""The operator console: find runs, read each as a timeline, cancel a run, redeliver a webhook.

Everything is read-only except those actions (and an account's or application's status URL);
every action is logged as an Event with the operator's name. Staff only (Django admin's rule);
actions also need the model's change permission.

Django's admin autodiscovery imports this package; each module registers its models.
"""

from workflows_app.admin import accounts, runs, webhooks

__all__ = ["accounts", "runs", "webhooks"]
