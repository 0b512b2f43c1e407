"""The OpenAPI document: it is served, it validates, and the API keeps to it.

The property-based part runs schemathesis over every operation through Django's WSGI app (the
whole middleware, DRF, auth, parsing and database path) inside one test transaction, so runs it
creates never reach a worker. Bounded: a few examples per operation.
"""

import json
import re
from pathlib import Path

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from tests.conftest import basic_auth
from workflows_app.api.messages_v1 import V1_REQUEST
from workflows_app.api.serializers import MESSAGE_REQUEST, WORKFLOW_REQUEST

EXAMPLES_PER_OPERATION = 25


@pytest.mark.django_db
def test_the_schema_is_served_and_is_valid_openapi_3(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    validate_schema(document)  # against the OpenAPI 3 JSON schema
    paths = set(document["paths"])
    for path in (
        "/beta/workflows",
        "/v0.1/dispatch",
        "/beta/workflows/{workflow_id}",
        "/beta/workflows/{workflow_id}/cancel",
        "/v0.1/messages",
        "/beta/messages",
        "/v1/messages",
    ):
        assert path in paths
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"]["scheme"] == "basic"
    assert schemes["bearerAuth"]["scheme"] == "bearer"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_are_served_with_local_assets(client, path):
    response = client.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "static/drf_spectacular_sidecar" in page
    assert "cdn." not in page
    assets = re.findall(r'"(/static/drf_spectacular_sidecar/[^"]+)"', page)
    assert assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def _operations():
    schema = schemathesis.openapi.from_wsgi("/openapi.json", get_wsgi_application())
    return [result.ok() for result in schema.get_all_operations()]


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def keep_test_connection():
    """Django's WSGI handler closes the DB connection after each request (as Django's test
    client prevents); the test transaction must survive, so stop that while the test runs."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_generated_requests_get_no_server_error_and_answers_that_match_the_schema(account):
    headers = {"Authorization": basic_auth(account.account.api_key, account.api_secret)}
    operations = _operations()
    assert len(operations) >= 10
    for operation in operations:

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()


def _document(client) -> dict:
    return json.loads(client.get("/openapi.json").content)


def _readme_curl_body() -> dict:
    """The body of the curl README.md shows (the one `make run` prints)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("curl -X POST http://127.0.0.1:8000/beta/workflows", 1)[1]
    return json.loads(block.split("-d '", 1)[1].split("'", 1)[0])


@pytest.mark.django_db
def test_the_docs_open_with_the_canonical_request(client):
    operation = _document(client)["paths"]["/beta/workflows"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert [example["value"] for example in examples.values()] == [_readme_curl_body()]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/beta/workflows", WORKFLOW_REQUEST),
        ("/v0.1/messages", MESSAGE_REQUEST),
        ("/v1/messages", V1_REQUEST),
    ],
)
def test_every_request_example_is_a_valid_body(client, path, shape):
    content = _document(client)["paths"][path]["post"]["requestBody"]["content"]
    examples = content["application/json"]["examples"]
    assert examples
    for example in examples.values():
        shape.validate(example["value"])  # raises if the example is not one we accept


@pytest.mark.django_db
def test_schema_component_names_read_as_words(client):
    names = list(_document(client)["components"]["schemas"])
    assert "StartWorkflowRequest" in names and "Run" in names and "Step" in names
    for name in names:
        assert re.fullmatch(r"(V1|V01)?([A-Z][a-z]+|SMS)+(V1|V01)?(Request)?", name), name
