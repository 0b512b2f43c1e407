"""The faults. Each function breaks something while traffic flows, and puts it back.

``reference/reliability.md`` §7 lists the matrix these follow: kill -9 workers mid-call, holding
timers and mid-commit; kill and double the scheduler; lose Redis; restart PostgreSQL and cut its
connections; abuse the receipt path (in process and over HTTP); providers that fail, throttle,
hang, reset and garble (through the provider simulator); the caller's webhook receiver down.
"""

import json
import os
import random
import threading
import time
import uuid
from collections import Counter

import requests

from channels_app.sandbox.fates import Fate, fate_of, planned_receipts
from tests.chaos import providers
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
    armed countdown and sandbox receipt in it is gone; timers must come from Postgres.

    On some Redis losses kombu ends the Celery worker ("Unrecoverable error: AttributeError:
    'NoneType' object has no attribute 'hostname'", celery/kombu#970 and its kin), sometimes
    seconds later, once its running tasks end: the supervisor starts it again whenever it
    exits, and the sends Redis lost must still be re-dispatched from Postgres."""
    from workflows_app.models import Step

    ctx.supervise_workers()
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
                connection_ids=("sandbox",),
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


# --- providers (the simulator) ---------------------------------------------------------------


def faults_5xx_429_slow_reset_malformed(ctx: Context) -> None:
    """Before traffic: the simulator meets each fault group with one fault (tests/chaos/
    providers.py). Group 1: HTTP 500 three times (two attempts per connection: SMS moves to
    its second connection, a channel with one connection fails the step over); 2: 429 with
    ``Retry-After: 1`` once; 3: every answer 0.8 s late; 4: the connection reset after the
    request was read, once; 5: accepted with an unreadable body, once."""
    sim = ctx.simulated
    sim.fault("1", "http_500", times=3)
    sim.fault("2", "http_429", times=1, retry_after=1)
    sim.fault("3", "slow", times=0, delay=0.8)
    sim.fault("4", "reset", times=1)
    sim.fault("5", "malformed", times=1)


def faults_timeout_after_accept(ctx: Context) -> None:
    """Before traffic. Group 1: accepted, then the answer comes 3 s later (past the 1.5 s read
    timeout); 2: the simulator takes 2.5 s and then accepts (after the client gave up); 3:
    accepted but no receipt ever posted (Twilio's status API, polled, still knows); 4: reset."""
    sim = ctx.simulated
    sim.fault("1", "timeout_after_accept", times=1, delay=3)
    sim.fault("2", "slow", times=1, delay=2.5)
    sim.fault("3", "drop_receipts", times=1)
    sim.fault("4", "reset", times=1)


def provider_faults(ctx: Context) -> None:
    """Traffic flows through the simulator while it meets recipients with the faults set up
    before. Expect: transient errors retried with backoff inside the deadline (the next
    connection after two), then failover; an answer that never came or could not be read is
    never resent (at most one send per attempt, one acceptance per step, from the simulator's
    own log)."""
    ctx.traffic_done.wait()
    time.sleep(2)  # sends of the last runs may still be on their way
    met = Counter(
        (send["fault"] or "none", send["outcome"])
        for send in providers.read_sends(ctx.simulated.send_log)
    )
    ctx.note("simulator saw " + ", ".join(f"{f}/{o} {n}x" for (f, o), n in sorted(met.items())))


# --- receipts through the HTTP endpoints --------------------------------------------------------


def abuse_receipt_endpoints(ctx: Context) -> None:
    """Receipts through the real HTTP endpoints, for every message the simulator accepted:

    - its genuine, correctly signed receipts again: one to three times each, shuffled (a read
      before its delivery), some before the send was recorded (group 1: the simulator answers
      the send a second late, after posting its receipts);
    - a receipt claiming a status its recipient's fate never produces (tests/chaos/
      receipt_forgery.py), signed with a wrong secret (forged), signed correctly but two
      hours old (stale, where the signature carries a time), and signed correctly but over
      ``RECEIPT_MAX_BODY_BYTES`` (oversized).

    Expect: genuine ones 200 and no-ops when repeated; forged 401/403, stale 403, oversized
    413; and in the Event log no step ever received a status its fate does not produce
    (:func:`receipts_match_fates`).
    """
    from tests.chaos import receipt_forgery

    answers: Counter = Counter()
    lock = threading.Lock()

    def abuse(sent, seed: float) -> None:
        rng = random.Random(seed)
        for kind, expected, request in receipt_forgery.abuses(ctx.simulated, sent, rng):
            try:
                status = requests.post(
                    request.url, data=request.body, headers=request.headers, timeout=10
                ).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            with lock:
                answers[(kind, status)] += 1
            if status not in expected:
                ctx.traffic.problems.append(
                    f"{kind} receipt for {sent.provider} {sent.ids[0]} answered {status}"
                )
            time.sleep(rng.uniform(0, 0.05))

    seen: set[str] = set()
    threads: list[threading.Thread] = []
    quiet_since = time.monotonic()
    while not ctx.traffic_done.is_set() or time.monotonic() - quiet_since < 2:
        fresh = [s for s in receipt_forgery.accepted(ctx.simulated) if s.ids[0] not in seen]
        for sent in fresh:
            seen.add(sent.ids[0])
            thread = threading.Thread(target=abuse, args=(sent, ctx.rng.random()))
            thread.start()
            threads.append(thread)
        if fresh:
            quiet_since = time.monotonic()
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    ctx.note(
        f"{len(seen)} messages; answers: "
        + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(answers.items(), key=str))
    )


def receipts_match_fates(ctx: Context, workflow_ids: list) -> list[str]:
    """Every receipt applied to a step (its Event log) says what its recipient's fate
    produces: a forged, stale or oversized receipt never changed a step."""
    from tests.chaos.checker import RECEIPT_KINDS, _recipient
    from workflows_app.models import Event, Step

    problems = []
    steps = {s.id: s for s in Step.objects.filter(workflow_id__in=workflow_ids)}
    events = Event.objects.filter(step_id__in=list(steps), kind__in=RECEIPT_KINDS)
    for event in events:
        step = steps[event.step_id]
        possible = {
            p.status.value for p in planned_receipts(fate_of(_recipient(step)), step.channel, 0, 0)
        } | {"submitted"}
        if event.to_state not in possible:
            problems.append(
                f"step {step.id} ({step.channel}, {_recipient(step)}) received {event.to_state}"
            )
    for step in steps.values():
        fate = fate_of(_recipient(step))
        if step.message_status in ("read", "delivered") and fate in (
            Fate.SILENT,
            Fate.UNDELIVERABLE,
        ):
            problems.append(f"step {step.id} of fate {fate} is {step.message_status}")
    return problems


# --- the caller's webhook receiver --------------------------------------------------------------


def webhook_receiver_down(ctx: Context) -> None:
    """The caller's webhook receiver goes down (connection refused) while runs start and end,
    for ``size.receiver_down`` seconds (30 s short, ten minutes long), then comes back on the
    same port. Expect: every event delivered once it is back, each ``webhook-id`` accepted
    once, one final report per workflow, every signature verified independently (PyJWT,
    ``standardwebhooks``); the checker's invariant 6."""
    receiver = ctx.receiver
    time.sleep(0.5)
    receiver.stop()
    ctx.note(f"receiver down for {ctx.size.receiver_down:.0f}s")
    time.sleep(ctx.size.receiver_down)
    receiver.start(receiver.port)  # the same port: the status URL stays
    ctx.note(f"receiver back; it had accepted {len(receiver.accepted())} before")


def webhook_retry_env(size) -> dict[str, str]:
    """Retries every few seconds for longer than the receiver stays down."""
    count = int(size.receiver_down / 5) + 20
    return {
        "WEBHOOKS_ALLOW_PRIVATE": "1",
        "WEBHOOK_RETRY_SCHEDULE": ",".join(["0.5", "1", "2", "3"] + ["5"] * count),
        "WEBHOOK_DISPATCH_GRACE": "3",
        "WEBHOOK_TIMEOUT": "5",
    }


# --- the catalogue ----------------------------------------------------------------------------

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
    Scenario(
        "provider-5xx-429-slow-reset-malformed",
        provider_faults,
        providers=True,
        prepare=faults_5xx_429_slow_reset_malformed,
        expiries=(2, 5),
    ),
    Scenario(
        "provider-timeout-after-accept",
        provider_faults,
        providers=True,
        prepare=faults_timeout_after_accept,
        expiries=(2, 5),
    ),
    Scenario(
        "receipt-endpoints-forged-stale-oversized",
        abuse_receipt_endpoints,
        providers=True,
        prepare=lambda ctx: ctx.simulated.fault("1", "timeout_after_accept", times=1, delay=1),
        env={"SANDBOX_DELIVER_AFTER": "0.1", "SANDBOX_READ_AFTER": "0.2"},
        check=receipts_match_fates,
        expiries=(2, 5),
    ),
    Scenario(
        "webhook-receiver-down",
        webhook_receiver_down,
        receiver=True,
        sized_env=webhook_retry_env,
        long_share=0.1,
    ),
    # Checked by the suite (make test), not by fault injection; listed so the catalogue is whole.
    Scenario("openapi-schemathesis", None, requires="tests/workflows_app/test_openapi.py"),
    Scenario(
        "jwt-attacks",
        None,
        requires="tests/workflows_app/test_api_jwt.py, test_auth_brake.py",
    ),
    Scenario(
        "provider-credentials-never-shown",
        None,
        requires="tests/e2e/test_credentials_never_shown.py",
    ),
]
