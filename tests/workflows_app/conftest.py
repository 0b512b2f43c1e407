"""Fixtures for the Workflows / Dispatch API tests: a second account, raw posting, store counts."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import basic_auth
from tests.webhook_receiver import Receiver
from workflows_app.models import Account, Event, Step, Workflow
from workflows_app.services.accounts import account_create

ENDPOINTS = {"/beta/workflows": "workflow_uuid", "/v0.1/dispatch": "dispatch_uuid"}


@pytest.fixture
def other_client(db):
    """A client authenticated as a second, unrelated account."""
    other = account_create(name="other account")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(other.account.api_key, other.api_secret))
    return client


@pytest.fixture
def store_counts(db) -> Callable[[], tuple[int, int, int]]:
    """Returns a function that counts stored (Workflow, Step, Event) rows."""

    def count() -> tuple[int, int, int]:
        return Workflow.objects.count(), Step.objects.count(), Event.objects.count()

    return count


@pytest.fixture
def post_body(api_client) -> Callable[..., Any]:
    """``post_body(body, path=..., content_type=..., **headers)``: POST a raw body.

    ``body`` may be bytes or str (sent as is) or any JSON value (serialised with
    ``json.dumps``), so tests control exactly what reaches the parser.
    """

    def post(
        body: Any,
        path: str = "/beta/workflows",
        content_type: str = "application/json",
        client: APIClient | None = None,
        **headers: str,
    ):
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return (client or api_client).generic(
            "POST", path, data, content_type=content_type, **headers
        )

    return post


def problem_of(response, status: int, name: str | None = None) -> dict[str, Any]:
    """Check ``response`` is an RFC 7807 problem with ``status`` and return its body.

    With ``name``, also check ``invalid_parameters`` is the single object the Workflows spec
    documents and names exactly that field.
    """
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = json.loads(response.content)
    for key in ("type", "title", "detail", "instance"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    if name is not None:
        invalid = body["invalid_parameters"]
        assert isinstance(invalid, dict), body
        assert set(invalid) == {"name", "reason"}, body
        assert invalid["name"] == name, body
        assert invalid["reason"], body
    return body


@pytest.fixture
def assert_problem() -> Callable[..., dict[str, Any]]:
    """The :func:`problem_of` check, as a fixture."""
    return problem_of


@pytest.fixture
def receiver(account):
    found = Account.objects.get(id=account.account.id)
    item = Receiver(found.signature_secret, found.webhook_secret).start()
    Account.objects.filter(id=found.id).update(status_url=item.url)
    yield item
    item.stop()
