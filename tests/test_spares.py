"""Spare files: writers rename empty files made ahead of time instead of creating files
(gitstate/git/spares.py), on real repositories checked with git."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from concurrent_writer import ConcurrentWriter
from conftest import fsck, git

from gitstate import StateRepository
from gitstate.errors import ConcurrentUpdateError
from gitstate.git.spares import FOLDERS, INITIAL, LOW, Spares, target
from gitstate.settings import MaintenanceSettings

TARGET = target(MaintenanceSettings().auto_objects)  # what maintenance leaves by default

pytestmark = pytest.mark.skipif(not Spares("/").usable(), reason="no renameat2 on this system")


def _spares(repo: StateRepository, kind: str = "") -> list[str]:
    return sorted(name for name in os.listdir(Path(repo.path, "gitstate", "spares"))
                  if name.startswith(kind))


@pytest.fixture
def new(tmp_path: Path) -> StateRepository:
    """A repository as ``init`` makes it (the ``repo`` fixture's config change used a spare)."""
    return StateRepository.init(tmp_path / "new.git")


def _files(repo: StateRepository, under: str) -> list[Path]:
    return sorted(p for p in Path(repo.path, under).rglob("*") if p.is_file())


def test_a_new_repository_has_spares_and_a_save_uses_four(new: StateRepository) -> None:
    repo = new
    assert len(_spares(repo, "spare-")) == INITIAL and _spares(repo, "old-") == []
    repo.save({"agent_id": "a", "n": 1})
    assert len(_spares(repo, "spare-")) == INITIAL - 4  # three loose objects and the ref's lock
    assert _spares(repo, "old-") == []  # a new ref replaces no file
    assert git(repo, "show", "agents/a:state.json").startswith("{")
    fsck(repo)
    for obj in _files(repo, "objects"):  # read-only, as git writes them
        assert obj.stat().st_mode & 0o777 == 0o444
    assert Path(repo.path, "refs", "heads", "agents", "a").stat().st_mode & 0o777 == 0o644


def test_a_ref_update_frees_no_file_and_maintenance_frees_the_replaced_ones(
        new: StateRepository) -> None:
    """The ref a save replaces keeps a link in ``gitstate/replaced/`` and its content: a
    reader that opened it before the rename reads what it held. Maintenance deletes them."""
    repo = new
    ref, folder = Path(repo.path, "refs", "heads", "agents", "a"), Path(repo.path, "gitstate", "replaced")
    repo.save({"agent_id": "a", "n": 1})
    first, held = ref.stat().st_ino, ref.read_bytes()
    before = set(folder.iterdir())  # the config init replaced
    with open(ref, "rb") as reader:  # a reader between its open and its read
        repo.save({"agent_id": "a", "n": 2})
        repo.save({"agent_id": "a", "n": 3})
        repo.save({"agent_id": "a", "n": 4})
        assert reader.read() == held
    replaced = sorted(set(folder.iterdir()) - before)
    assert len(replaced) == 3 and first in {p.stat().st_ino for p in replaced}
    assert all(p.stat().st_nlink == 1 for p in replaced)
    assert {p.read_bytes() for p in replaced} < {
        (git(repo, "rev-parse", f"agents/a~{k}").strip() + "\n").encode() for k in range(4)}
    repo.gc()
    assert list(folder.iterdir()) == []
    assert [repo.load("a", c.commit, model=None)["n"] for c in repo.log("a")] == [4, 3, 2, 1]
    fsck(repo)


def test_maintenance_tops_the_spares_up(new: StateRepository) -> None:
    repo = new
    for n in range(10):
        repo.save({"agent_id": "a", "n": n})
    assert len(_spares(repo, "spare-")) < INITIAL - 30
    repo.gc()
    assert len(_spares(repo, "spare-")) == TARGET
    repo.gc()
    assert len(_spares(repo, "spare-")) == TARGET  # none made when none were used


def test_spares_running_low_start_maintenance_which_makes_more(new: StateRepository) -> None:
    repo = new
    n = 0
    while len(_spares(repo, "spare-")) >= LOW:
        n += 1
        repo.save({"agent_id": "a", "n": n})  # 3 objects each: far from auto_objects (256)
    assert n < 30
    repo.wait_for_maintenance()
    assert len(_spares(repo, "spare-")) == TARGET
    assert len(list(Path(repo.path, "objects", "pack").glob("*.pack"))) == 1
    fsck(repo)


def test_a_repository_without_spares_gets_them_from_maintenance(tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git")
    shutil.rmtree(Path(repo.path, "gitstate", "spares"))  # made by git, or an older gitstate
    repo.save({"agent_id": "a", "n": 1})
    repo.wait_for_maintenance()
    assert len(_spares(repo, "spare-")) == TARGET
    fsck(repo)


def test_maintenance_makes_spare_folders_for_the_missing_fan_out_folders(
        repo: StateRepository) -> None:
    folders = Path(repo.path, "gitstate", "spare-folders")
    repo.save({"agent_id": "a", "n": 0})
    assert not folders.exists()  # a new repository has none: they cost what files do
    repo.gc()
    fan_out = {p.name for p in Path(repo.path, "objects").glob("??")}
    assert len(list(folders.iterdir())) == min(FOLDERS, 256 - len(fan_out))
    for n in range(1, 10):
        repo.save({"agent_id": "a", "n": n})
    made = {p.name for p in Path(repo.path, "objects").glob("??")} - fan_out
    assert made and len(list(folders.iterdir())) == min(FOLDERS, 256 - len(fan_out)) - len(made)
    assert [repo.load("a", c.commit, model=None)["n"] for c in repo.log("a", limit=3)] == [9, 8, 7]
    fsck(repo)


def test_without_spares_files_are_created(repo: StateRepository) -> None:
    for name in _spares(repo):
        os.unlink(Path(repo.path, "gitstate", "spares", name))
    os.rmdir(Path(repo.path, "gitstate", "spares"))  # a repository made by git, or an older gitstate
    shutil.rmtree(Path(repo.path, "gitstate", "spare-folders"), ignore_errors=True)
    for n in range(3):
        repo.save({"agent_id": "a", "n": n})
    repo.tag("a", "third")
    assert [repo.load("a", c.commit, model=None)["n"] for c in repo.log("a")] == [2, 1, 0]
    fsck(repo)
    repo.gc()
    assert len(_spares(repo, "spare-")) == INITIAL  # automatic maintenance is off here


@pytest.mark.parametrize("kind", ["not empty", "hard link", "symlink", "folder"])
def test_a_spare_that_is_not_an_empty_file_of_its_own_is_never_written_into(
        repo: StateRepository, tmp_path: Path, kind: str) -> None:
    folder = Path(repo.path, "gitstate", "spares")
    for name in _spares(repo):
        os.unlink(folder / name)
    outside = tmp_path / "outside"
    outside.write_text("someone's file\n")
    odd = folder / "spare-000000000000"
    if kind == "not empty":
        odd.write_text("someone's file\n")
    elif kind == "hard link":  # a copy of the repository made with cp -al shares its files
        os.link(outside, odd)
    elif kind == "symlink":
        odd.symlink_to(outside)
    else:
        odd.mkdir()
    repo.save({"agent_id": "a", "n": 1})
    assert outside.read_text() == "someone's file\n"
    assert repo.load("a", model=None)["n"] == 1
    assert _spares(repo) == []  # it was taken, found unusable and removed
    fsck(repo)


def test_a_ref_lock_held_by_git_is_waited_for_and_keeps_its_spare(tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git", lock_timeout=0.2)
    repo.save({"agent_id": "a", "n": 1})
    lock = Path(repo.path, "refs", "heads", "agents", "a.lock")
    lock.write_text("held by git\n")
    count = len(_spares(repo))
    with pytest.raises(ConcurrentUpdateError, match="a.lock stayed locked"):
        repo.save({"agent_id": "a", "n": 2})
    assert lock.read_text() == "held by git\n"  # not replaced by a spare
    lock.unlink()
    assert len(_spares(repo)) == count - 3  # the objects were written; the lock's spare is kept
    repo.save({"agent_id": "a", "n": 3})
    assert repo.load("a", model=None)["n"] == 3
    fsck(repo)


def test_writers_in_several_processes_share_the_spares(repo: StateRepository) -> None:
    """Four processes save at once (two on the same agent) until the spares run out and
    beyond: no two take the same one (an object written twice into one file would fail
    git fsck), and every acknowledged checkpoint is there."""
    writers = [ConcurrentWriter(repo.path, agent) for agent in ("a", "b", "c", "a")]
    try:
        for writer in writers:
            writer.wait_for(INITIAL // 4 // 2)
        acknowledged = [writer.stop() for writer in writers]
    finally:
        for writer in writers:
            writer.__exit__()
    assert _spares(repo, "spare-") == []  # all used up, then files were created
    found = {agent: {c.checkpoint_id for c in repo.log(agent)} for agent in ("a", "b", "c")}
    for agent, ids in zip(("a", "b", "c", "a"), acknowledged, strict=True):
        assert set(ids) <= found[agent]
    fsck(repo)


def test_the_umask_applies_to_files_made_from_spares(tmp_path: Path) -> None:
    script = ("import os, sys; os.umask(0o077); from gitstate import StateRepository; "
              "r = StateRepository.init(sys.argv[1]); r.save({'agent_id': 'a'}); r.gc(); "
              "r.save({'agent_id': 'a', 'n': 2})")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "r.git")], check=True)
    repo = StateRepository.open(tmp_path / "r.git")
    loose = [p for p in _files(repo, "objects") if len(p.parent.name) == 2]
    assert len(loose) == 3 and {p.stat().st_mode & 0o777 for p in loose} == {0o400}
    assert Path(repo.path, "refs", "heads", "agents", "a").stat().st_mode & 0o777 == 0o600
    fsck(repo)


def test_a_file_system_that_refuses_the_rename_gets_files_created(
        repo: StateRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``renameat2`` exists but the file system refuses ``RENAME_NOREPLACE`` (EINVAL,
    as NFS does), spares are given up and files created as usual; none is lost."""
    def refused(source: str, target: str) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), source, None, target)
    monkeypatch.setattr(repo._core.store.spares, "_rename", refused)
    count = len(_spares(repo))
    repo.save({"agent_id": "a", "n": 1})
    repo.save({"agent_id": "a", "n": 2})
    assert len(_spares(repo)) == count
    assert repo.load("a", model=None)["n"] == 2
    fsck(repo)


def test_git_keeps_out_of_the_spares_and_gitstate_goes_on_after_its_gc(new: StateRepository) -> None:
    repo = new
    repo.save({"agent_id": "a", "n": 1})
    repo.save({"agent_id": "a", "n": 2})
    before = _spares(repo)
    git(repo, "gc", "--prune=now", "--quiet")
    assert _spares(repo) == before
    repo.save({"agent_id": "a", "n": 3})
    assert [repo.load("a", c.commit, model=None)["n"] for c in repo.log("a")] == [3, 2, 1]
    fsck(repo)


def test_the_spares_kept_follow_the_automatic_maintenance_threshold() -> None:
    assert target(0) == INITIAL  # no automatic maintenance: what a new repository has
    assert target(256) == 512  # the default: 85 saves between runs use ~340
    assert target(1_000_000) == 4096
