"""Thin Celery tasks: they take ids (``send_due`` none: the due steps in PostgreSQL are its
input), return early when the state moved on, and call a service. They are queued by name
(:mod:`workflows_app.services.dispatch`), never imported by the services."""

from celery import shared_task
from celery.signals import worker_process_shutdown
from django.conf import settings

from workflows_app.logcontext import log_context
from workflows_app.services import dispatch
from workflows_app.services.polling import step_provider_poll
from workflows_app.services.scheduler import scheduler_tick, steps_expire_due
from workflows_app.services.sending import sends_finish, steps_send_due
from workflows_app.webhooks.delivery import workflow_webhooks_deliver


@shared_task(name=dispatch.SEND_DUE, acks_late=True)
def send_due() -> None:
    dispatch.send_due_started()
    with log_context():
        steps_send_due(budget=settings.SEND_LOOP_SECONDS)


@worker_process_shutdown.connect
def finish_sends(**kwargs) -> None:
    """A worker process stopping first records the provider calls its send loops left."""
    sends_finish()


@shared_task(name=dispatch.EXPIRE_STEP, acks_late=True)
def expire_step(step_id: int) -> None:
    steps_expire_due([step_id])


@shared_task(name=dispatch.SCHEDULER_TICK, acks_late=True)
def tick() -> None:
    scheduler_tick()


@shared_task(name=dispatch.POLL_STEP, acks_late=True)
def poll_step(step_id: int) -> None:
    step_provider_poll(step_id)


@shared_task(name=dispatch.DELIVER_WEBHOOKS, acks_late=True)
def deliver_webhooks(workflow_id: str) -> None:
    with log_context(workflow_uuid=workflow_id):
        workflow_webhooks_deliver(workflow_id)
