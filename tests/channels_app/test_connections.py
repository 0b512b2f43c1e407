"""Provider connections: encrypted at rest, routed by channel, sender and priority, managed
by admin and `add_connection`, and flagged when the provider refuses their configuration."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection as db_connection
from django.test import Client

from channels_app.models import ProviderConnection
from channels_app.registry import routes_for
from tests.channels_app.conftest import SPECS, connect

pytestmark = pytest.mark.django_db


def test_credentials_are_encrypted_at_rest():
    connect(SPECS["twilio"])
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT config_encrypted FROM channels_app_providerconnection")
        [(stored,)] = cursor.fetchall()
    assert "twilio-token" not in stored
    assert ProviderConnection.objects.get().config["auth_token"] == "twilio-token"


def test_the_sandbox_serves_a_channel_with_no_connection():
    [route] = routes_for("sms", {"type": "sms", "number": "447700900001"})
    assert route.adapter.name == "sandbox"


def test_routes_follow_priority_and_the_senders_each_connection_serves():
    connect(SPECS["twilio"], priority=20)
    connect(SPECS["vonage_sms"], priority=10, senders=["447700900001"])
    served = routes_for("sms", {"type": "sms", "number": "+447700900001"})
    assert [r.adapter.name for r in served] == ["vonage_sms", "twilio"]
    other = routes_for("sms", {"type": "sms", "number": "447700999999"})
    assert [r.adapter.name for r in other] == ["twilio"]


def test_a_sender_no_connection_serves_gets_a_configuration_error_not_the_sandbox():
    connect(SPECS["vonage_sms"], senders=["447700900001"])
    [route] = routes_for("sms", {"type": "sms", "number": "447700999999"})
    assert route.adapter.name == "unrouted"


def test_a_connection_lacking_a_required_key_is_skipped_and_logged(caplog):
    skipped = connect(SPECS["twilio"], priority=1, auth_token="")
    connect(SPECS["vonage_sms"], priority=2)
    assert [r.adapter.name for r in routes_for("sms", {"number": "1"})] == ["vonage_sms"]
    [record] = [r for r in caplog.records if r.name == "channels_app.registry"]
    assert record.levelname == "WARNING"
    assert str(skipped.id) in record.getMessage() and "auth_token" in record.getMessage()
    assert "AC0123456789" not in record.getMessage()  # a key's name, never a value


def test_a_channel_whose_only_connection_is_unusable_is_unrouted_not_the_sandbox(settings):
    connect(SPECS["twilio"], account_sid="")
    connect(SPECS["viber"])
    settings.CREDENTIALS_KEY = Fernet.generate_key().decode()  # the viber row: unreadable now
    assert [r.adapter.name for r in routes_for("sms", {"number": "1"})] == ["unrouted"]
    [route] = routes_for("viber_service_msg", {"id": "shop"})
    assert route.adapter.name == "unrouted"


def test_a_flagged_connection_is_tried_last():
    flagged = connect(SPECS["twilio"], priority=1)
    ProviderConnection.objects.filter(id=flagged.id).update(configuration_error=True)
    connect(SPECS["vonage_sms"], priority=50)
    assert [r.adapter.name for r in routes_for("sms", {"number": "1"})] == ["vonage_sms", "twilio"]


def test_routes_carry_the_base_url_and_timeouts(settings):
    settings.PROVIDER_READ_TIMEOUT = 7.5
    settings.PUBLIC_BASE_URL = "https://orch.example.com"
    row = connect(SPECS["twilio"], base_url="http://127.0.0.1:9")
    [route] = routes_for("sms", {"number": "1"})
    assert route.config["base_url"] == "http://127.0.0.1:9"
    assert route.config["read_timeout"] == 7.5
    assert route.config["receipt_url"] == (
        f"https://orch.example.com/webhooks/receipts/twilio/{row.id}"
    )
    assert "twilio-token" not in repr(route)


def test_add_connection_stores_an_encrypted_connection_and_prints_its_id():
    out = io.StringIO()
    call_command(
        "add_connection",
        "--provider=vonage_sms",
        "--channel=sms",
        "--senders=447700900001,Acme",
        '--config={"api_key": "k", "api_secret": "s3cret"}',
        "--priority=5",
        "--base-url=http://127.0.0.1:8090",
        stdout=out,
    )
    row = ProviderConnection.objects.get(id=out.getvalue().strip())
    assert (row.provider, row.channel, row.senders, row.priority) == (
        "vonage_sms",
        "sms",
        ["447700900001", "Acme"],
        5,
    )
    assert row.config == {"api_key": "k", "api_secret": "s3cret"}
    assert "s3cret" not in row.config_encrypted


def test_admin_never_shows_credentials_back():
    row = connect(SPECS["twilio"])
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    page = client.get(f"/admin/channels_app/providerconnection/{row.id}/change/")
    assert page.status_code == 200
    assert b"twilio-token" not in page.content
    assert b"auth_token=" in page.content


def test_admin_keeps_stored_credentials_when_the_field_is_left_empty():
    row = connect(SPECS["twilio"])
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    form = {
        "name": "renamed",
        "provider": "twilio",
        "channel": "sms",
        "senders": "[]",
        "priority": "3",
        "enabled": "on",
        "base_url": "",
        "new_config": "",
    }
    response = client.post(f"/admin/channels_app/providerconnection/{row.id}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    row.refresh_from_db()
    assert (row.name, row.priority, row.config["auth_token"]) == ("renamed", 3, "twilio-token")
    form["new_config"] = json.dumps({"account_sid": "AC1", "auth_token": "rotated"})
    client.post(f"/admin/channels_app/providerconnection/{row.id}/change/", form)
    row.refresh_from_db()
    assert row.config["auth_token"] == "rotated"
    # A base URL typed without its scheme is https (Django 6's default, ours already).
    form.update(base_url="api.twilio.example", new_config="")
    client.post(f"/admin/channels_app/providerconnection/{row.id}/change/", form)
    row.refresh_from_db()
    assert row.base_url == "https://api.twilio.example"


@pytest.mark.parametrize("provider", ["messenger", "whatsapp"])
def test_the_meta_webhook_handshake_echoes_the_challenge_only_for_our_verify_token(provider):
    row = connect(SPECS[provider], verify_token="let-me-in")
    path = f"/webhooks/receipts/{provider}/{row.id}"
    ok = Client().get(
        path,
        {"hub.mode": "subscribe", "hub.verify_token": "let-me-in", "hub.challenge": "1158201444"},
    )
    assert (ok.status_code, ok.content) == (200, b"1158201444")
    bad = Client().get(
        path, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}
    )
    assert bad.status_code == 403
