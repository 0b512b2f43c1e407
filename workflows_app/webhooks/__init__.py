"""Outbound status webhooks to callers (docs/webhooks.md).

The engine calls :func:`.outbox.message_status_changed` when a step's message status changes
and :func:`.outbox.workflow_finished` when a run leaves ``running``, inside the transaction that
made the change. Both only write outbox rows; :mod:`.delivery` sends them later, signed
(:mod:`.signing`) over an SSRF-guarded transport (:mod:`.transport`).
"""
