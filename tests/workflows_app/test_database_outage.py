"""A database that cannot be reached is a 503 problem with Retry-After, never a 500.

The outage is real: the connection is pointed at a port where nothing listens.
"""

import contextlib

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import basic_auth
from tests.services import free_port
from tests.workflows_app.conftest import problem_of


@contextlib.contextmanager
def database_unreachable(django_db_blocker):
    """Point the connection where no database can be opened: a port where nothing listens
    (PostgreSQL), a file in a directory that does not exist (SQLite). The open connection is
    set aside, not closed: an in-memory SQLite test database would vanish with it."""
    with django_db_blocker.unblock():
        connection.ensure_connection()
        saved_settings = dict(connection.settings_dict)
        saved_connection, connection.connection = connection.connection, None
        if connection.vendor == "sqlite":
            connection.settings_dict["NAME"] = "/nonexistent-directory/orchestrator.sqlite3"
        else:
            connection.settings_dict["PORT"] = str(free_port())
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved_settings)
            connection.connection = saved_connection


@pytest.fixture
def outage(django_db_blocker, settings):
    settings.DATABASE_UNAVAILABLE_RETRY_AFTER = 7
    with database_unreachable(django_db_blocker):
        yield


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/beta/workflows"),
        ("get", "/v0.1/dispatch/x"),
        ("post", "/beta/workflows/x/cancel"),
    ],
)
def test_the_api_answers_503_with_retry_after_while_the_database_is_down(
    outage, canonical_request, method, path
):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth("key", "secret"))
    response = getattr(client, method)(path, canonical_request, format="json")
    body = problem_of(response, 503)
    assert body["type"].endswith("#database-unavailable")
    assert response["Retry-After"] == "7"


def test_pages_outside_the_api_answer_503_too(outage):
    client = Client(raise_request_exception=False)
    response = client.post("/admin/login/", {"username": "a", "password": "b"})
    problem_of(response, 503)
    assert response["Retry-After"] == "7"


@pytest.mark.django_db
def test_the_api_answers_again_once_the_database_is_back(api_client):
    assert api_client.get("/beta/workflows/x").status_code == 404
