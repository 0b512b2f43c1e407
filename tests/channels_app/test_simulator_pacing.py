"""The simulator answers after a configured latency, enforces a rate limit with 429 and
Retry-After, and keeps HTTP/1.1 connections open (so clients can reuse them)."""

import time

import requests

TWILIO_SEND = "/2010-04-01/Accounts/{sid}/Messages.json"


def twilio_send(session, base_url: str, sid: str = "AC1", to: str = "+447700900003"):
    return session.post(
        base_url + TWILIO_SEND.format(sid=sid),
        data={"To": to, "From": "+447700900001", "Body": "hi"},
        auth=(sid, "token"),
        timeout=10,
    )


def test_sends_are_answered_after_the_latency_set_for_their_path(simulator):
    simulator.post("latency", {"seconds": 0.3, "path": TWILIO_SEND.format(sid="ACSLOW")[:-14]})
    session = requests.Session()
    began = time.monotonic()
    assert twilio_send(session, simulator.base_url, sid="ACFAST").status_code == 201
    fast = time.monotonic() - began
    began = time.monotonic()
    assert twilio_send(session, simulator.base_url, sid="ACSLOW").status_code == 201
    slow = time.monotonic() - began
    assert fast < 0.25 <= 0.3 <= slow


def test_a_global_latency_applies_to_every_provider(simulator):
    simulator.post("latency", {"seconds": 0.2})
    began = time.monotonic()
    answer = requests.post(
        simulator.base_url + "/pa/send_message",
        json={"receiver": "u3", "type": "text", "text": "hi", "sender": {"name": "S"}},
        headers={"X-Viber-Auth-Token": "token"},
        timeout=5,
    )
    assert answer.json()["status"] == 0
    assert time.monotonic() - began >= 0.2


def test_sends_above_the_rate_limit_draw_429_with_retry_after_per_account(simulator):
    simulator.post("rate_limit", {"per_second": 2, "burst": 3, "per": "account"})
    session = requests.Session()
    codes = [twilio_send(session, simulator.base_url, sid="ACA").status_code for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    throttled = twilio_send(session, simulator.base_url, sid="ACA")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    # Another account has its own bucket.
    assert twilio_send(session, simulator.base_url, sid="ACB").status_code == 201
    time.sleep(0.6)  # one token back at 2/s
    assert twilio_send(session, simulator.base_url, sid="ACA").status_code == 201
    stats = requests.get(simulator.base_url + "/_simulator/stats", timeout=5).json()
    assert stats["throttled"] == 3


def test_a_rate_limit_per_sender_counts_each_sender_apart(simulator):
    simulator.post("rate_limit", {"per_second": 1, "burst": 1, "per": "sender"})
    base = simulator.base_url + TWILIO_SEND.format(sid="AC1")

    def send(sender: str) -> int:
        data = {"To": "+447700900003", "From": sender, "Body": "hi"}
        return requests.post(base, data=data, auth=("AC1", "t"), timeout=5).status_code

    assert [send("+1"), send("+2"), send("+1")] == [201, 201, 429]


def test_a_kept_alive_session_opens_one_connection_for_many_sends(simulator):
    session = requests.Session()
    before = requests.get(simulator.base_url + "/_simulator/stats", timeout=5).json()
    for _ in range(20):
        assert twilio_send(session, simulator.base_url).status_code == 201
    after = session.get(simulator.base_url + "/_simulator/stats", timeout=5).json()
    # 20 sends and the stats request on one connection (the first stats call had its own).
    assert after["connections_opened"] - before["connections_opened"] == 1
