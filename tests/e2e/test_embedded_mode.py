"""``make run`` on embedded defaults: no PostgreSQL, no Redis.

The stack is started the way ``make run`` starts it: ``manage.py demo_setup`` (var/ folders,
migrations, static files, demo account), then ``honcho start`` on the repository's Procfile, in
a temporary ``VAR_DIR`` (SQLite and Celery's filesystem transport), on a free port. Runs are
driven over real HTTP with the demo account that ``demo_setup`` printed.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
START_TIMEOUT = 60
RUN_TIMEOUT = 30
STOP_TIMEOUT = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.2)


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
                    str(BIN / "honcho"),
                    "start",
                    "--env",
                    "/dev/null",
                    "--port",
                    self.env["PORT"],
                    "web",
                    "worker",
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("embedded") / "var"
    env = embedded_env(var_dir, free_port())
    banner = demo_setup(env, "--port", env["PORT"], "--host", env["HOST"])
    credentials = json.loads((var_dir / "demo-account.json").read_text())
    stack = EmbeddedStack(env, var_dir.parent / "honcho.log", banner, credentials)
    try:
        stack.start()
        wait_for(stack.answers, START_TIMEOUT, "the web process to answer")
        stack.remember_processes()
        yield stack
    finally:
        stack.kill()


@pytest.fixture
def api(stack):
    session = requests.Session()
    session.auth = (stack.credentials["api_key"], stack.credentials["api_secret"])
    session.headers["Accept"] = "application/json"
    return session


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


def run_to_the_end(stack, api, body: dict) -> dict:
    response = api.post(stack.base_url + "/beta/workflows", json=body, timeout=10)
    assert response.status_code == 202, response.text
    workflow_uuid = response.json()["workflow_uuid"]

    def finished():
        run = api.get(f"{stack.base_url}/beta/workflows/{workflow_uuid}", timeout=10)
        assert run.status_code == 200, run.text
        return run.json()["status"] != "running" and run.json()

    try:
        return wait_for(finished, RUN_TIMEOUT, f"run {workflow_uuid} to end")
    except (AssertionError, requests.RequestException) as failure:
        raise AssertionError(f"{failure}\nlog:\n{stack.log(200)}") from None


def test_demo_setup_prints_a_ready_curl_and_keeps_its_credentials(tmp_path):
    port = free_port()
    env = embedded_env(tmp_path / "var", port)
    first = demo_setup(env, "--skip-collectstatic")
    second = demo_setup(env, "--skip-collectstatic")

    saved = json.loads((tmp_path / "var" / "demo-account.json").read_text())
    key, secret = saved["api_key"], saved["api_secret"]
    assert first == second, "a second run must print the same credentials"
    url = f"http://127.0.0.1:{port}"
    assert f"{url}  " in first
    assert f"API key: {key}" in first and f"API secret: {secret}" in first
    assert f"curl -X POST {url}/beta/workflows -u '{key}:{secret}' \\\n" in first
    assert f"curl -u '{key}:{secret}' {url}/beta/workflows/<workflow_uuid>" in first
    assert json.loads(curl_body(first)) == canonical_request(expiry_time=600)
    assert "ending in 1" in first.lower() and "ending in 0" in first.lower()

    as_json = json.loads(demo_setup(env, "--json", "--skip-migrate", "--skip-collectstatic"))
    assert as_json == saved
    assert set(as_json) == {"api_key", "api_secret", "signature_secret"}


def curl_body(banner: str) -> str:
    match = re.search(r"-d '(\{.*?\})'\n", banner, re.DOTALL)
    assert match, banner
    return match.group(1)


def test_the_printed_curl_is_accepted(stack):
    command = re.search(r"^curl -X POST .*?\]\}'$", stack.banner, re.DOTALL | re.MULTILINE)
    assert command, stack.banner
    if shutil.which("curl"):
        result = subprocess.run(
            ["bash", "-c", command.group(0) + " -sS -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, status = result.stdout.rsplit("\n", 1)
    else:  # no curl here: send what it would send
        key, secret = stack.credentials["api_key"], stack.credentials["api_secret"]
        response = requests.post(
            stack.base_url + "/beta/workflows",
            data=curl_body(stack.banner),
            auth=(key, secret),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        body, status = response.text, str(response.status_code)
    assert status == "202", body
    assert set(json.loads(body)) == {"workflow_uuid"}


def test_an_unread_message_fails_over_to_sms_when_it_expires(stack, api):
    run = run_to_the_end(stack, api, canonical_request("1000000004", expiry_time=2))

    assert run["status"] == "completed", run
    first, second = run["steps"]
    assert first["state"] == "failed_over", run
    assert first["failover_reason"] == "expired", run
    assert first["status"] == "delivered", run
    assert second["state"] == "succeeded", run
    assert second["status"] == "delivered", run


def test_a_rejected_message_fails_over_at_once(stack, api):
    run = run_to_the_end(stack, api, canonical_request("1000000001", expiry_time=600))

    assert run["status"] == "completed", run
    first, second = run["steps"]
    assert first["state"] == "failed_over", run
    assert first["failover_reason"] == "rejected", run
    assert second["state"] == "succeeded", run
    assert second["status"] == "delivered", run


def database(stack) -> sqlite3.Connection:
    """The stack's SQLite file, read-only: the service's own timestamps."""
    path = Path(stack.env["VAR_DIR"]) / "orchestrator.sqlite3"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def first_and_second_steps(stack, workflow_uuid: str) -> tuple[dict, dict]:
    with contextlib.closing(database(stack)) as db:
        db.row_factory = sqlite3.Row
        steps = db.execute(
            'SELECT * FROM workflows_app_step WHERE workflow_id = ? ORDER BY "index"',
            [uuid.UUID(workflow_uuid).hex],
        ).fetchall()
        first = dict(steps[0])
        first["attempts"] = [
            dict(row)
            for row in db.execute(
                "SELECT * FROM workflows_app_attempt WHERE step_id = ?", [first["id"]]
            )
        ]
        first["failed_over_at"] = db.execute(
            "SELECT created_at FROM workflows_app_event WHERE step_id = ? AND to_state = ?",
            [first["id"], "failed_over"],
        ).fetchone()[0]
    return first, dict(steps[1])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)  # Django stores naive UTC, to the microsecond


def test_no_timer_fires_before_its_deadline(stack, api):
    """Each deadline is the provider's acceptance plus expiry_time, to the microsecond, and the
    failover comes after it (CURRENT_TIMESTAMP's whole seconds once made timers fire early)."""
    runs = [
        run_to_the_end(stack, api, canonical_request("1000000004", expiry)) for expiry in (1, 2)
    ]
    for run in runs:
        first, _ = first_and_second_steps(stack, run["workflow_uuid"])
        (attempt,) = first["attempts"]
        assert first["failover_reason"] == "expired", first
        deadline, sent = at(first["deadline_at"]), at(first["sent_at"])
        assert deadline == sent + timedelta(seconds=first["expiry_time"]), first
        assert at(attempt["started_at"]) <= at(attempt["finished_at"]) <= sent, first
        assert at(first["finished_at"]) >= deadline, first
        assert at(first["failed_over_at"]) >= deadline, first


def test_the_next_step_after_a_rejection_needs_no_re_dispatch(stack, api):
    """The next step is due for the send queued with it: the scheduler never has to queue it
    again (a re-dispatch moves ``dispatched_at`` past ``ready_at`` and is logged)."""
    runs = [run_to_the_end(stack, api, canonical_request("1000000001", 600)) for _ in range(3)]
    for run in runs:
        first, second = first_and_second_steps(stack, run["workflow_uuid"])
        assert first["failover_reason"] == "rejected", first
        assert second["ready_at"] is not None and second["dispatched_at"] == second["ready_at"]
        assert at(second["sent_at"]) >= at(first["finished_at"])
    assert "re-dispatched" not in stack.log(10_000)


def test_static_files_are_served(stack):
    response = requests.get(stack.base_url + "/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200


def test_ctrl_c_stops_every_process(stack):
    """Runs last in this module: it stops the stack the other tests share."""
    stack.interrupt()
    assert stack.honcho.poll() is not None, f"honcho still running:\n{stack.log()}"
    wait_for(lambda: not stack.ours(), 10, "every process to exit")
