"""The hashed locks cover what pyproject.toml declares, so `make lock` is not forgotten."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
DEPLOY_LOCK = ROOT / "requirements" / "deploy-lock.txt"
# name==version [; marker] \  followed by --hash lines
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(path: Path) -> dict[str, str]:
    """Pinned version per package for this interpreter; every pin must carry a hash."""
    pins: dict[str, str] = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        name, version, marker = match.groups()
        assert lines[number + 1].strip().startswith("--hash=sha256:"), f"{path.name}: {line}"
        if marker is None or Marker(marker).evaluate():
            assert canonicalize_name(name) not in pins, f"{path.name}: {name} pinned twice"
            pins[canonicalize_name(name)] = version
    return pins


def _declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def _unlocked() -> set[str]:
    text = (ROOT / "requirements" / "unlocked.txt").read_text()
    return {canonicalize_name(line) for line in text.split() if line and line[0] != "#"}


@pytest.mark.parametrize(
    ("lock", "extras"), [(LOCK, ("fallback", "dev")), (DEPLOY_LOCK, ())], ids=lambda v: str(v)
)
def test_every_declared_dependency_is_pinned_within_its_range(lock, extras):
    pins = _pins(lock)
    unlocked = _unlocked()
    assert not unlocked & pins.keys(), "torch is installed from TORCH_SPEC, never from a lock"
    problems = []
    for requirement in _declared(*extras):
        name = canonicalize_name(requirement.name)
        if name in unlocked or (requirement.marker and not requirement.marker.evaluate()):
            continue
        if name not in pins:
            problems.append(f"{requirement} is not in {lock.name}")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement} but {lock.name} pins {pins[name]}")
    assert not problems, "pyproject.toml changed without `make lock`:\n  " + "\n  ".join(problems)


def test_the_deploy_lock_is_a_subset_of_the_tested_lock():
    tested = _pins(LOCK)
    deploy = _pins(DEPLOY_LOCK)
    assert {name: tested.get(name) for name in deploy} == deploy
