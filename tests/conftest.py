"""Shared fixtures. Service-backed tests skip without Postgres/Redis unless REQUIRE_SERVICES=1,
in which case a missing service is a failure (CI sets it)."""

import base64
import copy

import pytest
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
