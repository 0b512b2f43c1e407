"""Single-use JWTs and the failed-login brake hold across processes in embedded mode.

Two gunicorn processes on one embedded database (SQLite in a fresh VAR_DIR, no Redis), as
``make run``'s web workers would share it; each request names the process it goes to. A token
used at one is refused at the other; failed logins counted at both brake the address at either,
while the right secret from another address (127.0.0.2: the whole of 127/8 is loopback) still
gets in.
"""

import base64
import http.client
import json
import subprocess

import pytest

from tests.conftest import make_jwt
from tests.embedded_stack import embedded_env
from tests.services import BIN, ROOT, STARTUP_TIMEOUT, Process, free_port, wait_for

pytestmark = pytest.mark.e2e


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def request(port: int, authorization: str, source: str = "127.0.0.1") -> tuple[int, dict]:
    """GET an unknown run on the process at ``port`` from ``source``: 404 once authenticated."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/beta/workflows/x", headers={"Authorization": authorization})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def basic(api_key: str, api_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()


@pytest.fixture(scope="module")
def two_web_processes(tmp_path_factory):
    """``(port_a, port_b, account, application, env)`` on one fresh embedded database."""
    var_dir = tmp_path_factory.mktemp("shared-state") / "var"
    var_dir.mkdir()
    env = embedded_env(var_dir, free_port())
    # One window for the whole test (a day), so that no window boundary falls inside it.
    env.update(
        AUTH_FAILURE_WINDOW="86400",
        AUTH_FAILURE_LIMIT_PER_IP="100",
        AUTH_FAILURE_LIMIT_PER_IP_KEY="4",
    )
    manage(env, "migrate", "--noinput", "-v0")
    account = json.loads(manage(env, "create_account", "--name", "shared state"))
    application = json.loads(
        manage(env, "create_application", "--api-key", account["api_key"], "--name", "app")
    )
    ports = [free_port(), free_port()]
    processes = [
        Process(
            f"web-{n}",
            [str(BIN / "gunicorn"), "orchestrator.wsgi", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", "1", "--threads", "2"],
            env,
            var_dir.parent,
        ).start()
        for n, port in enumerate(ports)
    ]
    try:
        for port in ports:
            wait_for(lambda p=port: _answers(p), STARTUP_TIMEOUT, message=f"gunicorn on {port}")
        yield ports[0], ports[1], account, application, env
    finally:
        for process in processes:
            process.kill()


def _answers(port: int) -> bool:
    try:
        request(port, "Basic eDp5")
    except OSError:
        return False
    return True


def test_a_jwt_used_at_one_process_is_refused_at_the_other(two_web_processes):
    port_a, port_b, _, application, _ = two_web_processes
    token = make_jwt(application["application_id"], application["private_key"])
    status, _ = request(port_a, f"Bearer {token}")
    assert status == 404  # authenticated; the run does not exist
    status, body = request(port_b, f"Bearer {token}")
    assert status == 401, body
    assert body["type"].endswith("#jwt-revoked"), body
    # A fresh token is fine at either.
    fresh = make_jwt(application["application_id"], application["private_key"])
    assert request(port_b, f"Bearer {fresh}")[0] == 404


def test_failed_logins_at_both_processes_brake_the_address_at_either(two_web_processes):
    port_a, port_b, account, _, _ = two_web_processes
    wrong = basic(account["api_key"], "wrong")
    right = basic(account["api_key"], account["api_secret"])
    for port in (port_a, port_b, port_a, port_b):  # 4 failures: 2 at each process
        assert request(port, wrong)[0] == 401
    status, body = request(port_a, right)
    assert status == 429, body
    assert "failed logins" in body["detail"]
    assert request(port_b, right)[0] == 429
    # The key's owner, from another address, is not locked out by them.
    assert request(port_b, right, source="127.0.0.2")[0] == 404
    assert request(port_a, right, source="127.0.0.2")[0] == 404


COUNT = """
from django.core.cache import cache
for _ in range(150):
    cache.incr("test-shared-counter")
"""


def test_the_embedded_cache_counts_every_increment_of_concurrent_processes(two_web_processes):
    """The brake's and the budgets' counters: ``incr`` from three processes at once loses
    none (Django's own is a read, then a write)."""
    env = two_web_processes[4]
    manage(
        env,
        "shell",
        "-c",
        "from django.core.cache import cache; cache.set('test-shared-counter', 0, None)",
    )
    counters = [
        subprocess.Popen(
            [str(BIN / "python"), "manage.py", "shell", "-c", COUNT],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    for counter in counters:
        output, _ = counter.communicate(timeout=120)
        assert counter.returncode == 0, output.decode()
    total = manage(
        env,
        "shell",
        "-c",
        "from django.core.cache import cache; print(cache.get('test-shared-counter'))",
    )
    assert int(total.split()[-1]) == 450
