"""The Celery app. Configuration lives in settings under the ``CELERY_`` namespace."""

import os

from celery import Celery
from celery.signals import celeryd_after_setup, task_postrun, task_prerun
from celery.worker import control
from django.conf import settings
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["channels_app.sandbox"])


@task_prerun.connect
@task_postrun.connect
def close_old_db_connections(**kwargs) -> None:
    """Treat each task like a web request: keep the connection for ``CONN_MAX_AGE``, drop it
    if it broke (e.g. PostgreSQL restarted), as Django does around every request. With
    ``CELERY_DB_REUSE_MAX`` set, Celery no longer closes it after every task.
    """
    close_old_connections()


# The timers worker consumes its own queue only. `celery control add_consumer celery`, as an
# operator resumes sends after `cancel_consumer celery`, goes to every worker unless given a
# destination: the timers worker would then run send loops too, and deadlines would wait
# behind them. So a worker started on the timers queue alone refuses any other.
_started_on: frozenset[str] = frozenset()
_add_consumer = control.Panel.data["add_consumer"]


@celeryd_after_setup.connect
def remember_queues(sender, instance, **kwargs) -> None:
    global _started_on
    _started_on = frozenset(instance.app.amqp.queues.consume_from)


@control.control_command(
    args=[("queue", str), ("exchange", str), ("exchange_type", str), ("routing_key", str)],
    signature="<queue> [exchange [type [routing_key]]]",
)
def add_consumer(state, queue, exchange=None, exchange_type=None, routing_key=None, **options):
    """Tell worker(s) to consume from task queue by name (the timers worker: its own only)."""
    if _started_on == {settings.TIMERS_QUEUE} and queue != settings.TIMERS_QUEUE:
        return control.nok(
            f"{state.hostname} consumes {settings.TIMERS_QUEUE} only, so that deadlines never "
            "wait behind sends"
        )
    return _add_consumer(state, queue, exchange, exchange_type, routing_key, **options)
