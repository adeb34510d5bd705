"""prune and reclaim: histories rewritten to the kept checkpoints, space really comes back."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from concurrent_writer import ConcurrentWriter
from conftest import fsck, git, snapshot
from history_helpers import build, ids_of, inject_foreign_commit, logs, run_beside_writer

from gitstate import (
    AgentNotFoundError,
    ConcurrentUpdateError,
    CorruptObjectError,
    InvalidArgumentError,
    StateRepository,
)
from gitstate.retention import RetentionPolicy


def disk_size(repo: StateRepository) -> int:
    """Bytes of every file under objects/ (loose objects, packs, indexes, caches)."""
    return sum(p.stat().st_size for p in Path(repo.path, "objects").rglob("*") if p.is_file())


def age_objects(repo: StateRepository, days: int = 1) -> None:
    """Make every object file look ``days`` old (objects written long before the prune)."""
    then = time.time() - days * 86400
    for path in Path(repo.path, "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def save_run(repo: StateRepository, count: int, agent_id: str = "a") -> list[str]:
    """``count`` checkpoints of similar size (3 KB of incompressible payload each)."""
    return [repo.save({"agent_id": agent_id, "iteration": i, "payload": os.urandom(1500).hex()},
                      name="first" if i == 0 else None).checkpoint_id
            for i in range(count)]


def reachable_objects(repo: StateRepository) -> set[str]:
    """What git itself counts as reachable: every ref and every reflog entry."""
    out = git(repo, "rev-list", "--objects", "--all", "--reflog")
    return {line.split()[0] for line in out.splitlines()}


def loose_objects(repo: StateRepository) -> set[str]:
    root = Path(repo.path, "objects")
    return {p.parent.name + p.name for p in root.glob("??/*") if len(p.name) == 38}


def test_pruning_90_percent_of_300_loose_checkpoints_frees_90_percent_of_the_space(repo):
    ids = save_run(repo, 300)
    states = {i: repo.load("a", i, model=None) for i in ids[-30:] + ids[:1]}
    age_objects(repo)
    before = disk_size(repo)
    result = repo.prune("a", RetentionPolicy(keep_last=30, keep_named=False))
    after = disk_size(repo)
    assert result.removed == 270 and not result.dry_run
    assert ids_of(repo) == ids[-30:]
    assert 0.085 < after / before < 0.115, (before, after)
    # blob, tree and commit of each removed checkpoint + the replaced commits of the kept ones
    assert result.reclaimed.objects == 270 * 3 + 30
    assert result.reclaimed.bytes > before - after  # minus the 30 re-created commits
    assert loose_objects(repo) == reachable_objects(repo)  # nothing unreachable is left
    for i in ids[-30:]:
        assert repo.load("a", i, model=None) == states[i]
    fsck(repo)


def save_growing(repo: StateRepository, count: int) -> list[str]:
    """A growing state (git's packs store most of it as deltas); the first one is named."""
    state: dict = {"agent_id": "a", "iteration": 0, "messages": []}
    ids = []
    for i in range(count):
        state = {**state, "iteration": i, "messages": state["messages"] + [os.urandom(40).hex()]}
        ids.append(repo.save(state, name="first" if i == 0 else None).checkpoint_id)
    return ids


@pytest.mark.parametrize("deltas", ["offset", "ref"])
def test_pruning_packed_checkpoints_rewrites_the_pack_and_keeps_deltas(repo, deltas):
    ids = save_growing(repo, 300)
    git(repo, "-c", f"repack.useDeltaBaseOffset={'true' if deltas == 'offset' else 'false'}",
        "gc", "--quiet")
    assert not loose_objects(repo) and Path(repo.path, "objects/info/commit-graph").exists()
    age_objects(repo)
    before = disk_size(repo)
    expected = {i: repo.load("a", i, model=None) for i in ids[-30:] + ids[:1]}
    result = repo.prune("a", RetentionPolicy(keep_last=30))
    assert result.removed == 269
    assert ids_of(repo) == ids[:1] + ids[-30:]  # the named first checkpoint stays
    for i, data in expected.items():
        assert repo.load("a", i, model=None) == data
    packs = list(Path(repo.path, "objects/pack").glob("*.pack"))
    assert len(packs) == 1
    verify = git(repo, "verify-pack", "-v", str(packs[0].with_suffix(".idx")))
    assert "chain length = 1:" in verify  # deltas whose base stayed are still deltas
    packed = {line.split()[0] for line in verify.splitlines() if len(line.split()[0]) == 40}
    assert packed | loose_objects(repo) == reachable_objects(repo)
    assert disk_size(repo) < before * 0.5
    fsck(repo)


def test_kept_deltas_whose_base_goes_are_stored_whole(repo):
    """git deltifies older versions against newer ones: drop the newer half and keep the older."""
    ids = save_growing(repo, 200)
    git(repo, "gc", "--quiet")
    expected = {i: repo.load("a", i, model=None) for i in ids[:100:9]}
    repo.rollback("a", ids[99], hard=True)
    os.unlink(Path(repo.path, "logs/refs/heads/agents/a"))  # as `git reflog expire` would
    age_objects(repo)
    result = repo.reclaim(grace=timedelta(0))
    assert result.objects == 300  # commit, tree and blob of the 100 newest
    for i, data in expected.items():
        assert repo.load("a", i, model=None) == data
    packed = {line.split()[0] for line in git(repo, "verify-pack", "-v", *map(
        str, Path(repo.path, "objects/pack").glob("*.idx"))).splitlines() if len(line.split()[0]) == 40}
    assert packed == reachable_objects(repo)
    fsck(repo)


def test_reclaim_keeps_what_refs_reflogs_forks_and_young_objects_reach(repo):
    ids = build(repo, count=12)
    dropped = repo.rollback("a", ids[7], hard=True).dropped  # kept by the reflog
    repo.fork("a", ids[3], "b")  # shares ids[0..3]
    git(repo, "update-ref", "refs/keep/old", repo.resolve("a", ids[1]).commit)  # any ref counts
    age_objects(repo)
    young = build(repo, agent_id="tmp", count=2)  # unreachable after delete_agent, but young
    young_objects = loose_objects(repo) - reachable_objects(repo)
    repo.delete_agent("tmp")
    young_objects = loose_objects(repo) - young_objects - reachable_objects(repo)
    assert young_objects
    result = repo.prune("a", RetentionPolicy(keep_last=2, keep_named=False))
    assert result.removed == 6
    assert result.reclaimed.objects == 0  # the reflog's old head still reaches all of them
    for checkpoint in dropped:
        assert git(repo, "cat-file", "-t", checkpoint.commit).strip() == "commit"
    assert ids_of(repo, "b")[:4] == ids[:4]
    assert git(repo, "cat-file", "-t", "refs/keep/old").strip() == "commit"
    assert young_objects <= loose_objects(repo)
    assert reachable_objects(repo) <= loose_objects(repo)
    assert young_objects | reachable_objects(repo) == loose_objects(repo)
    fsck(repo)
    repo.reclaim(grace=timedelta(0))
    assert loose_objects(repo) == reachable_objects(repo)
    assert len(young) == 2


def test_dry_run_plans_and_changes_nothing(repo):
    ids = build(repo, count=8, names={2: "two"})
    before = snapshot(repo)
    result = repo.prune("a", RetentionPolicy(keep_last=3), dry_run=True)
    assert result.dry_run and result.removed == 4 and result.reclaimed.bytes == 0
    kept = [d.checkpoint.checkpoint_id for d in result.decisions["a"] if d.keep]
    assert kept == [ids[7], ids[6], ids[5], ids[1]]
    assert snapshot(repo) == before


def test_prune_every_agent_and_the_empty_policy(repo):
    a, b = build(repo, count=5), build(repo, agent_id="b", count=3)
    before = snapshot(repo)
    assert repo.prune(None, RetentionPolicy()).removed == 0
    assert snapshot(repo) == before
    result = repo.prune(None, RetentionPolicy(keep_last=2))
    assert set(result.decisions) == {"a", "b"} and result.removed == 4
    assert ids_of(repo, "a") == a[-2:] and ids_of(repo, "b") == b[-2:]
    fsck(repo)


def test_prune_keep_within_counts_back_from_now(repo):
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    ids = [repo.save({"agent_id": "a", "iteration": i}, time=old + timedelta(days=i)).checkpoint_id
           for i in range(10)]
    result = repo.prune("a", RetentionPolicy(keep_within="3d"), now=old + timedelta(days=9))
    assert result.removed == 6 and ids_of(repo) == ids[-4:]


@pytest.mark.parametrize("call, error", [
    (lambda r: r.prune("a", {"keep_last": 1}), InvalidArgumentError),
    (lambda r: r.prune("a", RetentionPolicy(keep_last=1), now=datetime(2026, 1, 1)), InvalidArgumentError),
    (lambda r: r.prune("a", RetentionPolicy(keep_last=1), grace=timedelta(seconds=-1)), InvalidArgumentError),
    (lambda r: r.prune("ghost", RetentionPolicy(keep_last=1)), AgentNotFoundError),
    (lambda r: r.prune("a", RetentionPolicy(keep_last=-1)), InvalidArgumentError),
])
def test_prune_bad_input_changes_nothing(repo, call, error):
    build(repo, count=4)
    before = snapshot(repo)
    with pytest.raises(error):
        call(repo)
    assert snapshot(repo) == before


def test_prune_beside_a_concurrent_writer_keeps_every_acknowledged_save(repo):
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    old_ids = {repo.save({"agent_id": "a", "iteration": i}, time=old + timedelta(hours=i)).checkpoint_id
               for i in range(60)}
    acknowledged, result = run_beside_writer(
        repo, lambda: repo.prune("a", RetentionPolicy(keep_within="1d", keep_named=False)))
    history = ids_of(repo)
    assert result.removed >= 60  # every old checkpoint; the writer's are all within a day
    assert set(acknowledged) <= set(history) and not old_ids & set(history)
    fsck(repo)


def test_prune_fails_cleanly_when_a_foreign_writer_moves_the_branch(repo):
    build(repo, count=6, names={1: "one"})
    seen = inject_foreign_commit(repo)
    with pytest.raises(ConcurrentUpdateError, match="nothing was changed"):
        repo.prune("a", RetentionPolicy(keep_last=2))
    assert git(repo, "for-each-ref") == seen["refs"] and logs(repo) == seen["logs"]
    fsck(repo)


def test_reclaim_refuses_to_run_on_a_repository_missing_reachable_objects(repo):
    ids = build(repo, count=3)
    repo.delete("a", ids[0])
    age_objects(repo)
    tree = git(repo, "rev-parse", "agents/a~1^{tree}").strip()
    Path(repo.path, "objects", tree[:2], tree[2:]).unlink()
    before = snapshot(repo)
    with pytest.raises(CorruptObjectError, match=tree):
        repo.reclaim(grace=timedelta(0))
    assert snapshot(repo) == before


def test_fetch_head_and_orig_head_are_roots(repo):
    ids = build(repo, count=3)
    old = repo.resolve("a", ids[0]).commit
    Path(repo.path, "ORIG_HEAD").write_text(old + "\n")
    repo.delete("a", ids[0])
    age_objects(repo)
    repo.reclaim(grace=timedelta(0))
    assert git(repo, "cat-file", "-t", old).strip() == "commit"
    fsck(repo)


def test_reclaim_beside_a_writer_of_another_agent_loses_nothing(repo):
    ids = save_run(repo, 60)
    age_objects(repo)
    with ConcurrentWriter(repo.path, "b") as writer:
        writer.wait_for(3)
        result = repo.prune("a", RetentionPolicy(keep_last=6, keep_named=False))
        writer.wait_for(3)
        acknowledged = writer.stop()
    assert result.reclaimed.objects == 54 * 3 + 6
    assert ids_of(repo, "a") == ids[-6:]
    assert set(acknowledged) <= set(ids_of(repo, "b"))
    for checkpoint in repo.log("b"):
        repo.read_state(checkpoint.commit)
    fsck(repo)
