"""The processes and stores a benchmark runs on: PostgreSQL, Redis, gunicorn, a Celery worker
and the scheduler, started as in production (and as ``tests/e2e/conftest.py`` does), and always
stopped again.
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from tests.services import (
    BIN,
    ROOT,
    STARTUP_TIMEOUT,
    Process,
    celery_worker,
    free_port,
    wait_for,
)

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "7"))
WEB_WORKERS, WEB_THREADS = 2, 4
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2"))
WORKER_POOL = os.environ.get("BENCH_WORKER_POOL", "prefork")

# Settings every process of the bench runs with (the rest are the service's defaults).
STACK_SETTINGS = {
    "BENCH_BASELINE_ENDPOINT": "1",
    "WORKFLOWS_MIN_EXPIRY_TIME": "1",
    "SCHEDULER_INTERVAL": "1.0",
    "LOG_LEVEL": "WARNING",
    "DEBUG": "0",
    # The throttles stay on (their Redis round trip is part of the accept path) but must not
    # answer 429 to a load generator: the rates would then measure the limit, not the service.
    "API_THROTTLE_ACCOUNT": "1000000/s",
    "API_THROTTLE_APPLICATION": "1000000/s",
}


def _pg_up() -> bool:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_services() -> None:
    """Start PostgreSQL and Redis if they are down (as CI does), or raise."""
    if not _pg_up():
        for argv in (["service", "postgresql", "start"], ["pg_ctlcluster", "15", "main", "start"]):
            if shutil.which(argv[0]):
                subprocess.run(argv, check=False, capture_output=True, timeout=60)
                if _pg_up():
                    break
    if not _redis_up() and shutil.which("redis-server"):
        subprocess.run(["redis-server", "--daemonize", "yes"], check=False, timeout=30)
        time.sleep(1)
    if not _pg_up():
        raise RuntimeError(f"PostgreSQL does not answer at {PG_ADMIN_URL}")
    if not _redis_up():
        raise RuntimeError(f"Redis does not answer at {REDIS_BASE}")


def database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def redis_url() -> str:
    return f"{REDIS_BASE}/{REDIS_DB}"


def recreate_database(name: str) -> str:
    """Drop and create an empty database ``name`` (names must start with ``orch_bench``)."""
    if not name.startswith("orch_bench"):
        raise ValueError("bench databases are named orch_bench*")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    env = {**os.environ, **STACK_SETTINGS, "DATABASE_URL": url, "REDIS_URL": redis_url()}
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )
    return url


def flush_redis() -> None:
    redis.Redis.from_url(redis_url()).flushdb()


@dataclass(frozen=True, order=True)
class Memory:
    """Resident memory of a process and its descendants (a prefork worker and its pool), MiB.

    ``resident`` counts each page once however many of the processes share it (the sum of
    their PSS, /proc/<pid>/smaps_rollup): what the group holds in RAM. ``rss_sum`` adds up
    their VmRSS, which counts every page a forked child still shares with its parent again.
    """

    resident: float
    rss_sum: float


def memory_mb(pid: int) -> Memory:
    pss_kb = rss_kb = 0
    for process in [pid, *_descendants(pid)]:
        pss_kb += _status_kb(f"/proc/{process}/smaps_rollup", "Pss:")
        rss_kb += _status_kb(f"/proc/{process}/status", "VmRSS:")
    return Memory(pss_kb / 1024, rss_kb / 1024)


def _status_kb(path: str, field_name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    try:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    children = [int(p) for p in out.split()]
    return children + [d for c in children for d in _descendants(c)]


@dataclass
class BenchStack:
    """gunicorn + Celery worker + scheduler on one database; ``stop_all`` ends every one."""

    database_url: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    simulator_port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator_port}"

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **STACK_SETTINGS,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url(),
        }
        env.pop("CELERY_BROKER_URL", None)
        return env

    def argv(self, name: str) -> list[str]:
        return {
            "web": [
                str(BIN / "gunicorn"),
                "orchestrator.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(WEB_WORKERS),
                "--threads",
                str(WEB_THREADS),
                # A listening socket per worker (SO_REUSEPORT), so that the kernel spreads
                # wrk's few keep-alive connections over both. On one shared socket a worker
                # often took all of them while the other idled, and a run's rate depended on
                # that split (1.6x apart; docs/benchmarks.md, fix 23).
                "--reuse-port",
                "--timeout",
                "60",
                "--no-control-socket",  # gunicorn 27 would share one socket path with others
            ],
            # bench.tasks adds the no-op task the send path is compared with.
            "worker": celery_worker(
                "celery",
                WORKER_CONCURRENCY,
                f"bench{self.port}@%h",
                *("--pool", WORKER_POOL, "-I", "bench.tasks"),
                level="warning",
            ),
            # Timers and receipts on their own queue; started, stopped and killed with "worker".
            "timers": celery_worker("timers", 1, f"benchtimers{self.port}@%h", level="warning"),
            "scheduler": [str(BIN / "python"), "manage.py", "run_scheduler"],
            # The provider simulator (bench/latency.py), answering as a real provider would.
            "simulator": [
                str(BIN / "python"),
                "manage.py",
                "simulate_providers",
                "--port",
                str(self.simulator_port),
                "--callback-base",
                self.base_url,
            ],
        }[name]

    def start(self, *names: str) -> None:
        names = _with_timers(names)
        for name in names:
            if name in self.processes and self.processes[name].popen.poll() is None:
                continue
            self.processes[name] = Process(name, self.argv(name), self.env, self.log_dir).start()
        if "web" in names:
            wait_for(self._answers, STARTUP_TIMEOUT, message="gunicorn to answer")
        if "simulator" in names:
            wait_for(
                self._simulator_answers, STARTUP_TIMEOUT, message="the provider simulator to answer"
            )
        if "worker" in names:
            wait_for(
                self.worker_ready,
                STARTUP_TIMEOUT,
                interval=0.3,
                message="the Celery worker to answer",
            )

    def stop(self, *names: str) -> None:
        for name in _with_timers(names):
            process = self.processes.pop(name, None)
            if process:
                process.stop()

    def kill(self, name: str) -> None:
        for each in _with_timers((name,)):
            process = self.processes.pop(each, None)
            if process:
                process.kill()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def pid(self, name: str) -> int:
        return self.processes[name].popen.pid

    def worker_name(self) -> str:
        return f"bench{self.port}@{os.uname().nodename}"

    def worker_ready(self) -> bool:
        from orchestrator.celery import app

        try:
            return bool(app.control.ping(destination=[self.worker_name()], timeout=1.0))
        except Exception:
            return False

    def _answers(self) -> bool:
        import requests

        try:
            requests.get(self.base_url + "/beta/workflows/x", timeout=1)
        except requests.RequestException:
            return False
        return True

    def _simulator_answers(self) -> bool:
        import requests

        try:
            requests.get(self.simulator_url + "/_simulator/stats", timeout=1)
        except requests.RequestException:
            return False
        return True

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail()}" for n, p in self.processes.items())


def _with_timers(names: tuple[str, ...]) -> tuple[str, ...]:
    """The send worker's partner, the timers worker, goes wherever it goes."""
    return (*names, "timers") if "worker" in names and "timers" not in names else names
