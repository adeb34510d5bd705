"""Shared fixtures: real bare repositories, checked with the real ``git`` binary."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitstate import AgentState, StateRepository

if TYPE_CHECKING:
    from cli_helpers import Gitstate


def pytest_configure(config: pytest.Config) -> None:
    """Property tests: a modest number of examples by default, many more in CI (HYPOTHESIS_PROFILE=ci).
    No deadline: how fast an example runs is the benchmark's business, not a test's."""
    # imported here, not above: child processes import this module too, and need no hypothesis
    from hypothesis import settings

    settings.register_profile("default", max_examples=25, deadline=None)
    settings.register_profile("ci", max_examples=200, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def examples(factor: float) -> int:
    """``factor`` times the profile's number of examples (a test's own count, scaled with the profile)."""
    from hypothesis import settings

    return max(1, round(factor * settings().max_examples))


def git(repo: StateRepository | str | os.PathLike[str], *args: str, check: bool = True) -> str:
    """Run the real git binary on a bare repository and return its stdout."""
    path = repo.path if isinstance(repo, StateRepository) else os.fspath(repo)
    result = subprocess.run(["git", "--git-dir", path, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def fsck(repo: StateRepository | str) -> None:
    """Assert ``git fsck --strict`` accepts the repository (no errors, no warnings)."""
    path = repo.path if isinstance(repo, StateRepository) else repo
    result = subprocess.run(["git", "--git-dir", path, "fsck", "--strict", "--no-dangling"],
                            capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if not line.startswith("notice:")]
    assert result.returncode == 0 and not problems, result.stderr


def snapshot(repo: StateRepository) -> dict[str, str]:
    """Every file of the repository with a hash of its content (gitstate's locks, spare and
    replaced files excluded: a failed write may use up a spare and maintenance frees replaced
    files, neither changes what the repository holds)."""
    root = Path(repo.path)
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(("gitstate/locks", "gitstate/spares", "gitstate/replaced")):
            files[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return files


@pytest.fixture
def gitstate(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gitstate:
    """``gitstate ARGS`` in a fresh current folder, in-process through click's runner.

    A test that needs a real process (exit status, streams, terminal, signals) says so with
    ``cli_helpers.as_a_process`` or ``cli_helpers.both_ways``; the installed executable runs then.
    """
    from cli_helpers import Gitstate  # here: cli_helpers imports this module

    monkeypatch.chdir(tmp_path)
    for name in ("GITSTATE_REPO", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return Gitstate(getattr(request, "param", "runner"), tmp_path)


@pytest.fixture
def repo(tmp_path: Path) -> StateRepository:
    """A new bare repository; automatic maintenance off, so tests see exactly what they wrote
    (tests of maintenance turn it on with ``configure_maintenance``)."""
    repo = StateRepository.init(tmp_path / "state.git")
    repo.configure_maintenance(auto_objects=0)
    return repo


def grow(state: AgentState, steps: int = 1) -> AgentState:
    """Advance an agent the way a real run does: one message and one action per step."""
    for _ in range(steps):
        state.increment_iteration()
        state.add_message("assistant", f"step {state.iteration}: looked at file_{state.iteration}.py")
        state.add_action({"tool": "read_file", "path": f"src/file_{state.iteration}.py"})
    return state
