"""The failed-login brake on Basic credentials: failures counted per client address and per
(address, api_key) on the shared cache, then 429 with Retry-After for the rest of the window;
an api_key under attack from many addresses is alerted on, never locked.

The cache is the one the mode configures: Redis with REDIS_URL, else the database table
(orchestrator.cache.DatabaseCache); tests/e2e/test_shared_state_across_processes.py shows both
brake and replay check holding across real processes.
"""

import logging
import uuid

import pytest
from rest_framework.test import APIClient

from tests.conftest import basic_auth
from tests.workflows_app.conftest import problem_of
from workflows_app.api.brake import client_address

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
    settings.AUTH_FAILURE_LIMIT_PER_IP = 8
    settings.AUTH_FAILURE_LIMIT_PER_IP_KEY = 5
    settings.AUTH_FAILURE_ALERT_PER_KEY = 6
    return settings


def test_guessing_one_key_from_one_address_is_answered_429_with_retry_after(limits, account):
    ip, key = fresh_ip(), account.account.api_key
    for _ in range(5):
        assert get("/beta/workflows/x", ip, key, "wrong").status_code == 401
    refused = get("/beta/workflows/x", ip, key, "wrong")
    body = problem_of(refused, 429)
    assert body["title"] == "Too Many Failed Logins"
    assert "failed logins from your address for this API key" in body["detail"]
    assert 0 < int(refused["Retry-After"]) <= 600
    assert f"Try again in {refused['Retry-After']} s" in body["detail"]
    # The right secret is refused too from this address: no guess can be confirmed.
    assert get("/beta/workflows/x", ip, key, account.api_secret).status_code == 429


def test_the_right_secret_from_another_address_works_during_an_attack(limits, account, caplog):
    """Issue 14 point 9: an attacker who knows the api_key cannot lock its owner out."""
    key, owner = account.account.api_key, fresh_ip()
    caplog.set_level(logging.WARNING, logger="workflows_app.api.brake")
    for _ in range(4):  # many addresses, each below its limits, all against one key
        attacker = fresh_ip()
        for _ in range(5):
            assert get("/beta/workflows/x", attacker, key, "wrong").status_code == 401
        assert get("/beta/workflows/x", attacker, key, "wrong").status_code == 429
    # 24 failures for the key: its owner still gets in, from its own address.
    assert get("/beta/workflows/x", owner, key, account.api_secret).status_code == 404
    # ... and the key is alerted on, once per window.
    alerts = [r for r in caplog.records if "failed-login alert" in r.getMessage()]
    assert len(alerts) == 1
    assert key in alerts[0].getMessage()


def test_guessing_many_keys_from_one_address_is_braked_per_address(limits, account):
    ip = fresh_ip()
    for n in range(8):
        assert get("/beta/workflows/x", ip, f"key-{n}", "wrong").status_code == 401
    body = problem_of(get("/beta/workflows/x", ip, "key-9", "wrong"), 429)
    assert "failed logins from your address:" in body["detail"]
    key, secret = account.account.api_key, account.api_secret
    assert get("/beta/workflows/x", ip, key, secret).status_code == 429
    # Another address is not affected by this one's failures.
    assert get("/beta/workflows/x", fresh_ip(), key, secret).status_code == 404


def test_unknown_keys_are_not_alerted_on(limits, caplog):
    caplog.set_level(logging.WARNING, logger="workflows_app.api.brake")
    for _ in range(10):
        get("/beta/workflows/x", fresh_ip(), "no-such-key", "wrong")
    assert not [r for r in caplog.records if "failed-login alert" in r.getMessage()]


def test_malformed_credentials_count_against_the_address(limits):
    ip = fresh_ip()
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION="Basic !!!not-base64!!!")
    for _ in range(8):
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
    limits.AUTH_FAILURE_LIMIT_PER_IP_KEY = 0
    ip = fresh_ip()
    for _ in range(12):
        assert get("/beta/workflows/x", ip, account.account.api_key, "wrong").status_code == 401


def test_ipv6_addresses_are_counted_per_64(limits, account):
    assert client_address("2001:db8:1:2:aaaa::1") == client_address("2001:db8:1:2:bbbb::2")
    assert client_address("2001:db8:1:2::1") != client_address("2001:db8:1:3::1")
    assert client_address("::ffff:192.0.2.7") == "192.0.2.7"
    prefix = "2001:db8:" + ":".join(f"{b:x}" for b in uuid.uuid4().bytes[:2])
    key = account.account.api_key
    for n in range(5):  # one subscriber rotating through its /64
        assert get("/beta/workflows/x", f"{prefix}::{n + 1}", key, "wrong").status_code == 401
    assert get("/beta/workflows/x", f"{prefix}::99", key, "wrong").status_code == 429


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
    """Without the cache the jti cannot be checked: fail closed, with a clear 503 (not a 500)."""
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
