"""`manage.py simulate_providers` runs the simulator as its own process."""

import os
import sys

import requests

from tests.services import Process, free_port, wait_for


def test_simulate_providers_serves_the_provider_apis(tmp_path):
    port = free_port()
    argv = [
        sys.executable,
        "manage.py",
        "simulate_providers",
        "--port",
        str(port),
        "--callback-base",
        "http://127.0.0.1:1",
    ]
    process = Process("simulator", argv, dict(os.environ), tmp_path).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base), 20, message="the simulator to answer")
        answer = requests.post(
            f"{base}/pa/send_message",
            json={
                "receiver": "viber-user-0",
                "type": "text",
                "text": "hi",
                "sender": {"name": "S"},
            },
            headers={"X-Viber-Auth-Token": "token"},
            timeout=5,
        ).json()
        assert answer["status"] == 0 and answer["message_token"]
    finally:
        process.kill()


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/_simulator/health", timeout=1).ok
    except requests.RequestException:
        return False
