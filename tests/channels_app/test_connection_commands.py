"""``manage.py connections list|disable|enable|remove`` and the connections part of ``make
run``'s banner: a forgotten connection is visible and fixable from the command line, and no
credential is ever printed."""

import io
import json
import socket

import pytest
from django.core.management import CommandError, call_command

from channels_app.models import ProviderConnection
from channels_app.registry import routes_for
from tests.channels_app.conftest import SPECS, connect
from workflows_app.management.commands.demo_setup import connections_text

pytestmark = pytest.mark.django_db

SECRET = "SECRETMARK-never-printed"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("connections", *args, stdout=out)
    return out.getvalue()


def dead_url() -> str:
    """A loopback URL nothing listens at (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def listening_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_list_shows_each_connection_with_its_key_names_but_never_a_value(listening_url):
    twilio = connect(SPECS["twilio"], listening_url, auth_token=SECRET)
    messenger = connect(SPECS["messenger"], listening_url, app_secret=SECRET)
    ProviderConnection.objects.filter(id=messenger.id).update(enabled=False)

    text = run("list")
    as_json = run("list", "--json")

    assert SECRET not in text and SECRET not in as_json
    assert f"{twilio.id}  twilio on sms  [enabled]" in text
    assert f"{messenger.id}  messenger on messenger  [disabled]" in text
    assert "config keys: account_sid, auth_token" in text
    assert "problem" not in text
    listed = {row["id"]: row for row in json.loads(as_json)}
    assert listed[str(twilio.id)]["config_keys"] == ["account_sid", "auth_token"]
    assert listed[str(messenger.id)]["enabled"] is False


def test_list_says_when_nothing_answers_at_a_base_url_or_a_required_key_is_missing():
    connect(SPECS["twilio"], dead_url(), auth_token="")
    text = run("list")
    assert "problem: config lacks auth_token" in text
    assert "problem: nothing answers at its base URL" in text
    assert "nothing answers" not in run("list", "--no-probe")


def test_with_no_connection_list_says_the_sandbox_serves_everything():
    assert "sandbox" in run("list")


def test_disable_gives_the_channel_back_to_the_sandbox_and_enable_undoes_it():
    connection = connect(SPECS["twilio"])
    assert [r.adapter.name for r in routes_for("sms", {"number": "1"})] == ["twilio"]

    assert run("disable", str(connection.id)).startswith("disabled twilio on sms")
    assert [r.adapter.name for r in routes_for("sms", {"number": "1"})] == ["sandbox"]
    connection.refresh_from_db()
    assert connection.enabled is False
    assert connection.config["auth_token"]  # kept

    run("enable", str(connection.id))
    assert [r.adapter.name for r in routes_for("sms", {"number": "1"})] == ["twilio"]


def test_remove_deletes_every_named_connection():
    first, second = connect(SPECS["twilio"]), connect(SPECS["vonage_sms"])
    kept = connect(SPECS["messenger"])
    run("remove", str(first.id), str(second.id))
    assert list(ProviderConnection.objects.values_list("id", flat=True)) == [kept.id]


@pytest.mark.parametrize("value", ["not-a-uuid", "5b0c3c4e-0000-4000-8000-000000000000"])
def test_an_unknown_id_is_a_clear_error_and_changes_nothing(value):
    connection = connect(SPECS["twilio"])
    with pytest.raises(CommandError, match="no connection"):
        call_command("connections", "disable", str(connection.id), value)
    connection.refresh_from_db()
    assert connection.enabled is True


def test_the_banner_warns_about_an_enabled_connection_whose_base_url_does_not_answer():
    url = dead_url()
    connection = connect(SPECS["messenger"], url, app_secret=SECRET)
    disabled = connect(SPECS["twilio"], url)
    ProviderConnection.objects.filter(id=disabled.id).update(enabled=False)  # not shown

    text = connections_text()

    assert SECRET not in text
    assert f"messenger on messenger via {url}  ({connection.id})" in text
    assert f"WARNING: nothing answers at {url}" in text
    assert f"connections disable {connection.id}" in text
    assert "twilio" not in text
    # The simulator this run starts (after the banner) is not probed.
    assert "WARNING" not in connections_text(simulator_url=url)


def test_the_banner_says_when_the_sandbox_serves_every_channel():
    assert "none, the sandbox serves every channel" in connections_text()
