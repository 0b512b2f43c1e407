"""What the bench measures, one function per figure. Django is set up by ``bench.run`` first."""

import base64
import contextlib
import json
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from bench.stack import BenchStack, redis_url
from orchestrator.celery import app
from tests.services import wait_for
from workflows_app.models import Account
from workflows_app.services.accounts import account_create
from workflows_app.services.scheduler import scheduler_round, scheduler_tick
from workflows_app.services.workflows import StepSpec, workflow_create

# CASCADE: every table that hangs off a run (steps, attempts, provider messages, events, webhook
# deliveries and their attempts) goes with it, whatever later features add.
TRUNCATE = "TRUNCATE workflows_app_workflow CASCADE"


def use_database(name: str) -> None:
    """Point this process's default connection at another bench database."""
    connections.close_all()
    connection.settings_dict["NAME"] = name


def reset_runs() -> None:
    with connection.cursor() as cursor:
        cursor.execute(TRUNCATE)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Credentials:
    account: Account
    api_secret: str

    @property
    def header(self) -> str:
        raw = f"{self.account.api_key}:{self.api_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def new_account(name: str) -> Credentials:
    created = account_create(name=name)
    return Credentials(created.account, created.api_secret)


def two_step_request(first_recipient: str, expiry: int, sms_recipient: str = "447700900003"):
    """The canonical request (Messenger waiting for ``read``, then SMS) with sandbox recipients."""
    return {
        "template": "failover",
        "workflow": [
            {
                "from": {"type": "messenger", "id": "100200300"},
                "to": {"type": "messenger", "id": first_recipient},
                "message": {"content": {"type": "text", "text": "Your order has shipped"}},
                "failover": {"expiry_time": expiry, "condition_status": "read"},
            },
            {
                "from": {"type": "sms", "number": "447700900001"},
                "to": {"type": "sms", "number": sms_recipient},
                "message": {"content": {"type": "text", "text": "Your order has shipped"}},
            },
        ],
    }


# --- Accept throughput (wrk) -----------------------------------------------------------------


@dataclass
class WrkResult:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk_post(url: str, body: dict, auth: str, seconds: int, connections_: int) -> WrkResult:
    """POST ``body`` to ``url`` with wrk for ``seconds``; raises if wrk fails."""
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "{auth}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections_}", f"-d{seconds}s", "--latency", "-s", handle.name, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    Path(handle.name).unlink()
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return WrkResult(
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        errors=errors,
    )


@dataclass
class AcceptResult:
    ours: list[WrkResult] = field(default_factory=list)
    baseline: list[WrkResult] = field(default_factory=list)
    # At scale only: ours on a second server whose database has empty tables, in each round.
    ours_empty: list[WrkResult] = field(default_factory=list)

    @property
    def ours_rate(self) -> float:
        return statistics.median(r.rate for r in self.ours)

    @property
    def baseline_rate(self) -> float:
        return statistics.median(r.rate for r in self.baseline)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios (each round runs both back to back)."""
        return statistics.median(
            o.rate / b.rate for o, b in zip(self.ours, self.baseline, strict=True)
        )

    @property
    def ours_empty_rate(self) -> float:
        return statistics.median(r.rate for r in self.ours_empty)

    @property
    def scale_ratio(self) -> float:
        """Ours at scale / ours on empty tables: the median of the per-round ratios."""
        return statistics.median(
            o.rate / e.rate for o, e in zip(self.ours, self.ours_empty, strict=True)
        )

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.ours + self.baseline + self.ours_empty)


def accept_throughput(
    stack: BenchStack,
    creds: Credentials,
    rounds: int,
    seconds: int,
    connections_: int,
    empty: tuple[BenchStack, Credentials] | None = None,
) -> AcceptResult:
    """Alternate wrk runs on ``POST /beta/workflows`` and ``POST /bench/baseline``; with
    ``empty`` (a server on a database with empty tables, and an account there), each round
    also runs ours against it, so that scale and empty tables are compared in the same minutes
    (measured ten minutes apart, the machine's own drift was larger than the effect).

    Only gunicorn runs (the worker and scheduler are stopped), so the figure is the accept path
    alone; the runs it creates are truncated afterwards.
    """
    body = two_step_request("1000000003", 600)
    runs = [
        ("ours", stack.base_url + "/beta/workflows", creds),
        ("baseline", stack.base_url + "/bench/baseline", creds),
    ]
    if empty is not None:
        runs.append(("ours_empty", empty[0].base_url + "/beta/workflows", empty[1]))
    for _, url, account in runs:  # warm up each
        wrk_post(url, body, account.header, 2, connections_)
    result = AcceptResult()
    for number in range(rounds):
        # Every other round in reverse order, so that a machine speeding up or slowing down
        # over a round favours neither side (its speed moved by up to 1.6x within seconds).
        for name, url, account in runs if number % 2 == 0 else runs[::-1]:
            getattr(result, name).append(wrk_post(url, body, account.header, seconds, connections_))
    return result


# --- Step throughput (sends vs no-op tasks) --------------------------------------------------


def queue_drained() -> bool:
    """Nothing waits in the queue. (Redis's ``unacked`` hash cannot tell more: it also holds
    the countdowns the worker keeps in memory, thousands at scale.)"""
    return redis.Redis.from_url(redis_url()).llen("celery") == 0


def tasks_started(stack: BenchStack, name: str) -> int:
    """How many ``name`` tasks the worker has started since it started (its own count)."""
    stats = app.control.inspect(destination=[stack.worker_name()], timeout=2).stats() or {}
    return sum(worker.get("total", {}).get(name, 0) for worker in stats.values())


def _timed_drain(stack: BenchStack, done: Callable[[], bool], count: int, timeout: float) -> float:
    """Let the paused worker consume; return ``count`` per second of the time until ``done()``."""
    started = time.perf_counter()
    app.control.add_consumer("celery", destination=[stack.worker_name()], reply=True)
    wait_for(done, timeout, interval=0.05, message=f"{count} items of work to finish")
    return count / (time.perf_counter() - started)


def _pause_worker(stack: BenchStack) -> None:
    """Let earlier work finish, then stop the worker taking new tasks, and wait for what it
    had already taken (prefetched) to finish too."""
    wait_for(queue_drained, 120, interval=0.05, message="the queue to drain before a round")
    destination = [stack.worker_name()]
    app.control.cancel_consumer("celery", destination=destination, reply=True)

    def idle() -> bool:
        inspect = app.control.inspect(destination=destination, timeout=2)
        busy = [*(inspect.active() or {}).values(), *(inspect.reserved() or {}).values()]
        return not any(busy)

    wait_for(idle, 120, interval=0.1, message="the worker to finish what it had taken")


def send_rate(stack: BenchStack, creds: Credentials, count: int) -> float:
    """Sends per second: ``count`` first steps made due while the worker is paused, then timed
    until every one of them is ``waiting`` (the worker sends them in batches, so there is no
    task per send to count).

    The sandbox recipient ends in 3 (accepted, then silent) and the expiry is an hour, so the
    worker does exactly the send path: claim, provider call, record acceptance, start waiting.
    """
    _pause_worker(stack)
    specs = _specs("1000000003", 3600)
    workflows = [
        workflow_create(account=creds.account, flavour="workflows", steps=specs)
        for _ in range(count)
    ]
    ids = [w.id for w in workflows]

    def all_waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM workflows_app_step WHERE workflow_id = ANY(%s) "
                "AND index = 0 AND state = 'waiting'",
                [ids],
            )
            return cursor.fetchone()[0] == count

    return _timed_drain(stack, all_waiting, count, timeout=count / 2 + 120)


def noop_rate(stack: BenchStack, count: int) -> float:
    """No-op tasks per second through the same worker processes and broker, timed until the
    worker has started ``count`` of them (its own count; at most one per pool process is
    still running then)."""
    _pause_worker(stack)
    before = tasks_started(stack, "bench.noop")
    for step_id in range(count):
        app.send_task("bench.noop", (step_id,))
    return _timed_drain(
        stack,
        lambda: tasks_started(stack, "bench.noop") - before >= count,
        count,
        timeout=count / 5 + 60,
    )


def _specs(first_recipient: str, expiry: int) -> list[StepSpec]:
    request = two_step_request(first_recipient, expiry)
    return [
        StepSpec(
            channel=item["to"]["type"],
            sender=item["from"],
            recipient=item["to"],
            message=item["message"],
            condition_status=item.get("failover", {}).get("condition_status"),
            expiry_time=item.get("failover", {}).get("expiry_time"),
        )
        for item in request["workflow"]
    ]


@dataclass
class StepResult:
    sends: list[float] = field(default_factory=list)
    noops: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(s / n for s, n in zip(self.sends, self.noops, strict=True))


def step_throughput(stack: BenchStack, creds: Credentials, rounds: int, count: int) -> StepResult:
    result = StepResult()
    for _ in range(rounds):
        result.noops.append(noop_rate(stack, count))
        result.sends.append(send_rate(stack, creds, count))
    app.control.add_consumer("celery", destination=[stack.worker_name()], reply=True)
    return result


# --- Failover latency ------------------------------------------------------------------------


def failover_latency(stack: BenchStack, creds: Credentials, count: int, per_second: float):
    """Runs whose first message is rejected at once, created over HTTP at a steady pace.

    Returns the milliseconds from the rejection being recorded (the first step's Attempt
    ``finished_at``) to the second step being submitted (its ``sent_at``), one per run.
    """
    session = requests.Session()
    session.headers["Authorization"] = creds.header
    body = two_step_request("1000000001", 600)
    started = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, started + n / per_second - time.monotonic()))
        response = session.post(stack.base_url + "/beta/workflows", json=body, timeout=10)
        response.raise_for_status()
    query = """
        SELECT extract(epoch FROM s1.sent_at - a0.finished_at) * 1000
        FROM workflows_app_workflow w
        JOIN workflows_app_step s0 ON s0.workflow_id = w.id AND s0.index = 0
        JOIN workflows_app_attempt a0 ON a0.step_id = s0.id AND a0.outcome = 'error'
        JOIN workflows_app_step s1 ON s1.workflow_id = w.id AND s1.index = 1
        WHERE w.account_id = %s AND s1.sent_at IS NOT NULL
    """

    def latencies():
        with connection.cursor() as cursor:
            cursor.execute(query, [creds.account.id])
            rows = [float(r[0]) for r in cursor.fetchall()]
        return rows if len(rows) == count else None

    return wait_for(latencies, 120, interval=0.5, message="every second step to be sent")


# --- Timer lateness --------------------------------------------------------------------------


@dataclass
class TimerResult:
    lateness_ms: list[float]
    by_countdown: int
    by_scheduler: int
    lost: int  # first steps that never failed over
    fired_twice: int  # must be 0: a step fails over at most once
    second_steps_sent: int


def timer_lateness(
    stack: BenchStack,
    creds: Credentials,
    count: int,
    spread_s: float,
    lead_s: float,
    lose_redis_at: float | None = None,
) -> TimerResult:
    """``count`` waiting runs with deadlines spread over ``spread_s`` seconds from ``lead_s``
    seconds from now; the timers (countdown or scheduler tick) fail each over, and the worker
    sends each second step. With ``lose_redis_at``, that many seconds into the deadline window
    the worker is killed, Redis is flushed and the worker restarted: every countdown is lost.
    """
    from bench.fixtures import insert_waiting_workflows

    insert_waiting_workflows(
        account_id=creds.account.id,
        count=count,
        deadlines_from_s=lead_s,
        deadlines_to_s=lead_s + spread_s,
        batch=10_000,
    )
    started = time.monotonic()
    if lose_redis_at is not None:
        time.sleep(max(0.0, started + lead_s + lose_redis_at - time.monotonic()))
        stack.kill("worker")
        redis.Redis.from_url(redis_url()).flushdb()
        stack.start("worker")
    counts_sql = """
        SELECT count(*) FILTER (WHERE s.index = 0 AND s.state = 'failed_over'),
               count(*) FILTER (WHERE s.index = 1 AND s.state IN ('sending', 'waiting'))
        FROM workflows_app_step s JOIN workflows_app_workflow w ON w.id = s.workflow_id
        WHERE w.account_id = %s
    """

    def finished():
        with connection.cursor() as cursor:
            cursor.execute(counts_sql, [creds.account.id])
            failed_over, sent = cursor.fetchone()
        return (failed_over, sent) if failed_over == count and sent == count else None

    deadline = lead_s + spread_s + 90
    with contextlib.suppress(AssertionError):  # what did not fire is reported below as lost
        wait_for(finished, deadline, interval=1.0, message="every timer to fire")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT extract(epoch FROM e.created_at - s.deadline_at) * 1000, e.detail, s.id
            FROM workflows_app_event e
            JOIN workflows_app_step s ON s.id = e.step_id
            JOIN workflows_app_workflow w ON w.id = s.workflow_id
            WHERE w.account_id = %s AND s.index = 0
              AND e.kind = 'step.transition' AND e.to_state = 'failed_over'
            """,
            [creds.account.id],
        )
        rows = cursor.fetchall()
        cursor.execute(counts_sql, [creds.account.id])
        _, sent = cursor.fetchone()
    by_scheduler = sum(1 for _, detail, _ in rows if "scheduler" in detail)
    fired_steps = len({step_id for _, _, step_id in rows})
    return TimerResult(
        lateness_ms=[float(r[0]) for r in rows],
        by_countdown=len(rows) - by_scheduler,
        by_scheduler=by_scheduler,
        lost=count - fired_steps,
        fired_twice=len(rows) - fired_steps,
        second_steps_sent=sent,
    )


# --- Scheduler tick --------------------------------------------------------------------------


def tick_times(ticks: int, interval: float) -> list[float]:
    """Milliseconds per :func:`scheduler_tick`, run here as ``run_scheduler`` runs it: rounds
    of ``interval`` seconds, each a tick and then the deadline-driven expiries until the next
    (:func:`scheduler_round`). Only the ticks are timed."""
    durations = []
    for _ in range(ticks):
        report = scheduler_round(interval)
        assert report is not None
        durations.append(report.duration_ms)
    return durations


def explain_tick() -> list[tuple[str, str]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the tick's probe and of every claim query it ran
    (rolled back)."""
    with CaptureQueriesContext(connection) as captured:
        scheduler_tick()
    plans = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if not (sql.startswith("SELECT statement_timestamp()") or "SKIP LOCKED" in sql):
            continue  # the rest are per-row lookups and writes
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                transaction.set_rollback(True)
        except Exception as error:  # a query Django cannot replay verbatim
            plan = f"(could not explain: {error})"
        plans.append((sql, plan))
    return plans


def redis_memory() -> tuple[float, float]:
    """(MiB held by the bench's Redis DB keys, MiB used by the whole Redis instance)."""
    client = redis.Redis.from_url(redis_url())
    keys = sum(client.memory_usage(key) or 0 for key in client.scan_iter(count=1000))
    return keys / 2**20, client.info("memory")["used_memory"] / 2**20
