"""Thin Celery tasks: they take ids (``send_due`` none: the due steps in PostgreSQL are its
input), return early when the state moved on, and call a service."""

from celery import shared_task

from workflows_app.logcontext import log_context
from workflows_app.services.dispatch import send_due_started
from workflows_app.services.polling import step_poll
from workflows_app.services.sending import step_send, steps_send_due
from workflows_app.services.timers import scheduler_tick, step_expire
from workflows_app.webhooks.delivery import workflow_webhooks_deliver


@shared_task(name="workflows.send_due", acks_late=True)
def send_due() -> None:
    send_due_started()
    with log_context():
        steps_send_due()


@shared_task(name="workflows.send_step", acks_late=True)
def send_step(step_id: int) -> None:
    with log_context():
        step_send(step_id)


@shared_task(name="workflows.expire_step", acks_late=True)
def expire_step(step_id: int) -> None:
    step_expire(step_id)


@shared_task(name="workflows.scheduler_tick", acks_late=True)
def tick() -> None:
    scheduler_tick()


@shared_task(name="workflows.poll_step", acks_late=True)
def poll_step(step_id: int) -> None:
    step_poll(step_id)


@shared_task(name="workflows.deliver_webhooks", acks_late=True)
def deliver_webhooks(workflow_id: str) -> None:
    with log_context(workflow_uuid=workflow_id):
        workflow_webhooks_deliver(workflow_id)
