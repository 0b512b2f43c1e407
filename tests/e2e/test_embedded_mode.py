"""``make run`` on embedded defaults: no PostgreSQL, no Redis.

The stack is started the way ``make run`` starts it: ``manage.py demo_setup`` (var/ folders,
migrations, static files, demo account), then ``honcho start`` on the repository's Procfile, in
a temporary ``VAR_DIR`` (SQLite and Celery's filesystem transport), on a free port. Runs are
driven over real HTTP with the demo account that ``demo_setup`` printed.
"""

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.embedded_stack import (
    RUN_TIMEOUT,
    START_TIMEOUT,
    EmbeddedStack,
    canonical_request,
    demo_setup,
    embedded_env,
)
from tests.services import free_port, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("embedded") / "var"
    env = embedded_env(var_dir, free_port())
    banner = demo_setup(env, "--port", env["PORT"], "--host", env["HOST"])
    credentials = json.loads((var_dir / "demo-account.json").read_text())
    stack = EmbeddedStack(env, var_dir.parent / "honcho.log", banner, credentials)
    try:
        stack.start()
        wait_for(stack.answers, START_TIMEOUT, message="the web process to answer")
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


def run_to_the_end(stack, api, body: dict) -> dict:
    response = api.post(stack.base_url + "/beta/workflows", json=body, timeout=10)
    assert response.status_code == 202, response.text
    workflow_uuid = response.json()["workflow_uuid"]

    def finished():
        run = api.get(f"{stack.base_url}/beta/workflows/{workflow_uuid}", timeout=10)
        assert run.status_code == 200, run.text
        return run.json()["status"] != "running" and run.json()

    try:
        return wait_for(finished, RUN_TIMEOUT, message=f"run {workflow_uuid} to end")
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
    canonical, quick = (json.loads(body) for body in curl_bodies(first))
    assert canonical == canonical_request(expiry_time=600)
    assert quick == canonical_request(expiry_time=15), "the failover to watch in a minute"
    assert first.count(f"curl -X POST {url}/beta/workflows -u '{key}:{secret}'") == 2
    assert "at 15 s it becomes" in first and "`failed_over`" in first
    assert "ending in 1" in first.lower() and "ending in 0" in first.lower()
    assert "Provider connections: none, the sandbox serves every channel." in first

    as_json = json.loads(demo_setup(env, "--json", "--skip-migrate", "--skip-collectstatic"))
    assert as_json == saved
    assert set(as_json) == {"api_key", "api_secret", "signature_secret"}


def curl_bodies(banner: str) -> list[str]:
    bodies = re.findall(r"-d '(\{.*?\})'\n", banner, re.DOTALL)
    assert bodies, banner
    return bodies


def curl_body(banner: str) -> str:
    return curl_bodies(banner)[0]


@pytest.mark.parametrize("which", [0, 1], ids=["canonical", "fifteen-seconds"])
def test_the_printed_curls_are_accepted(stack, which):
    commands = re.findall(r"^curl -X POST .*?\]\}'$", stack.banner, re.DOTALL | re.MULTILINE)
    assert len(commands) == 2, stack.banner
    if shutil.which("curl"):
        result = subprocess.run(
            ["bash", "-c", commands[which] + " -sS -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, status = result.stdout.rsplit("\n", 1)
    else:  # no curl here: send what it would send
        key, secret = stack.credentials["api_key"], stack.credentials["api_secret"]
        response = requests.post(
            stack.base_url + "/beta/workflows",
            data=curl_bodies(stack.banner)[which],
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
    again (a re-dispatch moves ``dispatched_at`` past the failover that made it due, and is
    logged). Its ``ready_at`` is its run's start, so that it goes ahead of later first sends."""
    runs = [run_to_the_end(stack, api, canonical_request("1000000001", 600)) for _ in range(3)]
    for run in runs:
        first, second = first_and_second_steps(stack, run["workflow_uuid"])
        assert first["failover_reason"] == "rejected", first
        assert second["ready_at"] is not None and second["ready_at"] <= first["finished_at"]
        assert second["dispatched_at"] == first["finished_at"], (first, second)
        assert at(second["sent_at"]) >= at(first["finished_at"])
    assert "re-dispatched" not in stack.log(10_000)


def test_static_files_are_served(stack):
    response = requests.get(stack.base_url + "/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200


def test_ctrl_c_stops_every_process_cleanly(stack):
    """Runs last in this module: it stops the stack the other tests share.

    Ctrl-C: every process shuts down on its own (none needs honcho's SIGKILL), exits 0, and
    nothing prints a traceback or an error on the way (orchestrator/procfile.py)."""
    stack.interrupt()
    assert stack.honcho.poll() is not None, f"honcho still running:\n{stack.log()}"
    wait_for(lambda: not stack.ours(), 10, message="every process to exit")
    log = stack.log_path.read_text(errors="replace")
    stopping = log[log.index("SIGINT received") :]
    assert "SIGKILL" not in stopping, stopping
    assert "Traceback" not in stopping, stopping
    assert "ERROR" not in stopping, stopping
    for name in ("web.1", "worker.1", "timers.1", "scheduler.1"):
        assert f"{name} stopped (rc=0)" in stopping, stopping
    assert stack.honcho.returncode == 130, stopping  # honcho's "interrupted"
