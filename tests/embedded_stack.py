"""The embedded stack as ``make run`` starts it (``manage.py demo_setup``, then honcho on the
Procfile, in a temporary ``VAR_DIR``), for the tests and scripts that drive it over HTTP."""

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.services import BIN, ROOT

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
START_TIMEOUT = 60
RUN_TIMEOUT = 30
STOP_TIMEOUT = 20


def embedded_env(var_dir: Path, port: int) -> dict[str, str]:
    """The environment of ``make run`` with nothing pointing at external services."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(
        VAR_DIR=str(var_dir),
        PORT=str(port),
        HOST="127.0.0.1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        WORKFLOWS_MIN_EXPIRY_TIME="1",
        PYTHONUNBUFFERED="1",
    )
    # settings.py (and honcho) also read a developer's .env, but never over the environment:
    # if it names a real service, pin the embedded equivalents instead of removing them.
    dotenv = ROOT / ".env"
    if dotenv.exists() and any(name in dotenv.read_text() for name in SERVICE_VARIABLES):
        env.update(
            DATABASE_URL=f"sqlite:///{var_dir / 'orchestrator.sqlite3'}",
            REDIS_URL="",
            CELERY_BROKER_URL="filesystem://",
        )
    return env


def demo_setup(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "python"), "manage.py", "demo_setup", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    pgid: int
    zombie: bool
    start: int  # clock ticks after boot: tells a process from a later one with a reused pid


def processes() -> dict[int, ProcInfo]:
    """Every process on the machine, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[int(entry.name)] = ProcInfo(
            ppid=int(fields[1]), pgid=int(fields[2]), zombie=fields[0] == "Z", start=int(fields[19])
        )
    return found


class EmbeddedStack:
    """``honcho start`` on the Procfile. honcho puts each process in a process group of its own,
    so the groups are noted while honcho is alive, to kill whatever outlives it."""

    def __init__(self, env: dict[str, str], log_path: Path, banner: str, credentials: dict):
        self.env, self.log_path = env, log_path
        self.banner, self.credentials = banner, credentials
        self.base_url = f"http://127.0.0.1:{env['PORT']}"
        self.honcho: subprocess.Popen | None = None
        self.started: int = 0
        self.pgids: set[int] = set()

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.honcho = subprocess.Popen(
                # As in the Makefile's `run` target.
                [
                    str(BIN / "python"),
                    "-m",
                    "orchestrator.procfile",
                    "start",
                    "--env",
                    "/dev/null",
                    "--port",
                    self.env["PORT"],
                    "web",
                    "worker",
                    "timers",
                    "scheduler",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started = processes()[self.honcho.pid].start
        self.pgids.add(self.honcho.pid)

    def remember_processes(self) -> None:
        """Note the process group of every process below honcho."""
        if self.honcho is None or self.honcho.poll() is not None:
            return
        table = processes()
        todo = [self.honcho.pid]
        while todo:
            parent = todo.pop()
            for pid, info in table.items():
                if info.ppid == parent:
                    self.pgids.add(info.pgid)
                    todo.append(pid)

    def ours(self) -> list[int]:
        """Live processes in our groups (started no earlier than honcho: no reused ids)."""
        return sorted(
            pid
            for pid, info in processes().items()
            if info.pgid in self.pgids
            and info.start >= self.started
            and not info.zombie
            and pid != os.getpid()
        )

    def answers(self) -> bool:
        assert self.honcho is not None and self.honcho.poll() is None, (
            f"honcho exited early:\n{self.log()}"
        )
        self.remember_processes()
        try:
            return requests.get(self.base_url + "/admin/login/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def interrupt(self) -> None:
        """What Ctrl-C in ``make run`` does: SIGINT to honcho, which stops every process."""
        assert self.honcho is not None
        self.remember_processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.honcho.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.honcho.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """Kill whatever is left, however the test ended."""
        self.remember_processes()
        for pid in self.ours():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if self.honcho is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.honcho.wait(timeout=5)

    def log(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def canonical_request(messenger_recipient: str = "1000000004", expiry_time: int = 2) -> dict:
    return {
        "template": "failover",
        "workflow": [
            {
                "from": {"type": "messenger", "id": "100200300"},
                "to": {"type": "messenger", "id": messenger_recipient},
                "message": {
                    "content": {"type": "text", "text": "Your order has shipped (Messenger)"}
                },
                "failover": {"expiry_time": expiry_time, "condition_status": "read"},
            },
            {
                "from": {"type": "sms", "number": "447700900001"},
                "to": {"type": "sms", "number": "447700900000"},
                "message": {"content": {"type": "text", "text": "Your order has shipped (SMS)"}},
            },
        ],
    }
