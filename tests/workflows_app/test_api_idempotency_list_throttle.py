"""Idempotency-Key on POST, the run list (filters, cursor pagination, tenancy), cancel tenancy,
and request budgets per account and application."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.conftest import basic_auth, make_jwt
from tests.fixtures import SMS_V1
from workflows_app.models import IdempotencyKey, Workflow

from .conftest import problem_of


def client_for(created) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(created.account.api_key, created.api_secret))
    return client


# --- Idempotency-Key ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v1/messages", "/beta/workflows", "/v0.1/messages"])
def test_the_same_key_and_body_return_the_first_answer_and_create_nothing(
    api_client, canonical_request, path
):
    body = {
        "/v1/messages": SMS_V1,
        "/beta/workflows": canonical_request,
        "/v0.1/messages": canonical_request["workflow"][1],
    }[path]
    first = api_client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api_client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Workflow.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_422(api_client):
    api_client.post("/v1/messages", SMS_V1, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    other = {**SMS_V1, "text": "Something else"}
    response = api_client.post("/v1/messages", other, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    problem = problem_of(response, 422)
    assert problem["type"].endswith("#idempotency-key-reused")
    assert Workflow.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_account(api_client, other_client):
    for client in (api_client, other_client):
        response = client.post("/v1/messages", SMS_V1, format="json", HTTP_IDEMPOTENCY_KEY="k")
        assert response.status_code == 202
    assert Workflow.objects.count() == 2
    assert len({w.account_id for w in Workflow.objects.all()}) == 2


@pytest.mark.django_db
def test_a_refused_request_does_not_use_up_its_key(api_client):
    bad = api_client.post(
        "/v1/messages", {**SMS_V1, "to": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert bad.status_code == 422
    good = api_client.post("/v1/messages", SMS_V1, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert good.status_code == 202


@pytest.mark.django_db
def test_a_key_older_than_24_hours_is_forgotten(api_client):
    api_client.post("/v1/messages", SMS_V1, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    IdempotencyKey.objects.update(
        created_at=IdempotencyKey.objects.get().created_at - timedelta(hours=25)
    )
    other = {**SMS_V1, "text": "New day"}
    response = api_client.post("/v1/messages", other, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    assert response.status_code == 202
    assert Workflow.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_refused(api_client, canonical_request, key):
    response = api_client.post("/v1/messages", SMS_V1, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 422  # v1 reports every invalid parameter as a 422
    assert response.json()["invalid_parameters"][0]["name"] == "Idempotency-Key"
    response = api_client.post(
        "/beta/workflows", canonical_request, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    problem_of(response, 400, "Idempotency-Key")
    assert Workflow.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_run(account):
    """Real concurrency (threads, each with its own connection to the database; on SQLite the
    test database is a file): the unique constraint, not luck, decides."""
    results: list[int] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        try:
            client = client_for(account)
            barrier.wait(timeout=10)
            response = client.post(
                "/v1/messages", SMS_V1, format="json", HTTP_IDEMPOTENCY_KEY="race"
            )
            results.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [202] * 4
    assert Workflow.objects.count() == 1


# --- list -----------------------------------------------------------------------------------------


@pytest.fixture
def runs(api_client, canonical_request):
    """Five runs of the caller, oldest first; the second cancelled, the fourth with a ref."""
    created = []
    for index in range(5):
        body = dict(canonical_request, client_ref=f"ref-{index}" if index == 3 else "")
        response = api_client.post("/beta/workflows", body, format="json")
        created.append(response.json()["workflow_uuid"])
    api_client.post(f"/beta/workflows/{created[1]}/cancel")
    return created


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "id_field"),
    [("/beta/workflows", "workflow_uuid"), ("/v0.1/dispatch", "dispatch_uuid")],
)
def test_the_list_is_the_callers_runs_newest_first_in_pages(
    api_client, other_client, runs, canonical_request, path, id_field
):
    other_client.post("/beta/workflows", canonical_request, format="json")
    seen, url = [], f"{path}?page_size=2"
    while url:
        page = api_client.get(url)
        assert page.status_code == 200, page.content
        body = page.json()
        assert len(body["results"]) <= 2
        seen += [run[id_field] for run in body["results"]]
        url = body["next"]
    assert seen == list(reversed(runs))


@pytest.mark.django_db
def test_the_list_filters_by_status_client_ref_and_creation_time(api_client, runs):
    def ids(query: str) -> list[str]:
        response = api_client.get("/beta/workflows?" + query)
        assert response.status_code == 200, response.content
        return [run["workflow_uuid"] for run in response.json()["results"]]

    assert ids("status=cancelled") == [runs[1]]
    assert ids("client_ref=ref-3") == [runs[3]]
    created = {w.id.hex: w.created_at for w in Workflow.objects.all()}
    middle = Workflow.objects.get(id=runs[2]).created_at
    after = ids("created_after=" + middle.isoformat().replace("+00:00", "Z"))
    before = ids("created_before=" + middle.isoformat().replace("+00:00", "Z"))
    assert after == [runs[4], runs[3]]
    assert before == [runs[1], runs[0]]
    assert len(created) == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["status=done", "created_after=yesterday", "page_size=0", "page_size=101", "client_ref=a%00b"],
)
def test_a_bad_filter_is_a_400(api_client, query):
    problem_of(api_client.get("/beta/workflows?" + query), 400)


@pytest.mark.django_db
def test_a_bad_cursor_is_a_problem_not_a_500(api_client, runs):
    response = api_client.get("/beta/workflows?cursor=garbage")
    assert response.status_code in (400, 404)
    assert response["Content-Type"] == "application/problem+json"


# --- cancel tenancy -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/beta/workflows", "/v0.1/dispatch"])
def test_another_account_can_neither_read_nor_cancel_a_run(api_client, other_client, runs, path):
    run = runs[0]
    problem_of(other_client.get(f"{path}/{run}"), 404)
    problem_of(other_client.post(f"{path}/{run}/cancel"), 404)
    assert other_client.get(path).json()["results"] == []
    assert Workflow.objects.get(id=run).status == "running"
    assert api_client.post(f"{path}/{run}/cancel").status_code == 200
    problem_of(api_client.post(f"{path}/{run}/cancel"), 409)


# --- throttling -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_over_the_account_budget_is_a_429_with_rate_limit_headers(settings, api_client):
    settings.API_THROTTLE_RATES = {"account": "3/m", "application": "1000/m"}
    statuses = [api_client.get("/beta/workflows").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api_client.post("/v1/messages", SMS_V1, format="json")
    problem_of(response, 429)
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "0"
    assert int(response["X-RateLimit-Reset"]) > 0
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Workflow.objects.count() == 0


@pytest.mark.django_db
def test_each_account_has_its_own_budget(settings, api_client, other_client):
    settings.API_THROTTLE_RATES = {"account": "2/m", "application": "1000/m"}
    assert [api_client.get("/beta/workflows").status_code for _ in range(3)] == [200, 200, 429]
    assert other_client.get("/beta/workflows").status_code == 200


@pytest.mark.django_db
def test_an_application_has_its_own_budget_within_its_account(settings, account, application):
    settings.API_THROTTLE_RATES = {"account": "1000/m", "application": "2/m"}

    def with_jwt() -> int:
        client = APIClient()
        token = make_jwt(application.application.id, application.private_key)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.get("/beta/workflows").status_code

    assert [with_jwt() for _ in range(3)] == [200, 200, 429]
    assert client_for(account).get("/beta/workflows").status_code == 200
