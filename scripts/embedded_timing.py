"""Failover gap and timer lateness in embedded mode, measured with the service's own timestamps.

    .venv/bin/python scripts/embedded_timing.py [--rejected 60] [--expiring 30] [--expiry 15]

Starts the stack as ``make run`` does (``demo_setup``, then ``honcho start`` on the Procfile) in
a fresh temporary VAR_DIR on a free port, with nothing configured (SQLite, Celery's filesystem
transport), and creates over HTTP, at a steady pace:

- runs whose first message the sandbox rejects at once (recipient ending in 1): the **failover
  gap** is the second step's ``sent_at`` minus the first attempt's ``finished_at`` (the
  rejection recorded → the next message submitted; bench/measure.py's definition);
- runs whose first message is delivered and never read (ending in 4), waiting ``--expiry`` s:
  the **timer lateness** is the failover Event's ``created_at`` minus ``Step.deadline_at``, and
  a timer is **early** if it fired before ``sent_at + expiry_time``.

Prints p50 / p99 / max of each and the count of early timers (must be 0), then stops the stack.
"""

import argparse
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.embedded_stack import (  # noqa: E402 - after the path is set
    START_TIMEOUT,
    EmbeddedStack,
    canonical_request,
    demo_setup,
    embedded_env,
)
from tests.services import free_port, wait_for  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def post_runs(stack: EmbeddedStack, session: requests.Session, bodies: list[dict], rate: float):
    started = time.monotonic()
    for n, body in enumerate(bodies):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        response = session.post(stack.base_url + "/beta/workflows", json=body, timeout=10)
        response.raise_for_status()


def measure(db: sqlite3.Connection) -> dict:
    gaps = [
        (at(sent) - at(rejected)).total_seconds() * 1000
        for rejected, sent in db.execute(
            """SELECT a0.finished_at, s1.sent_at
            FROM workflows_app_step s0
            JOIN workflows_app_attempt a0 ON a0.step_id = s0.id AND a0.outcome = 'error'
            JOIN workflows_app_step s1 ON s1.workflow_id = s0.workflow_id AND s1."index" = 1
            WHERE s0."index" = 0 AND s0.failover_reason = 'rejected' AND s1.sent_at IS NOT NULL"""
        )
    ]
    timers = db.execute(
        """SELECT e.created_at, s.deadline_at, s.sent_at, s.expiry_time, s.finished_at
        FROM workflows_app_step s
        JOIN workflows_app_event e ON e.step_id = s.id AND e.to_state = 'failed_over'
        WHERE s."index" = 0 AND s.failover_reason = 'expired'"""
    ).fetchall()
    lateness = [(at(fired) - at(deadline)).total_seconds() * 1000 for fired, deadline, *_ in timers]
    early = sum(
        1
        for fired, _, sent, expiry, finished in timers
        if min(at(fired), at(finished)) < at(sent) + timedelta(seconds=expiry)
    )
    return {"gaps": gaps, "lateness": lateness, "early": early}


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    return (
        f"{name} (ms, n={len(values)}): p50 {percentile(values, 50):.0f}, "
        f"p99 {percentile(values, 99):.0f}, max {max(values):.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rejected", type=int, default=60, help="runs rejected at once")
    parser.add_argument("--expiring", type=int, default=30, help="runs that wait and expire")
    parser.add_argument("--expiry", type=int, default=15, help="their expiry_time, seconds")
    parser.add_argument("--rate", type=float, default=5.0, help="runs created per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embedded-timing-") as tmp:
        var_dir = Path(tmp) / "var"
        env = embedded_env(var_dir, free_port())
        banner = demo_setup(env, "--port", env["PORT"], "--host", env["HOST"])
        credentials = json.loads((var_dir / "demo-account.json").read_text())
        stack = EmbeddedStack(env, Path(tmp) / "honcho.log", banner, credentials)
        try:
            stack.start()
            wait_for(stack.answers, START_TIMEOUT, message="the web process to answer")
            session = requests.Session()
            session.auth = (credentials["api_key"], credentials["api_secret"])
            bodies = [canonical_request("1000000004", args.expiry)] * args.expiring
            bodies += [canonical_request("1000000001", 600)] * args.rejected
            post_runs(stack, session, bodies, args.rate)
            path = var_dir / "orchestrator.sqlite3"
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:

                def done():
                    found = measure(db)
                    complete = len(found["gaps"]) == args.rejected
                    return found if complete and len(found["lateness"]) == args.expiring else None

                try:
                    results = wait_for(done, args.expiry + 120, message="every run to fail over")
                except AssertionError:
                    states = db.execute(
                        'SELECT "index", state, count(*) FROM workflows_app_step GROUP BY 1, 2'
                    ).fetchall()
                    print(f"steps (index, state, count): {states}\nlog:\n{stack.log(60)}")
                    raise
                redispatched = stack.log(100_000).count("re-dispatched")
        finally:
            stack.interrupt()
            stack.kill()
    print(summary("failover gap, rejected -> next submitted", results["gaps"]))
    print(summary(f"timer lateness, {args.expiry} s expiry", results["lateness"]))
    print(f"timers fired before sent_at + expiry_time: {results['early']}")
    print(f"scheduler re-dispatches logged: {redispatched}")


if __name__ == "__main__":
    main()
