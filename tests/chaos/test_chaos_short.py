"""The short version of ``make chaos`` runs with the suite: every scenario, fewer workflows
(about four minutes: twelve scenarios, the webhook receiver down for 30 s of them).

It starts its own PostgreSQL and Redis (tests/chaos/infra.py), so it needs the PostgreSQL
server binaries and redis-server on this machine, but never the shared servers.
"""

import re
import subprocess
import sys

import pytest

from tests.chaos.infra import ChaosInfraUnavailable, ThrowawayRedis, _postgres_bindir
from tests.services import ROOT, require

# A test of the PostgreSQL + Redis mode (the servers it kills are its own): it runs in that
# pass of CI, not again in the embedded one.
pytestmark = [pytest.mark.e2e, pytest.mark.needs_services, pytest.mark.timeout(600)]


def test_nothing_is_lost_or_sent_twice_when_things_break(tmp_path):
    try:
        _postgres_bindir()
        ThrowawayRedis(tmp_path)
    except ChaosInfraUnavailable as missing:
        require(str(missing))
    result = subprocess.run(
        [sys.executable, "-m", "tests.chaos", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=560,
    )
    summary = re.search(
        r"^CHAOS scenarios=(\d+) passed=(\d+) lost=(\d+) duplicates=(\d+)$",
        result.stdout,
        re.MULTILINE,
    )
    assert summary, result.stdout[-3000:] + result.stderr[-3000:]
    scenarios, passed, lost, duplicates = map(int, summary.groups())
    assert (lost, duplicates) == (0, 0), result.stdout
    assert scenarios >= 12 and passed == scenarios, result.stdout
    assert result.returncode == 0, result.stdout
