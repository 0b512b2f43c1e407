"""Outbound status webhooks to callers (docs/webhooks.md).

The engine calls two functions, inside the transaction that made the change:

- :func:`message_status_changed` when a step's message status changes;
- :func:`workflow_finished` when a run leaves ``running``.

Both only write outbox rows (:mod:`.outbox`); :mod:`.delivery` sends them later, signed
(:mod:`.signing`) over an SSRF-guarded transport (:mod:`.transport`).

This module imports lazily: :mod:`workflows_app.models` imports :mod:`.models` while loading.
"""

from typing import Any


def message_status_changed(step: Any, status: str) -> None:
    from workflows_app.webhooks.outbox import message_status_changed as enqueue

    enqueue(step, status)


def workflow_finished(workflow_id: Any) -> None:
    from workflows_app.webhooks.outbox import workflow_finished as enqueue

    enqueue(workflow_id)
