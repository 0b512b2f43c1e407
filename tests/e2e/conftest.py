"""A real stack for end-to-end tests: gunicorn, a Celery worker and the scheduler, started as
separate processes on the test database (PostgreSQL) and Redis."""

import os

import pytest
import redis
import requests

from tests.conftest import basic_auth
from tests.services import (
    STACK_SETTINGS,
    Stack,
    free_port,
    require_postgres_and_redis,
    test_database_url,
    wait_for,
)


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        redis_url = require_postgres_and_redis()
        database_url = test_database_url()
    env = {
        **os.environ,
        **STACK_SETTINGS,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CONN_MAX_AGE": "0",
    }
    env.pop("CELERY_BROKER_URL", None)
    redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(
        base_url=f"http://127.0.0.1:{free_port()}",
        redis_url=redis_url,
        env=env,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
    )
    for name in ("web", "worker", "scheduler"):
        stack.start(name)
    try:
        wait_for(lambda: _answers(stack.base_url), 30, message="gunicorn to answer")
        yield stack
    finally:
        for process in stack.processes.values():
            process.kill()


def _answers(base_url: str) -> bool:
    try:
        requests.get(base_url + "/beta/workflows/x", timeout=1)
    except requests.RequestException:
        return False
    return True


class Client:
    """The API over real HTTP, as a caller's service would use it."""

    def __init__(self, base_url: str, api_key: str, api_secret: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = basic_auth(api_key, api_secret)

    def create(self, body: dict, path: str = "/beta/workflows") -> str:
        response = self.session.post(self.base_url + path, json=body, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["workflow_uuid"]

    def get(self, workflow_uuid: str) -> dict:
        response = self.session.get(f"{self.base_url}/beta/workflows/{workflow_uuid}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_until_finished(self, workflow_uuid: str, timeout: float = 20) -> dict:
        return wait_for(
            lambda: (run := self.get(workflow_uuid))["status"] != "running" and run,
            timeout,
            interval=0.2,
            message=f"run {workflow_uuid} to finish",
        )


@pytest.fixture
def client(stack, transactional_db, account):
    return Client(stack.base_url, account.account.api_key, account.api_secret)
