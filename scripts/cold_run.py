"""Time a cold ``make run``: from ``make run`` starting to the first 202 of the curl it prints.

    python3 scripts/cold_run.py [--keep-caches] [--port N]

Clones the current commit into a temporary folder (no .venv, no var/), runs ``make run`` there
with no service configured (embedded defaults) and, by default, empty uv and pip caches (as on
a machine that never installed the project), waits for the banner's canonical curl, pastes it
into bash until it answers 202 (the web process may still be starting), prints the figures,
then stops ``make run`` with SIGINT as Ctrl-C would. Needs only Python 3.11+, git, make, curl.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CURL = re.compile(r"^curl -X POST .*?\]\}'$", re.DOTALL | re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-caches", action="store_true", help="use the warm uv/pip caches")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cold-run-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("CELERY_BROKER_URL", None)
    env.pop("VIRTUAL_ENV", None)
    env.update(PORT=str(args.port or free_port()), HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    if not args.keep_caches:
        env.update(UV_CACHE_DIR=str(work / "uv-cache"), PIP_NO_CACHE_DIR="1")

    output: list[str] = []
    started = time.monotonic()
    make = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    marks: dict[str, float] = {}

    def read() -> None:
        assert make.stdout is not None
        for line in make.stdout:
            output.append(line)
            now = time.monotonic() - started
            if "Installing requirements.lock" in line:
                marks.setdefault("install starts", now)
            if "manage.py demo_setup" in line:
                marks.setdefault("demo_setup starts", now)
            if "honcho" in line and "start" in line:
                marks.setdefault("honcho starts", now)

    threading.Thread(target=read, daemon=True).start()
    try:
        command = None
        while command is None:
            if make.poll() is not None:
                print("".join(output), file=sys.stderr)
                print("make run exited before printing the curl", file=sys.stderr)
                return 1
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"no curl after {args.timeout} s:\n{''.join(output)}")
            match = CURL.search("".join(output))
            command = match and match.group(0)
            time.sleep(0.05)
        marks["banner printed"] = time.monotonic() - started
        status = ""
        while status != "202":
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"no 202 after {args.timeout} s:\n{''.join(output)}")
            result = subprocess.run(
                ["bash", "-c", command + " -s -o /dev/null -w '%{http_code}'"],
                capture_output=True,
                text=True,
            )
            status = result.stdout.strip()
            if status != "202":
                time.sleep(0.1)
        marks["first 202"] = time.monotonic() - started
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)
            try:
                make.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    caches = "warm caches" if args.keep_caches else "empty uv and pip caches"
    print(f"cold make run ({caches}), seconds after `make run` started:")
    for name, at in sorted(marks.items(), key=lambda item: item[1]):
        print(f"  {name:18} {at:6.1f}")
    print(f"COLD_RUN first_202_seconds={marks['first 202']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
