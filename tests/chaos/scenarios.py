"""The faults. Each function breaks something while traffic flows, and puts it back.

``reference/reliability.md`` §7 lists the matrix these follow: kill -9 workers mid-call, holding
timers and mid-commit; kill and double the scheduler; lose Redis; restart PostgreSQL and cut its
connections; abuse the receipt path.
"""

import json
import os
import random
import threading
import time
import uuid

import requests

from tests.chaos.harness import Context, Scenario
from tests.services import wait_for

WORKERS = ("worker1", "worker2")


def _restart(ctx: Context, name: str, after: float = 0.3) -> None:
    from tests.chaos.harness import DATABASE

    time.sleep(after)
    ctx.stack.start(name, DATABASE_URL=ctx.pg.url(DATABASE, application_name=f"chaos-{name}"))


def _until_traffic_done(ctx: Context, action, pause: tuple[float, float]) -> int:
    """Repeat ``action`` at random pauses until traffic ends, at least ``ctx.size.kills`` times."""
    done = 0
    while done < ctx.size.kills or not ctx.traffic_done.is_set():
        time.sleep(ctx.rng.uniform(*pause))
        action()
        done += 1
        if done >= ctx.size.kills * 3:
            break
    return done


# --- workers ----------------------------------------------------------------------------------


def _worker_of(pid: int, ctx: Context) -> str | None:
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return None
    for name in WORKERS:
        process = ctx.stack.processes.get(name)
        if process and process.popen and process.popen.pid == group:
            return name
    return None


def _call_in_flight(ctx: Context, seen: int) -> tuple[str, dict] | None:
    """The newest accepted sandbox call whose step is still ``sending``, and its worker."""
    from workflows_app.models import Attempt

    lines = ctx.send_log.read_text().splitlines() if ctx.send_log.exists() else []
    for line in reversed(lines[seen:]):
        call = json.loads(line)
        if call["outcome"] != "accepted":
            continue
        attempt = Attempt.objects.filter(id=call["client_ref"]).select_related("step").first()
        name = _worker_of(call["pid"], ctx)
        if attempt and attempt.step.state == "sending" and name:
            return name, call
    return None


def kill_worker_mid_call(ctx: Context) -> None:
    """The sandbox holds each accepted call (SANDBOX_SEND_DELAY); kill -9 the worker making it.

    Expect: the attempt is never repeated; the step is settled as submitted when its lease
    ends and its timer decides.
    """
    hits = 0
    for _ in range(ctx.size.kills * 2):
        seen = 0
        found = None
        deadline = time.monotonic() + 5
        while found is None and time.monotonic() < deadline:
            found = _call_in_flight(ctx, seen)
            time.sleep(0.02)
        if found is None:
            continue
        name, call = found
        ctx.stack.processes[name].kill()
        hits += 1
        _restart(ctx, name)
        if hits >= ctx.size.kills and ctx.traffic_done.is_set():
            break
    ctx.note(f"killed a worker during {hits} provider calls in flight")


def kill_workers_holding_timers(ctx: Context) -> None:
    """Wait until countdowns are armed in the workers' memory, then kill -9 every worker and
    keep them down past those deadlines. Expect: the scheduler fails over from Postgres."""
    from workflows_app.models import Step

    for _ in range(ctx.size.kills):
        wait_for(
            lambda: Step.objects.filter(state="waiting", timer_armed_at__isnull=False).count() >= 5,
            30,
            message="armed timers",
        )
        armed = Step.objects.filter(state="waiting", timer_armed_at__isnull=False).count()
        for name in WORKERS:
            ctx.stack.processes[name].kill()
        time.sleep(ctx.rng.uniform(1.5, 3.0))
        for name in WORKERS:
            _restart(ctx, name, after=0)
        ctx.note(f"killed both workers holding {armed} armed timers")
        time.sleep(1)


COMMITTING = """
SELECT application_name FROM pg_stat_activity
WHERE application_name LIKE 'chaos-worker%%' AND datname = %s
  AND (state IN ('idle in transaction', 'idle in transaction (aborted)')
       OR (state = 'active' AND query ILIKE 'COMMIT%%'))
LIMIT 1
"""


def kill_worker_mid_commit(ctx: Context) -> None:
    """Watch pg_stat_activity for a worker inside a transaction or committing; kill -9 it.

    Expect: PostgreSQL rolls the transaction back (or it committed); either way the step is
    picked up again (pending → re-dispatched; sending → lease) and nothing is sent twice.
    """
    from tests.chaos.harness import DATABASE

    hits = random_kills = 0
    with ctx.pg.admin() as admin:
        for _ in range(ctx.size.kills * 2):
            name = None
            deadline = time.monotonic() + 3
            while name is None and time.monotonic() < deadline:
                row = admin.execute(COMMITTING, (DATABASE,)).fetchone()
                name = row[0].removeprefix("chaos-") if row else None
            if name is None:
                name = ctx.rng.choice(WORKERS)
                random_kills += 1
            else:
                hits += 1
            ctx.stack.processes[name].kill()
            _restart(ctx, name)
            if ctx.traffic_done.is_set() and hits + random_kills >= ctx.size.kills:
                break
    ctx.note(f"killed a worker inside a transaction {hits} times (+{random_kills} at random)")


# --- the scheduler ----------------------------------------------------------------------------


def kill_scheduler(ctx: Context) -> None:
    """kill -9 the scheduler again and again while runs expire; it restarts after a pause."""

    def once() -> None:
        ctx.stack.processes["scheduler"].kill()
        _restart(ctx, "scheduler", after=ctx.rng.uniform(0, 1.5))

    ctx.note(f"killed the scheduler {_until_traffic_done(ctx, once, (0.5, 2.0))} times")


def two_schedulers(ctx: Context) -> None:
    """Three schedulers tick at once for the whole run (the process list starts them)."""
    ctx.traffic_done.wait()
    ctx.note("three schedulers ran side by side")


# --- Redis ------------------------------------------------------------------------------------


def restart_redis_empty(ctx: Context) -> None:
    """kill -9 Redis (no persistence) while runs wait, restart it empty. Every queued send,
    armed countdown and sandbox receipt in it is gone; timers must come from Postgres."""
    from workflows_app.models import Step

    for round_ in range(max(1, ctx.size.kills // 2)):
        wait_for(
            lambda: Step.objects.filter(state="waiting").count() >= 5, 30, message="waiting runs"
        )
        waiting = Step.objects.filter(state="waiting").count()
        ctx.redis.crash()
        time.sleep(ctx.rng.uniform(1.0, 3.0))
        ctx.redis.start()
        ctx.note(f"round {round_ + 1}: Redis lost everything with {waiting} steps waiting")
        time.sleep(2)


# --- PostgreSQL -------------------------------------------------------------------------------


def _probe_while_down(ctx: Context, seconds: float) -> tuple[int, int]:
    """Hit the API while the database is down: (503s with Retry-After, other answers)."""
    good = bad = 0
    session = requests.Session()
    key, secret = ctx.traffic.owner
    session.auth = (key, secret)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for method, path in (("get", "/beta/workflows/x"), ("post", "/beta/workflows")):
            try:
                response = getattr(session, method)(ctx.stack.base_url + path, json={}, timeout=5)
            except requests.RequestException:
                continue
            is_problem = response.headers.get("Content-Type") == "application/problem+json"
            if response.status_code == 503 and response.headers.get("Retry-After") and is_problem:
                good += 1
            else:
                bad += 1
        time.sleep(0.1)
    return good, bad


def restart_postgres(ctx: Context) -> None:
    """Cut every connection (pg_terminate_backend), then crash PostgreSQL (stop -m immediate)
    and start it again. While it is down the API must answer 503 with Retry-After; afterwards
    web, workers and scheduler must carry on by themselves, and nothing accepted is lost."""
    from tests.chaos.harness import DATABASE

    time.sleep(ctx.size.seconds / 4)
    cut = ctx.pg.terminate_backends(DATABASE)
    time.sleep(1)
    cut += ctx.pg.terminate_backends(DATABASE)
    ctx.note(f"terminated {cut} connections")
    for round_ in range(max(1, ctx.size.kills // 2)):
        time.sleep(1.5)
        ctx.pg.stop("immediate")
        good, bad = _probe_while_down(ctx, ctx.rng.uniform(2.0, 4.0))
        ctx.pg.start()
        ctx.note(f"round {round_ + 1}: PostgreSQL down; API answered 503+Retry-After {good}x")
        if bad or not good:
            ctx.traffic.problems.append(
                f"while PostgreSQL was down: {good} good 503s, {bad} other answers"
            )


# --- receipts ---------------------------------------------------------------------------------


def abuse_receipts(ctx: Context) -> None:
    """Receipts duplicated, reordered, and arriving before the send was recorded.

    The sandbox holds each call after accepting it (SANDBOX_SEND_DELAY) and posts its own
    receipts sooner, so they beat the send's record. Meanwhile this thread tails the sandbox's
    call log and, through ``channels_app.receipts.ingest``, sends every receipt the sandbox
    plans for that message again: shuffled, one to three times each, from several threads,
    half of them without the ``client_ref`` (so they match only by provider message id, and
    arrive before that id is stored), plus receipts for message ids nobody sent.
    """
    from django.db import connection

    from channels_app import receipts
    from channels_app.sandbox.fates import fate_of, planned_receipts
    from channels_app.statuses import ReceiptEvent

    sent = 0
    seen = 0

    def inject(call: dict, seed: int) -> None:
        nonlocal sent
        rng = random.Random(seed)
        plan = planned_receipts(fate_of(call["recipient"]), call["channel"], 0, 0)
        batch = [r for r in plan for _ in range(rng.randint(1, 3))]
        rng.shuffle(batch)
        for planned in batch:
            event = ReceiptEvent(
                provider="sandbox",
                provider_message_id=call["provider_message_id"],
                status=planned.status,
                client_ref=call["client_ref"] if rng.random() < 0.5 else "",
                error_code=planned.error_code,
                error_reason=planned.error_reason,
                raw={"injected": True},
            )
            receipts.ingest([event])
            sent += 1
            time.sleep(rng.uniform(0, 0.05))
        connection.close()  # this thread's own connection

    threads: list[threading.Thread] = []
    while not (ctx.traffic_done.is_set() and _all_calls_seen(ctx, seen)):
        lines = ctx.send_log.read_text().splitlines() if ctx.send_log.exists() else []
        for line in lines[seen:]:
            call = json.loads(line)
            if call["outcome"] == "accepted":
                thread = threading.Thread(target=inject, args=(call, ctx.rng.random()))
                thread.start()
                threads.append(thread)
        seen = len(lines)
        unknown = ReceiptEvent("sandbox", f"sbx-{uuid.uuid4()}", "delivered", raw={})
        receipts.ingest([unknown])
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    ctx.note(f"injected {sent} duplicate/reordered/early receipts for {seen} calls")


def _all_calls_seen(ctx: Context, seen: int) -> bool:
    time.sleep(1.0)  # calls already started may still be logged
    lines = ctx.send_log.read_text().splitlines() if ctx.send_log.exists() else []
    return len(lines) == seen


# --- the catalogue ----------------------------------------------------------------------------

NEEDS_SIMULATOR = "issue 4 (manage.py simulate_providers)"
NEEDS_RECEIPT_ENDPOINTS = "issue 4 (HTTP receipt endpoints)"
NEEDS_WEBHOOKS = "issue 5 (status webhooks)"

SCENARIOS = [
    Scenario("worker-kill-mid-call", kill_worker_mid_call, env={"SANDBOX_SEND_DELAY": "0.5"}),
    Scenario("worker-kill-holding-timers", kill_workers_holding_timers, expiries=(2, 5)),
    Scenario("worker-kill-mid-commit", kill_worker_mid_commit),
    Scenario("scheduler-kill", kill_scheduler, expiries=(1, 3)),
    Scenario(
        "three-schedulers",
        two_schedulers,
        processes=("web", "worker1", "worker2", "scheduler", "scheduler2", "scheduler3"),
    ),
    Scenario("redis-restart-empty", restart_redis_empty, expiries=(3, 6), long_share=0.2),
    Scenario("postgres-restart", restart_postgres, expiries=(2, 5)),
    Scenario(
        "receipts-dup-reorder-early",
        abuse_receipts,
        env={
            "SANDBOX_SEND_DELAY": "0.4",
            "SANDBOX_DELIVER_AFTER": "0.1",
            "SANDBOX_READ_AFTER": "0.2",
        },
    ),
    # After the merge of issue 4 (provider simulator) and issue 5 (status webhooks):
    Scenario("provider-5xx-429-slow-reset-malformed", None, requires="issue 4: simulate_providers"),
    Scenario("provider-timeout-after-accept", None, requires="issue 4: simulate_providers"),
    Scenario(
        "receipt-endpoints-forged-stale-oversized", None, requires="issue 4: receipt endpoints"
    ),
    Scenario("webhook-receiver-down", None, requires="issue 5: status webhooks"),
]
