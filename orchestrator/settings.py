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
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels_app",
    "workflows_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files (collected into STATIC_ROOT) from gunicorn.
    "whitenoise.middleware.WhiteNoiseMiddleware",
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
    # Server-side parameter binding, and psycopg preparing a statement after five runs on a
    # connection: PostgreSQL then parses and plans each of the engine's statements once per
    # connection instead of on every run (a new run's INSERT: 1.2 -> 0.7 ms of its CPU). Off
    # behind a PgBouncer in transaction mode, which cannot keep a prepared statement.
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options.setdefault("server_side_binding", True)  # options given in DATABASE_URL win
        options.setdefault("prepare_threshold", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and broker ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
BROKER_DIR = VAR_DIR / "broker"

# The cache every process shares (orchestrator/cache.py): the JWT replay check, the failed-login
# brake and the request budgets count on it across web processes. Without Redis it is a table
# in the database (workflows_app.CacheEntry), so embedded mode keeps those promises too.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "orchestrator.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "orchestrator.cache.DatabaseCache",
            "LOCATION": "orchestrator_cache",
            "TIMEOUT": 300,
            "OPTIONS": {"MAX_ENTRIES": 1000},
        }
    }

# Celery. Timers do not live here (see workflows_app/services/scheduler.py): countdowns are only
# ever armed for deadlines inside TIMER_HORIZON, far below the broker's visibility timeout.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Timers and receipts have their own queue and worker (the Procfile's `timers`), so that they
# never wait behind a backlog of sends on the default queue (docs/reliability.md).
TIMERS_QUEUE = "timers"
CELERY_TASK_ROUTES = {
    name: {"queue": TIMERS_QUEUE}
    for name in ("workflows.expire_step", "workflows.scheduler_tick", "sandbox.emit_receipt")
}
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
    # Kombu's filesystem transport, with message files that appear only once complete (kombu's
    # own lets a consumer read a half-written one, which stops the worker: orchestrator/broker.py).
    CELERY_BROKER_TRANSPORT = "orchestrator.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "control_folder": str(BROKER_DIR / "control"),
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
# Between ticks the scheduler wakes for the earliest deadline, but at most this often (s).
TIMER_RESOLUTION = env.float("TIMER_RESOLUTION", default=0.05)
TIMER_HORIZON = env.int("TIMER_HORIZON", default=300)
# A step left `pending` this long after it became due was never picked up: dispatch it again.
PENDING_GRACE = env.float("PENDING_GRACE", default=5.0)
# A step left `sending` this long is an attempt whose worker died: longer than any provider call.
SENDING_LEASE = env.float("SENDING_LEASE", default=60.0)
# A send_due task claims at most this many due steps, calls their providers concurrently and
# records them in one transaction (workflows_app/services/sending.py).
SEND_BATCH_SIZE = env.int("SEND_BATCH_SIZE", default=16)
# Provider calls one worker process keeps in flight (coroutines on its provider-call loop),
# and how long one send_due task goes on claiming before it hands on to the next task, so that
# other tasks on its queue (webhooks, polls) get their turn.
SEND_CONCURRENCY = env.int("SEND_CONCURRENCY", default=1000)
SEND_LOOP_SECONDS = env.float("SEND_LOOP_SECONDS", default=5.0)
SEND_MAX_ATTEMPTS = env.int("SEND_MAX_ATTEMPTS", default=4)
SEND_RETRY_BASE_DELAY = env.float("SEND_RETRY_BASE_DELAY", default=1.0)
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0)
PROVIDER_READ_TIMEOUT = env.float("PROVIDER_READ_TIMEOUT", default=20.0)
# Keep-alive connections a worker process keeps per provider connection (channels_app/http.py).
PROVIDER_POOL_SIZE = env.int("PROVIDER_POOL_SIZE", default=SEND_CONCURRENCY)
# Revoke before fallback (RCS): the longest a revoke request may delay the next step's send.
REVOKE_TIMEOUT = env.float("REVOKE_TIMEOUT", default=2.0)

# --- Provider connections and receipts -----------------------------------------------------
# Fernet key(s) that encrypt provider credentials at rest: comma-separated, the first encrypts
# and all decrypt (rotation). Unset, a key is derived from SECRET_KEY so embedded mode works;
# set a real one (`Fernet.generate_key()`) in production, since changing SECRET_KEY would then
# make every stored credential unreadable.
CREDENTIALS_KEY = env.str("CREDENTIALS_KEY", default="")
# The public origin providers reach us at (e.g. https://orchestrator.example.com). When set,
# adapters that accept a per-message callback (Twilio, Vonage) are given
# PUBLIC_BASE_URL/webhooks/receipts/<provider>/<connection id>; Twilio signatures are checked
# against this origin too, since a proxy may rewrite the Host.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")
RECEIPT_MAX_BODY_BYTES = env.int("RECEIPT_MAX_BODY_BYTES", default=64 * 1024)
# Signed receipts whose own timestamp (Vonage `timestamp`, JWT `iat`) is older than this are
# refused; duplicates within the window are harmless (receipts are deduplicated).
RECEIPT_MAX_AGE = env.int("RECEIPT_MAX_AGE", default=3600)
# A waiting step on a provider that can be polled is polled once this many seconds before its
# deadline, in case its receipt was lost.
POLL_BEFORE_DEADLINE = env.float("POLL_BEFORE_DEADLINE", default=10.0)

SANDBOX_DELIVER_AFTER = env.float("SANDBOX_DELIVER_AFTER", default=1.0)
SANDBOX_READ_AFTER = env.float("SANDBOX_READ_AFTER", default=2.0)
# Fault injection (tests/chaos): seconds the sandbox holds a call after accepting it, so a worker
# can be killed "while it calls a provider"; and a file where it appends one JSON line per call
# it receives, so a harness can count sends per attempt.
SANDBOX_SEND_DELAY = env.float("SANDBOX_SEND_DELAY", default=0.0)
SANDBOX_SEND_LOG = env.str("SANDBOX_SEND_LOG", default="")

REQUIRE_SERVICES = env.bool("REQUIRE_SERVICES", default=False)

# --- Outbound status webhooks (workflows_app/webhooks/, docs/webhooks.md) --------------------
# Loopback and private addresses are callable only when allowed: on by default in the embedded
# mode (`make run` with no DATABASE_URL), off otherwise. Link-local/metadata: always refused.
WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=EMBEDDED_DATABASE)
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0)
# The whole request (connect, send, read the answer) is cut off after this many seconds.
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=15.0)
# Delays before the 2nd, 3rd, … attempt (the first is immediate); ±20 % jitter is added.
# The default (Svix's) spans about 27.5 hours.
WEBHOOK_RETRY_SCHEDULE = [
    float(x)
    for x in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]
WEBHOOK_MAX_RETRY_AFTER = env.float("WEBHOOK_MAX_RETRY_AFTER", default=86400.0)
# An attempt whose worker died is retried after this lease (longer than WEBHOOK_TIMEOUT).
WEBHOOK_LEASE = env.float("WEBHOOK_LEASE", default=60.0)
# A due delivery whose queued task did not run within this many seconds is queued again.
WEBHOOK_DISPATCH_GRACE = env.float("WEBHOOK_DISPATCH_GRACE", default=10.0)
WEBHOOK_SECRET_OVERLAP_HOURS = env.float("WEBHOOK_SECRET_OVERLAP_HOURS", default=24.0)
WEBHOOK_RESPONSE_EXCERPT = 1024

# --- Database outages -----------------------------------------------------------------------
# Seconds an API caller is told to wait (Retry-After on the 503) while the database is down.
DATABASE_UNAVAILABLE_RETRY_AFTER = env.int("DATABASE_UNAVAILABLE_RETRY_AFTER", default=5)

# `make bench` only: serves POST /bench/baseline, the least an accept endpoint must do, to
# compare POST /beta/workflows against (see bench/run.py and docs/benchmarks.md). Off by default.
BENCH_BASELINE_ENDPOINT = env.bool("BENCH_BASELINE_ENDPOINT", default=False)

# --- API ------------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=512 * 1024)
# JWT bearer auth (reference/vonage-api.md §1.6): lifetime = exp - iat, or the default without exp.
JWT_LEEWAY = env.int("JWT_LEEWAY", default=30)
JWT_DEFAULT_LIFETIME = env.int("JWT_DEFAULT_LIFETIME", default=15 * 60)
JWT_MIN_LIFETIME = env.int("JWT_MIN_LIFETIME", default=30)
JWT_MAX_LIFETIME = env.int("JWT_MAX_LIFETIME", default=24 * 3600)
# Each jti is accepted once (the SDKs make a fresh token per request).
JWT_SINGLE_USE = env.bool("JWT_SINGLE_USE", default=True)
# Requests per window, counted on the shared cache: "N/s", "N/m" or "N/h".
API_THROTTLE_RATES = {
    "account": env.str("API_THROTTLE_ACCOUNT", default="100/s"),
    "application": env.str("API_THROTTLE_APPLICATION", default="50/s"),
}
IDEMPOTENCY_KEY_TTL = env.int("IDEMPOTENCY_KEY_TTL", default=24 * 3600)
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["workflows_app.api.auth.AccountAuthentication"],
    "DEFAULT_THROTTLE_CLASSES": [
        "workflows_app.api.throttling.AccountRateThrottle",
        "workflows_app.api.throttling.ApplicationRateThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["workflows_app.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "workflows_app.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Failover orchestrator API",
    "DESCRIPTION": (
        "Self-hosted, Vonage-compatible Workflows/Dispatch and Messages (v0.1, v1) APIs with "
        "per-step failover. See docs/api.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Enums stay inline (`"enum": [...]` where the field is): extracted, same-named fields got
    # components like `CategoryF77Enum`.
    "POSTPROCESSING_HOOKS": [],
}

# The failed-login brake on Basic credentials (workflows_app/api/brake.py, docs/api.md): after
# this many failures in one window from one client address (IPv6: per /64), or for one api_key
# from one address, that address gets 429 with Retry-After until the window ends. Never per
# api_key alone, so nobody can lock a key's owner out; failures for one account's key from any
# address only raise an alert (a WARNING log line) at AUTH_FAILURE_ALERT_PER_KEY. 0 disables.
AUTH_FAILURE_WINDOW = env.int("AUTH_FAILURE_WINDOW", default=60)
AUTH_FAILURE_LIMIT_PER_IP = env.int("AUTH_FAILURE_LIMIT_PER_IP", default=50)
AUTH_FAILURE_LIMIT_PER_IP_KEY = env.int("AUTH_FAILURE_LIMIT_PER_IP_KEY", default=10)
AUTH_FAILURE_ALERT_PER_KEY = env.int("AUTH_FAILURE_ALERT_PER_KEY", default=50)

# --- Static files, i18n, logging ------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# plain: one readable line; json: one JSON object per line with workflow_uuid / message_uuid.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "workflows_app.logcontext.LogContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["ids"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Operations (docs/operations.md) ----------------------------------------------------------
# /readyz fails when the scheduler has not ticked for this many seconds.
READY_SCHEDULER_MAX_AGE = env.float("READY_SCHEDULER_MAX_AGE", default=30.0)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Finished runs older than this many days are deleted by the scheduler (0 = never; see
# `manage.py purge_runs` for a one-off), checked every PURGE_INTERVAL seconds. Idempotency keys
# older than IDEMPOTENCY_KEY_TTL are purged every PURGE_INTERVAL whatever this is.
PURGE_RUNS_OLDER_THAN_DAYS = env.float("PURGE_RUNS_OLDER_THAN_DAYS", default=0.0)
PURGE_INTERVAL = env.float("PURGE_INTERVAL", default=600.0)
