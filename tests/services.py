"""Finding the real services the suite runs against, and starting our own processes on them."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def require(reason: str) -> None:
    """Skip, or fail when REQUIRE_SERVICES=1 (CI must run everything)."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


def require_postgres_and_redis() -> str:
    """Return the Redis URL, or skip/fail if Postgres or Redis is not what the suite runs on."""
    if connection.vendor != "postgresql":
        require("DATABASE_URL does not point at PostgreSQL")
    url = redis_url()
    if url is None:
        require("REDIS_URL is not set or Redis does not answer")
    return url


def stack_redis_url(url: str) -> str:
    """The Redis database the end-to-end stack runs on: the tests' own number + 8 (mod 16), so
    its worker never takes tasks the in-process tests queue, and its flushes never reach their
    keys. (Parallel suites on one Redis use databases 0-7; their stacks then use 8-15.)"""
    parts = urlsplit(url)
    number = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number + 8) % 16}"))


def test_database_url() -> str:
    """A URL for the database pytest-django created, for processes we start (on SQLite, its
    file: tests/conftest.py makes the test database a file when e2e tests need it)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        assert not connection.is_in_memory_db(), "processes cannot share an in-memory database"
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


# Seconds a process we start (gunicorn, a worker) may take to answer: a waiting limit, not a
# speed check. On a loaded 2-core machine importing Django has taken over 30 s.
STARTUP_TIMEOUT = 120


def web_answers(base_url: str) -> bool:
    """Whether a web process we started answers HTTP yet (any status will do)."""
    try:
        requests.get(base_url + "/beta/workflows/x", timeout=1)
    except requests.RequestException:
        return False
    return True


def celery_worker(
    queue: str, concurrency: int, node: str, *options: str, app: str = "orchestrator", level: str
) -> list[str]:
    """The command line of a Celery worker of ``app`` that consumes ``queue`` with
    ``concurrency`` processes, named ``node``, logging at ``level``; ``options`` go last."""
    return [
        str(BIN / "celery"),
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "--concurrency",
        str(concurrency),
        "-l",
        level,
        "-n",
        node,
        *options,
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Process:
    """A child process in its own process group, with its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


STACK_SETTINGS = {
    "WORKFLOWS_MIN_EXPIRY_TIME": "1",
    "SANDBOX_DELIVER_AFTER": "0.3",
    "SANDBOX_READ_AFTER": "0.6",
    "SCHEDULER_INTERVAL": "0.5",
    "SEND_RETRY_BASE_DELAY": "0.2",
    "PENDING_GRACE": "3",
    "LOG_LEVEL": "INFO",
    # Webhook receivers in tests listen on loopback; retries come fast.
    "WEBHOOKS_ALLOW_PRIVATE": "1",
    "WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,1,1,1,2,2,2,2,2",
    "WEBHOOK_DISPATCH_GRACE": "3",
    "METRICS_TOKEN": "metrics-test-token",
}


@dataclass
class Stack:
    base_url: str
    redis_url: str  # "" in embedded mode (SQLite and the filesystem broker)
    env: dict[str, str]
    log_dir: object
    processes: dict[str, Process] = field(default_factory=dict)
    worker_concurrency: int = 2

    def start(self, name: str, *extra: str, **env: str) -> Process:
        """Start process ``name`` (web, worker, timers, scheduler, simulator, with an optional
        numeric suffix: worker2); ``extra`` arguments go at the end of its command line;
        ``env`` adds to the stack's environment for this process only."""
        argv = {
            "web": [
                str(BIN / "gunicorn"),
                "orchestrator.wsgi",
                "--bind",
                self.base_url.removeprefix("http://"),
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "30",
            ],
            "worker": celery_worker("celery", self.worker_concurrency, f"{name}@%h", level="info"),
            # Timers and receipts on their own queue (orchestrator/settings.py, TIMERS_QUEUE).
            "timers": celery_worker("timers", 1, f"{name}@%h", level="info"),
            "scheduler": [str(BIN / "python"), "manage.py", "run_scheduler"],
            "simulator": [str(BIN / "python"), "manage.py", "simulate_providers"],
        }[name.rstrip("0123456789")]
        process = Process(name, [*argv, *extra], {**self.env, **env}, self.log_dir).start()
        self.processes[name] = process
        return process

    def flush_redis(self) -> None:
        redis.Redis.from_url(self.redis_url).flushdb()

    def lose_broker(self) -> None:
        """Lose every queued message: flush Redis, or empty the filesystem transport's
        folder (embedded mode)."""
        if self.redis_url:
            self.flush_redis()
            return
        for message in (Path(self.env["VAR_DIR"]) / "broker").glob("*.msg"):
            message.unlink(missing_ok=True)

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail()}" for n, p in self.processes.items())
