"""Sending in batches: a ``send_due`` task claims due steps from Postgres (the queue), calls
their providers, and records every outcome; what one step does never undoes another's."""

import time
from datetime import timedelta

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext

from tests.fixtures import run_of, spec
from workflows_app.models import Event, Step, Workflow
from workflows_app.services import dispatch, send_record
from workflows_app.services.sending import steps_send_due


@pytest.fixture(autouse=True)
def own_cache(settings):
    """Coalescing needs the cache every process shares (Redis); tests get keys of their own,
    since the end-to-end stack's worker (same Redis) clears the flag when it takes a task."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": "test-batch-sending"}
    }
    if settings.REDIS_URL:  # the flag is only ever set there (dispatch.send_due_now)
        cache.delete(dispatch.SEND_DUE_QUEUED)


def _runs(account, *first_recipients: str) -> list[Workflow]:
    """One two-step run per recipient, created in order (so their first steps are due in
    that order)."""
    return [
        run_of(account, spec("sms", recipient, "delivered", 600), spec("sms", "447700900000"))
        for recipient in first_recipients
    ]


def _first(run: Workflow) -> Step:
    return run.steps.get(index=0)


def test_a_task_sends_at_most_its_batch_oldest_first(account):
    runs = _runs(account, *["447700900003"] * 5)
    assert steps_send_due(3) == 3
    assert [_first(run).state for run in runs] == ["waiting"] * 3 + ["pending"] * 2
    assert steps_send_due(3) == 2
    assert steps_send_due(3) == 0
    assert all(_first(run).attempts.count() == 1 for run in runs)


def test_a_batch_starts_together_and_so_shares_its_deadline(account):
    runs = _runs(account, "447700900003", "447700900003", "447700900003")
    steps_send_due(3)
    firsts = [_first(run) for run in runs]
    assert len({step.send_started_at for step in firsts}) == 1
    assert len({step.deadline_at for step in firsts}) == 1
    # Counted from the providers' acceptance (sent_at), not from the start of the calls.
    assert firsts[0].deadline_at == firsts[0].sent_at + timedelta(seconds=600)
    assert firsts[0].sent_at > firsts[0].send_started_at
    # Each step still has its own message and its own Events.
    assert len({step.message_uuid for step in firsts}) == 3
    for step in firsts:
        kinds = list(Event.objects.filter(step=step).values_list("to_state", flat=True))
        assert kinds == ["sending", "waiting"]


def test_each_outcome_in_a_batch_takes_its_own_path(account):
    accepted, rejected, flaky = _runs(account, "447700900003", "447700900001", "447700900005")
    assert steps_send_due(10) == 3
    assert _first(accepted).state == "waiting"
    assert (_first(rejected).state, _first(rejected).failover_reason) == ("failed_over", "rejected")
    retry = _first(flaky)
    assert retry.state == "pending" and retry.attempt_count == 1
    # The rejected run's next step is due now; the retry is not due yet.
    assert steps_send_due(10) == 1
    assert rejected.steps.get(index=1).state == "waiting"
    assert _first(flaky).state == "pending"


@pytest.mark.needs_services("postgresql")  # SQLite's compare-and-sets go row by row (sql.py)
def test_a_batch_the_provider_refuses_fails_over_in_as_many_statements_whatever_its_size(
    account,
):
    """A provider refusing everything (an outage, a bad sender) is when failover matters: the
    steps fail over together, not a few statements each."""

    def statements(count: int) -> int:
        runs = _runs(account, *["447700900001"] * count)
        firsts = [_first(run).id for run in runs]
        with CaptureQueriesContext(connection) as queries:
            assert steps_send_due(count, ids=firsts) == count
        for run in runs:
            assert (_first(run).state, _first(run).message_status) == ("failed_over", "rejected")
            assert run.steps.get(index=1).ready_at is not None  # the next step is due
        return len(queries)

    assert statements(2) == statements(12)


def test_a_due_step_of_a_run_that_ended_is_skipped_not_sent(account):
    (run,) = _runs(account, "447700900003")
    Workflow.objects.filter(id=run.id).update(status="cancelled")  # a race lost long ago
    assert steps_send_due(10) == 0
    step = _first(run)
    assert step.state == "skipped" and step.attempts.count() == 0
    assert Event.objects.filter(step=step, to_state="skipped").exists()


@pytest.mark.needs_services("redis")  # the coalescing flag lives in Redis only
def test_a_full_batch_asks_for_another_task_and_a_short_one_does_not(account):
    _runs(account, *["447700900003"] * 3)
    steps_send_due(2)  # full: more may be waiting
    assert cache.get(dispatch.SEND_DUE_QUEUED) is not None
    dispatch.send_due_started()  # that task starts
    steps_send_due(2)  # one left: the batch is short
    assert cache.get(dispatch.SEND_DUE_QUEUED) is None


@pytest.mark.needs_services("redis")  # the coalescing flag lives in Redis only
def test_requests_coalesce_until_the_queued_task_starts():
    dispatch.send_due_now()
    assert cache.get(dispatch.SEND_DUE_QUEUED) is not None  # queued a task, and said so
    assert cache.add(dispatch.SEND_DUE_QUEUED, 1) is False  # so the next request queues none
    dispatch.send_due_started()
    assert cache.get(dispatch.SEND_DUE_QUEUED) is None  # the next commit queues another


def test_one_step_that_cannot_be_recorded_does_not_undo_the_others(account, monkeypatch):
    runs = _runs(account, "447700900003", "447700900003", "447700900003")
    poisoned = _first(runs[1]).id
    original = send_record.steps_message_status_advance

    def advance(steps, status, **kwargs):
        if any(step.id == poisoned for step in steps):
            raise RuntimeError("injected: this step cannot be recorded")
        return original(steps, status, **kwargs)

    monkeypatch.setattr(send_record, "steps_message_status_advance", advance)
    assert steps_send_due(3) == 3
    states = [_first(run).state for run in runs]
    # The batch's transaction failed; each step was then recorded alone, and only the
    # poisoned one is left `sending`, for the scheduler to settle after SENDING_LEASE.
    assert states == ["waiting", "sending", "waiting"]


@pytest.mark.needs_services("postgresql")  # row locks that another connection holds
@pytest.mark.django_db(transaction=True)
def test_a_step_another_transaction_holds_is_left_to_it(account):
    # Committed rows, which the end-to-end stack's worker (it shares this database and runs
    # until the session ends) could claim too: the held step becomes due only once held, and
    # the other only inside the transaction that claims it.
    with transaction.atomic():
        runs = _runs(account, "447700900003", "447700900003")
        Step.objects.filter(workflow=runs[0], index=0).update(ready_at=Now() + timedelta(seconds=1))
        Step.objects.filter(workflow=runs[1], index=0).update(
            ready_at=F("ready_at") + timedelta(days=1)
        )
    held = _first(runs[0])
    settings_dict = connection.settings_dict
    other = psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"],
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
        password=settings_dict["PASSWORD"] or None,
    )
    try:
        with other.transaction():
            other.execute("SELECT 1 FROM workflows_app_step WHERE id = %s FOR UPDATE", [held.id])
            time.sleep(1.1)  # the held step is due now
            with transaction.atomic():
                Step.objects.filter(workflow=runs[1], index=0).update(ready_at=Now())
                assert steps_send_due(10) == 1  # not blocked: the held step is skipped
            assert _first(runs[1]).state == "waiting"
            assert _first(runs[0]).state == "pending"
        steps_send_due(10)  # released: it is sent (by us, or by that other worker)
        assert _first(runs[0]).state == "waiting"
        assert _first(runs[0]).attempts.count() == 1
    finally:
        other.close()


@pytest.mark.needs_services("postgresql")  # the plan of PostgreSQL's index scan
def test_a_claim_reads_only_the_due_steps_however_many_wait_for_later(account):
    """Steps held back (a rate limit, a retry's backoff) are pending but not due: a claim must
    not read them one by one, or every claim, and every idle poll, costs as much as they are
    many. The claim's scan of the pending index is bounded by the clock, not filtered by it."""
    (run,) = _runs(account, "447700900003")
    due = _first(run)
    copied = {f.attname: getattr(due, f.attname) for f in Step._meta.concrete_fields}
    later = due.ready_at + timedelta(hours=1)
    Step.objects.bulk_create(
        Step(**copied | {"id": None, "index": 10 + n, "message_uuid": None, "ready_at": later})
        for n in range(300)
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the plan of a table too big to scan
        cursor.execute("ANALYZE workflows_app_step")
        with CaptureQueriesContext(connection) as queries:
            assert steps_send_due(10) == 1
        claim = next(q["sql"] for q in queries if "SKIP LOCKED" in q["sql"])
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + claim)
        plan = cursor.fetchone()[0][0]["Plan"]

    def scans(node):
        if "Index Name" in node and node.get("Relation Name") == "workflows_app_step":
            yield node
        for child in node.get("Plans", []):
            yield from scans(child)

    [scan] = scans(plan)
    assert scan["Index Name"] == "step_pending_ready"
    assert "ready_at" in scan.get("Index Cond", ""), scan
    assert scan.get("Rows Removed by Filter", 0) == 0, scan
