"""gitstate gc and verify through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import fsck
from gitstate import StateRepository
from gitstate_cli.main import cli


def test_gc_packs_and_verify_reports_ok(tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git")
    for i in range(20):
        repo.save({"agent_id": "a", "iteration": i, "log": ["line"] * i})
    runner = CliRunner()
    out = runner.invoke(cli, ["--repo", repo.path, "gc", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["packed_objects"] >= 60
    fsck(repo)
    out = runner.invoke(cli, ["--repo", repo.path, "verify", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["ok"] is True
    assert [c.iteration for c in repo.log("a", limit=2)] == [19, 18]


def test_verify_exits_1_on_a_damaged_repository(tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git")
    repo.save({"agent_id": "a", "iteration": 1})
    (Path(repo.path) / "refs/heads/agents/a").write_text("0" * 40 + "\n")
    out = CliRunner().invoke(cli, ["--repo", repo.path, "verify"])
    assert out.exit_code == 1 and "PROBLEMS" in out.output
