"""Status and inbound URLs are http(s) URLs, refused when stored by every entry point: the
services, the management commands and the admin's model validation (issue 14.8)."""

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from workflows_app.models import Account, Application
from workflows_app.services.accounts import account_create
from workflows_app.services.applications import application_create

pytestmark = pytest.mark.django_db

REFUSED = [
    "file:///etc/passwd",
    "gopher://example.com/_x",
    "ftp://example.com/status",
    "not a url",
    "example.com/status",
    "http://",
    "https://example.com/a\x00b",
    "https://example.com/" + "x" * 2000,
    "javascript:alert(1)",
]
ACCEPTED = ["https://example.com/status", "http://127.0.0.1:9000/hooks?x=1"]


@pytest.mark.parametrize("url", REFUSED)
def test_account_create_refuses_a_status_url_that_is_not_http(url):
    with pytest.raises(ValidationError) as refused:
        account_create(name="a", status_url=url)
    assert "status_url" in refused.value.message_dict
    assert Account.objects.count() == 0


@pytest.mark.parametrize("url", REFUSED)
@pytest.mark.parametrize("field", ["status_url", "inbound_url"])
def test_application_create_refuses_a_url_that_is_not_http(account, url, field):
    with pytest.raises(ValidationError) as refused:
        application_create(account=account.account, name="app", **{field: url})
    assert list(refused.value.message_dict) == [field]
    assert Application.objects.count() == 0


@pytest.mark.parametrize("url", ACCEPTED)
def test_http_and_https_urls_are_stored(account, url):
    assert account_create(name="a", status_url=url).account.status_url == url
    created = application_create(account=account.account, name="app", status_url=url)
    assert created.application.status_url == url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "not a url"])
def test_create_account_says_what_is_wrong_with_the_status_url(url):
    with pytest.raises(CommandError, match=r"--status-url: Enter an absolute http:// or https://"):
        call_command("create_account", "--name", "n", "--status-url", url, stdout=io.StringIO())
    assert Account.objects.count() == 0


@pytest.mark.parametrize("option", ["--status-url", "--inbound-url"])
def test_create_application_says_what_is_wrong_with_the_url(account, option):
    key = account.account.api_key
    with pytest.raises(CommandError, match=f"{option}: Enter an absolute http"):
        call_command(
            "create_application",
            "--api-key",
            key,
            "--name",
            "n",
            option,
            "file:///x",
            stdout=io.StringIO(),
        )
    assert Application.objects.count() == 0


def test_create_account_still_prints_its_credentials_with_a_good_url():
    out = io.StringIO()
    call_command("create_account", "--name", "n", "--status-url", ACCEPTED[0], stdout=out)
    assert set(json.loads(out.getvalue())) >= {"api_key", "api_secret", "signature_secret"}


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/"])
def test_the_admin_form_refuses_the_same_urls(account, url):
    account.account.status_url = url
    with pytest.raises(ValidationError) as refused:
        account.account.full_clean()
    assert "status_url" in refused.value.message_dict
