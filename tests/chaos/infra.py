"""Throwaway PostgreSQL and Redis servers that the chaos harness may kill and restart.

The machine's shared servers are never touched: every scenario that breaks a server breaks one
of these, started on a free port in a temporary directory. PostgreSQL refuses to run as root,
so as root the cluster is owned by and run as the ``postgres`` system user (or a ``chaos`` user
created for the purpose when there is none).
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from tests.services import STARTUP_TIMEOUT, Process, free_port, wait_for


class ChaosInfraUnavailable(RuntimeError):
    """The binaries needed for throwaway servers are missing on this machine."""


def _postgres_bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise ChaosInfraUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")


def _run_as_user() -> str | None:
    """The unprivileged user to run PostgreSQL as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "chaos"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "chaos"],
        check=True,
    )
    return "chaos"


class ThrowawayPostgres:
    """A PostgreSQL cluster in ``base/pg`` listening on 127.0.0.1:``port`` (TCP only)."""

    def __init__(self, base: Path) -> None:
        self.bindir = _postgres_bindir()
        self.user = _run_as_user()
        self.port = free_port()
        self.data = base / "pg"
        self.log = base / "postgres.log"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bindir / argv[0]), *argv[1:]],
            user=self.user,
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def init(self) -> "ThrowawayPostgres":
        self.data.mkdir(mode=0o700)
        self.log.touch()
        if self.user:
            os.chmod(self.data.parent, 0o755)
            shutil.chown(self.data, self.user)
            shutil.chown(self.log, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        # Durability settings stay at their defaults: a restart here is a process crash
        # (stop -m immediate), after which PostgreSQL replays its WAL like in production.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=300 -c fsync=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, database: str, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` every other connection to ``database``; how many."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        return len(rows)

    def answers(self) -> bool:
        try:
            with self.admin() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True


class ThrowawayRedis:
    """``redis-server`` with no persistence at all: a restart loses everything it held."""

    def __init__(self, base: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ChaosInfraUnavailable("redis-server not found")
        self.port = free_port()
        self.dir = base / "redis"
        self.dir.mkdir()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.dir)]
        self.process = Process("redis", argv, dict(os.environ), base)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process.start()
        wait_for(self.answers, STARTUP_TIMEOUT, message="throwaway redis to answer")

    def crash(self) -> None:
        """kill -9: everything in memory (queued tasks, countdowns, cache) is gone."""
        self.process.kill()

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False


def wait_until(predicate, timeout: float, what: str) -> None:
    wait_for(predicate, timeout, interval=0.2, message=what)


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))
