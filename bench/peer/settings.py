"""Settings of the DIY peer: its own database (``PEER_DATABASE_URL``), Redis as the broker."""

import os

import environ

env = environ.Env()
SECRET_KEY = "peer-bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["bench.peer"]
ROOT_URLCONF = "bench.peer.urls"
DATABASES = {"default": env.db_url("PEER_DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 60
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PROVIDER_URL = os.environ.get("PEER_PROVIDER_URL", "http://127.0.0.1:8090")
CELERY_BROKER_URL = os.environ["PEER_BROKER_URL"]
CELERY_TASK_DEFAULT_QUEUE = "peer"  # beside the service's own queue on the bench's Redis DB
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
LOGGING = {"version": 1, "root": {"level": "WARNING"}}
