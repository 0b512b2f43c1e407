"""The brute-force brake on Basic credentials: failures counted per client IP and per api_key in
the shared cache, then 429 with Retry-After for the rest of the window."""

import uuid

import pytest
from rest_framework.test import APIClient

from tests.conftest import basic_auth
from tests.workflows_app.conftest import problem_of

pytestmark = pytest.mark.django_db


def fresh_ip() -> str:
    """A client IP no other test has used, so counters from earlier tests never interfere."""
    return "10." + ".".join(str(b) for b in uuid.uuid4().bytes[:3])


def get(path: str, ip: str, api_key: str, api_secret: str):
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=basic_auth(api_key, api_secret))
    return client.get(path)


@pytest.fixture
def limits(settings):
    settings.AUTH_FAILURE_WINDOW = 600
    settings.AUTH_FAILURE_LIMIT_PER_IP = 5
    settings.AUTH_FAILURE_LIMIT_PER_KEY = 8
    return settings


def test_guessing_from_one_ip_is_answered_429_with_retry_after(limits, account):
    ip, key = fresh_ip(), account.account.api_key
    for _ in range(5):
        assert get("/beta/workflows/x", ip, key, "wrong").status_code == 401
    refused = get("/beta/workflows/x", ip, key, "wrong")
    problem_of(refused, 429)
    assert 0 < int(refused["Retry-After"]) <= 600
    # The right secret is refused too while the brake holds: no guess can be confirmed.
    assert get("/beta/workflows/x", ip, key, account.api_secret).status_code == 429
    # Another client is not affected by this IP's failures.
    assert get("/beta/workflows/x", fresh_ip(), key, account.api_secret).status_code == 404


def test_guessing_one_api_key_from_many_ips_is_braked(limits, account):
    key = account.account.api_key
    for _ in range(8):
        assert get("/beta/workflows/x", fresh_ip(), key, "wrong").status_code == 401
    assert get("/beta/workflows/x", fresh_ip(), key, "wrong").status_code == 429
    other = fresh_ip()
    assert get("/beta/workflows/x", other, "someone-else", "wrong").status_code == 401


def test_malformed_credentials_count_as_failures(limits):
    ip = fresh_ip()
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION="Basic !!!not-base64!!!")
    for _ in range(5):
        assert client.get("/beta/workflows/x").status_code == 401
    problem_of(client.get("/beta/workflows/x"), 429)


def test_successful_logins_do_not_count(limits, account):
    ip = fresh_ip()
    for _ in range(20):
        assert (
            get("/beta/workflows/x", ip, account.account.api_key, account.api_secret).status_code
            == 404
        )


def test_a_zero_limit_disables_the_brake(limits, account):
    limits.AUTH_FAILURE_LIMIT_PER_IP = 0
    limits.AUTH_FAILURE_LIMIT_PER_KEY = 0
    ip = fresh_ip()
    for _ in range(12):
        assert get("/beta/workflows/x", ip, account.account.api_key, "wrong").status_code == 401


def test_the_brake_fails_open_while_the_cache_is_unreachable(limits, account):
    from tests.services import free_port

    limits.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    ip, key = fresh_ip(), account.account.api_key
    for _ in range(7):
        assert get("/beta/workflows/x", ip, key, "wrong").status_code == 401
    assert get("/beta/workflows/x", ip, key, account.api_secret).status_code == 404


def test_a_jwt_is_refused_with_503_while_its_replay_check_cannot_run(limits, jwt_client):
    """Without Redis the jti cannot be checked: fail closed, with a clear 503 (not a 500)."""
    from tests.services import free_port

    limits.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    response = jwt_client().get("/beta/workflows/x")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response["Content-Type"] == "application/problem+json"
