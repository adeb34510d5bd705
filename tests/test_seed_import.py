"""StateRepository.import_seed: the seed's checkpoint folders migrated into history."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest

from gitstate import AgentState, InvalidArgumentError, SeedFormatError, StateRepository, read_seed_file
from gitstate.seed_import import ALREADY_IMPORTED, IMPORTED, PENDING, REJECTED

from conftest import fsck, git, grow, snapshot

T0 = datetime(2025, 6, 3, 14, 2, 11, 418236, tzinfo=timezone.utc)


def write_seed(folder: Path, state: AgentState, at: datetime, name: Optional[str] = None) -> Path:
    """Write a checkpoint file exactly as the seed's AgentStatePersistence.save_state does."""
    suffix = name or at.strftime("%Y%m%d_%H%M%S")
    path = folder / f"{state.agent_id}_{suffix}.json"
    envelope = {"version": "1.0", "serialized_at": at.isoformat(), "state": state.model_dump()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(envelope, f, ensure_ascii=False, indent=2)
    return path


def author_times(repo: StateRepository, agent_id: str) -> list[int]:
    return [int(t) for t in git(repo, "log", "--format=%at", f"agents/{agent_id}").split()]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "agent_checkpoints"
    path.mkdir()
    return path


def test_files_become_commits_in_save_order_with_names_and_times(repo, folder):
    state = AgentState(agent_id="agent_1a2b3c4d", task="audit")
    write_seed(folder, state, T0, name="initial")
    for step in range(1, 4):
        write_seed(folder, grow(state), T0 + timedelta(minutes=step))
    outcomes = repo.import_seed(folder)

    assert [o.status for o in outcomes] == [IMPORTED] * 4
    assert [o.name for o in outcomes] == ["initial", None, None, None]
    expected = [int((T0 + timedelta(minutes=m)).timestamp()) for m in (3, 2, 1, 0)]
    assert author_times(repo, "agent_1a2b3c4d") == expected
    assert git(repo, "rev-parse", "agents/agent_1a2b3c4d/initial").strip() == outcomes[0].checkpoint.commit
    assert repo.load("agent_1a2b3c4d").iteration == 3
    assert repo.load("agent_1a2b3c4d", "initial").iteration == 0
    trailers = git(repo, "log", "--format=%(trailers:key=Imported-From,valueonly)", "agents/agent_1a2b3c4d")
    first = outcomes[0]
    assert f"{first.filename}@" in trailers and trailers.count("@") == 4
    fsck(repo)


def test_equal_save_times_are_ordered_by_file_time(repo, folder):
    state = AgentState(agent_id="agent_00ff00ff")
    older = write_seed(folder, state, T0, name="zeta")
    newer = write_seed(folder, grow(state), T0, name="alpha")
    os.utime(older, ns=(1_000_000_000, 1_000_000_000))
    os.utime(newer, ns=(2_000_000_000, 2_000_000_000))
    repo.import_seed(folder)
    assert [c.names for c in repo.log("agent_00ff00ff")] == [("alpha",), ("zeta",)]


def test_rerun_imports_nothing_twice_and_changed_files_are_new(repo, folder):
    state = AgentState(agent_id="agent_1a2b3c4d")
    write_seed(folder, state, T0)
    path = write_seed(folder, grow(state), T0 + timedelta(seconds=30))
    repo.import_seed(folder)
    before = snapshot(repo)

    again = repo.import_seed(folder)
    assert [o.status for o in again] == [ALREADY_IMPORTED] * 2
    assert snapshot(repo) == before

    write_seed(folder, grow(state), T0 + timedelta(seconds=30))  # the seed overwrote the same file
    third = repo.import_seed(folder)
    assert [o.status for o in third] == [ALREADY_IMPORTED, IMPORTED]
    assert third[1].filename == path.name
    assert len(repo.log("agent_1a2b3c4d")) == 3


def test_invalid_files_are_reported_and_skipped(repo, folder):
    good = AgentState(agent_id="agent_1a2b3c4d")
    write_seed(folder, good, T0)
    (folder / "agent_1a2b3c4d_20250603_150000.json").write_text('{"version": "1.0", "serialized_at": "2025-06-0')
    (folder / "agent_1a2b3c4d_bare.json").write_text(json.dumps(good.model_dump()))
    bad_state = {**good.model_dump(), "iteration": "three"}
    (folder / "agent_1a2b3c4d_typed.json").write_text(
        json.dumps({"version": "1.0", "serialized_at": T0.isoformat(), "state": bad_state}))
    write_seed(folder, AgentState(agent_id="agent_99999999"), T0).rename(folder / "someone_else_x.json")
    write_seed(folder, good, T0, name="latest")
    write_seed(folder, good, T0, name="has space")
    nan_state = AgentState(agent_id="agent_1a2b3c4d", task_context={"score": float("nan")})
    write_seed(folder, nan_state, T0, name="nan")
    (folder / "agent_1a2b3c4d_when.json").write_text(
        json.dumps({"version": "1.0", "serialized_at": "yesterday", "state": good.model_dump()}))
    (folder / "notes.txt").write_text("not a checkpoint, not looked at")

    outcomes = repo.import_seed(folder)
    rejected = {o.filename: o.reason for o in outcomes if o.status == REJECTED}
    assert [o.status for o in outcomes].count(IMPORTED) == 1
    assert set(rejected) == {
        "agent_1a2b3c4d_20250603_150000.json", "agent_1a2b3c4d_bare.json", "agent_1a2b3c4d_typed.json",
        "someone_else_x.json", "agent_1a2b3c4d_latest.json", "agent_1a2b3c4d_has space.json",
        "agent_1a2b3c4d_nan.json", "agent_1a2b3c4d_when.json"}
    assert "not JSON" in rejected["agent_1a2b3c4d_20250603_150000.json"]
    assert "'version', 'serialized_at' and 'state'" in rejected["agent_1a2b3c4d_bare.json"]
    assert "iteration" in rejected["agent_1a2b3c4d_typed.json"]
    assert "agent id 'agent_99999999'" in rejected["someone_else_x.json"]
    assert "reserved" in rejected["agent_1a2b3c4d_latest.json"]
    assert "may only hold" in rejected["agent_1a2b3c4d_has space.json"]
    assert "$.task_context.score" in rejected["agent_1a2b3c4d_nan.json"]
    assert "ISO-8601" in rejected["agent_1a2b3c4d_when.json"]
    assert len(repo.log("agent_1a2b3c4d")) == 1
    fsck(repo)


def test_name_taken_in_the_repository_is_rejected_before_any_write(repo, folder):
    state = AgentState(agent_id="agent_1a2b3c4d")
    repo.save(state, name="initial")
    write_seed(folder, state, T0, name="initial")
    before = snapshot(repo)
    [outcome] = repo.import_seed(folder)
    assert outcome.status == REJECTED and "already has a checkpoint named 'initial'" in outcome.reason
    assert snapshot(repo) == before


def test_dry_run_writes_nothing(repo, folder):
    write_seed(folder, AgentState(agent_id="agent_1a2b3c4d"), T0)
    before = snapshot(repo)
    [outcome] = repo.import_seed(folder, dry_run=True)
    assert outcome.status == PENDING and outcome.checkpoint is None
    assert snapshot(repo) == before


def test_task_id_trailer_and_progress(repo, folder):
    state = AgentState(agent_id="agent_1a2b3c4d")
    for step in range(3):
        write_seed(folder, grow(state), T0 + timedelta(seconds=step))
    calls = []
    repo.import_seed(folder, task_id="task-42", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    tasks = git(repo, "log", "--format=%(trailers:key=Task-Id,valueonly)", "agents/agent_1a2b3c4d")
    assert tasks.split() == ["task-42"] * 3


def test_bad_arguments_raise_before_any_write(repo, folder, tmp_path):
    write_seed(folder, AgentState(agent_id="agent_1a2b3c4d"), T0)
    before = snapshot(repo)
    with pytest.raises(InvalidArgumentError, match="task id"):
        repo.import_seed(folder, task_id=" ")
    with pytest.raises(SeedFormatError, match="not a directory"):
        repo.import_seed(tmp_path / "missing")
    assert snapshot(repo) == before


def test_read_seed_file_returns_the_parsed_checkpoint(folder):
    state = AgentState(agent_id="agent_1a2b3c4d", task="审计")
    path = write_seed(folder, state, T0, name="before_poc")
    seed = read_seed_file(path)
    assert (seed.agent_id, seed.name, seed.saved_at) == ("agent_1a2b3c4d", "before_poc", T0)
    assert seed.state["task"] == "审计"
    assert seed.source.startswith("agent_1a2b3c4d_before_poc.json@") and len(seed.sha256) == 64
