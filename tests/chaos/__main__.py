"""``python -m tests.chaos [--short] [--only NAME ...] [--seed N]``: run the chaos scenarios.

Starts a throwaway PostgreSQL and Redis in a temporary directory (the machine's shared servers
are never touched), then for each scenario a fresh web + workers + scheduler stack on them.
Prints ``scenario | runs | workflows | lost | duplicate sends | result`` and a last line
``CHAOS scenarios=N passed=P lost=L duplicates=D``. Exits 0 only if every scenario passed.
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the quick version make test runs")
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--keep", action="store_true", help="keep logs and data afterwards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s chaos %(message)s")
    logging.getLogger("workflows_app").setLevel(logging.WARNING)

    base = Path(tempfile.mkdtemp(prefix="chaos-"))
    from tests.chaos.harness import DATABASE, LONG, SHORT, World

    world = World(base)
    world.start()
    os.environ.update(
        DATABASE_URL=world.pg.url(DATABASE, application_name="chaos-harness"),
        REDIS_URL=world.redis.url,
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        outcomes = run_all(world, SHORT if args.short else LONG, args.seed, args.only, base)
    finally:
        world.stop()
        finished = locals().get("outcomes")  # None when interrupted: keep the logs
        if not args.keep and finished is not None and all(o.passed or o.skipped for o in finished):
            shutil.rmtree(base, ignore_errors=True)
    print(report(outcomes, args.seed, "short" if args.short else "long"))
    failed = [o for o in outcomes if not o.skipped and not o.passed]
    for outcome in failed:
        print(f"\n{outcome.name}:", *outcome.violations[:20], sep="\n  ")
    return 1 if failed or not outcomes else 0


def run_all(world, size, seed: int, only: list[str], base: Path) -> list:
    from tests.chaos.harness import Outcome, run_scenario
    from tests.chaos.scenarios import SCENARIOS

    outcomes = []
    for index, scenario in enumerate(SCENARIOS):
        if only and scenario.name not in only:
            continue
        if scenario.requires:
            outcomes.append(Outcome(scenario.name, skipped=scenario.requires))
            continue
        logging.info("scenario %s", scenario.name)
        outcome = run_scenario(world, scenario, size, seed + index, base / "logs")
        logging.info(
            "scenario %s: %s in %.0fs %s",
            scenario.name,
            "passed" if outcome.passed else "FAILED",
            outcome.seconds,
            "; ".join(outcome.notes),
        )
        outcomes.append(outcome)
    return outcomes


def report(outcomes: list, seed: int, version: str) -> str:
    header = ("scenario", "runs", "workflows", "lost", "duplicate sends", "result")
    rows = [
        (
            o.name,
            str(o.runs),
            str(o.workflows),
            str(o.lost),
            str(o.duplicates),
            ("checked in " + o.skipped) if o.skipped else ("passed" if o.passed else "FAILED"),
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"chaos ({version}, seed {seed})"]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        lines.append(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    ran = [o for o in outcomes if not o.skipped]
    lines.append(
        f"CHAOS scenarios={len(ran)} passed={sum(o.passed for o in ran)} "
        f"lost={sum(o.lost for o in ran)} duplicates={sum(o.duplicates for o in ran)}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
