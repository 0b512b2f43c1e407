"""The lock files agree with pyproject.toml, the source of truth (``make lock`` refreshes them).

``make run`` installs requirements.lock, ``make test`` requirements-test.lock; both pin every
package with its hashes. These tests read files only (no network): they fail when someone
edits pyproject.toml and forgets ``make lock``, or edits a lock by hand.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^ ;\\]+)(?: ?;([^\\]*))?")


def locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """``{canonical name: (version, hashes)}`` of one lock file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(3), [])
        elif current and line.strip().startswith("--hash=sha256:"):
            pins[current][1].append(line.strip().removesuffix("\\").strip())
    return pins


def declared() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        "requirements.lock": [Requirement(r) for r in project["dependencies"]],
        "requirements-test.lock": [
            Requirement(r)
            for r in project["dependencies"] + project["optional-dependencies"]["test"]
        ],
    }


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-test.lock"])
def test_every_declared_dependency_is_locked_at_a_version_it_accepts(lock):
    pins = locked(lock)
    environment = default_environment()
    for requirement in declared()[lock]:
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock}: run `make lock`"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, which {requirement} refuses: run `make lock`"
        )


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-test.lock"])
def test_every_locked_package_carries_hashes(lock):
    pins = locked(lock)
    assert pins, f"{lock} pins nothing"
    assert [name for name, (_, hashes) in pins.items() if not hashes] == []


def test_the_runtime_lock_pins_the_same_versions_as_the_test_lock():
    runtime, test = locked("requirements.lock"), locked("requirements-test.lock")
    assert {name: pin[0] for name, pin in runtime.items()} == {
        name: test[name][0] for name in runtime if name in test
    }
    assert set(runtime) <= set(test)
