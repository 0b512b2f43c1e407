"""Shared fixtures, and the one rule for what may skip.

A test that needs PostgreSQL or Redis says so with ``@pytest.mark.needs_services`` (optionally
naming them: ``needs_services("redis")``; no name means both). Where the suite does not run
against them, such a test skips; no other test may skip for want of a service. What
``REQUIRE_SERVICES`` (the environment variable) makes of a skip:

- unset or ``0`` (a laptop): ``needs_services`` tests skip without their services, and so does
  a test missing something else it cannot run without (the admin browser test's Chromium);
- ``1`` (CI's PostgreSQL + Redis pass): nothing may skip; a missing service is a failure;
- ``embedded`` (CI's embedded pass: no DATABASE_URL, REDIS_URL or CELERY_BROKER_URL): only the
  ``needs_services`` tests skip; any other skip is a failure, and so is a service configured
  after all (the pass would not test the embedded defaults).
"""

import base64
import copy
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from django.test import TransactionTestCase
from rest_framework.test import APIClient

from workflows_app.services.accounts import account_create

# The canonical request from design.md, with sandbox recipients: Messenger recipient ending
# in 4 is delivered but never read, so the run fails over to SMS when expiry_time passes.
CANONICAL_REQUEST = {
    "template": "failover",
    "workflow": [
        {
            "from": {"type": "messenger", "id": "100200300"},
            "to": {"type": "messenger", "id": "1000000004"},
            "message": {"content": {"type": "text", "text": "Your order has shipped (Messenger)"}},
            "failover": {"expiry_time": 600, "condition_status": "read"},
        },
        {
            "from": {"type": "sms", "number": "447700900001"},
            "to": {"type": "sms", "number": "447700900000"},
            "message": {"content": {"type": "text", "text": "Your order has shipped (SMS)"}},
        },
    ],
}


SERVICES = ("postgresql", "redis")


def require_services_mode() -> str:
    """``REQUIRE_SERVICES`` as one of "", "1", "embedded" (see the module docstring)."""
    value = os.environ.get("REQUIRE_SERVICES", "").strip().lower()
    return "" if value in ("", "0", "false", "no") else value


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        'needs_services(*names): needs PostgreSQL and/or Redis ("postgresql", "redis"; none '
        "named: both); skips without them, and is the only skip CI allows",
    )
    mode = require_services_mode()
    if mode not in ("", "1", "true", "yes", "embedded"):
        raise pytest.UsageError(f"REQUIRE_SERVICES={mode!r}: use 1, embedded, or leave it unset")
    if mode == "embedded":
        from django.conf import settings  # the environment and any .env, as settings read them

        configured = [
            name
            for name, used in (
                ("DATABASE_URL", not settings.EMBEDDED_DATABASE),
                ("REDIS_URL", bool(settings.REDIS_URL)),
                ("CELERY_BROKER_URL", not settings.EMBEDDED_BROKER),
            )
            if used
        ]
        if configured:
            raise pytest.UsageError(
                "REQUIRE_SERVICES=embedded tests the embedded defaults, but "
                f"{', '.join(configured)} is set"
            )
    _own_var_dir(config)


def _own_var_dir(config) -> None:
    """On the embedded broker, give the run a VAR_DIR of its own: the tasks tests queue go to a
    broker folder that the e2e stack's worker reads (as both would share Redis), never to the
    work tree's var/, where `make run`'s worker would find them."""
    from django.conf import settings

    from orchestrator.celery import app

    if not settings.EMBEDDED_BROKER:
        return
    var_dir = Path(tempfile.mkdtemp(prefix="pytest-var-"))
    config.add_cleanup(lambda: shutil.rmtree(var_dir, ignore_errors=True))
    (var_dir / "broker" / "control").mkdir(parents=True)
    options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "data_folder_in": str(var_dir / "broker"),
        "data_folder_out": str(var_dir / "broker"),
        "control_folder": str(var_dir / "broker" / "control"),
    }
    settings.VAR_DIR, settings.BROKER_DIR = var_dir, var_dir / "broker"
    settings.STATIC_ROOT = var_dir / "static"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    app.conf.broker_transport_options = options


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On SQLite, the test database is a file in the run's VAR_DIR rather than in memory, so
    that the processes the e2e tests start can open it too."""
    from django.conf import settings
    from django.db import connections

    database = connections["default"].settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["TEST"]["NAME"] = str(Path(settings.VAR_DIR) / "test.sqlite3")


def missing_services(wanted: tuple[str, ...]) -> list[str]:
    """Which of ``wanted`` the suite does not run against here."""
    from django.db import connection

    from tests.services import redis_url

    missing = []
    if "postgresql" in wanted and connection.vendor != "postgresql":
        missing.append("PostgreSQL (DATABASE_URL)")
    if "redis" in wanted and redis_url() is None:
        missing.append("Redis (REDIS_URL)")
    return missing


SKIPPED_FOR_SERVICES = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Skip (or fail, under REQUIRE_SERVICES=1) a ``needs_services`` test whose services the
    suite does not run against, before its fixtures are set up."""
    marker = item.get_closest_marker("needs_services")
    if marker is None:
        return
    wanted = tuple(marker.args) or SERVICES
    unknown = set(wanted) - set(SERVICES)
    if unknown:
        pytest.fail(f"needs_services: unknown service(s) {sorted(unknown)}", pytrace=False)
    missing = missing_services(wanted)
    if not missing:
        return
    reason = f"{item.name} needs {' and '.join(missing)}"
    if require_services_mode() not in ("", "embedded"):
        pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}", pytrace=False)
    item.stash[SKIPPED_FOR_SERVICES] = True
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``REQUIRE_SERVICES``, a skip is a failure, except a ``needs_services`` test's own
    in the embedded pass: a test that cannot run must say why with the marker."""
    report = yield
    mode = require_services_mode()
    if mode and report.skipped and not hasattr(report, "wasxfail"):
        allowed = mode == "embedded" and item.stash.get(SKIPPED_FOR_SERVICES, False)
        if not allowed:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = f"REQUIRE_SERVICES={mode}: nothing may skip here, but: {reason}"
    return report


def _flush_retrying_deadlocks(original):
    """The e2e stack's scheduler keeps locking step rows while a transactional test's teardown
    TRUNCATEs every table; PostgreSQL may then abort the TRUNCATE as a deadlock victim. The
    flush is safe to repeat, so repeat it (a few times) instead of failing the test."""

    def teardown(self):
        for attempt in range(5):
            try:
                return original(self)
            except Exception as exc:  # CommandError wrapping OperationalError
                cause = exc.__cause__ or exc.__context__ or exc
                if "deadlock detected" not in str(cause) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    return teardown


TransactionTestCase._fixture_teardown = _flush_retrying_deadlocks(
    TransactionTestCase._fixture_teardown
)


@pytest.fixture(autouse=True)
def _no_auth_failure_brake(settings):
    """In-process tests share one client IP and one Redis across the run: lift the brute-force
    brake so that many bad-credential tests do not trip it for each other. The brake's own
    tests (tests/workflows_app/test_auth_brake.py) set their limits explicitly."""
    settings.AUTH_FAILURE_LIMIT_PER_IP = 0
    settings.AUTH_FAILURE_LIMIT_PER_IP_KEY = 0
    settings.AUTH_FAILURE_ALERT_PER_KEY = 0


@pytest.fixture
def canonical_request():
    return copy.deepcopy(CANONICAL_REQUEST)


@pytest.fixture
def account(db):
    """A fresh account; ``.account`` is the model, ``.api_secret`` the plain secret."""
    return account_create(name="test account")


def basic_auth(api_key: str, api_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()


@pytest.fixture
def api_client(account):
    """A DRF test client authenticated as ``account`` with Basic auth."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(account.account.api_key, account.api_secret))
    return client


@pytest.fixture(autouse=True)
def generous_throttle(settings):
    """Request budgets out of the way; tests of throttling set their own."""
    settings.API_THROTTLE_RATES = {"account": "100000/s", "application": "100000/s"}


@pytest.fixture
def application(account):
    """An application of ``account``: ``.application`` the model, ``.private_key`` its PEM."""
    from workflows_app.services.applications import application_create

    return application_create(account=account.account, name="test app")


def make_jwt(app_id, private_key: str, /, **claims) -> str:
    """An RS256 JWT as Vonage's SDKs make it; ``claims`` override (None removes a claim)."""
    import time
    import uuid

    import jwt

    now = int(time.time())
    payload = {"application_id": str(app_id), "iat": now, "jti": str(uuid.uuid4())}
    payload["exp"] = now + 900
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, private_key, algorithm="RS256")


@pytest.fixture
def jwt_client(application):
    """``jwt_client(**claims)``: a client whose next request carries a fresh JWT."""

    def client(**claims) -> APIClient:
        api = APIClient()
        token = make_jwt(application.application.id, application.private_key, **claims)
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return api

    return client
