"""Shared fixtures. Service-backed tests skip without Postgres/Redis unless REQUIRE_SERVICES=1,
in which case a missing service is a failure (CI sets it)."""

import base64
import copy
import time

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
    settings.AUTH_FAILURE_LIMIT_PER_KEY = 0


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
