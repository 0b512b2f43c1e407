"""The yardstick for the send path: a task that does nothing, on the same worker and broker.

The bench starts the worker with ``-I bench.tasks``; the service never loads this module.
"""

from celery import shared_task


@shared_task(name="bench.noop", acks_late=True)
def noop(step_id: int) -> None:
    """Take an id like ``send_step`` does, and return."""
