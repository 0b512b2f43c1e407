"""Sending at real providers' speed: the figures of issue 15, through the provider simulator
over loopback HTTP (``manage.py simulate_providers``, one process, as an operator runs it).

Three Twilio connections, each serving its own sender, point at the simulator; the simulator
answers each after its own latency (0, 250 and 1000 ms: a path prefix per account SID). So
every figure below is measured in the same run, on the same processes:

- **send rate by latency**: the worker's consumer is paused, N runs are accepted whose first
  step goes out through one connection, and the consumer is resumed. Send capacity is N over
  the time from the resume to the simulator receiving the last of the N send requests: the rate
  at which the provider is sent messages. Beside it, the drain rate: N over the time until all
  N are ``waiting`` (their answers back and recorded), which also holds one provider latency
  (the last answer's), so it cannot reach the capacity ratios for any finite N. Rounds
  alternate the order of the three latencies (ABBA).
- **backlog failover**: N runs queued at 250 ms, every 10th of them rejected at once by the
  provider; from the rejection being recorded to the next step being accepted (through the
  0 ms connection, so the figure is the engine's own delay, not the provider's latency).
  Timers falling due while the backlog drains: their lateness.
- **rate limit**: a connection with ``max_per_second`` 50 and a simulator enforcing 50/s on its
  account; a 2,000-send burst: the rate achieved and the share of sends that drew a 429.
- **connections opened per 1,000 sends**: TCP connections the simulator accepted over the
  latency rounds, per 1,000 sends it answered.
"""

import statistics
import time
from dataclasses import dataclass, field

import requests
from django.db import connection

from bench.stack import BenchStack
from channels_app.models import ProviderConnection
from tests.services import wait_for
from workflows_app.services.workflows import StepSpec, workflow_create

LATENCIES_MS = (0, 250, 1000)
SILENT, REJECTED = "3", "1"  # sandbox fates of the recipient's last digit


def sender(ms: int) -> str:
    return f"4470000{ms:05d}"


def account_sid(ms: int) -> str:
    return f"ACLAT{ms:05d}"


def control(stack: BenchStack, path: str, body: dict) -> dict:
    response = requests.post(f"{stack.simulator_url}/_simulator/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def stats(stack: BenchStack) -> dict:
    return requests.get(f"{stack.simulator_url}/_simulator/stats", timeout=10).json()


def connect(stack: BenchStack, ms: int, **config) -> ProviderConnection:
    """A Twilio connection for ``sender(ms)`` whose simulated provider answers after ``ms``."""
    row = ProviderConnection(
        name=f"bench {ms} ms",
        provider="twilio",
        channel="sms",
        base_url=stack.simulator_url,
        senders=[sender(ms)],
    )
    row.config = {"account_sid": account_sid(ms), "auth_token": "bench-token", **config}
    row.save()
    prefix = f"/2010-04-01/Accounts/{account_sid(ms)}/"
    control(stack, "latency", {"seconds": ms / 1000, "path": prefix})
    return row


def first_recipient(n: int, fate: str) -> str:
    """The number the ``n``-th run's first step goes to (its last digit its sandbox fate)."""
    return f"4477{n:08d}{fate}"


def sms_run(account, first_ms: int, first_fate: str, n: int, next_ms: int = 0, expiry=3600):
    """Accept one two-step SMS run: the first step through the ``first_ms`` connection."""
    specs = [
        StepSpec(
            channel="sms",
            sender={"type": "sms", "number": sender(first_ms)},
            recipient={"type": "sms", "number": first_recipient(n, first_fate)},
            message={"content": {"type": "text", "text": "Your order has shipped"}},
            condition_status="delivered",
            expiry_time=expiry,
        ),
        StepSpec(
            channel="sms",
            sender={"type": "sms", "number": sender(next_ms)},
            recipient={"type": "sms", "number": f"4478{n:08d}{SILENT}"},
            message={"content": {"type": "text", "text": "Your order has shipped"}},
            condition_status=None,
            expiry_time=None,
        ),
    ]
    return workflow_create(account=account, flavour="workflows", steps=specs)


def _answered_at(ids: list) -> float | None:
    """When the last of the runs ``ids``' first steps was answered and recorded (``waiting``,
    or ``failed_over`` if rejected): epoch seconds, or None while one is not.

    The figure is the steps' own time, so the bench polls it a few times a second only: each
    poll reads thousands of rows, on the database the engine is being measured on."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), extract(epoch FROM max(updated_at)) FROM workflows_app_step "
            "WHERE workflow_id = ANY(%s) AND index = 0 AND state IN ('waiting', 'failed_over')",
            [ids],
        )
        answered, last = cursor.fetchone()
    return float(last) if answered == len(ids) else None


def _errors(ids: list) -> int:
    """Attempts of the runs ``ids``' first steps that ended in an error."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM workflows_app_attempt a JOIN workflows_app_step s "
            "ON s.id = a.step_id WHERE s.workflow_id = ANY(%s) AND s.index = 0 "
            "AND a.outcome = 'error'",
            [ids],
        )
        return int(cursor.fetchone()[0])


@dataclass
class LatencyResult:
    # Per latency, per round: sends/s the simulator received (capacity), and sends/s until
    # every run was waiting (drain: answers back and recorded).
    rates: dict[int, list[float]] = field(default_factory=dict)
    drain_rates: dict[int, list[float]] = field(default_factory=dict)
    # Per latency, per round: seconds from the 99th percentile send's arrival to the last one's
    # (a straggler makes it long; a stall of every send lowers the rate and leaves it short),
    # and the attempts that ended in an error (each one retried or failed over).
    tails: dict[int, list[float]] = field(default_factory=dict)
    errors: dict[int, list[int]] = field(default_factory=dict)
    count: int = 0  # sends per phase
    connections_opened: int = 0
    sends: int = 0
    # The last round alone: the pools are warm by then, so this is what reuse leaves.
    warm_connections_opened: int = 0
    warm_sends: int = 0

    def ratio(self, ms: int) -> float:
        """Median of the per-round ratios: send capacity at ``ms`` / send capacity at 0 ms."""
        return _ratio(self.rates[ms], self.rates[0])

    def drain_ratio(self, ms: int) -> float:
        """The same for the drain rates."""
        return _ratio(self.drain_rates[ms], self.drain_rates[0])

    @property
    def connections_per_1000(self) -> float:
        return 1000 * self.connections_opened / max(1, self.sends)

    @property
    def warm_connections_per_1000(self) -> float:
        return 1000 * self.warm_connections_opened / max(1, self.warm_sends)


def _ratio(rates: list[float], baseline: list[float]) -> float:
    return statistics.median(r / z for r, z in zip(rates, baseline, strict=True))


def _received(stack: BenchStack) -> list[dict]:
    """Every send request the simulator has received (its recipient, ``received_at``, …)."""
    return requests.get(f"{stack.simulator_url}/_simulator/sends", timeout=60).json()["sends"]


def _arrivals(stack: BenchStack, recipients: set[str]) -> list[float]:
    """When each send to ``recipients`` reached the simulator (``time.time()``), in order."""
    return sorted(s["received_at"] for s in _received(stack) if s["recipient"] in recipients)


def send_rates(stack: BenchStack, creds, rounds: int, count: int) -> LatencyResult:
    from bench.fixtures import settle_tables
    from bench.measure import pause_worker, resume_worker

    result = LatencyResult(
        rates={ms: [] for ms in LATENCIES_MS},
        drain_rates={ms: [] for ms in LATENCIES_MS},
        tails={ms: [] for ms in LATENCIES_MS},
        errors={ms: [] for ms in LATENCIES_MS},
        count=count,
    )
    serial = 0
    # A warm-up through every connection first: the first sends through a connection in each
    # worker process build its session and pool, which the first timed phase would pay for.
    warm = [
        sms_run(creds.account, ms, SILENT, serial := serial + 1).id
        for ms in LATENCIES_MS
        for _ in range(100)
    ]
    wait_for(lambda: _answered_at(warm), 120, interval=0.25, message="the warm-up sends")
    before = stats(stack)
    for number in range(rounds):
        order = LATENCIES_MS if number % 2 == 0 else LATENCIES_MS[::-1]
        round_before = stats(stack)
        for ms in order:
            settle_tables()  # each phase from vacuumed tables, not the dead rows of the last
            pause_worker(stack)
            ids, recipients = [], set()
            for _ in range(count):
                serial += 1
                ids.append(sms_run(creds.account, ms, SILENT, serial).id)
                recipients.add(first_recipient(serial, SILENT))
            started_at = time.time()
            resume_worker(stack)
            answered_at = wait_for(
                lambda ids=ids: _answered_at(ids),
                count / 5 + 120,
                interval=0.25,
                message=f"{count} sends at {ms} ms",
            )
            result.drain_rates[ms].append(count / (answered_at - started_at))
            arrivals = _arrivals(stack, recipients)
            assert len(arrivals) == count, f"{len(arrivals)} of {count} sends reached it"
            result.rates[ms].append(count / (arrivals[-1] - started_at))
            result.tails[ms].append(arrivals[-1] - arrivals[int(0.99 * (count - 1))])
            result.errors[ms].append(_errors(ids))
    after = stats(stack)
    result.warm_connections_opened = (
        after["connections_opened"] - round_before["connections_opened"]
    )
    result.warm_sends = after["sends"] - round_before["sends"]
    result.connections_opened = after["connections_opened"] - before["connections_opened"]
    result.sends = after["sends"] - before["sends"]
    return result


@dataclass
class BacklogResult:
    failover_ms: list[float]  # rejection recorded -> next step accepted
    timer_lateness_ms: list[float]  # failover Event - deadline, for timers due meanwhile
    timers_unfired: int
    drain_rate: float  # first sends per second, from the resume until every one was answered
    # The probes' failovers hop by hop (ms each): rejection recorded -> next step claimed ->
    # its send reached the simulator -> its outcome recorded.
    hops: dict[str, list[float]] = field(default_factory=dict)


def backlog_failover(
    stack: BenchStack, creds, timer_creds, count: int, timers: int, every: int = 10
) -> BacklogResult:
    """A backlog of ``count`` sends at 250 ms: milliseconds from a rejection to the next step's
    acceptance, for the runs (one in ``every``) that the provider rejects at once; and the
    lateness of ``timers`` deadlines falling due while the backlog drains."""
    from bench.fixtures import insert_waiting_workflows, settle_tables
    from bench.measure import pause_worker, resume_worker

    settle_tables()  # from vacuumed tables, as each latency phase
    pause_worker(stack)
    ids, probes = [], []
    for n in range(count):
        rejected = n % every == every - 1
        run = sms_run(creds.account, 250, REJECTED if rejected else SILENT, 10_000_000 + n)
        ids.append(run.id)
        if rejected:
            probes.append(run.id)
    insert_waiting_workflows(
        account_id=timer_creds.account.id,
        count=timers,
        deadlines_from_s=3,
        deadlines_to_s=13,
    )
    resumed_at = time.time()
    resume_worker(stack)
    query = """
        SELECT extract(epoch FROM s1.sent_at - a0.finished_at) * 1000
        FROM workflows_app_step s0
        JOIN workflows_app_attempt a0 ON a0.step_id = s0.id AND a0.outcome = 'error'
        JOIN workflows_app_step s1 ON s1.workflow_id = s0.workflow_id AND s1.index = 1
        WHERE s0.workflow_id = ANY(%s) AND s0.index = 0 AND s1.sent_at IS NOT NULL
    """

    def latencies():
        with connection.cursor() as cursor:
            cursor.execute(query, [probes])
            rows = [float(r[0]) for r in cursor.fetchall()]
        return rows if len(rows) == len(probes) else None

    found = wait_for(latencies, count / 5 + 120, interval=0.5, message="every probe's failover")
    answered_at = wait_for(
        lambda: _answered_at(ids), count / 5 + 120, interval=0.5, message="the backlog to drain"
    )
    drain_rate = count / (answered_at - resumed_at)
    wait_for(
        lambda: len(timer_lateness(timer_creds.account.id)) >= timers,
        60,
        interval=0.5,
        message="every timer due during the backlog to fire",
    )
    lateness = timer_lateness(timer_creds.account.id)
    return BacklogResult(
        found, lateness, timers - len(lateness), drain_rate, _failover_hops(stack, probes)
    )


def _failover_hops(stack: BenchStack, probes: list) -> dict[str, list[float]]:
    """Where each probe's failover spent its time (see ``BacklogResult.hops``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s1.recipient->>'number', extract(epoch FROM a0.finished_at),
                   extract(epoch FROM s1.send_started_at), extract(epoch FROM a1.finished_at)
            FROM workflows_app_step s0
            JOIN workflows_app_attempt a0 ON a0.step_id = s0.id AND a0.outcome = 'error'
            JOIN workflows_app_step s1 ON s1.workflow_id = s0.workflow_id AND s1.index = 1
            JOIN workflows_app_attempt a1 ON a1.step_id = s1.id
            WHERE s0.workflow_id = ANY(%s) AND s0.index = 0
            """,
            [probes],
        )
        rows = cursor.fetchall()
    received = {send["recipient"]: send["received_at"] for send in _received(stack)}
    hops: dict[str, list[float]] = {"claimed": [], "reached": [], "recorded": []}
    for number, rejected, claimed, recorded in rows:
        reached = received.get(number)
        if reached is None:
            continue
        hops["claimed"].append(1000 * float(claimed - rejected))
        hops["reached"].append(1000 * (reached - float(claimed)))
        hops["recorded"].append(1000 * (float(recorded) - reached))
    return hops


def timer_lateness(account_id: int) -> list[float]:
    """Milliseconds from each first step's deadline to its failover Event."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT extract(epoch FROM e.created_at - s.deadline_at) * 1000
            FROM workflows_app_event e
            JOIN workflows_app_step s ON s.id = e.step_id
            JOIN workflows_app_workflow w ON w.id = s.workflow_id
            WHERE w.account_id = %s AND s.index = 0
              AND e.kind = 'step.transition' AND e.to_state = 'failed_over'
            """,
            [account_id],
        )
        return [float(r[0]) for r in cursor.fetchall()]


@dataclass
class RateLimitResult:
    sends: int
    rate: float  # accepted sends per second, first to last
    throttled_pct: float  # % of the send requests the simulator answered 429
    deadline_after_wait: bool  # every deadline = the provider's acceptance + expiry_time


def rate_limited_burst(stack: BenchStack, creds, count: int, per_second: float) -> RateLimitResult:
    """``count`` runs at once through a connection limited to ``per_second``, the simulator
    enforcing the same limit on that account."""
    from bench.measure import pause_worker, resume_worker

    row = connect(stack, 5, max_per_second=per_second)
    control(stack, "rate_limit", {"per_second": per_second, "per": "account"})
    try:
        pause_worker(stack)
        ids = [sms_run(creds.account, 5, SILENT, 20_000_000 + n).id for n in range(count)]
        resume_worker(stack)
        wait_for(
            lambda: _answered_at(ids),
            count / per_second * 3 + 120,
            interval=0.5,
            message=f"{count} rate-limited sends",
        )
    finally:
        control(stack, "rate_limit", {"per_second": None})
    mine = [
        s
        for s in _received(stack)
        if s["recipient"].startswith("4477") and s["recipient"][4] == "2"
    ]
    accepted = sorted(s["at"] for s in mine if s["outcome"] == "accepted")
    throttled = sum(1 for s in mine if s["outcome"] == "throttled")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and(abs(extract(epoch FROM deadline_at - sent_at) - expiry_time)"
            " < 0.001 AND sent_at >= send_started_at) FROM workflows_app_step "
            "WHERE workflow_id = ANY(%s) AND index = 0",
            [ids],
        )
        from_acceptance = bool(cursor.fetchone()[0])
    row.delete()
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else float("nan")
    return RateLimitResult(
        sends=len(mine),
        rate=(len(accepted) - 1) / span,
        throttled_pct=100 * throttled / max(1, len(mine)),
        deadline_after_wait=from_acceptance,
    )
