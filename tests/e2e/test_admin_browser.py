"""The operator console in a real browser: headless Chromium (Debian's package, installed by
scripts/install-browser.sh) driven by Playwright, against the real stack."""

import contextlib
import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tests.fixtures import messenger, run, sms
from tests.services import ROOT, require, wait_for
from tests.webhook_receiver import Receiver
from workflows_app.models import Account

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        require(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require("the playwright package is not installed")


@contextlib.contextmanager
def chromium_page():
    """A page in headless Chromium. Playwright's sync API runs an event loop in this thread, so
    Django refuses ORM calls inside the block: do database work before entering it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def test_an_operator_reads_a_failed_over_run_as_a_timeline(client, stack, account):
    require_browser()
    User.objects.create_superuser("operator", "operator@example.com", "a-long-test-password")
    owner = Account.objects.get(id=account.account.id)
    receiver = Receiver(owner.signature_secret, owner.webhook_secret).start()
    Account.objects.filter(id=owner.id).update(status_url=receiver.url)
    workflow_uuid = client.create(
        run(messenger("1000000001", condition="read", expiry=60), sms("447700900000"))
    )
    client.wait_until_finished(workflow_uuid)
    wait_for(lambda: len(receiver.accepted()) == 4, 20, message="the run's four webhooks")
    receiver.stop()
    with chromium_page() as page:
        try:
            read_the_timeline(page, stack.base_url, workflow_uuid)
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "admin-last-page.png"), full_page=True)


def read_the_timeline(page, base_url: str, workflow_uuid: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(f"{base_url}/admin/workflows_app/workflow/?q={workflow_uuid}")
    row = page.locator("#result_list tbody tr").first.inner_text()
    assert "failed over from messenger → sms" in row, row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row), row  # times with seconds
    page.click(f"#result_list tbody a[href*='{workflow_uuid}']")
    page.wait_for_selector("#run-timeline", timeout=10_000)

    first, second = page.locator("#step-0"), page.locator("#step-1")
    assert "messenger" in first.inner_text() and "failed_over" in first.inner_text()
    assert "failover reason: rejected" in first.inner_text()
    # Rejected at once (a recipient ending in 1): the attempt failed, and no receipt came.
    assert "attempt 1 via sandbox: error" in first.inner_text()
    assert "failed over: rejected" in first.inner_text()
    for step in (first, second):  # rows in time order (a final step's deadline is a day away)
        times = step.locator("li:not(.tl-kind-deadline) .tl-time").all_inner_texts()
        assert times and times == sorted(times), step.inner_text()
    assert "sms" in second.inner_text() and "succeeded" in second.inner_text()
    assert "receipt: delivered" in second.inner_text()
    webhooks = page.locator("#webhook-deliveries").inner_text()
    assert "final report: completed" in webhooks and webhooks.count("delivered") >= 4

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "admin-run-timeline.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
