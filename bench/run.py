"""``make bench``: accept, send, failover and timer figures against same-run baselines, and the
cost of a million waiting workflows. Prints one table, writes docs/benchmarks.md and ends with
the ``BENCH …`` line. Every process it starts is stopped again, also on failure.

    python -m bench.run [--size small|full] [--skip-scale] [--profile]
                        [--only accept|latency|backlog]
"""

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import stack as stack_mod

MAIN_DB, SCALE_DB = "orch_bench", "orch_bench_scale"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Size:
    accept_rounds: int
    accept_seconds: int
    connections: int
    step_rounds: int
    step_count: int
    failover_count: int
    failover_per_second: float
    timer_count: int
    timer_spread_s: float
    timer_lead_s: float
    scale_count: int
    ticks: int
    latency_rounds: int
    latency_count: int
    backlog_count: int
    burst_count: int


SIZES = {
    "full": Size(5, 10, 8, 3, 500, 300, 10, 10_000, 60, 25, 1_000_000, 30, 4, 3000, 10_000, 2000),
    "small": Size(3, 3, 8, 2, 200, 60, 10, 1000, 15, 10, 20_000, 10, 1, 1500, 2000, 500),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--only",
        choices=("accept", "latency", "backlog"),
        help="one phase alone (the accept rounds, the send rates by provider latency, or the "
        "failover behind a backlog): its figures are printed, no table, no docs",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the accept, send, tick")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    size = SIZES[args.size]

    stack_mod.ensure_services()
    url = stack_mod.recreate_database(MAIN_DB)
    os.environ.update(stack_mod.STACK_SETTINGS)
    os.environ.update({"DATABASE_URL": url, "REDIS_URL": stack_mod.redis_url()})
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()
    from bench import report

    # SIGTERM (a CI time-out, Ctrl-C from make) must still reach the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log_dir = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    started = time.monotonic()
    results: dict = {"size": args.size, "commands": " ".join(sys.argv)}
    stack = None
    try:
        stack = stack_mod.BenchStack(database_url=url, log_dir=log_dir)
        if args.only == "latency":
            run_send_rates(stack, size, results)
        elif args.only == "backlog":
            run_backlog(stack, size, results, connect=True)
        else:
            run_main_phases(stack, size, results, args.profile, log_dir, args.only == "accept")
        stack.stop_all()
        if not (args.skip_scale or args.only):
            stack = stack_mod.BenchStack(
                database_url=stack_mod.recreate_database(SCALE_DB), log_dir=log_dir
            )
            run_scale_phase(stack, size, results, args.profile, log_dir)
    except BaseException:
        if stack is not None:
            print(stack.logs(), file=sys.stderr)
        raise
    finally:
        if stack is not None:
            stack.stop_all()
        stack_mod.flush_redis()
    results["elapsed_s"] = time.monotonic() - started
    if args.only == "latency":
        print(report.latency_line(results["latency"]))
        return
    if args.only == "backlog":
        print(report.backlog_line(results["backlog"]))
        return
    if args.only == "accept":  # no table, no docs: the figure alone
        accept = results["accept"]
        rounds = [
            f"{o.rate / b.rate:.2f}" for o, b in zip(accept.ours, accept.baseline, strict=True)
        ]
        print(
            f"ACCEPT accept_ratio={accept.ratio:.2f} ours={accept.ours_rate:.0f}/s "
            f"baseline={accept.baseline_rate:.0f}/s rounds={','.join(rounds)}"
        )
        return
    results["machine"] = machine()
    table = report.table(results)
    print(table)
    report.write_docs(Path(args.docs), results, table)
    print(report.bench_line(results))


def run_main_phases(
    stack, size: Size, results: dict, profile: bool, log_dir: Path, accept_only: bool = False
) -> None:
    from bench import measure

    stack_mod.flush_redis()
    stack.start("web")
    say("accept throughput (gunicorn only)")
    creds = measure.new_account("bench accept")
    accept = measure.accept_throughput(
        stack, creds, size.accept_rounds, size.accept_seconds, size.connections
    )
    results["accept"] = accept
    if profile:
        results["profile_accept"] = profile_accept(stack, creds, size, log_dir)
    measure.reset_runs()
    stack_mod.flush_redis()
    if accept_only:
        return

    # No scheduler while sends are timed: queued sends wait longer than PENDING_GRACE while the
    # worker is paused, and it would queue each a second time.
    stack.start("worker")
    say("step throughput (sends vs no-op tasks)")
    creds = measure.new_account("bench steps")
    results["steps"] = measure.step_throughput(stack, creds, size.step_rounds, size.step_count)
    results["worker_memory_empty"] = stack_mod.memory_mb(stack.pid("worker"))
    if profile:
        results["profile_send"] = profile_send(stack, creds, size, log_dir)
    stack.start("scheduler")

    say("failover latency (rejected at once → next step submitted)")
    creds = measure.new_account("bench failover")
    results["failover_ms"] = measure.failover_latency(
        stack, creds, size.failover_count, size.failover_per_second
    )

    say(f"timer lateness ({size.timer_count} deadlines over {size.timer_spread_s:.0f}s)")
    results["timers"] = measure.timer_lateness(
        stack,
        measure.new_account("bench timers"),
        size.timer_count,
        size.timer_spread_s,
        size.timer_lead_s,
    )
    clear_backlog(stack)
    say("timer lateness with the worker killed and Redis flushed mid-run")
    results["timers_flush"] = measure.timer_lateness(
        stack,
        measure.new_account("bench timers flush"),
        size.timer_count,
        size.timer_spread_s,
        size.timer_lead_s,
        lose_redis_at=size.timer_spread_s / 2,
    )
    clear_backlog(stack)
    run_latency_phase(stack, size, results, log_dir)


def run_send_rates(stack, size: Size, results: dict) -> list:
    """Start the simulator, a connection to it per latency, and measure the send rate at each;
    returns the connections."""
    from bench import latency, measure

    stack.start("simulator", "worker")  # (those already running are left as they are)
    connections = [latency.connect(stack, ms) for ms in latency.LATENCIES_MS]
    say(f"send rate at {', '.join(map(str, latency.LATENCIES_MS))} ms provider latency")
    creds = measure.new_account("bench latency")
    results["latency"] = latency.send_rates(stack, creds, size.latency_rounds, size.latency_count)
    return connections


def run_backlog(stack, size: Size, results: dict, *, connect: bool = False) -> None:
    """Failover and timers behind a backlog of sends at 250 ms (with ``connect``, alone: the
    processes and the simulator's latencies first, as :func:`run_send_rates` leaves them)."""
    from bench import latency, measure

    if connect:
        stack.start("simulator", "worker", "scheduler")
        for ms in latency.LATENCIES_MS:
            latency.connect(stack, ms)
    say(f"failover and timers behind a backlog of {size.backlog_count:,} sends at 250 ms")
    results["backlog"] = latency.backlog_failover(
        stack,
        measure.new_account("bench backlog"),
        measure.new_account("bench backlog timers"),
        size.backlog_count,
        timers=500,
    )


def run_latency_phase(stack, size: Size, results: dict, log_dir: Path) -> None:
    """Sends through the provider simulator at 0, 250 and 1000 ms (bench/latency.py)."""
    from bench import latency, measure

    connections = run_send_rates(stack, size, results)
    run_backlog(stack, size, results)
    say(f"a burst of {size.burst_count:,} sends through a connection limited to 50/s")
    results["rate_limit"] = latency.rate_limited_burst(
        stack, measure.new_account("bench rate"), size.burst_count, 50.0
    )
    for row in connections:
        row.delete()
    stack.stop("worker", "scheduler")  # the peer runs alone, as ours did
    say("the DIY peer (bench/peer): accept, sends, timers, Redis flush")
    from bench.peer_measure import measure_peer

    (log_dir / "peer").mkdir(exist_ok=True)
    results["peer"] = measure_peer(
        stack.simulator_url,
        log_dir / "peer",
        size.accept_rounds,
        size.accept_seconds,
        min(size.latency_count, 500),  # one send per task: at 250 ms it manages ~7/s
    )
    measure.reset_runs()
    stack_mod.flush_redis()
    stack.start("worker", "scheduler")


def clear_backlog(stack) -> None:
    """Forget the runs (and queued sends) of the phase that just ended, so that sends it left
    queued do not weigh on the next one."""
    from bench import measure

    stack.stop("worker", "scheduler")
    measure.reset_runs()
    stack_mod.flush_redis()
    stack.start("worker", "scheduler")


def run_scale_phase(stack, size: Size, results: dict, profile: bool, log_dir: Path) -> None:
    from bench import measure
    from bench.fixtures import insert_waiting_workflows, settle_tables

    measure.use_database(SCALE_DB)
    stack_mod.flush_redis()
    creds = measure.new_account("bench scale")
    say(f"inserting {size.scale_count:,} waiting workflows (deadlines up to 24 h)")
    began = time.monotonic()
    insert_waiting_workflows(
        account_id=creds.account.id,
        count=size.scale_count,
        deadlines_from_s=60,
        deadlines_to_s=86_400,
        on_batch=lambda done: say(f"  {done:,} inserted", end="\r"),
    )
    results["scale_insert_s"] = time.monotonic() - began
    say("vacuum and checkpoint after the load")
    settle_tables()
    results["scale_count"] = size.scale_count
    stack.start("web", "worker", "scheduler")
    time.sleep(15)  # the scheduler arms the countdowns inside TIMER_HORIZON
    say("scale: worker memory, Redis memory, scheduler tick")
    results["worker_memory"] = stack_mod.memory_mb(stack.pid("worker"))
    results["redis_mb"], results["redis_instance_mb"] = measure.redis_memory()
    stack.stop("scheduler")  # the bench runs the ticks itself, as the scheduler would
    results["ticks_ms"] = measure.tick_times(size.ticks, scheduler_interval())
    results["tick_plans"] = measure.explain_tick()
    if profile:
        results["profile_tick"] = profile_ticks(log_dir)
    # Sends at scale are not timed: the steady timer load (a million deadlines over 24 h is
    # ~12 failovers and ~12 sends a second) keeps this worker's queue from ever draining here.
    time.sleep(5)
    results["worker_memory"] = max(
        results["worker_memory"], stack_mod.memory_mb(stack.pid("worker"))
    )
    stack.stop("worker")  # the scheduler is already stopped
    say("scale: accept throughput, alternating with a server on empty tables")
    measure.use_database(MAIN_DB)
    measure.reset_runs()
    empty_creds = measure.new_account("bench empty")
    measure.use_database(SCALE_DB)
    (log_dir / "empty").mkdir(exist_ok=True)
    empty = stack_mod.BenchStack(
        database_url=stack_mod.database_url(MAIN_DB), log_dir=log_dir / "empty"
    )
    try:
        empty.start("web")
        results["scale_accept"] = measure.accept_throughput(
            stack,
            creds,
            size.accept_rounds,
            size.accept_seconds,
            size.connections,
            empty=(empty, empty_creds),
        )
    finally:
        empty.stop_all()


# --- Profiles (py-spy) -----------------------------------------------------------------------


def py_spy(pid: int, seconds: float, out: Path, subprocesses: bool = True) -> subprocess.Popen:
    argv = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    if subprocesses:
        argv.append("--subprocesses")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_accept(stack, creds, size: Size, log_dir: Path) -> Path:
    from bench import measure

    out = log_dir / "accept.collapsed"
    spy = py_spy(stack.pid("web"), size.accept_seconds, out)
    measure.wrk_post(
        stack.base_url + "/beta/workflows",
        measure.two_step_request("1000000003", 600),
        creds.header,
        size.accept_seconds,
        size.connections,
    )
    spy.wait(timeout=120)
    return out


def profile_send(stack, creds, size: Size, log_dir: Path) -> Path:
    from bench import measure

    out = log_dir / "send.collapsed"
    spy = py_spy(stack.pid("worker"), 12, out)
    measure.send_rate(stack, creds, size.step_count)
    spy.wait(timeout=120)
    from orchestrator.celery import app

    app.control.add_consumer("celery", destination=[stack.worker_name()], reply=True)
    return out


def profile_ticks(log_dir: Path) -> Path:
    from bench import measure

    out = log_dir / "tick.collapsed"
    spy = py_spy(os.getpid(), 10, out, subprocesses=False)
    measure.tick_times(10, scheduler_interval())
    spy.wait(timeout=120)
    return out


# --- Helpers ---------------------------------------------------------------------------------


def scheduler_interval() -> float:
    from django.conf import settings

    return settings.SCHEDULER_INTERVAL


def say(message: str, end: str = "\n") -> None:
    print(f"[bench] {message}", end=end, file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    import celery
    import django
    import gunicorn
    import psycopg
    import redis

    from bench.measure import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        shared_buffers = cursor.fetchone()[0]
    redis_info = redis.Redis.from_url(stack_mod.redis_url()).info("server")
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": run("nproc"),
        "memory": f"{mem_kb / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "celery": celery.__version__,
        "gunicorn": gunicorn.__version__,
        "psycopg": psycopg.__version__,
        "postgres": f"{pg_version} (shared_buffers {shared_buffers})",
        "redis": redis_info.get("redis_version", "?"),
        "wrk": run("wrk", "--version").splitlines()[0] if run("wrk", "--version") else "?",
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "web": f"gunicorn {stack_mod.WEB_WORKERS} workers x {stack_mod.WEB_THREADS} threads",
        "worker": f"celery prefork, concurrency {stack_mod.WORKER_CONCURRENCY}",
    }


def median(values) -> float:
    return statistics.median(values)


if __name__ == "__main__":
    main()
