"""The official Vonage Python SDK (v4), unchanged, against our server: only the host differs.

The SDK always builds ``https://{api_host}``, so it talks to the stack's TLS gunicorn, trusting
the throwaway certificate through ``REQUESTS_CA_BUNDLE`` (which requests honours). The runs it
starts are then followed through the real worker and scheduler.
"""

import pytest
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import AuthenticationError
from vonage_messages import (
    MessengerText,
    Sms,
    ViberText,
    WhatsappText,
)

from workflows_app.models import Workflow
from workflows_app.services.applications import application_create

from .conftest import Client

pytestmark = pytest.mark.e2e


@pytest.fixture
def sdk_env(tls_web, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_web.ca_bundle)
    return tls_web


@pytest.fixture
def app_credentials(transactional_db, account):
    created = application_create(account=account.account, name="sdk app")
    return created


def jwt_vonage(sdk_env, app_credentials) -> Vonage:
    auth = Auth(
        application_id=str(app_credentials.application.id),
        private_key=app_credentials.private_key,
    )
    return Vonage(auth, HttpClientOptions(api_host=sdk_env.host, timeout=10))


def basic_vonage(sdk_env, account) -> Vonage:
    auth = Auth(api_key=account.account.api_key, api_secret=account.api_secret)
    return Vonage(auth, HttpClientOptions(api_host=sdk_env.host, timeout=10))


def api_client_for(stack, account) -> Client:
    """Our own API over plain HTTP, to follow a run to its end (the test DB is flushed after
    each test, which must not race a worker still moving the run)."""
    return Client(stack.base_url, account.account.api_key, account.api_secret)


def sms(to: str = "447700900000") -> Sms:
    return Sms(to=to, from_="447700900001", text="Your order has shipped (SMS)")


def messenger(to: str) -> MessengerText:
    return MessengerText(to=to, from_="100200300", text="Your order has shipped (Messenger)")


SDK_MESSAGES = {
    "sms": lambda: sms(),
    "messenger": lambda: messenger("1000000000"),
    "viber": lambda: ViberText(to="447700900000", from_="16273", text="Shipped (Viber)"),
    "whatsapp": lambda: WhatsappText(to="447700900000", from_="447700900001", text="Shipped"),
}
CHANNEL = {
    "sms": "sms",
    "messenger": "messenger",
    "viber": "viber_service_msg",
    "whatsapp": "whatsapp",
}


@pytest.mark.parametrize("auth", ["jwt", "basic"])
@pytest.mark.parametrize("kind", sorted(SDK_MESSAGES))
def test_the_sdk_sends_each_channel(sdk_env, account, app_credentials, stack, auth, kind):
    vonage = (
        jwt_vonage(sdk_env, app_credentials) if auth == "jwt" else basic_vonage(sdk_env, account)
    )
    response = vonage.messages.send(SDK_MESSAGES[kind]())
    assert response.message_uuid
    assert response.workflow_id is None
    run = Workflow.objects.get(steps__message_uuid=response.message_uuid)
    assert run.account == account.account
    assert run.application == (app_credentials.application if auth == "jwt" else None)
    assert run.steps.get().channel == CHANNEL[kind]
    finished = api_client_for(stack, account).wait_until_finished(str(run.id))
    assert finished["status"] == "completed"


@pytest.mark.parametrize("auth", ["jwt", "basic"])
def test_an_sdk_failover_message_fails_over_when_the_first_is_rejected(
    sdk_env, account, app_credentials, stack, auth
):
    vonage = (
        jwt_vonage(sdk_env, app_credentials) if auth == "jwt" else basic_vonage(sdk_env, account)
    )
    # Sandbox: a recipient ending in 1 is rejected at once; 0 is delivered.
    response = vonage.messages.send(messenger("1000000001"), failover=[sms("447700900000")])
    assert response.message_uuid and response.workflow_id
    api = api_client_for(stack, account)
    run = api.wait_until_finished(response.workflow_id)
    assert run["status"] == "completed"
    assert [(s["channel"], s["state"], s["failover_reason"]) for s in run["steps"]] == [
        ("messenger", "failed_over", "rejected"),
        ("sms", "succeeded", None),
    ]
    assert run["steps"][0]["message_uuid"] == response.message_uuid


def test_an_sdk_failover_message_stops_when_the_first_is_delivered(
    sdk_env, account, app_credentials, stack
):
    vonage = jwt_vonage(sdk_env, app_credentials)
    response = vonage.messages.send(messenger("1000000000"), failover=[sms()])
    api = api_client_for(stack, account)
    run = api.wait_until_finished(response.workflow_id)
    assert run["status"] == "completed"
    assert [s["state"] for s in run["steps"]] == ["succeeded", "skipped"]


def test_the_sdk_sees_a_401_for_another_applications_key(sdk_env, app_credentials, account):
    other = application_create(account=account.account, name="other")
    auth = Auth(application_id=str(app_credentials.application.id), private_key=other.private_key)
    vonage = Vonage(auth, HttpClientOptions(api_host=sdk_env.host, timeout=10))
    with pytest.raises(AuthenticationError):
        vonage.messages.send(sms())
