"""Health, readiness, metrics, structured logs and retention."""

import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import FAST_RETRIES, expire_first_step, two_step_run
from workflows_app.logcontext import LogContextFilter, bind, log_context
from workflows_app.models import (
    Attempt,
    Event,
    Heartbeat,
    IdempotencyKey,
    ProviderMessage,
    Step,
    WebhookDelivery,
    Workflow,
)
from workflows_app.services import health, retention
from workflows_app.services.health import heartbeat_record
from workflows_app.services.scheduler import scheduler_tick
from workflows_app.services.sending import steps_send_due
from workflows_app.services.workflows import workflow_cancel
from workflows_app.webhooks.delivery import workflow_webhooks_deliver


def test_healthz_answers_while_the_process_lives(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_wants_a_recent_scheduler_tick(client, db, monkeypatch):
    # A scheduler of the e2e stack may be ticking on this database, and earlier in-process
    # ticks throttle heartbeat_record: start from no heartbeat at all.
    Heartbeat.objects.all().delete()
    monkeypatch.setattr(health, "_last_beat", {})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["scheduler"] == "never ticked"
    assert response.json()["checks"]["database"] == "ok"
    heartbeat_record("scheduler")
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    Heartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=5))
    assert client.get("/readyz").status_code == 503


def scrape(client, token="t0ken") -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@override_settings(METRICS_TOKEN="t0ken", **FAST_RETRIES)
def test_metrics_count_runs_sends_failovers_and_webhooks(client, account, receiver):  # noqa: F811
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    rejected = two_step_run(account, first="1000000001")
    expiring = two_step_run(account)
    Step.objects.filter(workflow=expiring, index=0).update(
        deadline_at=timezone.now() - timedelta(seconds=0.3)
    )
    expire_first_step(expiring)
    workflow_webhooks_deliver(rejected.id)
    samples = scrape(client)
    assert samples[("orchestrator_workflows_accepted_total", (("api_flavour", "workflows"),))] == 2
    assert samples[("orchestrator_failovers_total", (("reason", "rejected"),))] == 1
    assert samples[("orchestrator_failovers_total", (("reason", "expired"),))] == 1
    sends = ("channel", "messenger"), ("outcome", "error"), ("provider", "sandbox")
    assert samples[("orchestrator_sends_total", sends)] == 1
    assert samples[("orchestrator_timer_lateness_seconds_count", ())] == 1
    assert samples[("orchestrator_timer_lateness_seconds_bucket", (("le", "0.1"),))] == 0
    assert samples[("orchestrator_timer_lateness_seconds_bucket", (("le", "1.0"),))] == 1
    assert samples[("orchestrator_webhook_attempts_total", (("outcome", "delivered"),))] >= 1
    assert samples[("orchestrator_queue_depth", (("kind", "step_due_to_send"),))] == 2
    assert ("orchestrator_oldest_overdue_step_seconds", ()) in samples


@override_settings(METRICS_TOKEN="")
def test_metrics_are_off_without_a_token(client, db):
    assert client.get("/metrics").status_code == 404


def test_json_logs_carry_the_workflow_and_message_uuids():
    from django.conf import settings
    from pythonjsonlogger.json import JsonFormatter

    config = dict(settings.LOGGING["formatters"]["json"])
    config.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(config.pop("format"), **config))
    handler.addFilter(LogContextFilter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    try:
        bind(workflow_uuid="leaked")  # outside any scope: ignored
        with log_context(workflow_uuid="w-1"):
            bind(message_uuid="m-1")  # as steps_send_due does once it knows the message
            logger.warning("step failed over")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "step failed over" and inside["level"] == "WARNING"
    assert (inside["workflow_uuid"], inside["message_uuid"]) == ("w-1", "m-1")
    assert "workflow_uuid" not in outside


@pytest.mark.usefixtures("receiver")
def test_purge_deletes_old_finished_runs_with_their_events_and_webhooks(account):
    old, recent, running = (two_step_run(account) for _ in range(3))
    workflow_cancel(old)
    workflow_cancel(recent)
    Workflow.objects.filter(id=old.id).update(finished_at=timezone.now() - timedelta(days=40))
    assert WebhookDelivery.objects.filter(workflow=old).exists()
    out = io.StringIO()
    call_command("purge_runs", "--older-than", "30", stdout=out)
    assert out.getvalue().strip() == "purged 1 run(s) and 0 expired idempotency key(s)"
    assert set(Workflow.objects.values_list("id", flat=True)) == {recent.id, running.id}
    assert not Event.objects.filter(workflow_id=old.id).exists()
    assert not WebhookDelivery.objects.filter(workflow_id=old.id).exists()
    assert not Step.objects.filter(workflow_id=old.id).exists()


def make_keys(account, names, *, age: timedelta = timedelta(0)) -> None:
    """Store idempotency keys as the API would, created ``age`` ago."""
    for name in names:
        IdempotencyKey.objects.create(
            account=account.account, key=name, method="POST", path="/v1/messages", request_hash="h"
        )
    IdempotencyKey.objects.filter(key__in=names).update(created_at=timezone.now() - age)


def stored_keys() -> set[str]:
    return set(IdempotencyKey.objects.values_list("key", flat=True))


def test_purge_runs_deletes_idempotency_keys_older_than_their_ttl_in_batches(account, settings):
    settings.IDEMPOTENCY_KEY_TTL = 3600
    expired = [f"old-{n}" for n in range(5)]
    make_keys(account, expired, age=timedelta(seconds=3700))
    make_keys(account, ["fresh"], age=timedelta(seconds=3500))
    out = io.StringIO()
    call_command("purge_runs", "--older-than", "30", "--batch", "2", stdout=out)
    assert out.getvalue().strip() == "purged 0 run(s) and 5 expired idempotency key(s)"
    assert stored_keys() == {"fresh"}


def test_a_bounded_key_purge_stops_after_its_batches(account):
    make_keys(account, [f"old-{n}" for n in range(5)], age=timedelta(hours=25))
    assert retention.idempotency_keys_purge(batch=2, max_batches=1) == 2
    assert len(stored_keys()) == 3


@pytest.mark.usefixtures("receiver")
def test_the_scheduler_tick_purges_expired_keys_every_interval_even_without_run_retention(
    account, settings, monkeypatch
):
    settings.PURGE_RUNS_OLDER_THAN_DAYS = 0
    settings.PURGE_INTERVAL = 600
    monkeypatch.setattr(retention, "_last_scheduled_purge", float("-inf"))
    old_run = two_step_run(account)
    workflow_cancel(old_run)
    Workflow.objects.filter(id=old_run.id).update(finished_at=timezone.now() - timedelta(days=400))
    make_keys(account, ["expired"], age=timedelta(hours=25))
    make_keys(account, ["fresh"], age=timedelta(hours=23))
    scheduler_tick()
    assert stored_keys() == {"fresh"}
    assert Workflow.objects.filter(id=old_run.id).exists()  # runs are kept unless configured
    make_keys(account, ["expired-later"], age=timedelta(hours=25))
    scheduler_tick()  # within PURGE_INTERVAL of the last purge: nothing is deleted
    assert stored_keys() == {"fresh", "expired-later"}


@pytest.mark.needs_services("redis")
def test_the_redis_cache_reuses_one_client_per_pool(settings):
    from django.core.cache import cache

    backend = cache._cache  # Django's client object behind the cache
    assert backend.get_client(write=True) is backend.get_client(write=True)
    cache.set("test-cache-client", {"n": 1}, 5)
    assert cache.add("test-cache-client", 2, 5) is False
    assert cache.get("test-cache-client") == {"n": 1}
    cache.delete("test-cache-client")


@override_settings(METRICS_TOKEN="t0ken")
def test_the_delivered_twice_spend_counts_prices_that_came_only_with_receipts(client, account):
    workflow = two_step_run(account)
    expire_first_step(workflow)
    steps_send_due(ids=[workflow.steps.get(index=1).id])
    first, second = workflow.steps.order_by("index")
    Attempt.objects.filter(step=first).update(price_amount="0.0100", price_currency="EUR")
    # The second message's price arrived only on its receipt (as Vonage Messages reports it).
    ProviderMessage.objects.filter(attempt__step=second).update(
        price_amount="0.0333", price_currency="EUR"
    )
    Step.objects.filter(workflow=workflow).update(message_status="delivered")
    samples = scrape(client)
    assert samples[("orchestrator_runs_delivered_twice", ())] == 1
    twice = ("orchestrator_runs_delivered_twice_spend_total", (("currency", "EUR"),))
    assert samples[twice] == pytest.approx(0.0433)
