"""The operator console in Django admin: find runs, read the timeline, act, and be logged."""

from uuid import uuid4

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.fixtures import expire_first_step, two_step_run
from workflows_app.models import Attempt, Event, Step, WebhookDelivery, Workflow
from workflows_app.webhooks.payloads import workflow_report_body


@pytest.fixture
def operator(client, db):
    # No password: force_login needs none, and hashing one costs a second per test.
    user = User.objects.create(username="operator", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def change_url(workflow: Workflow) -> str:
    return f"/admin/workflows_app/workflow/{workflow.id}/change/"


def listed(workflow: Workflow, page: str) -> bool:
    """Whether a changelist page links to the run (not merely echoes it in the search box)."""
    return f"/admin/workflows_app/workflow/{workflow.id}/change/" in page


def test_a_failed_over_run_reads_as_a_timeline_of_both_steps(operator, account, receiver):
    workflow = two_step_run(account)
    expire_first_step(workflow)
    page = operator.get(change_url(workflow)).content.decode()
    assert 'id="step-0"' in page and 'id="step-1"' in page
    assert "failover reason: expired" in page
    assert "attempt 1 via sandbox: accepted" in page
    assert "UTC for read: passed" in page  # the deadline, marked as the one that passed
    assert 'id="webhook-deliveries"' in page


def test_the_timeline_explains_the_wait_before_a_failover_by_expiry(operator, account, receiver):
    workflow = two_step_run(account)
    waiting = operator.get(change_url(workflow)).content.decode()
    assert "waiting up to 600 s for read (expiry_time)" in waiting
    expire_first_step(workflow)
    page = operator.get(change_url(workflow)).content.decode()
    assert "waited 600 s for read (expiry_time); it did not come, so it failed over" in page


def test_timeline_rows_are_in_time_order(operator, account, receiver):
    from workflows_app.selectors import workflow_timeline

    workflow = two_step_run(account)
    expire_first_step(workflow)
    failover = Event.objects.get(workflow=workflow, step__index=0, to_state="failed_over")
    Step.objects.filter(workflow=workflow, index=0).update(deadline_at=failover.created_at)
    for item in workflow_timeline(workflow):
        times = [entry.at for entry in item.entries if entry.at is not None]
        assert times == sorted(times), [(e.at, e.title) for e in item.entries]
    first = workflow_timeline(workflow)[0].entries
    # The deadline reads before the failover it caused, even at the same instant.
    kinds = [entry.kind for entry in first]
    assert kinds.index("deadline") < kinds.index("failover"), kinds


def test_the_run_list_says_which_channel_delivered_and_shows_seconds(operator, account):
    failed_over = two_step_run(account)
    direct = two_step_run(account, first="1000000009")
    Step.objects.filter(workflow=failed_over, index=0).update(state="failed_over")
    Step.objects.filter(workflow=failed_over, index=1).update(state="succeeded")
    Step.objects.filter(workflow=direct, index=0).update(state="succeeded")
    Step.objects.filter(workflow=direct, index=1).update(state="skipped")
    Workflow.objects.filter(id__in=[failed_over.id, direct.id]).update(status="completed")
    page = operator.get("/admin/workflows_app/workflow/").content.decode()
    assert "Delivered by" in page
    assert "failed over from messenger → sms" in page
    assert '<td class="field-delivered_by">messenger</td>' in page
    created = timezone.localtime(Workflow.objects.get(id=direct.id).created_at)
    assert created.strftime("%Y-%m-%d %H:%M:%S") in page


def test_the_run_list_names_the_step_in_progress(operator, account):
    two_step_run(account)
    page = operator.get("/admin/workflows_app/workflow/").content.decode()
    assert "waiting on messenger" in page


@pytest.mark.parametrize(
    "query",
    [
        "q={uuid}",
        "q={message_uuid}",
        "q=1000000003",
        "q=order-42",
        "channel=sms",
        "provider=sandbox",
        "has_error=no",
        "status__exact=running",
        "late_receipt=no",
    ],
)
def test_runs_are_found_by_search_and_filters(operator, account, query):
    workflow = two_step_run(account)
    other = two_step_run(account, first="1000000009")
    step = workflow.steps.get(index=0)
    url = "/admin/workflows_app/workflow/?" + query.format(
        uuid=workflow.id, message_uuid=step.message_uuid
    )
    page = operator.get(url).content.decode()
    assert listed(workflow, page)
    if "{" in query or "1000000003" in query:
        assert not listed(other, page)


def test_a_search_keeps_the_list_filters(operator, account):
    workflow = two_step_run(account)
    page = operator.get(f"/admin/workflows_app/workflow/?q={workflow.id}&status__exact=completed")
    assert not listed(workflow, page.content.decode())
    page = operator.get(f"/admin/workflows_app/workflow/?q={workflow.id}&status__exact=running")
    assert listed(workflow, page.content.decode())


def test_cancel_from_the_console_is_logged_with_the_operator(operator, account):
    workflow = two_step_run(account)
    response = operator.post(f"/admin/workflows_app/workflow/{workflow.id}/cancel/")
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.status == "cancelled"
    logged = Event.objects.get(workflow=workflow, kind="admin.cancel")
    assert logged.data == {"actor": "operator", "cancelled": True}


def test_redeliver_from_the_console_is_logged(operator, account, receiver):
    workflow = two_step_run(account)
    delivery = WebhookDelivery.objects.get(workflow=workflow)
    WebhookDelivery.objects.filter(id=delivery.id).update(state="failed", next_attempt_at=None)
    operator.post(f"/admin/workflows_app/workflow/{workflow.id}/redeliver/{delivery.id}/")
    delivery.refresh_from_db()
    assert delivery.state == "pending" and delivery.next_attempt_at is not None
    assert Event.objects.filter(workflow=workflow, kind="admin.redeliver_webhook").count() == 1


def test_a_user_who_is_not_staff_sees_nothing(client, db, account):
    workflow = two_step_run(account)
    client.force_login(User.objects.create(username="caller"))
    assert client.get(change_url(workflow)).status_code == 302  # to the admin login
    client.post(f"/admin/workflows_app/workflow/{workflow.id}/cancel/")
    workflow.refresh_from_db()
    assert workflow.status == "running"


# --- cost and delivered twice (issue 17 points 5, 6) ----------------------------------------


def priced(workflow: Workflow, *prices: tuple[str, str] | None) -> None:
    """Each step's accepted attempt reports ``(amount, currency)`` (None: reports nothing). A
    step never sent gets an attempt; the first step's sandbox attempt gets the price."""
    for step, price in zip(workflow.steps.order_by("index"), prices, strict=True):
        attempt = step.attempts.first() or Attempt.objects.create(
            step=step, number=1, provider="sandbox", outcome="accepted"
        )
        amount, currency = price or (None, "")
        Attempt.objects.filter(id=attempt.id).update(price_amount=amount, price_currency=currency)
        Step.objects.filter(id=step.id, message_uuid__isnull=True).update(message_uuid=uuid4())


def list_cell(page: str, workflow: Workflow, field: str) -> str:
    """The text of the run's ``field`` column in the changelist."""
    row = page[page.index(f"/admin/workflows_app/workflow/{workflow.id}/change/") :]
    start = row.index(f'<td class="field-{field}">') + len(f'<td class="field-{field}">')
    return row[start : row.index("</td>", start)]


def test_the_run_list_shows_what_each_run_cost_as_its_report_does(operator, account):
    same = two_step_run(account)
    priced(same, ("0.0150", "EUR"), ("0.0333", "EUR"))
    mixed = two_step_run(account)
    priced(mixed, ("0.0150", "EUR"), ("0.00750", "USD"))
    half = two_step_run(account)
    priced(half, None, ("0.0333", "EUR"))
    unknown = two_step_run(account)
    priced(unknown, None, None)
    page = operator.get("/admin/workflows_app/workflow/").content.decode()
    assert list_cell(page, same, "cost") == "0.0483 EUR"
    assert list_cell(page, mixed, "cost") == "0.015 EUR + 0.0075 USD"
    assert list_cell(page, half, "cost") == "0.0333 EUR"
    assert list_cell(page, unknown, "cost") == ""  # nothing reported: blank, never 0
    report = workflow_report_body(Workflow.objects.get(id=same.id), timezone.now())
    assert report["usage"] == {"currency": "EUR", "price": "0.0483"}


def test_a_price_reported_only_by_receipts_counts_in_the_cost(operator, account):
    workflow = two_step_run(account)
    attempt = workflow.steps.get(index=0).attempts.get()
    attempt.provider_messages.update(price_amount="0.0120", price_currency="EUR")
    page = operator.get("/admin/workflows_app/workflow/").content.decode()
    assert list_cell(page, workflow, "cost") == "0.012 EUR"


def test_the_run_list_marks_runs_delivered_on_several_channels(operator, account):
    twice = two_step_run(account)
    once = two_step_run(account)
    Step.objects.filter(workflow=twice).update(message_status="delivered")
    Step.objects.filter(workflow=twice, index=0).update(message_status="read")
    Step.objects.filter(workflow=once, index=0).update(message_status="read")
    page = operator.get("/admin/workflows_app/workflow/").content.decode()
    assert list_cell(page, twice, "delivered_twice") == "delivered on 2 channels"
    assert list_cell(page, once, "delivered_twice") == ""
    filtered = operator.get("/admin/workflows_app/workflow/?delivered_twice=yes").content.decode()
    assert listed(twice, filtered) and not listed(once, filtered)
    others = operator.get("/admin/workflows_app/workflow/?delivered_twice=no").content.decode()
    assert listed(once, others) and not listed(twice, others)


def test_the_run_page_shows_each_message_price_and_the_total(operator, account):
    workflow = two_step_run(account)
    priced(workflow, ("0.0150", "EUR"), None)
    page = operator.get(change_url(workflow)).content.decode()
    first, second = page.split('id="step-1"')
    assert "price: 0.015 EUR" in first.split('id="step-0"')[1]
    assert "price: not reported" in second
    assert '<span id="run-cost">cost: 0.015 EUR</span>' in page
