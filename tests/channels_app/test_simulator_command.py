"""`manage.py simulate_providers` runs the simulator as its own process."""

import json
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
        "--send-log",
        str(tmp_path / "sends.jsonl"),
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
        # A prefix fault meets every matching recipient `times` times each.
        fault = {"recipient": "viber-bad*", "fault": "http_500", "times": 1}
        requests.post(f"{base}/_simulator/faults", json=fault, timeout=5).raise_for_status()
        statuses = [
            _viber_send(base, to, ref)
            for to, ref in [("viber-bad-a", "r1"), ("viber-bad-a", "r2"), ("viber-bad-b", "r3")]
        ]
        assert statuses == [500, 200, 500]
        sends = requests.get(f"{base}/_simulator/sends", timeout=5).json()["sends"]
        logged = [json.loads(line) for line in (tmp_path / "sends.jsonl").read_text().splitlines()]
        assert [(s["client_ref"], s["outcome"], s["fault"]) for s in sends] == [
            ("", "accepted", ""),
            ("r1", "fault", "http_500"),
            ("r2", "accepted", ""),
            ("r3", "fault", "http_500"),
        ]
        assert logged == sends
    finally:
        process.kill()


def _viber_send(base: str, receiver: str, tracking_data: str) -> int:
    body = {"receiver": receiver, "type": "text", "text": "hi", "tracking_data": tracking_data}
    return requests.post(
        f"{base}/pa/send_message", json=body, headers={"X-Viber-Auth-Token": "t"}, timeout=5
    ).status_code


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/_simulator/health", timeout=1).ok
    except requests.RequestException:
        return False
