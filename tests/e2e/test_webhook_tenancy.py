"""Tenant isolation of status webhooks through the real stack (design invariant 6: one account
never sees another's data): account B, with webhook receivers of its own, never hears about
account A's runs, whether A authenticates with Basic or with its application's JWT."""

import pytest
import requests

from tests.conftest import make_jwt
from tests.fixtures import messenger, run, sms
from tests.services import wait_for
from tests.webhook_receiver import Receiver
from workflows_app.models import Account, Application, WebhookDelivery
from workflows_app.services.accounts import account_create
from workflows_app.services.applications import application_create

pytestmark = pytest.mark.e2e

# Rejected at once on Messenger, then the SMS is delivered: a run that ends in seconds and
# reports `rejected`, `submitted`, `delivered` and a final report.
QUICK_RUN = run(messenger("1000000001", condition="read", expiry=60), sms("447700900000"))


def receivers_for(account: Account, application: Application) -> tuple[Receiver, Receiver]:
    """Start a receiver for ``account``'s status_url and one for ``application``'s, and point
    both URLs at them. Each verifies with the secrets its owner's webhooks are signed with."""
    at_account = Receiver(account.signature_secret, account.webhook_secret).start()
    at_application = Receiver(account.signature_secret, application.webhook_secret).start()
    Account.objects.filter(id=account.id).update(status_url=at_account.url)
    Application.objects.filter(id=application.id).update(status_url=at_application.url)
    return at_account, at_application


def create_with_jwt(base_url: str, application, body: dict) -> str:
    token = make_jwt(application.application.id, application.private_key)
    response = requests.post(
        base_url + "/beta/workflows",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["workflow_uuid"]


def wait_until_delivered(workflow_uuids: list[str], kinds: int = 4) -> list[WebhookDelivery]:
    """Every delivery of the runs has gone out (each run makes ``kinds`` of them)."""

    def done():
        rows = list(
            WebhookDelivery.objects.filter(workflow_id__in=workflow_uuids).select_related(
                "endpoint"
            )
        )
        finished = len(rows) == kinds * len(workflow_uuids)
        return finished and all(row.state == "delivered" for row in rows) and rows

    return wait_for(done, 30, interval=0.2, message="every webhook of the runs to be delivered")


def test_another_account_never_receives_a_webhook_about_a_run_that_is_not_its_own(
    stack, client, account, application
):
    owner_a = Account.objects.get(id=account.account.id)
    b = account_create(name="account B")
    b_application = application_create(account=b.account, name="B's app")
    a_at_account, a_at_application = receivers_for(owner_a, application.application)
    b_at_account, b_at_application = receivers_for(
        Account.objects.get(id=b.account.id), b_application.application
    )
    receivers = (a_at_account, a_at_application, b_at_account, b_at_application)
    try:
        by_basic = client.create(QUICK_RUN)
        by_jwt = create_with_jwt(stack.base_url, application, QUICK_RUN)
        for workflow_uuid in (by_basic, by_jwt):
            assert client.wait_until_finished(workflow_uuid)["status"] == "completed"
        rows = wait_until_delivered([by_basic, by_jwt])

        assert b_at_account.received == [] and b_at_application.received == []
        a_urls = {a_at_account.url: by_basic, a_at_application.url: by_jwt}
        for row in rows:
            assert row.account_id == owner_a.id and row.endpoint.account_id == owner_a.id
            assert a_urls[row.endpoint.url] == str(row.workflow_id), row.endpoint.url
            assert row.application_id in (None, application.application.id)
        for receiver, workflow_uuid in ((a_at_account, by_basic), (a_at_application, by_jwt)):
            got = receiver.accepted()
            assert len(got) == 4
            assert all(r.jwt_claims["api_key"] == owner_a.api_key for r in got)
            assert all(r.standard_ok for r in got)
            assert all(workflow_uuid in r.body.decode() for r in got)

        # The control: B's receivers are live and do hear about B's own runs.
        b_client = type(client)(stack.base_url, b.account.api_key, b.api_secret)
        b_run = b_client.create(QUICK_RUN)
        b_client.wait_until_finished(b_run)
        wait_until_delivered([b_run])
        assert len(b_at_account.accepted()) == 4 and b_at_application.received == []
        assert all(b_run in r.body.decode() for r in b_at_account.accepted())
        assert len(a_at_account.received) == len(a_at_application.received) == 4
    finally:
        for receiver in receivers:
            receiver.stop()
