"""Operations killed at an exact system call: what the next writer, maintenance and git see.

A child process runs one operation under ``strace``, which kills it (SIGKILL)
when it enters the chosen system call on the chosen path: the call never runs.
The test then checks the repository with gitstate and the real git.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import fsck, git, snapshot
from history_helpers import build
from kill_helpers import CHILD, kill_at

from gitstate import (
    ConcurrentUpdateError,
    CorruptObjectError,
    RevisionNotFoundError,
    StateRepository,
)


def head(repo: StateRepository, agent: str = "a") -> str:
    return git(repo, "rev-parse", f"refs/heads/agents/{agent}").strip()


def names(repo: StateRepository, agent: str = "a") -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:lstrip=4) %(objectname)", f"refs/tags/agents/{agent}/")
    return dict(line.split() for line in out.splitlines())


def history(repo: StateRepository, agent: str = "a") -> list[str]:
    return git(repo, "rev-list", f"refs/heads/agents/{agent}").split()


def journal(repo: StateRepository, agent: str = "a") -> Path:
    return Path(repo.path, "gitstate", "journal", agent)


def foreign_commit(repo: StateRepository, parent: str, agent: str = "a") -> str:
    """git itself (a writer outside gitstate) adds a commit on ``parent`` and moves the branch there."""
    commit = git(repo, "commit-tree", f"{parent}^{{tree}}", "-p", parent, "-m", "foreign").strip()
    git(repo, "update-ref", f"refs/heads/agents/{agent}", commit)
    return commit


# -- reflog under the ref lock ------------------------------------------------------------
def test_hard_rollback_never_moves_the_branch_without_its_reflog_entry(repo):
    commits = [repo.save({"agent_id": "a", "iteration": i}).commit for i in range(4)]
    kill_at(repo, "repo.rollback('a', 'latest~3', hard=True)", "openat", "logs/refs/heads/agents/a")
    repo.reclaim(grace=timedelta(0))
    for commit in commits:  # on the branch, or reachable from its reflog
        assert git(repo, "cat-file", "-t", commit).strip() == "commit"
    fsck(repo)


def test_hard_rollback_killed_as_the_branch_moves_leaves_the_entry_and_the_names(repo):
    build(repo, count=4, names={4: "four"})
    old, target = head(repo), git(repo, "rev-parse", "agents/a~2").strip()
    kill_at(repo, "repo.rollback('a', 'latest~2', hard=True)", "rename", "refs/heads/agents/a.lock")
    assert journal(repo).exists() and head(repo) == old  # the journal is written, the branch not moved
    entry = git(repo, "reflog", "show", "--format=%H %gs", "refs/heads/agents/a").split("\n")[0]
    assert "rollback to" in entry  # written under the lock, before the rename
    repo.save({"agent_id": "b"})  # another agent's lock completes nothing of a
    assert journal(repo).exists()
    repo.tag("a", "later")  # the next holder of a's lock rolls the rollback forward first
    assert not journal(repo).exists()
    assert head(repo) == target and old not in history(repo)
    assert names(repo) == {"later": target}  # the dropped checkpoint's name went with it
    assert not Path(repo.path, "refs/heads/agents/a.lock").exists()
    repo.reclaim(grace=timedelta(0))
    assert git(repo, "cat-file", "-t", old).strip() == "commit"  # kept by the reflog
    fsck(repo)


# -- rewrites (delete, prune) ---------------------------------------------------------------
def test_delete_killed_between_branch_and_names_is_completed_by_the_next_save(repo):
    ids = build(repo, count=5, names={3: "three", 5: "five"})
    kill_at(repo, f"repo.delete('a', {ids[1]!r})", "rename", "refs/tags/agents/a/five.lock")
    assert ids[1] not in [c.checkpoint_id for c in repo.log("a")]  # the branch moved ...
    repo.save({"agent_id": "a", "iteration": 6})  # ... the next save completes the names
    assert not journal(repo).exists()
    assert set(names(repo).values()) <= set(history(repo))
    assert repo.resolve("a", "three").checkpoint_id == ids[2]
    assert repo.resolve("a", "five").checkpoint_id == ids[4]
    fsck(repo)


def test_prune_killed_before_deleting_a_name_does_not_keep_pruned_checkpoints(repo):
    build(repo, count=6, names={2: "two"})
    before = history(repo)
    kill_at(repo, "from gitstate import RetentionPolicy\n"
            "repo.prune('a', RetentionPolicy(keep_last=2, keep_named=False))",
            "unlink", "refs/tags/agents/a/two")
    repo.reclaim(grace=timedelta(0))  # maintenance completes the abandoned journal first
    assert not journal(repo).exists() and names(repo) == {}
    assert len(history(repo)) == 2
    for commit in before[2:]:  # pruned, and nothing keeps them any more
        assert subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", commit],
                              capture_output=True, check=False).returncode == 1
    repo.save({"agent_id": "a"}, name="two")  # the name can be used again
    fsck(repo)


def test_a_foreign_commit_on_the_rewritten_branch_still_gets_the_names(repo):
    ids = build(repo, count=4, names={4: "four"})
    kill_at(repo, f"repo.delete('a', {ids[0]!r})", "rename", "refs/tags/agents/a/four.lock")
    foreign = foreign_commit(repo, head(repo))  # git built on the rewritten head
    repo.verify()
    assert head(repo) == foreign and not journal(repo).exists()
    assert repo.resolve("a", "four").checkpoint_id == ids[3]
    assert names(repo)["four"] in history(repo)


def test_a_foreign_move_before_the_rewrite_cancels_it(repo):
    ids = build(repo, count=4, names={2: "two"})
    old_names = names(repo)
    kill_at(repo, f"repo.delete('a', {ids[0]!r})", "rename", "refs/heads/agents/a.lock")
    Path(repo.path, "refs/heads/agents/a.lock").unlink()  # as git's message says to, by hand
    foreign = foreign_commit(repo, head(repo))  # then git moved the branch from the old head
    repo.save({"agent_id": "a", "iteration": 9})
    assert not journal(repo).exists()
    assert history(repo)[1] == foreign and [c.checkpoint_id for c in repo.log("a")][-4:] == ids[::-1]
    assert names(repo) == old_names  # the names stay on the history the branch holds


@pytest.mark.parametrize("foreign_on", ["old head", "new head"])
def test_a_foreign_commit_decides_whether_an_interrupted_hard_rollback_happened(repo, foreign_on):
    build(repo, count=4, names={4: "four"})
    old = head(repo)
    target = git(repo, "rev-parse", "agents/a~2").strip()
    if foreign_on == "old head":  # killed before the branch moved; git then built on it
        kill_at(repo, "repo.rollback('a', 'latest~2', hard=True)", "rename", "refs/heads/agents/a.lock")
        Path(repo.path, "refs/heads/agents/a.lock").unlink()  # by hand, as git's message says
        foreign_commit(repo, old)
    else:  # killed after the branch moved, before the name went; git then built on it
        kill_at(repo, "repo.rollback('a', 'latest~2', hard=True)", "unlink", "refs/tags/agents/a/four")
        foreign_commit(repo, target)
    repo.verify()
    assert not journal(repo).exists()
    if foreign_on == "old head":  # the rollback never happened: the name stays
        assert names(repo) == {"four": old} and old in history(repo)
    else:
        assert names(repo) == {} and old not in history(repo)


# -- delete_agent and named saves ---------------------------------------------------------------
def test_delete_agent_killed_before_its_names_lets_the_names_be_reused(repo):
    build(repo, count=2, names={1: "first"})
    kill_at(repo, "repo.delete_agent('a')", "unlink", "refs/tags/agents/a/first")
    cp = repo.save({"agent_id": "a"}, name="first")  # completes the deletion, then saves
    assert cp.names == ("first",) and history(repo) == [cp.commit]
    assert names(repo) == {"first": cp.commit}
    assert not Path(repo.path, "logs/refs/heads/agents/a").exists() or \
        git(repo, "reflog", "show", "--format=%H", "refs/heads/agents/a").split() == []
    fsck(repo)


def test_named_save_killed_after_the_branch_moved_gets_its_name(repo):
    repo.save({"agent_id": "a", "iteration": 1})
    kill_at(repo, "repo.save({'agent_id': 'a', 'iteration': 2}, name='two')",
            "renameat2", "refs/tags/agents/a/two.lock")  # (the name's lock: a spare renamed there)
    assert repo.latest("a").iteration == 2  # the branch moved ...
    result = repo.verify()  # ... and maintenance (here verify) names it
    assert result.ok, result.problems
    assert repo.resolve("a", "two").iteration == 2 and names(repo)["two"] == head(repo)


def test_named_save_killed_before_the_branch_moved_is_completed_whole(repo):
    repo.save({"agent_id": "a", "iteration": 1})
    kill_at(repo, "repo.save({'agent_id': 'a', 'iteration': 2}, name='two')",
            "rename", "refs/heads/agents/a.lock")
    assert repo.latest("a").iteration == 1
    repo.tag("a", "one", "latest")  # the next holder of the lock rolls it forward first
    assert repo.resolve("a", "two").iteration == 2
    assert repo.resolve("a", "one").iteration == 2  # "latest" resolved under the lock
    fsck(repo)


# -- journals: who completes them, and what stops them ------------------------------------------
def test_a_journal_whose_lock_is_held_is_left_to_its_operation(repo):
    ids = build(repo, count=3, names={3: "three"})
    kill_at(repo, f"repo.delete('a', {ids[0]!r})", "rename", "refs/tags/agents/a/three.lock")
    with repo._core.store._flock("agents/a"):  # as a live operation of agent a holds it
        repo.gc()
        assert journal(repo).exists()
    repo.gc()
    assert not journal(repo).exists() and names(repo)["three"] == head(repo)


def test_a_damaged_journal_stops_writers_of_that_agent_with_a_typed_error(repo):
    build(repo, count=2)
    repo.save({"agent_id": "b"})
    journal(repo).parent.mkdir(parents=True, exist_ok=True)
    journal(repo).write_bytes(b"refs/heads/agents/a 123 -\n")
    before = snapshot(repo)
    with pytest.raises(CorruptObjectError, match="journal/a line 1"):
        repo.save({"agent_id": "a"})
    repo.save({"agent_id": "b"})  # other agents are not concerned
    problems = repo.verify().problems
    assert [p.subject for p in problems] == ["journal of agent a"]
    assert {k: v for k, v in snapshot(repo).items() if "agents/b" not in k and "objects" not in k} == \
        {k: v for k, v in before.items() if "agents/b" not in k and "objects" not in k}


def test_a_writer_killed_while_waiting_for_a_live_lock_does_not_get_it_broken(repo):
    repo.save({"agent_id": "a", "iteration": 1})
    lock = Path(repo.path, "refs/heads/agents/a.lock")
    lock.write_text("held by git update-ref\n")  # a live git process holds the branch
    kill_at(repo, "repo.save({'agent_id': 'a', 'iteration': 2})", "clock_nanosleep", None)  # waiting
    impatient = StateRepository.open(repo.path, lock_timeout=0.2)
    with pytest.raises(ConcurrentUpdateError, match="a.lock stayed locked"):
        impatient.save({"agent_id": "a", "iteration": 3})
    assert lock.read_text() == "held by git update-ref\n"  # never taken for the killed writer's


# -- tag resolves under the lock ----------------------------------------------------------------
def test_tag_resolves_its_revision_under_the_lock(repo):
    """A hard rollback that ends while ``tag`` waits for the lock: the name lands on the new head."""
    commits = [repo.save({"agent_id": "a", "iteration": i}).commit for i in range(3)]
    lock_file = os.path.join(repo.path, "gitstate", "locks", "agents", "a")
    with repo._core.store.agent_lock("a") as lock:
        child = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", "signal=none", "-P", lock_file, "-e", "trace=openat",
             sys.executable, "-c", CHILD + "print(repo.tag('a', 'late').commit)", repo.path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stderr is not None
        line = child.stderr.readline()  # the child opened the lock file: it waits for the lock
        assert "openat(" in line and lock_file in line, line
        assert repo._core.store.update_ref(lock, b"refs/heads/agents/a", commits[2].encode(),
                                      commits[0].encode())  # a reset, as a hard rollback does
    out, err = child.communicate()
    assert child.returncode == 0, err
    assert out.strip() == commits[0] == names(repo)["late"]


def test_tag_refuses_a_revision_outside_the_history(repo):
    build(repo, count=2)
    outside = repo.save({"agent_id": "b"}).commit
    git(repo, "update-ref", "refs/tags/agents/a/stray", outside)  # a name git put elsewhere
    before = snapshot(repo)
    with pytest.raises(RevisionNotFoundError, match="not in the history"):
        repo.tag("a", "copy", "stray")
    assert snapshot(repo) == before


# -- temporary files ----------------------------------------------------------------------------
def test_maintenance_removes_the_temporary_files_of_killed_writers(repo):
    repo.save({"agent_id": "a"})
    objects = Path(repo.path, "objects")
    (objects / "pack").mkdir(exist_ok=True)
    old = time.time() - 7200
    stale = [objects / "ab" / "tmp_obj_123_0123456789ab",  # gitstate's and git's loose objects
             objects / "tmp_pack_x1y2z3",  # dulwich's thin pack of a fetch
             objects / "pack" / "tmp_pack_77_0123456789ab", objects / "pack" / "tmp_idx_77_0123456789ab",
             objects / "pack" / "tmpa1b2c3d4.pack",  # dulwich's pack of a fetch
             objects / "pack" / f"pack-{'1' * 40}.pack",  # moved in, index never written
             objects / "pack" / f"pack-{'1' * 40}.idx.lock"]
    fresh = [objects / "cd" / "tmp_obj_456_0123456789ab", objects / "pack" / "tmp_pack_88_0123456789ab"]
    for path in stale + fresh:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    repo.gc()  # grace: one hour
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in fresh)
    assert repo.load("a", model=None) == {"agent_id": "a"}
    for path in fresh:
        os.utime(path, (old, old))
    repo.reclaim(grace=timedelta(minutes=10))
    assert [p for p in fresh if p.exists()] == []
    fsck(repo)


def test_a_pack_left_by_a_killed_gc_is_removed_by_a_later_one(repo):
    for i in range(3):
        repo.save({"agent_id": "a", "iteration": i})
    injected = kill_at(repo, "repo.gc()", "rename", None)  # the pack's name is random: the first rename
    assert injected.startswith(f'rename("{repo.path}/objects/pack/tmp_pack_')
    pack_dir = Path(repo.path, "objects", "pack")
    left = sorted(p.name.split("_")[1] for p in pack_dir.iterdir())
    assert left == ["idx", "pack"]
    repo.gc()  # younger than the grace: kept (a gc may be writing it)
    assert len([p for p in pack_dir.iterdir() if p.name.startswith("tmp_")]) == 2
    old = time.time() - 7200
    for path in pack_dir.iterdir():
        if path.name.startswith("tmp_"):
            os.utime(path, (old, old))
    repo.gc()
    assert not [p for p in pack_dir.iterdir() if p.name.startswith("tmp")]
    assert repo.load("a", model=None)["iteration"] == 2
    fsck(repo)


def test_a_torn_reflog_entry_stops_maintenance_and_the_next_entry_repairs_it(repo):
    build(repo, count=6)
    repo.rollback("a", "latest~1", hard=True)  # one reflog entry
    log = Path(repo.path, "logs", "refs", "heads", "agents", "a")
    good = log.read_bytes()
    log.write_bytes(good + good[:57])  # an entry cut short (a writer that ran out of space)
    with pytest.raises(CorruptObjectError, match="line 2"):
        repo.gc(prune=True, grace_seconds=0)
    repo.rollback("a", "latest~1", hard=True)  # the next entry drops the torn one first
    lines = log.read_bytes().splitlines(keepends=True)
    assert lines[0] == good and len(lines) == 2 and lines[1].endswith(b"\n")
    assert len(git(repo, "reflog", "show", "agents/a").splitlines()) == 2
    repo.gc(prune=True, grace_seconds=0)
    fsck(repo)


def test_deleting_a_packed_name_never_brings_back_its_packed_value(repo):
    build(repo, count=4, names={3: "two"})
    git(repo, "pack-refs", "--all")
    repo.delete("a", "latest~3")  # the rewrite moves 'two': loose now, its old value still packed
    Path(repo.path, "packed-refs.lock").write_bytes(b"")  # a git pack-refs running
    slow = StateRepository.open(repo.path, lock_timeout=0.2)
    with pytest.raises(ConcurrentUpdateError, match="packed-refs.lock"):
        slow.delete("a", "two")  # its name cannot leave packed-refs: the loose file stays too
    assert journal(repo).exists()  # the branch moved; its names are left to the next writer
    Path(repo.path, "packed-refs.lock").unlink()
    repo.save({"agent_id": "a", "iteration": 9})  # completes the interrupted delete
    assert "two" not in names(repo)
    fsck(repo)


def test_durable_writes_fsync_every_folder_they_create(repo):
    """A durable write that creates a folder (an agent's first branch, its first name, a
    reflog, a journal) fsyncs its parent, so a power loss cannot take back the entry."""
    code = ("repo = StateRepository.open(sys.argv[1], durable=True)\n"
            "repo.save({'agent_id': 'a', 'iteration': 1}, name='first')\n"
            "repo.save({'agent_id': 'a', 'iteration': 2})\n"
            "repo.rollback('a', 'first', hard=True)\n")
    result = subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync", sys.executable, "-c",
                             "import sys\nfrom gitstate import StateRepository\n" + code, repo.path],
                            capture_output=True, text=True, check=True)
    synced = {line.split("<", 1)[1].split(">", 1)[0] for line in result.stderr.splitlines()
              if "fsync(" in line and "<" in line}
    for folder in ("refs/heads/agents", "refs/tags/agents", "refs/tags/agents/a",
                   "logs/refs/heads/agents", "gitstate/journal"):
        parent = os.path.dirname(os.path.join(repo.path, folder))
        assert parent in synced, f"{parent} (parent of the new {folder}) never fsynced"
    assert os.path.join(repo.path, "logs/refs/heads/agents") in synced  # the new reflog's folder
