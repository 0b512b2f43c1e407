"""The bench's output: one table, docs/benchmarks.md and the closing ``BENCH …`` line."""

import re
import statistics
from collections import Counter
from pathlib import Path

from bench.measure import percentile

FINDINGS = Path(__file__).with_name("findings.md")
SCHEDULER_INTERVAL_MS = 1000.0


def _p(values, pct) -> float:
    return percentile(list(values), pct)


def figures(r: dict) -> dict[str, float]:
    """The headline numbers, as the BENCH line names them."""
    return {
        "accept_ratio": r["accept"].ratio,
        "step_ratio": r["steps"].ratio,
        "failover_p99_ms": _p(r["failover_ms"], 99),
        "timer_p99_ms": _p(r["timers"].lateness_ms, 99),
        "flush_p99_ms": _p(r["timers_flush"].lateness_ms, 99),
        "waiting": r.get("scale_count", 0),
        "worker_rss_mb": r.get("worker_memory", r["worker_memory_empty"]).resident,
        "tick_ms": statistics.median(r["ticks_ms"]) if "ticks_ms" in r else float("nan"),
        "latency250_ratio": r["latency"].ratio(250),
        "latency1000_ratio": r["latency"].ratio(1000),
        "backlog_failover_p99_ms": _p(r["backlog"].failover_ms, 99),
        "rate_limit_error_pct": r["rate_limit"].throttled_pct,
    }


def bench_line(r: dict) -> str:
    f = figures(r)
    return (
        f"BENCH accept_ratio={f['accept_ratio']:.2f} step_ratio={f['step_ratio']:.2f} "
        f"failover_p99_ms={f['failover_p99_ms']:.0f} timer_p99_ms={f['timer_p99_ms']:.0f} "
        f"flush_p99_ms={f['flush_p99_ms']:.0f} waiting={f['waiting']} "
        f"worker_rss_mb={f['worker_rss_mb']:.0f} tick_ms={f['tick_ms']:.1f} "
        f"latency250_ratio={f['latency250_ratio']:.2f} "
        f"latency1000_ratio={f['latency1000_ratio']:.2f} "
        f"backlog_failover_p99_ms={f['backlog_failover_p99_ms']:.0f} "
        f"rate_limit_error_pct={f['rate_limit_error_pct']:.1f}"
    )


def peer_rows(r: dict) -> list[tuple[str, str, str, str]]:
    """The DIY peer (bench/peer) beside ours: same machine, same run."""
    peer, ours = r["peer"], r
    lat = ours["latency"].rates
    return [
        (
            "peer: accept req/s (POST /runs, wrk, median) vs ours (POST /beta/workflows)",
            f"{statistics.median(w.rate for w in peer.accept):.0f} vs "
            f"{ours['accept'].ours_rate:.0f}",
            "context",
            "",
        ),
        (
            "peer: sends/s at 0 / 250 ms provider latency vs ours",
            f"{peer.send_rates[0]:.0f} / {peer.send_rates[250]:.0f} vs "
            f"{statistics.median(lat[0]):.0f} / {statistics.median(lat[250]):.0f}",
            "context",
            "",
        ),
        (
            f"peer: timer lateness (ms, n={len(peer.timer_lateness_ms)}) vs ours",
            f"p50 {_p(peer.timer_lateness_ms, 50):.0f}, p99 {_p(peer.timer_lateness_ms, 99):.0f}"
            f" vs p50 {_p(ours['timers'].lateness_ms, 50):.0f}, "
            f"p99 {_p(ours['timers'].lateness_ms, 99):.0f}",
            "context",
            "",
        ),
        (
            "peer: runs lost when the worker is killed and Redis flushed vs ours",
            f"{peer.flush_lost} of {peer.flush_runs} vs {ours['timers_flush'].lost} of "
            f"{len(ours['timers_flush'].lateness_ms) + ours['timers_flush'].lost}",
            "ours: 0",
            _ok(ours["timers_flush"].lost == 0),
        ),
    ]


def _drain_ceiling(lat, ms: int) -> float:
    """The best drain ratio N sends allow: T0 / (T0 + latency), T0 the 0 ms drain time."""
    t0 = lat.count / statistics.median(lat.drain_rates[0])
    return t0 / (t0 + ms / 1000)


def latency_line(lat) -> str:
    """``make bench``'s latency figures alone (``bench.run --only latency``)."""
    rates = {ms: statistics.median(v) for ms, v in lat.rates.items()}
    drains = {ms: statistics.median(v) for ms, v in lat.drain_rates.items()}
    return (
        f"LATENCY latency250_ratio={lat.ratio(250):.2f} latency1000_ratio={lat.ratio(1000):.2f} "
        f"sends_per_s={'/'.join(f'{v:.0f}' for v in rates.values())} "
        f"drain_ratios={lat.drain_ratio(250):.2f}/{lat.drain_ratio(1000):.2f} "
        f"drain_per_s={'/'.join(f'{v:.0f}' for v in drains.values())} "
        f"connections_per_1000={lat.connections_per_1000:.1f} "
        f"rounds={_by_round(lat.rates, '.0f', ',')} "
        f"tails_s={_by_round(lat.tails, '.1f', ',')} errors={_by_round(lat.errors, 'd', ',')}"
    )


def _by_round(figures: dict, spec: str, between: str = "; ") -> str:
    """A per-latency, per-round figure as ``0ms/250ms/1000ms`` for each round (the ratios are
    medians of rounds, so a round that paid for growing the pools, or stalled, shows here)."""
    rounds = range(len(next(iter(figures.values()))))
    return between.join("/".join(format(figures[ms][n], spec) for ms in figures) for n in rounds)


def _hops(backlog) -> list[tuple[str, str]]:
    """Each hop of the backlog's failovers, with its p50/p99 in ms."""
    return [
        (name, f"{_p(values, 50):.0f}/{_p(values, 99):.0f}")
        for name, values in backlog.hops.items()
    ]


def backlog_line(backlog) -> str:
    """``--only backlog``: the failover p99 and where it went, hop by hop (p50/p99)."""
    hops = " ".join(f"{name}={figures}" for name, figures in _hops(backlog))
    return (
        f"BACKLOG failover_p50_ms={_p(backlog.failover_ms, 50):.0f} "
        f"failover_p99_ms={_p(backlog.failover_ms, 99):.0f} "
        f"timer_p99_ms={_p(backlog.timer_lateness_ms, 99):.0f} "
        f"unfired={backlog.timers_unfired} drain_per_s={backlog.drain_rate:.0f} "
        f"hops_p50/p99_ms: {hops}"
    )


def latency_rows(r: dict) -> list[tuple[str, str, str, str]]:
    """The rows of bench/latency.py's figures (issue 15)."""
    lat, backlog, limited = r["latency"], r["backlog"], r["rate_limit"]
    rates = {ms: statistics.median(v) for ms, v in lat.rates.items()}
    drains = {ms: statistics.median(v) for ms, v in lat.drain_rates.items()}
    timers = backlog.timer_lateness_ms
    return [
        (
            "sends/s through the simulator at 0 / 250 / 1000 ms provider latency (median)",
            f"{rates[0]:.0f} / {rates[250]:.0f} / {rates[1000]:.0f} → "
            f"latency250_ratio {lat.ratio(250):.2f}, latency1000_ratio {lat.ratio(1000):.2f} "
            f"(rounds: {_by_round(lat.rates, '.0f')})",
            "≥ 0.90 and ≥ 0.80",
            _ok(lat.ratio(250) >= 0.9 and lat.ratio(1000) >= 0.8),
        ),
        (
            "each phase's slowest 1 %: seconds from the 99th percentile send's arrival to the "
            "last one's, 0 / 250 / 1000 ms by round; attempts that ended in an error",
            f"{_by_round(lat.tails, '.1f')}; errors {_by_round(lat.errors, 'd')}",
            "context",
            "",
        ),
        (
            "drain: sends/s until every run waits (answers back and recorded), same phases",
            f"{drains[0]:.0f} / {drains[250]:.0f} / {drains[1000]:.0f} → ratios "
            f"{lat.drain_ratio(250):.2f} / {lat.drain_ratio(1000):.2f} (ceiling for N sends: "
            f"{_drain_ceiling(lat, 250):.2f} / {_drain_ceiling(lat, 1000):.2f})",
            "context",
            "",
        ),
        (
            "provider connections opened per 1,000 sends (keep-alive)",
            f"{lat.connections_per_1000:.1f} ({lat.connections_opened} for {lat.sends} sends); "
            f"last round alone {lat.warm_connections_per_1000:.1f}",
            "context",
            "",
        ),
        (
            f"backlog_failover: rejected → next submitted behind a backlog at 250 ms "
            f"(ms, n={len(backlog.failover_ms)})",
            f"p50 {_p(backlog.failover_ms, 50):.0f}, p99 {_p(backlog.failover_ms, 99):.0f}",
            "p99 < 500",
            _ok(_p(backlog.failover_ms, 99) < 500),
        ),
        (
            "that backlog's sends/s at 250 ms, from the resume until every first send was "
            "answered (sustained: each send loop ends its turn several times)",
            f"{backlog.drain_rate:.0f} (sends/s at 0 ms above: {rates[0]:.0f})",
            "context",
            "",
        ),
        (
            "its hops, p50 / p99 (ms): rejection recorded → next step claimed → its send "
            "reached the simulator → its outcome recorded",
            ", ".join(f"{name} {figures.replace('/', ' / ')}" for name, figures in _hops(backlog)),
            "context",
            "",
        ),
        (
            f"timer lateness while that backlog drains (ms, n={len(timers)})",
            f"p50 {_p(timers, 50):.0f}, p99 {_p(timers, 99):.0f}; unfired {backlog.timers_unfired}",
            "p99 < 1000, none lost",
            _ok(_p(timers, 99) < 1000 and backlog.timers_unfired == 0),
        ),
        (
            f"rate limit: {limited.sends} sends through a connection limited to 50/s "
            "(rate achieved; rate_limit_error_pct = % drawing a 429)",
            f"{limited.rate:.1f}/s, {limited.throttled_pct:.1f}% 429; every deadline from the "
            f"provider's acceptance: {'yes' if limited.deadline_after_wait else 'no'}",
            "50 ± 5/s, 0% 429, deadlines from acceptance",
            _ok(
                abs(limited.rate - 50) <= 5
                and limited.throttled_pct == 0
                and limited.deadline_after_wait
            ),
        ),
    ]


WORKER = "worker + its 2 pool processes, shared pages once; VmRSS sum in brackets"


def _memory(memory) -> str:
    return f"{memory.resident:.0f} ({memory.rss_sum:.0f})"


def _ok(passed: bool) -> str:
    return "yes" if passed else "**NO**"


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    """(what, measured, goal, met) for every figure."""
    accept, steps = r["accept"], r["steps"]
    timers, flush = r["timers"], r["timers_flush"]
    failover = r["failover_ms"]
    out = [
        (
            "accept: POST /beta/workflows vs baseline (req/s, median)",
            f"{accept.ours_rate:.0f} vs {accept.baseline_rate:.0f} → ratio {accept.ratio:.2f}",
            "ratio ≥ 0.80",
            _ok(accept.ratio >= 0.8),
        ),
        (
            "accept latency p50 / p99 (ms), ours vs baseline",
            f"{_med(accept.ours, 'p50_ms'):.1f} / {_med(accept.ours, 'p99_ms'):.1f} vs "
            f"{_med(accept.baseline, 'p50_ms'):.1f} / {_med(accept.baseline, 'p99_ms'):.1f}",
            "context",
            f"{accept.errors} errors",
        ),
        (
            "steps: sandbox sends vs no-op tasks (per second, median)",
            f"{statistics.median(steps.sends):.0f} vs {statistics.median(steps.noops):.0f} "
            f"→ ratio {steps.ratio:.2f}",
            "ratio ≥ 0.90",
            _ok(steps.ratio >= 0.9),
        ),
        (
            f"failover latency, rejected → next submitted (ms, n={len(failover)})",
            f"p50 {_p(failover, 50):.0f}, p99 {_p(failover, 99):.0f}",
            "p99 < 200",
            _ok(_p(failover, 99) < 200),
        ),
        (
            f"timer lateness (ms, n={len(timers.lateness_ms)})",
            f"p50 {_p(timers.lateness_ms, 50):.0f}, p99 {_p(timers.lateness_ms, 99):.0f}; "
            f"countdown {timers.by_countdown}, tick {timers.by_scheduler}, "
            f"unfired {timers.lost}, twice {timers.fired_twice}",
            "p99 < 1000, none lost",
            _ok(_p(timers.lateness_ms, 99) < 1000 and timers.lost == 0),
        ),
        (
            "timer lateness, worker killed + Redis flushed mid-run (ms)",
            f"p50 {_p(flush.lateness_ms, 50):.0f}, p99 {_p(flush.lateness_ms, 99):.0f}; "
            f"countdown {flush.by_countdown}, tick {flush.by_scheduler}, "
            f"unfired {flush.lost}, twice {flush.fired_twice}, "
            f"next sent {flush.second_steps_sent}",
            f"p99 < {SCHEDULER_INTERVAL_MS + 1000:.0f}, none lost",
            _ok(
                _p(flush.lateness_ms, 99) < SCHEDULER_INTERVAL_MS + 1000
                and flush.lost == 0
                and flush.fired_twice == 0
            ),
        ),
        (
            f"worker resident memory, empty tables (MiB, {WORKER})",
            _memory(r["worker_memory_empty"]),
            "context",
            "",
        ),
    ]
    if "latency" in r:
        out += latency_rows(r)
    if "peer" in r:
        out += peer_rows(r)
    if "scale_count" in r:
        scale = r["scale_accept"]
        ticks = r["ticks_ms"]
        out += [
            (
                "scale: waiting workflows (bulk SQL insert time)",
                f"{r['scale_count']:,} ({r['scale_insert_s']:.0f} s)",
                "1,000,000",
                _ok(r["scale_count"] >= 1_000_000),
            ),
            (
                f"scale: worker resident memory (MiB, {WORKER})",
                _memory(r["worker_memory"]),
                "< 300",
                _ok(r["worker_memory"].resident < 300),
            ),
            (
                "scale: Redis memory (MiB: bench DB keys / whole instance)",
                f"{r['redis_mb']:.1f} / {r['redis_instance_mb']:.1f}",
                "context",
                "",
            ),
            (
                f"scale: scheduler tick (ms, n={len(ticks)})",
                f"median {statistics.median(ticks):.1f}, max {max(ticks):.1f}",
                "< 50",
                _ok(statistics.median(ticks) < 50),
            ),
            (
                "scale: accept req/s at scale vs empty tables, alternating rounds (median; "
                "ours / baseline at scale)",
                f"{scale.ours_rate:.0f} vs {scale.ours_empty_rate:.0f}"
                f" → {scale.scale_ratio:.2f} ({scale.ratio:.2f})",
                "≥ 0.85",
                _ok(scale.scale_ratio >= 0.85),
            ),
        ]
    return out


def _med(results, attr: str) -> float:
    return statistics.median(getattr(x, attr) for x in results)


def table(r: dict) -> str:
    header = ("what", "measured", "goal", "met")
    body = rows(r)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]

    def line(row):
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in body)])


def profile_summary(path: Path, top: int = 12) -> str:
    """Top frames of a py-spy ``raw`` (collapsed) profile: inclusive, for our code, and self."""
    if not path or not Path(path).exists():
        return "(no profile)"
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for frame in set(frames):
            if "workflows_app/" in frame or "channels_app/" in frame:
                inclusive[frame] += n
        leaf[frames[-1]] += n
    if not total:
        return "(empty profile)"
    lines = [f"{total} samples. Our code, inclusive:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines.append("Self time (leaf frames):")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in leaf.most_common(top)]
    return "\n".join(lines)


HOW_TO_READ = """\
- **Ratios are the figures to compare**; absolute rates depend on the machine and on whatever
  else runs on it. Every ratio divides two numbers measured minutes apart in the same run, on
  the same processes, and is the median of the per-round ratios.
- **accept**: wrk (1 thread, 8 connections, a Lua script that POSTs the canonical two-step
  request with Basic auth) against `POST /beta/workflows` and against `POST /bench/baseline`
  (same gunicorn, same settings; authenticate, parse JSON, insert one row, answer 202), in
  alternating rounds (every other round in reverse order, so that drift favours neither
  side). Only gunicorn runs during these rounds, so the worker does not compete
  for the two cores; wrk and Postgres do, equally for both. gunicorn runs with `--reuse-port`
  (a listening socket per worker), so that the kernel spreads wrk's keep-alive connections
  over both workers; on one shared socket one worker often took all eight.
- **steps**: the worker's consumer is paused, N sends (first steps; sandbox recipient ending in
  3, expiry one hour, so no receipt and no timer) or N no-op tasks are queued, and the
  consumer is resumed. Sends are timed until all N steps are `waiting` (polled in Postgres 20
  times a second): the worker sends in batches (a `send_due` task claims up to
  `SEND_BATCH_SIZE` due steps), so there is no task per send to count. No-ops are timed until
  the worker has started N of them (its own count, `inspect().stats()`, polled as often).
  Same worker processes, same Redis.
- **failover latency**: runs whose first message the sandbox rejects at once, created over
  HTTP at a steady 10/s; from the rejection being recorded (first Attempt `finished_at`) to the
  second step being accepted by the sandbox (its `sent_at`).
- **timer lateness**: waiting runs (bulk SQL, see below) with deadlines spread evenly over the
  window; lateness is the failover Event's `created_at` minus `Step.deadline_at`. "countdown"
  counts those fired by the Celery fast path, "tick" those fired by the scheduler. The second
  run SIGKILLs the worker and flushes Redis halfway through the window, so every countdown it
  held is lost; the scheduler must fire them all, each once, and every second step must still
  be sent.
- **scale**: a separate database holds a million waiting runs, inserted with
  `INSERT … SELECT generate_series` (bench/fixtures.py) row for row as the service writes them
  (a test checks that column by column); deadlines spread from one minute to 24 h. The tables
  are then vacuumed and checkpointed, as a table grown over a day would be: straight after a
  load PostgreSQL spends minutes writing out dirtied pages and setting hint bits, and the
  figures would measure that instead of the table size. The tick is
  `scheduler_tick()` run in the bench process exactly as `run_scheduler` runs it. Accept at
  scale runs wrk in rounds against this server and against a second gunicorn on the main
  database, emptied: "at scale vs empty tables" is the median of the per-round ratios of ours
  on each, so the two are measured in the same minutes.
- **latency** (bench/latency.py): three Twilio connections, each for its own sender, point at
  the provider simulator (`manage.py simulate_providers`, a process of its own, over loopback
  HTTP), which answers each after 0, 250 or 1000 ms. After a warm-up, per latency: the
  tables are vacuumed and checkpointed (autovacuum is off on the bench machine: without this a
  phase paid for the dead rows of those before it), the worker's consumer is paused, N runs
  are accepted whose first step goes out through that connection (silent recipient, expiry an
  hour), and the consumer is resumed. Send capacity (sends/s) is N over the time from the
  resume to the simulator receiving the last of the N send requests: the rate at which
  messages are handed to the provider. Rounds (4 at full size: one phase's rate varies by
  ±10% between rounds) alternate the order of the latencies; `latency250_ratio` and
  `latency1000_ratio` are the medians of the per-round ratios to 0 ms (goals 0.9 and 0.8).
  The drain rate beside it is N over the time until the last of the N is `waiting` (every
  answer back and recorded; timed by the steps' own `updated_at`, polled a few times a second,
  as each poll reads N rows of the database being measured): it holds the last send's
  answer, one provider latency whatever the concurrency, so its ratio cannot exceed
  T0 / (T0 + latency), T0 being the time N sends take at 0 ms (the table gives that ceiling).
  Connections opened: TCP connections the simulator accepted per 1,000 sends it answered
  (every worker process keeps a pool per connection, as large as its peak of calls in
  flight; the last round alone shows what a warm pool still opens).
- **backlog_failover_p99_ms**: N runs queued at 250 ms (on vacuumed tables, as for each
  latency phase; the consumer paused, then resumed),
  every 10th rejected at once by the provider (1,000 probes at full size: a p99 of 200 would
  be the second-slowest, and swung from 280 to 520 ms between runs of the same code); from the
  rejection being recorded to the next step being accepted through the 0 ms connection (so
  the figure is the engine's own delay, not the provider's latency), and where that time
  went: until the next step is claimed (the rest of the transaction recording the rejection,
  then the next claim), until its request reaches the simulator, and until its outcome is
  recorded (a record waits up to 25 ms to gather more outcomes). 500 timers (bulk SQL,
  sandbox) fall due while that backlog drains; their lateness is measured as above.
- **rate limit**: a Twilio connection with `max_per_second` 50 and the simulator enforcing
  50/s (token bucket, a second's burst) on its account; N runs at once. The rate is accepted
  sends per second from the first to the last (the simulator's own clock);
  `rate_limit_error_pct` is the share of send requests it answered 429. "Every deadline from
  the provider's acceptance": each step's deadline is its `expiry_time` after the provider
  accepted the send (`sent_at`), so the time it waited for its turn is not counted.
- **peer** (bench/peer): the same failover written as a user would with Django and Celery: a
  view that saves the run and calls `send_message.delay()`, a task that calls the provider and
  then `expire_message.apply_async(countdown=expiry_time)`, receipts updating a row; gunicorn
  2 x 4 and a prefork worker of 2 on the same PostgreSQL, Redis DB and simulator, run while
  ours is stopped. Accept: wrk as for ours (its view does no authentication or validation).
  Sends: consumer paused while N runs are accepted, then resumed. Runs lost: 200 runs with a
  10 s expiry, worker killed and Redis flushed once all are sent, as the bench does to ours.
- **Worker memory** (`worker_rss_mb`) is what the worker holds in RAM: its main process plus its
  pool processes, each page counted once however many of them share it (the sum of their PSS
  from `/proc/<pid>/smaps_rollup`). Forked pool processes share most of their pages with the
  parent, so adding up their VmRSS (shown in brackets) counts those pages three times.
"""


def write_docs(path: Path, r: dict, rendered: str) -> None:
    m = r["machine"]
    parts = [
        "# Benchmarks\n",
        "Written by `make bench` (bench/run.py); the last section is kept by hand in "
        "bench/findings.md. Re-run to refresh.\n",
        "## Result\n",
        "```\n" + bench_line(r) + "\n```\n",
        rendered + "\n",
        f"Run size `{r['size']}`, {r['elapsed_s'] / 60:.1f} minutes.\n",
        "## Machine\n",
        "\n".join(f"- {k}: {v}" for k, v in m.items()) + "\n",
        "## Commands\n",
        "```\nmake bench                      # = python -m bench.run --size full\n"
        "python -m bench.run --size small --skip-scale   # a quick look while developing\n"
        "python -m bench.run --profile   # adds py-spy profiles of accept, send and tick\n```\n",
        "It needs PostgreSQL and Redis (started if down) and `wrk` (`make bench` installs it "
        "with apt-get); `--profile` uses py-spy, from the test extra. It creates the "
        "databases `orch_bench` and `orch_bench_scale` afresh and uses Redis DB 7 "
        "(`BENCH_REDIS_DB`).\n",
        "## How to read it\n",
        HOW_TO_READ,
    ]
    if "tick_plans" in r:
        parts.append("## The tick's queries at scale: EXPLAIN (ANALYZE, BUFFERS)\n")
        for sql, plan in r["tick_plans"]:
            parts.append(f"```sql\n{sql}\n```\n```\n{plan}\n```\n")
    for name in ("accept", "send", "tick"):
        key = f"profile_{name}"
        if key in r:
            parts.append(f"## Profile: {name} (py-spy)\n")
            parts.append("```\n" + profile_summary(r[key]) + "\n```\n")
    if FINDINGS.exists():
        parts.append(FINDINGS.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
