"""The DIY peer (bench/peer) measured as ours is, on the same machine, PostgreSQL, Redis and
provider simulator: accept rate (wrk), send rate at 0 and 250 ms provider latency (consumer
paused while N runs are accepted, then resumed), timer lateness, and runs lost when the worker
is killed and Redis flushed while their countdowns wait."""

import os
import time
from dataclasses import dataclass, field

import psycopg
import redis
import requests
from celery import Celery

from bench import stack as stack_mod
from bench.measure import WrkResult, two_step_request, wrk_post
from tests.services import BIN, ROOT, Process, celery_worker, free_port, wait_for

PEER_DB = "orch_bench_peer"
PEER_SID = "ACPEER00000"


@dataclass
class PeerResult:
    accept: list[WrkResult] = field(default_factory=list)
    send_rates: dict[int, float] = field(default_factory=dict)
    timer_lateness_ms: list[float] = field(default_factory=list)
    flush_runs: int = 0
    flush_lost: int = 0


class PeerStack:
    """gunicorn + a Celery worker (prefork, 2 processes: Celery's default shape on 2 cores)."""

    def __init__(self, simulator_url: str, log_dir) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.db_url = stack_mod.database_url(PEER_DB)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.peer.settings",
            "PEER_DATABASE_URL": self.db_url,
            "PEER_BROKER_URL": stack_mod.redis_url(),
            "PEER_PROVIDER_URL": simulator_url,
        }
        self.processes: dict[str, Process] = {}
        self.control = Celery("peer-control", broker=stack_mod.redis_url()).control
        self.name = f"peer{self.port}@{os.uname().nodename}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_database(self) -> None:
        with psycopg.connect(stack_mod.PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PEER_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{PEER_DB}"')
        argv = [str(BIN / "python"), "-m", "django", "migrate", "--run-syncdb", "-v0"]
        import subprocess

        subprocess.run(argv, cwd=ROOT, env=self.env, check=True)

    def start(self, name: str) -> None:
        argv = {
            "web": [
                str(BIN / "gunicorn"),
                "bench.peer.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--reuse-port",
                "--no-control-socket",
            ],
            "worker": celery_worker("peer", 2, self.name, app="bench.peer", level="warning"),
        }[name]
        self.processes[name] = Process(f"peer-{name}", argv, self.env, self.log_dir).start()
        if name == "web":
            wait_for(self._answers, 30, message="the peer's gunicorn")
        else:
            wait_for(self._worker_ready, 60, interval=0.3, message="the peer's worker")

    def stop(self, name: str, kill: bool = False) -> None:
        process = self.processes.pop(name, None)
        if process:
            process.kill() if kill else process.stop()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def _answers(self) -> bool:
        try:
            requests.get(self.base_url + "/runs", timeout=1)
        except requests.RequestException:
            return False
        return True

    def _worker_ready(self) -> bool:
        try:
            return bool(self.control.ping(destination=[self.name], timeout=1.0))
        except Exception:
            return False

    def query(self, sql: str, *args):
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cursor = conn.execute(sql, args)
            return cursor.fetchall() if cursor.description else []

    def truncate(self) -> None:
        """Empty the peer's tables. Retried when it deadlocks with a request that wrk left in
        flight, still inserting (TRUNCATE locks the tables one by one)."""
        for _ in range(10):
            try:
                self.query("TRUNCATE peer_run CASCADE")
                return
            except psycopg.errors.DeadlockDetected:
                time.sleep(0.5)
        self.query("TRUNCATE peer_run CASCADE")

    def post_runs(self, count: int, body: dict) -> None:
        session = requests.Session()
        for _ in range(count):
            session.post(self.base_url + "/runs", json=body, timeout=10).raise_for_status()


def peer_body(fate: str, expiry: int) -> dict:
    body = two_step_request(f"44770090000{fate}", expiry)
    body["workflow"][0]["from"] = {"type": "sms", "number": "447000900001"}
    return body


def measure_peer(
    simulator_url: str, log_dir, accept_rounds: int, accept_seconds: int, count: int
) -> PeerResult:
    """Every peer figure; the peer's processes are stopped again, also on failure."""
    peer = PeerStack(simulator_url, log_dir)
    peer.create_database()
    result = PeerResult()
    try:
        peer.start("web")
        body = peer_body("3", 3600)
        for _ in range(accept_rounds):
            result.accept.append(wrk_post(peer.base_url + "/runs", body, "", accept_seconds, 8))
        stack_mod.flush_redis()  # what wrk queued: the peer's worker never ran
        peer.truncate()
        peer.start("worker")
        for ms in (0, 250):
            requests.post(
                f"{simulator_url}/_simulator/latency",
                timeout=5,
                json={"seconds": ms / 1000, "path": f"/2010-04-01/Accounts/{PEER_SID}/"},
            )
            result.send_rates[ms] = _send_rate(peer, count)
        requests.post(
            f"{simulator_url}/_simulator/latency",
            timeout=5,
            json={"seconds": 0, "path": f"/2010-04-01/Accounts/{PEER_SID}/"},
        )
        result.timer_lateness_ms = _timer_lateness(peer, 200, expiry=5)
        result.flush_runs, result.flush_lost = _lost_after_flush(peer, 200, expiry=10)
    finally:
        peer.stop_all()
    return result


def _send_rate(peer: PeerStack, count: int) -> float:
    peer.truncate()
    peer.control.cancel_consumer("peer", destination=[peer.name], reply=True)
    peer.post_runs(count, peer_body("3", 3600))
    started = time.perf_counter()
    peer.control.add_consumer("peer", destination=[peer.name], reply=True)
    sent = "SELECT count(*) FROM peer_message WHERE index = 0 AND sent_at IS NOT NULL"
    wait_for(
        lambda: peer.query(sent)[0][0] >= count,
        count / 2 + 120,
        interval=0.05,
        message="the peer's sends",
    )
    return count / (time.perf_counter() - started)


def _timer_lateness(peer: PeerStack, count: int, expiry: int) -> list[float]:
    peer.truncate()
    peer.post_runs(count, peer_body("3", expiry))
    fired = "SELECT count(*) FROM peer_message WHERE index = 0 AND failed_over_at IS NOT NULL"
    wait_for(
        lambda: peer.query(fired)[0][0] >= count,
        expiry + 120,
        interval=0.5,
        message="the peer's timers",
    )
    rows = peer.query(
        "SELECT extract(epoch FROM failed_over_at - sent_at) * 1000 - expiry_time * 1000 "
        "FROM peer_message WHERE index = 0"
    )
    return [float(r[0]) for r in rows]


def _lost_after_flush(peer: PeerStack, count: int, expiry: int) -> tuple[int, int]:
    """Kill the worker and flush Redis once every first message is sent and its countdown
    waits: as our bench does to ours. Returns (runs, runs whose first step never failed over)."""
    peer.truncate()
    peer.post_runs(count, peer_body("3", expiry))
    sent = "SELECT count(*) FROM peer_message WHERE index = 0 AND sent_at IS NOT NULL"
    wait_for(lambda: peer.query(sent)[0][0] >= count, 120, interval=0.2, message="peer sends")
    peer.stop("worker", kill=True)
    redis.Redis.from_url(stack_mod.redis_url()).flushdb()
    peer.start("worker")
    time.sleep(expiry + 10)
    fired = "SELECT count(*) FROM peer_message WHERE index = 0 AND failed_over_at IS NOT NULL"
    return count, count - peer.query(fired)[0][0]
