"""The Celery app. Configuration lives in settings under the ``CELERY_`` namespace."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
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
