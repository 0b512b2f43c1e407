"""Applications and JWT bearer auth (reference/vonage-api.md §1.6, reliability.md §6)."""

import base64
import io
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import basic_auth, make_jwt
from workflows_app.models import Application, Workflow
from workflows_app.services.accounts import account_create
from workflows_app.services.applications import application_create

from .conftest import problem_of


def slug(problem: dict) -> str:
    return problem["type"].rsplit("#", 1)[1]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- create_application ------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_application_prints_an_id_and_a_private_key_and_keeps_only_the_public_key(account):
    out = io.StringIO()
    call_command(
        "create_application",
        "--api-key",
        account.account.api_key,
        "--name",
        "shop",
        "--status-url",
        "https://example.com/status",
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    assert set(printed) == {"application_id", "private_key", "webhook_secret"}
    assert printed["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    stored = Application.objects.get(id=printed["application_id"])
    assert stored.account == account.account
    assert stored.status_url == "https://example.com/status"
    assert "PRIVATE" not in stored.public_key
    private = serialization.load_pem_private_key(printed["private_key"].encode(), None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.decode() == stored.public_key


@pytest.mark.django_db
def test_create_application_refuses_an_unknown_api_key():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_application", "--api-key", "nobody", "--name", "x")


# --- accepted tokens ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_created_with_a_jwt_belongs_to_the_application(
    jwt_client, application, canonical_request
):
    response = jwt_client().post("/beta/workflows", canonical_request, format="json")
    assert response.status_code == 202, response.content
    run = Workflow.objects.get(id=response.json()["workflow_uuid"])
    assert run.application == application.application
    assert run.account == application.application.account


@pytest.mark.django_db
def test_a_token_without_exp_is_valid_for_the_default_lifetime(jwt_client, canonical_request):
    # The nexmo-node JwtGenerator sets no exp (reference §1.6).
    response = jwt_client(exp=None).post("/beta/workflows", canonical_request, format="json")
    assert response.status_code == 202, response.content


@pytest.mark.django_db
def test_a_basic_run_has_no_application(api_client, canonical_request):
    response = api_client.post("/beta/workflows", canonical_request, format="json")
    assert Workflow.objects.get(id=response.json()["workflow_uuid"]).application is None


# --- refused tokens -----------------------------------------------------------------------------


def _forged(header: dict, payload: dict, signature: bytes = b"") -> str:
    def part(data) -> str:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.{part(signature) if signature else ''}"


def _claims(application) -> dict:
    now = int(time.time())
    return {
        "application_id": str(application.application.id),
        "iat": now,
        "jti": "j-1",
        "exp": now + 600,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "expected_slug"),
    [
        ("alg none", "unauthorized"),
        ("HS256 signed with the public key", "unauthorized"),
        ("signed by another key", "unauthorized"),
        ("expired", "jwt-expired"),
        ("old without exp", "jwt-expired"),
        ("lifetime over 24 h", "unauthorized"),
        ("lifetime under 30 s", "unauthorized"),
        ("iat in the future", "unauthorized"),
        ("nbf in the future", "unauthorized"),
        ("no jti", "unauthorized"),
        ("no iat", "unauthorized"),
        ("no application_id", "unauthorized"),
        ("application_id not a uuid", "unauthorized"),
        ("unknown application", "invalid-api-key"),
        ("not a jwt", "unauthorized"),
        ("non-ascii", "unauthorized"),
        ("jti not a string", "unauthorized"),
    ],
)
def test_a_bad_token_is_a_401_with_a_vonage_slug_and_stores_nothing(
    application, canonical_request, store_counts, case, expected_slug
):
    app_id, key = application.application.id, application.private_key
    now = int(time.time())
    other_key = application_create(account=application.application.account, name="o").private_key
    tokens = {
        "alg none": lambda: _forged({"alg": "none", "typ": "JWT"}, _claims(application)),
        "HS256 signed with the public key": lambda: _hs256_with(application),
        "signed by another key": lambda: make_jwt(app_id, other_key),
        "expired": lambda: make_jwt(app_id, key, iat=now - 1000, exp=now - 100),
        "old without exp": lambda: make_jwt(app_id, key, iat=now - 3600, exp=None),
        "lifetime over 24 h": lambda: make_jwt(app_id, key, exp=now + 86400 + 60),
        "lifetime under 30 s": lambda: make_jwt(app_id, key, exp=now + 10),
        "iat in the future": lambda: make_jwt(app_id, key, iat=now + 3600, exp=now + 4000),
        "nbf in the future": lambda: make_jwt(app_id, key, nbf=now + 3600),
        "no jti": lambda: make_jwt(app_id, key, jti=None),
        "no iat": lambda: make_jwt(app_id, key, iat=None),
        "no application_id": lambda: make_jwt(app_id, key, application_id=None),
        "application_id not a uuid": lambda: make_jwt(app_id, key, application_id="app-1"),
        "unknown application": lambda: make_jwt("00000000-0000-4000-8000-000000000000", key),
        "not a jwt": lambda: "abc.def.ghi",
        "non-ascii": lambda: "é.é.é",
        "jti not a string": lambda: make_jwt(app_id, key, jti=12345),
    }
    client = APIClient()
    token = tokens[case]()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + token)
    response = client.post("/beta/workflows", canonical_request, format="json")
    problem = problem_of(response, 401)
    assert slug(problem) == expected_slug, problem
    assert store_counts() == (0, 0, 0)


def _hs256_with(application) -> str:
    """The algorithm-confusion attack: HMAC keyed with the (public) RSA key."""
    secret = application.application.public_key.encode()
    header = {"alg": "HS256", "typ": "JWT"}
    import hashlib
    import hmac

    unsigned = _forged(header, _claims(application)).rstrip(".")
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return unsigned + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@pytest.mark.django_db
def test_a_replayed_jti_is_refused_as_revoked(application, canonical_request):
    token = make_jwt(application.application.id, application.private_key)
    first = bearer(token).post("/beta/workflows", canonical_request, format="json")
    assert first.status_code == 202
    again = bearer(token).post("/beta/workflows", canonical_request, format="json")
    assert slug(problem_of(again, 401)) == "jwt-revoked"
    assert Workflow.objects.count() == 1


@pytest.mark.django_db
def test_one_jti_in_two_applications_is_two_tokens(account, application, canonical_request):
    other = application_create(account=account.account, name="second")
    for app in (application, other):
        token = make_jwt(app.application.id, app.private_key, jti="shared-jti")
        assert (
            bearer(token).post("/beta/workflows", canonical_request, format="json").status_code
            == 202
        )


@pytest.mark.django_db
def test_basic_and_bearer_together_are_multiple_auth_methods(
    account, application, canonical_request, store_counts
):
    token = make_jwt(application.application.id, application.private_key)
    client = APIClient()
    basic = basic_auth(account.account.api_key, account.api_secret)
    client.credentials(HTTP_AUTHORIZATION=f"{basic}, Bearer {token}")
    response = client.post("/beta/workflows", canonical_request, format="json")
    assert slug(problem_of(response, 401)) == "multiple-auth-methods"
    assert response["WWW-Authenticate"].startswith("Basic")
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_the_token_is_verified_with_the_named_applications_key_only(canonical_request):
    """A's private key cannot sign for B's application, so A cannot act as B."""
    a, b = account_create(name="A"), account_create(name="B")
    app_a = application_create(account=a.account, name="a")
    app_b = application_create(account=b.account, name="b")
    token = make_jwt(app_b.application.id, app_a.private_key)
    response = bearer(token).post("/beta/workflows", canonical_request, format="json")
    problem_of(response, 401)
    assert Workflow.objects.count() == 0


@pytest.mark.django_db
def test_a_jwt_of_account_a_cannot_read_or_cancel_account_bs_run(canonical_request):
    a, b = account_create(name="A"), account_create(name="B")
    app_a = application_create(account=a.account, name="a")
    client_b = APIClient()
    client_b.credentials(HTTP_AUTHORIZATION=basic_auth(b.account.api_key, b.api_secret))
    run_b = client_b.post("/beta/workflows", canonical_request, format="json").json()[
        "workflow_uuid"
    ]
    for method, path in (
        ("get", f"/beta/workflows/{run_b}"),
        ("post", f"/beta/workflows/{run_b}/cancel"),
        ("get", f"/v0.1/dispatch/{run_b}"),
    ):
        token = make_jwt(app_a.application.id, app_a.private_key)
        problem_of(getattr(bearer(token), method)(path), 404)
    token = make_jwt(app_a.application.id, app_a.private_key)
    listed = bearer(token).get("/beta/workflows").json()
    assert listed["results"] == []
    assert Workflow.objects.get(id=run_b).status == "running"
