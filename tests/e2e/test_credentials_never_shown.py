"""Provider credentials never come back out: not in API answers, logs, Events, Attempts or
admin pages.

Every secret of the connections carries one unique marker string. A run goes through them to
the provider simulator (with a provider error on the way, so error paths are covered too) and
back through signed receipts; then everything a person or a log collector could read is
searched for the marker: the API's answers, the log files of the stack's processes (gunicorn,
worker, scheduler), the logs of in-process code (an adapter's send and failure at DEBUG, a
forged receipt), every Event and Attempt row, webhook bodies, and the admin's list and change
pages of ProviderConnection, Workflow, Step (with its Attempts) and Event.
"""

import json
import logging
import re
import uuid

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client as DjangoClient

from channels_app import http
from channels_app.adapters.base import OutboundMessage
from channels_app.errors import ProviderError
from channels_app.models import ProviderConnection
from channels_app.registry import ADAPTERS, connection_config
from tests.channels_app import conftest as channels
from tests.channels_app.conftest import SPECS, connect
from tests.fixtures import run, summary
from workflows_app.models import Attempt, Event, Step, WebhookDelivery, Workflow

pytestmark = pytest.mark.e2e

simulator_server = channels.simulator_server
simulator = channels.simulator

MARK = "LEAKMARK" + uuid.uuid4().hex[:12]
PASSWORD = "a-long-test-password"


def marked(provider: str) -> dict[str, str]:
    """The provider's secrets, each carrying the marker (identifiers such as api_key or
    account_sid are not secrets: providers echo them in receipts themselves)."""
    return {
        "messenger": {
            "page_access_token": f"{MARK}-page-token",
            "app_secret": f"{MARK}-app-secret",
            "verify_token": f"{MARK}-verify",
        },
        "twilio": {"auth_token": f"{MARK}-twilio-token"},
    }[provider]


def test_provider_credentials_never_appear_anywhere(client, stack, simulator, caplog):
    caplog.set_level(logging.DEBUG)
    messenger = connect(SPECS["messenger"], simulator.base_url, **marked("messenger"))
    twilio = connect(SPECS["twilio"], simulator.base_url, **marked("twilio"))
    simulator.webhook(
        "messenger",
        f"{stack.base_url}/webhooks/receipts/messenger/{messenger.id}",
        marked("messenger")["app_secret"],
    )
    simulator.fault("1000000004", "http_500", times=1)  # an error recorded on the way
    first = SPECS["messenger"].step("1000000004")  # delivered, never read
    second = SPECS["twilio"].step("447700900000")
    workflow_uuid = client.create(
        run(
            {
                "from": first["sender"],
                "to": first["recipient"],
                "message": first["message"],
                "failover": {"condition_status": "read", "expiry_time": 2},
            },
            {"from": second["sender"], "to": second["recipient"], "message": second["message"]},
        )
    )
    result = client.wait_until_finished(workflow_uuid, timeout=30)
    assert summary(result) == [
        ("messenger", "failed_over", "delivered", "expired"),
        ("sms", "succeeded", "delivered", None),
    ], stack.logs()
    assert Attempt.objects.filter(step__workflow_id=workflow_uuid, outcome="error").exists()

    seen: dict[str, str] = {}
    seen["api"] = _api_answers(client, workflow_uuid)
    seen["in-process"] = _in_process(messenger, twilio, simulator) + caplog.text
    seen["database"] = _rows(workflow_uuid)
    seen["admin"] = _admin_pages(stack.base_url, workflow_uuid, [messenger, twilio])
    seen["stack logs"] = "\n".join(
        p.log_path.read_text(errors="replace") for p in stack.processes.values()
    )
    # The search can find what it looks for: the stored rows hold the marker, encrypted only.
    assert (
        MARK
        not in ProviderConnection.objects.filter(id=messenger.id).values_list(
            "config_encrypted", flat=True
        )[0]
    )
    assert MARK in json.dumps(ProviderConnection.objects.get(id=messenger.id).config)
    assert "auth_token" in seen["admin"]  # the page names the stored keys, never their values
    leaks = {where: _around(text) for where, text in seen.items() if MARK in text}
    assert not leaks, leaks


def _api_answers(client, workflow_uuid: str) -> str:
    paths = [
        f"/beta/workflows/{workflow_uuid}",
        "/beta/workflows",
        f"/v0.1/dispatch/{workflow_uuid}",
    ]
    return "\n".join(client.session.get(client.base_url + p, timeout=10).text for p in paths)


def _in_process(messenger, twilio, simulator) -> str:
    """An adapter's send and its failure, and a forged receipt, in this process (caplog)."""
    out = []
    for row, recipient in ((twilio, "447700900000"), (messenger, "1000000000")):
        spec = SPECS[row.provider]
        step = spec.step(recipient)
        message = OutboundMessage(
            channel=row.channel,
            sender=step["sender"],
            recipient=step["recipient"],
            message=step["message"],
            client_ref=str(uuid.uuid4()),
        )
        adapter = ADAPTERS[row.provider]
        out.append(repr(http.run(adapter.send(message, connection_config(row)))))
        simulator.fault(recipient, "http_500", times=1)
        with pytest.raises(ProviderError) as failure:
            http.run(adapter.send(message, connection_config(row)))
        out += [str(failure.value), repr(failure.value), repr(failure.value.__dict__)]
    forged = DjangoClient().post(
        f"/webhooks/receipts/messenger/{messenger.id}",
        data=b'{"object": "page", "entry": []}',
        content_type="application/json",
        headers={"X-Hub-Signature-256": "sha256=00"},
    )
    assert forged.status_code == 403
    out.append(forged.content.decode())
    return "\n".join(out)


def _rows(workflow_uuid: str) -> str:
    events = list(Event.objects.values())
    attempts = list(Attempt.objects.values())
    steps = list(Step.objects.filter(workflow_id=workflow_uuid).values())
    webhooks = list(WebhookDelivery.objects.values("body"))
    return json.dumps([events, attempts, steps, webhooks], default=str)


def _admin_pages(base_url: str, workflow_uuid: str, connections: list) -> str:
    User.objects.filter(username="leak-check").delete()
    User.objects.create_superuser("leak-check", "leak@example.com", PASSWORD)
    session = requests.Session()
    login = session.get(f"{base_url}/admin/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    answer = session.post(
        f"{base_url}/admin/login/",
        data={
            "username": "leak-check",
            "password": PASSWORD,
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
        headers={"Referer": f"{base_url}/admin/login/"},
        timeout=10,
    )
    assert answer.status_code == 200 and "/admin/login/" not in answer.url, answer.text[:500]
    steps = Step.objects.filter(workflow_id=workflow_uuid).values_list("id", flat=True)
    pages = [
        "/admin/channels_app/providerconnection/",
        *(f"/admin/channels_app/providerconnection/{c.id}/change/" for c in connections),
        "/admin/workflows_app/workflow/",
        f"/admin/workflows_app/workflow/{workflow_uuid}/change/",
        "/admin/workflows_app/step/",
        *(f"/admin/workflows_app/step/{s}/change/" for s in steps),  # with its Attempts
        "/admin/workflows_app/event/",
    ]
    texts = []
    for page in pages:
        response = session.get(base_url + page, timeout=10)
        assert response.status_code == 200, (page, response.status_code)
        texts.append(response.text)
    assert Workflow.objects.filter(id=workflow_uuid).exists()
    return "\n".join(texts)


def _around(text: str) -> list[str]:
    return [text[max(0, m.start() - 120) : m.end() + 40] for m in re.finditer(MARK, text)][:3]
