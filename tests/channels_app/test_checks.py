"""System checks (style rule 9): an enabled provider connection that lacks a credential its
adapter requires, cannot be decrypted, or names an unknown provider is reported as disabled by
`manage.py check --database default`; CREDENTIALS_KEY unset in production by `check --deploy`."""

import os
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from channels_app.models import ProviderConnection
from tests.channels_app.conftest import SPECS, connect
from tests.services import BIN, ROOT


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def channel_warnings(**options) -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(**options) if m.id.startswith("channels_app.")]


@pytest.mark.django_db
def test_every_enabled_connection_that_cannot_send_is_reported_once(settings):
    complete = connect(SPECS["vonage_sms"])
    lacking = connect(SPECS["twilio"], auth_token="", account_sid="")
    unknown = connect(SPECS["twilio"])
    ProviderConnection.objects.filter(id=unknown.id).update(provider="carrier_pigeon")
    off = connect(SPECS["whatsapp"], access_token="")
    ProviderConnection.objects.filter(id=off.id).update(enabled=False)
    found = channel_warnings(databases=["default"])
    assert {m.obj.id: m.id for m in found} == {
        lacking.id: "channels_app.W001",
        unknown.id: "channels_app.W001",
    }
    by_row = {m.obj.id: m.msg for m in found}
    assert "lacks account_sid, auth_token" in by_row[lacking.id]
    assert "unknown provider 'carrier_pigeon'" in by_row[unknown.id]
    assert complete.id not in by_row

    settings.CREDENTIALS_KEY = Fernet.generate_key().decode()  # every stored row: unreadable
    unreadable = channel_warnings(databases=["default"])
    assert complete.id in {m.obj.id for m in unreadable}
    assert all("cannot be decrypted" in m.msg for m in unreadable if m.obj.id == complete.id)


@pytest.mark.django_db
def test_the_check_runs_with_a_database_named_and_fails_at_warning_level():
    connect(SPECS["messenger"], page_access_token="")
    assert channel_warnings() == []  # no database named: Django's rule for DB-reading checks
    call_command("check")
    with pytest.raises(SystemCheckError, match=r"channels_app\.W001.*page_access_token"):
        call_command("check", "--database", "default", "--fail-level", "WARNING")


@pytest.mark.parametrize(
    ("debug", "key", "warned"),
    [(False, "", True), (False, "k", False), (True, "", False)],
)
def test_the_deploy_check_wants_a_credentials_key_when_debug_is_off(settings, debug, key, warned):
    settings.DEBUG, settings.CREDENTIALS_KEY = debug, key
    assert ids(channel_warnings(include_deployment_checks=True)) == (
        ["channels_app.W003"] if warned else []
    )
    assert channel_warnings() == []  # a deploy check only


def manage(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
    }
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_on_an_empty_database_is_not_broken_and_the_check_then_reports(tmp_path):
    """A fresh database: `migrate` runs the database checks before any table exists."""
    before = manage(tmp_path, "check", "--database", "default", "--fail-level", "WARNING")
    assert before.returncode == 0, before.stderr
    migrated = manage(tmp_path, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    added = manage(
        tmp_path,
        "add_connection",
        "--provider",
        "twilio",
        "--channel",
        "sms",
        "--config",
        '{"account_sid": "AC1"}',
    )
    assert added.returncode == 0, added.stderr
    assert "without auth_token this connection is disabled" in added.stderr
    after = manage(tmp_path, "check", "--database", "default", "--fail-level", "WARNING")
    assert after.returncode == 1
    assert "channels_app.W001" in after.stderr and added.stdout.strip() in after.stderr
