"""Settings, read once from the environment (see .env.example for every variable).

With no variables set, the service runs on embedded defaults that need no external server:
SQLite in ``var/`` and Celery's filesystem transport in ``var/broker``. ``DATABASE_URL`` and
``REDIS_URL`` (or ``CELERY_BROKER_URL``) switch it to PostgreSQL and Redis.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env", overwrite=False)
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-change-me-in-production-0123456789")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels_app",
    "workflows_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
EMBEDDED_DATABASE = "DATABASE_URL" not in env
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'orchestrator.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and scheduler share one file: WAL lets readers run beside the writer, and
    # IMMEDIATE transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and broker ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
BROKER_DIR = VAR_DIR / "broker"

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery. Timers do not live here (see workflows_app/services/timers.py): countdowns are only
# ever armed for deadlines inside TIMER_HORIZON, far below the broker's visibility timeout.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_ETA_TASK_LIMIT = env.int("CELERY_WORKER_ETA_TASK_LIMIT", default=10000)
# Celery's Django fixup closes the database connection before and after every task unless this
# is set, so each send paid for a new PostgreSQL connection (a backend fork and the auth
# handshake). orchestrator/celery.py instead runs Django's own per-request check around each
# task (close_old_connections: CONN_MAX_AGE, broken connections), as the web process does.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
if EMBEDDED_BROKER:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = False

# --- The engine -----------------------------------------------------------------------------
WORKFLOWS_MIN_EXPIRY_TIME = env.int("WORKFLOWS_MIN_EXPIRY_TIME", default=15)
WORKFLOWS_MAX_EXPIRY_TIME = 86400
WORKFLOWS_MAX_STEPS = env.int("WORKFLOWS_MAX_STEPS", default=10)
# The last step has no failover; if no final receipt ever comes, the run ends in `error` after this.
WORKFLOWS_FINAL_STEP_TIMEOUT = env.int("WORKFLOWS_FINAL_STEP_TIMEOUT", default=86400)
SCHEDULER_INTERVAL = env.float("SCHEDULER_INTERVAL", default=1.0)
SCHEDULER_BATCH_SIZE = env.int("SCHEDULER_BATCH_SIZE", default=500)
TIMER_HORIZON = env.int("TIMER_HORIZON", default=300)
# A step left `pending` this long after it became due was never picked up: dispatch it again.
PENDING_GRACE = env.float("PENDING_GRACE", default=5.0)
# A step left `sending` this long is an attempt whose worker died: longer than any provider call.
SENDING_LEASE = env.float("SENDING_LEASE", default=60.0)
SEND_MAX_ATTEMPTS = env.int("SEND_MAX_ATTEMPTS", default=4)
SEND_RETRY_BASE_DELAY = env.float("SEND_RETRY_BASE_DELAY", default=1.0)
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0)
PROVIDER_READ_TIMEOUT = env.float("PROVIDER_READ_TIMEOUT", default=20.0)

SANDBOX_DELIVER_AFTER = env.float("SANDBOX_DELIVER_AFTER", default=1.0)
SANDBOX_READ_AFTER = env.float("SANDBOX_READ_AFTER", default=2.0)

REQUIRE_SERVICES = env.bool("REQUIRE_SERVICES", default=False)

# `make bench` only: serves POST /bench/baseline, the least an accept endpoint must do, to
# compare POST /beta/workflows against (see bench/run.py and docs/benchmarks.md). Off by default.
BENCH_BASELINE_ENDPOINT = env.bool("BENCH_BASELINE_ENDPOINT", default=False)

# --- API ------------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=512 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["workflows_app.api.auth.BasicAccountAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["workflows_app.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "workflows_app.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# --- Static files, i18n, logging ------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
