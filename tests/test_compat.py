"""gitstate.compat: the seed's AgentStatePersistence / CheckpointManager on a git repository."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

from concurrent_writer import ConcurrentWriter
from conftest import fsck, git

from gitstate import AgentState, AgentStatus, StateRepository
from gitstate.compat import AgentStatePersistence, CheckpointManager

SEED_KEYS = {"filepath", "filename", "size_bytes", "created_at", "modified_at"}


def test_a_typical_use_of_the_seed_ported_line_by_line(tmp_path, caplog):
    # persistence = AgentStatePersistence(persist_dir="./agent_checkpoints")
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "agent_checkpoints"))
    # checkpoint_manager = CheckpointManager(persistence, auto_checkpoint_interval=5)
    checkpoint_manager = CheckpointManager(persistence, auto_checkpoint_interval=5)
    # state = AgentState(agent_name="Recon", agent_type="recon", task="audit the repo"); state.start()
    state = AgentState(agent_name="Recon", agent_type="recon", task="audit the repo")
    state.start()
    saved = []
    # for each step: work, then checkpoint_manager.auto_checkpoint(state)
    for step in range(1, 24):
        state.increment_iteration()
        state.add_message("assistant", f"step {step}")
        path = checkpoint_manager.auto_checkpoint(state)
        if path:
            saved.append((state.iteration, path))
    assert [iteration for iteration, _ in saved] == [5, 10, 15, 20]
    # path = checkpoint_manager.create_checkpoint(state, "before_verification")
    named = checkpoint_manager.create_checkpoint(state, "before_verification")
    # state.set_failed("sandbox crashed")  -> persistence.save_state(state)
    state.set_failed("sandbox crashed")
    persistence.save_state(state)
    # restored = checkpoint_manager.restore_from_checkpoint(state.agent_id, path)
    restored = checkpoint_manager.restore_from_checkpoint(state.agent_id, named)
    assert restored.iteration == 23 and restored.status == AgentStatus.RUNNING
    # latest = checkpoint_manager.restore_from_checkpoint(state.agent_id)
    latest = checkpoint_manager.restore_from_checkpoint(state.agent_id)
    assert latest == state
    # for cp in persistence.list_checkpoints(state.agent_id): print(cp["filename"], cp["size_bytes"])
    checkpoints = persistence.list_checkpoints(state.agent_id)
    assert len(checkpoints) == 6
    assert all(SEED_KEYS | {"commit", "checkpoint_id"} == set(cp) for cp in checkpoints)
    assert checkpoints[1]["filename"] == f"{state.agent_id}_before_verification.json"
    assert checkpoints[1]["filepath"] == named
    assert [cp["modified_at"] for cp in checkpoints] == sorted((cp["modified_at"] for cp in checkpoints), reverse=True)
    assert checkpoints[0]["size_bytes"] == len(git(persistence.repository, "show",
                                                   f"{checkpoints[0]['commit']}:state.json").encode())
    # old = persistence.load_state(saved[0][1])
    assert persistence.load_state(saved[0][1]).iteration == 5
    # deleted = persistence.cleanup_old_checkpoints(state.agent_id, keep_count=3)
    assert persistence.cleanup_old_checkpoints(state.agent_id, keep_count=3) == 3
    assert [cp["filepath"] for cp in persistence.list_checkpoints(state.agent_id)] == \
        [cp["filepath"] for cp in checkpoints[:3]]
    # persistence.delete_checkpoint(path)
    assert persistence.delete_checkpoint(named) is True
    assert persistence.load_state(named) is None  # gone, and the seed's None contract holds
    assert "Failed to load agent state" in caplog.text
    # the storage is a plain git repository
    assert git(persistence.repository, "log", "--format=%s", f"agents/{state.agent_id}").count("\n") == 2
    fsck(persistence.repository)


def test_auto_checkpoint_saves_exactly_when_the_seed_did(tmp_path):
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "cp"))
    manager = CheckpointManager(persistence, auto_checkpoint_interval=4)
    a, b = AgentState(agent_id="a"), AgentState(agent_id="b")
    last = {"a": 0, "b": 0}  # the seed's rule, spelled out: iteration - last saved >= interval
    for step, jump in enumerate([1, 1, 1, 1, 3, 2, 1, 7, 1, 1, 1, 1, 1, 4]):
        state = a if step % 3 else b
        state.iteration += jump
        due = state.iteration - last[state.agent_id] >= 4
        assert manager.should_checkpoint(state) is due
        reference = manager.auto_checkpoint(state)
        assert (reference is not None) is due
        if due:
            last[state.agent_id] = state.iteration
            assert persistence.load_state(reference).iteration == state.iteration
    manager.create_checkpoint(a)  # an explicit checkpoint restarts the count
    assert not manager.should_checkpoint(a)


def test_names_move_to_the_newest_checkpoint_like_the_seeds_overwritten_file(tmp_path):
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "cp"))
    state = AgentState(agent_id="a")
    first = persistence.save_state(state, "checkpoint")
    state.iteration = 9
    second = persistence.save_state(state, "checkpoint")
    assert persistence.load_state("a@checkpoint").iteration == 9
    assert persistence.load_state(first).iteration == 0 and first != second


def test_task_scoped_saves_use_a_task_id_trailer(tmp_path):
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "cp"), use_database=True)
    a, b = AgentState(agent_id="a"), AgentState(agent_id="b")

    a.iteration = 1  # an earlier checkpoint of task-1, saved a year ago through the plain API
    persistence.repository.save(a, time=datetime.now(timezone.utc) - timedelta(days=365),
                                trailers={"Task-Id": "task-1"})

    async def run():
        b.iteration = 2
        assert await persistence.save_state_to_db(b, "task-1")
        a.iteration = 3
        assert await persistence.save_state_to_db(a, "task-2")
        return (await persistence.load_state_from_db("task-1"),
                await persistence.load_state_from_db("task-1", agent_id="a"),
                await persistence.load_state_from_db("task-9"))

    newest, of_a, missing = asyncio.run(run())
    assert (newest.agent_id, newest.iteration) == ("b", 2)
    assert (of_a.agent_id, of_a.iteration) == ("a", 1)
    assert missing is None
    repo = StateRepository.open(tmp_path / "cp")
    assert git(repo, "log", "-1", "--format=%(trailers:key=Task-Id,valueonly)", "agents/a").strip() == "task-2"


def test_failures_keep_the_seeds_contract(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "cp"))
    assert persistence.load_state("no-reference") is None
    assert persistence.load_state("ghost@latest") is None
    assert persistence.load_latest_checkpoint("ghost") is None
    assert persistence.list_checkpoints("ghost") == []
    assert persistence.delete_checkpoint("ghost@latest") is False
    assert persistence.cleanup_old_checkpoints("ghost", 2) == 0
    only = persistence.save_state(AgentState(agent_id="solo"))
    assert persistence.delete_checkpoint(only) is True  # the only checkpoint: the agent goes
    assert persistence.list_checkpoints() == []


def test_load_state_reads_a_file_the_seed_wrote(tmp_path):
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "cp"))
    seed_file = Path(__file__).parent.parent / "fixtures" / "seed_checkpoints" / "agent_7c1e9a42_final.json"
    state = persistence.load_state(str(seed_file))
    assert state.agent_id == "agent_7c1e9a42"
    assert state == AgentState.model_validate(json.loads(seed_file.read_text())["state"])
    bad = tmp_path / "agent_x_broken.json"
    bad.write_text("{not json")
    assert persistence.load_state(str(bad)) is None


def test_delete_checkpoint_beside_a_concurrent_writer(tmp_path):
    persistence = AgentStatePersistence(persist_dir=str(tmp_path / "cp"))
    state = AgentState(agent_id="a")
    references = []
    for _ in range(5):
        state.iteration += 1
        references.append(persistence.save_state(state))
    with ConcurrentWriter(str(tmp_path / "cp"), "a") as writer:
        writer.wait_for(3)
        assert persistence.delete_checkpoint(references[1]) is True
        writer.wait_for(3)
        acknowledged = writer.stop()
    listed = {cp["checkpoint_id"] for cp in persistence.list_checkpoints("a")}
    assert set(acknowledged) <= listed
    assert references[1].split("@")[1] not in listed
    assert {r.split("@")[1] for r in references} - listed == {references[1].split("@")[1]}
    fsck(persistence.repository)
