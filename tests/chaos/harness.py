"""Running one chaos scenario: a fresh stack of real processes on throwaway servers, traffic
through the API, a fault, then the invariant checker.

A scenario is a name, a few environment overrides for the stack, and a ``fault`` function that
breaks something while traffic flows (and puts it back). A scenario may also ask for the
provider simulator (``providers``: every channel is then sent through real adapters over HTTP,
tests/chaos/providers.py) and for a caller's webhook receiver (``receiver``: the owner's
status URL points at a receiver in this process that verifies every signature independently,
tests/webhook_receiver.py); the checker then also reads the simulator's log of the sends it
received and what the receiver got. A catalogue entry that is checked elsewhere (``requires``)
is listed, not run.
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tests.chaos import providers
from tests.chaos.infra import ThrowawayPostgres, ThrowawayRedis
from tests.chaos.load import Traffic
from tests.services import STARTUP_TIMEOUT, Stack, free_port, wait_for, web_answers
from tests.webhook_receiver import Receiver

logger = logging.getLogger("chaos")
DATABASE = "chaos"

# The stack's settings in every scenario: short expiries so hundreds of runs finish in a minute.
CHAOS_SETTINGS = {
    "WORKFLOWS_MIN_EXPIRY_TIME": "1",
    "SANDBOX_DELIVER_AFTER": "0.3",
    "SANDBOX_READ_AFTER": "0.6",
    "SCHEDULER_INTERVAL": "0.5",
    "SEND_RETRY_BASE_DELAY": "0.2",
    "PENDING_GRACE": "2",
    "SENDING_LEASE": "3",
    "DATABASE_UNAVAILABLE_RETRY_AFTER": "1",
    "LOG_LEVEL": "INFO",
}


@dataclass(frozen=True)
class Size:
    workflows: int
    seconds: float  # how long traffic flows
    kills: int  # how many times a fault repeats
    settle: float  # how long everything may take to finish after the faults
    max_expiry: int  # caps each scenario's expiry range
    final_timeout: int  # WORKFLOWS_FINAL_STEP_TIMEOUT: how long a silent last step may wait
    receiver_down: float  # how long the caller's webhook receiver stays down


SHORT = Size(
    workflows=30, seconds=3, kills=1, settle=40, max_expiry=2, final_timeout=2, receiver_down=30
)
LONG = Size(
    workflows=300, seconds=30, kills=8, settle=120, max_expiry=6, final_timeout=4, receiver_down=600
)


@dataclass
class Context:
    """What a fault function gets: the stack, the servers, the traffic, a random source."""

    stack: Stack
    pg: ThrowawayPostgres
    redis: ThrowawayRedis
    traffic: Traffic
    size: Size
    rng: random.Random
    send_log: Path
    traffic_done: threading.Event
    simulated: providers.Simulated | None = None
    receiver: Receiver | None = None
    notes: list[str] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    supervisor: threading.Thread | None = None

    def note(self, message: str) -> None:
        logger.info(message)
        self.notes.append(message)

    def supervise_workers(self) -> None:
        """From now until the scenario ends, do what the deployment's supervisor does
        (docker-compose: ``restart: unless-stopped``): start again every worker that exits,
        whenever it exits, not only those that had exited when the fault ended."""
        if self.supervisor is None:
            self.supervisor = threading.Thread(target=self._supervise, name="supervisor")
            self.supervisor.start()

    def _supervise(self) -> None:
        while not self.finished.wait(0.25):
            for name, process in self.stack.processes.items():
                code = process.popen.poll() if process.popen else None
                if name.startswith(("worker", "timers")) and code is not None:
                    process.start()
                    self.note(f"{name} had exited (code {code}); restarted it")

    def stop_supervising(self) -> None:
        self.finished.set()
        if self.supervisor is not None:
            self.supervisor.join()


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Callable[[Context], None]
    env: dict[str, str] = field(default_factory=dict)
    processes: tuple[str, ...] = ("web", "worker1", "worker2", "timers", "scheduler")
    expiries: tuple[int, int] = (1, 4)
    long_share: float = 0.05
    providers: bool = False  # send through the provider simulator instead of the sandbox
    fault_groups: str = "0123456789"  # with providers: the recipients' fault groups
    receiver: bool = False  # the owner's webhooks go to a receiver in this process
    prepare: Callable[[Context], None] | None = None  # runs before traffic starts
    sized_env: Callable[[Size], dict[str, str]] | None = None  # env that depends on the size
    # Extra invariants of this scenario: (context, workflow ids) -> violations.
    check: Callable[[Context, list], list[str]] | None = None
    requires: str = ""  # where it is checked instead, when it is not a chaos scenario


@dataclass
class Outcome:
    name: str
    runs: int = 0
    workflows: int = 0
    lost: int = 0
    duplicates: int = 0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return not self.skipped and not self.violations and self.runs > 0


class World:
    """The throwaway servers, shared by every scenario of one ``make chaos`` run."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pg = ThrowawayPostgres(base).init()
        self.redis = ThrowawayRedis(base)

    def start(self) -> None:
        self.pg.start()
        self.pg.create_database(DATABASE)
        self.redis.start()

    def stop(self) -> None:
        self.redis.crash()
        self.pg.stop("immediate")

    def stack(self, scenario: Scenario, size: Size, log_dir: Path, send_log: Path) -> Stack:
        env = {
            **_inherited_env(),
            **CHAOS_SETTINGS,
            "WORKFLOWS_FINAL_STEP_TIMEOUT": str(size.final_timeout),
            "REDIS_URL": self.redis.url,
            "SANDBOX_SEND_LOG": str(send_log),
            **(providers.PROVIDER_SETTINGS if scenario.providers else {}),
            **scenario.env,
            **(scenario.sized_env(size) if scenario.sized_env else {}),
        }
        base_url = f"http://127.0.0.1:{free_port()}"
        # Providers given a per-message callback (Twilio, Vonage) call us back here.
        env["PUBLIC_BASE_URL"] = base_url
        stack = Stack(
            base_url=base_url,
            redis_url=self.redis.url,
            env=env,
            log_dir=log_dir,
            worker_concurrency=4,
        )
        return stack

    def start_process(self, stack: Stack, name: str):
        """Start one process, its database connections named after it (pg_stat_activity)."""
        return stack.start(
            name, DATABASE_URL=self.pg.url(DATABASE, application_name=f"chaos-{name}")
        )


def _inherited_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "SANDBOX_SEND_DELAY", "CONN_MAX_AGE"):
        env.pop(name, None)
    return env


def run_scenario(world: World, scenario: Scenario, size: Size, seed: int, log_dir: Path) -> Outcome:
    from tests.chaos import checker
    from workflows_app.services.accounts import account_create

    outcome = Outcome(scenario.name)
    started = time.monotonic()
    scenario_dir = log_dir / scenario.name
    scenario_dir.mkdir(parents=True)
    send_log = scenario_dir / "sandbox-calls.jsonl"
    simulator_log = scenario_dir / "simulator-sends.jsonl"
    _flush_redis(world)
    owner = account_create(name=f"chaos {scenario.name}")
    stranger = account_create(name=f"stranger {scenario.name}")
    receiver = _receiver_for(owner.account) if scenario.receiver else None
    stack = world.stack(scenario, size, scenario_dir, send_log)
    for name in scenario.processes:
        world.start_process(stack, name)
    traffic = Traffic(
        base_url=stack.base_url,
        owner=(owner.account.api_key, owner.api_secret),
        stranger=(stranger.account.api_key, stranger.api_secret),
        seed=seed,
        fault_groups=scenario.fault_groups if scenario.providers else "",
    )
    ctx = Context(
        stack=stack,
        pg=world.pg,
        redis=world.redis,
        traffic=traffic,
        size=size,
        rng=random.Random(seed),
        send_log=send_log,
        traffic_done=threading.Event(),
        receiver=receiver,
    )
    stop_watching = threading.Event()
    try:
        if scenario.providers:
            ctx.simulated = providers.start_simulator(stack, simulator_log)
        wait_for(lambda: web_answers(stack.base_url), STARTUP_TIMEOUT, message="gunicorn to answer")
        if scenario.prepare:
            scenario.prepare(ctx)

        def post() -> None:
            expiries = tuple(min(e, size.max_expiry) for e in scenario.expiries)
            traffic.post(size.workflows, size.seconds, expiries, scenario.long_share)
            ctx.traffic_done.set()

        threads = [
            threading.Thread(target=post, name="post"),
            threading.Thread(target=traffic.watch, args=(stop_watching,), name="watch"),
        ]
        for thread in threads:
            thread.start()
        scenario.fault(ctx)
        threads[0].join()
        settle_started = time.monotonic()
        ids = _settle(owner.account, size.settle, webhooks=receiver is not None)
        ctx.note(f"settled in {time.monotonic() - settle_started:.0f}s")
        stop_watching.set()
        threads[1].join()
        verdict = _with_database(
            lambda: checker.check(
                ids,
                send_log,
                provider_log=simulator_log if scenario.providers else None,
                received=receiver.received if receiver else None,
            )
        )
        outcome.runs = 1
        outcome.workflows = verdict.workflows
        outcome.lost = verdict.lost
        outcome.duplicates = verdict.duplicates
        outcome.violations = verdict.violations + traffic.problems
        if scenario.check:
            outcome.violations += _with_database(lambda: scenario.check(ctx, ids))
        if verdict.workflows < size.workflows:
            outcome.violations.append(
                f"only {verdict.workflows} of {size.workflows} workflows were accepted"
            )
    except Exception as error:  # a harness failure is a failed scenario, with its reason
        logger.exception("scenario %s failed", scenario.name)
        outcome.violations.append(f"harness error: {error!r}")
    finally:
        stop_watching.set()
        ctx.stop_supervising()
        for process in stack.processes.values():
            process.kill()
        if receiver:
            receiver.stop()
        if scenario.providers:
            _with_database(providers.disconnect)
    outcome.notes = ctx.notes
    outcome.seconds = time.monotonic() - started
    if outcome.violations:
        (scenario_dir / "violations.txt").write_text("\n".join(outcome.violations) + "\n")
        outcome.notes.append(f"logs in {scenario_dir}")
    return outcome


def _receiver_for(account) -> Receiver:
    """A caller's webhook receiver on loopback, set as ``account``'s status URL."""
    receiver = Receiver(account.signature_secret, account.webhook_secret).start()
    type(account).objects.filter(id=account.id).update(status_url=receiver.url)
    return receiver


def _flush_redis(world: World) -> None:
    import redis

    redis.Redis.from_url(world.redis.url).flushall()


def _with_database(action: Callable, attempts: int = 30):
    """Run ``action`` against the database, reconnecting while the server restarts."""
    from django.db import connection
    from django.db.utils import InterfaceError, OperationalError

    for attempt in range(attempts):
        try:
            return action()
        except (OperationalError, InterfaceError):
            connection.close()
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    return None


def _settle(account, timeout: float, webhooks: bool = False) -> list:
    """Wait until every run of ``account`` has ended or waits on a future deadline (and, with
    ``webhooks``, until none of its webhooks waits to be delivered); its ids."""
    from tests.chaos import checker
    from workflows_app.models import WebhookDelivery, Workflow

    def ids() -> list:
        return list(Workflow.objects.filter(account=account).values_list("id", flat=True))

    def settled() -> bool:
        if checker.unsettled(ids(), timedelta(seconds=60)):
            return False
        pending = WebhookDelivery.objects.filter(account=account, state="pending")
        return not (webhooks and pending.exists())

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _with_database(settled):
            break
        time.sleep(0.5)
    return _with_database(ids)
