"""Every write operation killed, or failed with ENOSPC/EIO, at each file-system call it makes
(tests/crashpoints.py explains how). Marked ``crash``: ``python -m pytest -q`` leaves these
out; CI runs ``python -m pytest -q -m crash`` after it. Needs strace and ptrace.

A failure lists each failed check with the kill point and the command that reruns it
(``python bench/crash_sweep.py --ci --op OP --fault FAULT --point N``). The last two
tests check that the harness sees what it must: a torn ref, an untyped error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from crashpoints import (
    CI_FAULTS,
    CI_SETTINGS,
    ERROR,
    OPERATIONS,
    Env,
    Harness,
    Operation,
    scratch_dir,
)

from gitstate import StateRepository

pytestmark = pytest.mark.crash
JOBS = min(4, os.cpu_count() or 1)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    workdir = scratch_dir()
    harness = Harness(workdir, **CI_SETTINGS)
    yield harness
    harness.close()
    shutil.rmtree(workdir)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_kill_point(harness: Harness, name: str) -> None:
    result = harness.run(name, CI_FAULTS, jobs=JOBS)
    assert result.points, f"{name}: no call that changes the repository was recorded"
    if result.failures:
        pytest.fail(result.report(), pytrace=False)


def _torn_rollback(repo: StateRepository, env: Env) -> None:
    """A hard rollback done wrong: the branch file rewritten in place (truncate, then write)."""
    parent = repo.resolve("a", "latest~1").commit
    with open(os.path.join(repo.path, "refs", "heads", "agents", "a"), "w") as f:
        f.write(parent + "\n")


def test_the_harness_finds_a_torn_ref_write(harness: Harness) -> None:
    result = harness.run(Operation("torn_rollback", "basic", _torn_rollback, removes=True), ["KILL"])
    assert [(p.call.name, p.call.where) for p in result.points] == [
        ("openat", "refs/heads/agents/a"), ("write", "refs/heads/agents/a")]
    torn = {f.check for f in result.failures if f.point is not None and f.point.index == 1}
    assert {"acknowledged checkpoint loads", "verify after the fault"} <= torn, result.report()
    assert not [f for f in result.failures if f.point is not None and f.point.index == 0]


def _untyped_error(repo: StateRepository, env: Env) -> None:
    """A write whose file-system error comes out as something else than a typed error."""
    try:
        with open(os.path.join(repo.path, "description"), "a") as f:
            f.write("more\n")
    except OSError as exc:
        raise RuntimeError("could not write") from exc


def test_the_harness_finds_an_untyped_error(harness: Harness) -> None:
    result = harness.run(Operation("untyped_error", "basic", _untyped_error), [ERROR])
    assert [(p.call.name, p.call.where) for p in result.points] == [
        ("openat", "description"), ("write", "description")]
    assert [(f.point.index if f.point else None, f.fault, f.check) for f in result.failures] == [
        (0, "ENOSPC", "typed error"), (1, "ENOSPC", "typed error")], result.report()
    assert "untyped RuntimeError: could not write" in result.failures[0].message
