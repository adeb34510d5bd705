"""Spare files: writers rename empty files made ahead of time instead of creating files
(gitstate/git/spares.py), on real repositories checked with git."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cli_helpers import interruptible
from concurrent_writer import ConcurrentWriter
from conftest import fsck, git

from gitstate import StateRepository
from gitstate.errors import ConcurrentUpdateError
from gitstate.git import spares as spares_module
from gitstate.git.spares import _EMPTY, FOLDERS, INITIAL, LOW, Spares, target
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
    assert not folder.exists()  # init replaced its config before maintenance could run
    with open(ref, "rb") as reader:  # a reader between its open and its read
        repo.save({"agent_id": "a", "n": 2})
        repo.save({"agent_id": "a", "n": 3})
        repo.save({"agent_id": "a", "n": 4})
        assert reader.read() == held
    replaced = sorted(folder.iterdir())
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


def test_maintenance_makes_the_spares_taken_while_it_packed(new: StateRepository, tmp_path: Path) -> None:
    """Writers take spares while a run packs (a LangGraph writer one a millisecond): the run
    makes them again before it ends, so they do not run out before the next run."""
    repo = new
    for n in range(10):
        repo.save({"agent_id": "a", "n": n})
    writer = Spares(repo.path)
    taken: list[Path] = []

    def take_some(done: int, total: int) -> None:  # called while objects go into the pack
        while len(taken) < 20:
            taken.append(tmp_path / f"taken-{len(taken)}")
            os.close(writer.create(str(taken[-1]), 0o444))

    repo.gc(progress=take_some)
    assert len(taken) == 20 and all(path.stat().st_size == 0 for path in taken)
    assert len(_spares(repo, "spare-")) == TARGET


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


def test_a_repository_without_spares_gets_them_from_its_next_run(tmp_path: Path) -> None:
    """A repository made by git (or an older gitstate) has no spares folder: saves create
    their files without starting a run for it; the next run makes spares."""
    repo = StateRepository.init(tmp_path / "r.git")
    shutil.rmtree(Path(repo.path, "gitstate", "spares"))
    repo.save({"agent_id": "a", "n": 1})
    assert repo._maintenance._worker is None
    repo.gc()
    assert len(_spares(repo, "spare-")) == TARGET
    fsck(repo)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_maintenance_makes_spares_beside_the_folders_writers_take_them_from(
        new: StateRepository, tmp_path: Path) -> None:
    """A file system finds an inode for a new entry under its folder's lock (up to ~1 ms on
    a busy ext4): maintenance makes each spare in ``gitstate/spares-new/`` and renames it in,
    so a writer renaming a spare out of ``gitstate/spares/`` never waits for a creation."""
    repo = new
    for name in _spares(repo):
        os.unlink(Path(repo.path, "gitstate", "spares", name))
    Path(repo.path, "gitstate", "spares-new", "spare-0123456789ab").write_bytes(b"")  # a killed run's
    missing = 256 - len(list(Path(repo.path, "objects").glob("??")))
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-f", "-o", str(log), "-e", "trace=openat,?mkdir,mkdirat,?rename,renameat2",
                    sys.executable, "-c",
                    f"from gitstate import StateRepository; StateRepository.open({repo.path!r}).gc()"],
                   check=True, capture_output=True)
    calls = log.read_text().splitlines()
    spares, folders, new_ = (os.path.join(repo.path, "gitstate", name)
                             for name in ("spares", "spare-folders", "spares-new"))
    spare = re.compile(rf'"([^"]*)/{_EMPTY}[0-9a-f]{{12}}"')  # the folder of a spare named in a call
    made = [c for c in calls if ("O_CREAT" in c or re.search(r" mkdir(at)?\(", c)) and spare.search(c)]
    assert made and {spare.search(c)[1] for c in made} == {new_}
    moved = [c for c in calls if " renameat2(" in c and f'"{new_}/' in c]
    assert len(moved) == len(made) == TARGET + min(FOLDERS, missing)
    assert all(f'"{spares}/' in c or f'"{folders}/' in c for c in moved)
    assert len(_spares(repo, "spare-")) == TARGET and os.listdir(new_) == []
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


ODD = ["not empty", "hard link", "symlink", "folder", "folder with a file", "fifo"]


def _odd(path: Path, kind: str, outside: Path) -> None:
    """Put at ``path`` something that is not an empty file of this user with one link."""
    if kind == "not empty":
        path.write_text("someone's file\n")
    elif kind == "hard link":  # a copy of the repository made with cp -al shares its files
        os.link(outside, path)
    elif kind == "symlink":
        path.symlink_to(outside)
    elif kind == "fifo":  # opening it for writing would wait for a reader
        os.mkfifo(path)
    else:
        path.mkdir()
        if kind == "folder with a file":
            (path / "x").write_text("x\n")


@pytest.mark.parametrize("kind", ODD)
def test_a_spare_that_is_not_an_empty_file_of_its_own_is_never_written_into(
        repo: StateRepository, tmp_path: Path, kind: str) -> None:
    """For objects and for the ref's lock alike: the save goes through, the odd spare is
    removed, nothing outside the spares changes."""
    folder = Path(repo.path, "gitstate", "spares")
    for name in _spares(repo):
        os.unlink(folder / name)
    outside = tmp_path / "outside"
    outside.write_text("someone's file\n")
    for n in range(4):
        _odd(folder / f"spare-00000000000{n}", kind, outside)
    repo.save({"agent_id": "a", "n": 1})
    assert outside.read_text() == "someone's file\n"
    assert repo.load("a", model=None)["n"] == 1
    assert _spares(repo) == []  # each was taken, found unusable and removed
    assert not list(Path(repo.path, "refs", "heads", "agents").glob("*.lock"))
    assert not [p for p in Path(repo.path, "objects").rglob("tmp_*")]
    fsck(repo)


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_spares_new_that_is_not_a_folder_of_its_own_is_replaced(
        new: StateRepository, tmp_path: Path, kind: str) -> None:
    """``gitstate/spares-new/`` (where maintenance makes spares) replaced by a file, or by a
    link to a folder elsewhere: the run removes it, makes its own, and touches nothing outside."""
    repo = new
    for name in _spares(repo)[:40]:
        os.unlink(Path(repo.path, "gitstate", "spares", name))
    made = Path(repo.path, "gitstate", "spares-new")
    shutil.rmtree(made)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "spare-0123456789ab").write_text("someone's file\n")
    if kind == "file":
        made.write_text("x\n")
    else:
        made.symlink_to(outside)
    repo.gc()
    assert [p.name for p in outside.iterdir()] == ["spare-0123456789ab"]
    assert (outside / "spare-0123456789ab").read_text() == "someone's file\n"
    assert made.is_dir() and not made.is_symlink() and list(made.iterdir()) == []
    assert len(_spares(repo, "spare-")) == TARGET
    fsck(repo)


@pytest.mark.parametrize("kind", ["file", "symlink", "folder with a file"])
def test_a_spare_folder_that_is_not_an_empty_folder_of_its_own_is_never_used(
        repo: StateRepository, tmp_path: Path, kind: str) -> None:
    repo.save({"agent_id": "a", "n": 0})
    repo.gc()
    for folder in Path(repo.path, "objects").glob("??"):
        folder.rmdir()  # (git's gc removes the empty ones)
    spare = Path(repo.path, "gitstate", "spare-folders")
    shutil.rmtree(spare, ignore_errors=True)  # (the gc made some)
    spare.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    odd = spare / "spare-000000000000"
    if kind == "file":  # (a .DS_Store, say)
        odd.write_text("x\n")
    elif kind == "symlink":
        odd.symlink_to(outside)
    else:
        odd.mkdir()
        (odd / "x").write_text("x\n")
    repo.save({"agent_id": "a", "n": 1})
    assert list(outside.iterdir()) == []
    assert all(p.is_dir() and not p.is_symlink() for p in Path(repo.path, "objects").glob("??"))
    assert list(spare.iterdir()) == []
    assert repo.load("a", model=None)["n"] == 1
    fsck(repo)


def test_odd_spare_and_replaced_folders_stop_neither_saves_nor_maintenance(new: StateRepository) -> None:
    repo = new
    shutil.rmtree(Path(repo.path, "gitstate", "spares"))
    Path(repo.path, "gitstate", "spares").write_text("not a folder\n")
    Path(repo.path, "gitstate", "replaced").mkdir()
    Path(repo.path, "gitstate", "replaced", "a folder").mkdir()
    repo.save({"agent_id": "a", "n": 1})
    repo.save({"agent_id": "a", "n": 2})
    repo.gc()
    assert list(Path(repo.path, "gitstate", "replaced").iterdir()) == []
    assert [repo.load("a", c.commit, model=None)["n"] for c in repo.log("a")] == [2, 1]
    fsck(repo)


def test_a_spare_taken_after_waiting_long_is_not_a_killed_writers_file(new: StateRepository) -> None:
    """Maintenance removes temporary files by their age: a spare made hours ago gets the
    time of its taking, so a run beside the writer does not remove it while it is written."""
    repo = new
    folder = Path(repo.path, "gitstate", "spares")
    hours_ago = time.time() - 7200
    for name in _spares(repo):
        os.utime(folder / name, (hours_ago, hours_ago))
    spares = Spares(repo.path)
    path = os.path.join(repo.path, "objects", "tmp_obj_taken")
    fd = spares.create(path, 0o444)
    try:
        assert os.fstat(fd).st_mtime > time.time() - 60
    finally:
        os.close(fd)
    repo.gc(grace_seconds=60)  # a run beside the writer: the file is young
    assert os.path.exists(path)


def test_an_interrupt_just_after_a_lock_is_taken_leaves_no_lock(new: StateRepository) -> None:
    """SIGINT delivered as the ``<ref>.lock`` is renamed from a spare: the lock is removed
    as the KeyboardInterrupt unwinds, and the next tag of the agent goes through."""
    repo = new
    repo.save({"agent_id": "a", "n": 1})
    repo.tag("a", "zero")  # the folder exists: the lock's first rename is the one that lands
    lock = os.path.join(repo.path, "refs", "tags", "agents", "a", "one.lock")
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", "signal=none", "-P", lock, "-e", "trace=renameat2",
         "-e", "inject=renameat2:signal=INT:when=1", sys.executable, "-c",
         "import sys; from gitstate import StateRepository; "
         "StateRepository.open(sys.argv[1]).tag('a', 'one')", repo.path],
        capture_output=True, text=True, check=False, preexec_fn=interruptible)
    assert "KeyboardInterrupt" in result.stderr, result.stderr
    assert re.search(r"renameat2\(.*one\.lock.* = 0$", result.stderr, re.MULTILINE), result.stderr
    assert not os.path.exists(lock)
    repo.tag("a", "one")
    assert repo.names("a") == {"zero": repo.latest("a").commit, "one": repo.latest("a").commit}
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


def test_the_writers_umask_applies_to_files_made_from_spares(new: StateRepository) -> None:
    """Spares are made by init and maintenance (here under umask 022); a writer under umask
    077 gets the files os.open would give it."""
    repo = new
    repo.gc()
    script = ("import os, sys; os.umask(0o077); from gitstate import StateRepository; "
              "r = StateRepository.open(sys.argv[1]); r.save({'agent_id': 'a'}); "
              "r._core.store.loose._make_folder(os.path.join(sys.argv[1], 'objects', 'zz'))")
    for folder in Path(repo.path, "objects").glob("??"):
        shutil.rmtree(folder)
    subprocess.run([sys.executable, "-c", script, repo.path], check=True)
    loose = [p for p in _files(repo, "objects") if len(p.parent.name) == 2]
    assert len(loose) == 3 and {p.stat().st_mode & 0o777 for p in loose} == {0o400}
    assert {p.stat().st_mode & 0o777 for p in Path(repo.path, "objects").glob("??")} == {0o700}
    assert Path(repo.path, "refs", "heads", "agents", "a").stat().st_mode & 0o777 == 0o600
    fsck(repo)


def test_spares_that_cannot_be_moved_are_left_and_files_created(new: StateRepository) -> None:
    """Spares the rename cannot take (here on another file system, behind a link: EXDEV):
    saves create their files and folders."""
    repo = new
    repo.gc()  # its loose objects packed: the fan-out folders are empty
    for folder in Path(repo.path, "objects").glob("??"):
        folder.rmdir()
    repo.gc()  # spares and spare folders made
    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        for name in ("spares", "spare-folders"):
            moved = Path(repo.path, "gitstate", name)
            shutil.move(moved, elsewhere / name)
            moved.symlink_to(elsewhere / name)
        count = len(_spares(repo, "spare-"))
        repo.save({"agent_id": "a", "n": 1})
        repo.save({"agent_id": "a", "n": 2})
        assert len(_spares(repo, "spare-")) == count  # none taken, none lost
        for name in _spares(repo)[:5]:
            os.unlink(elsewhere / "spares" / name)
        reopened = StateRepository.open(repo.path)  # (whose writers have not found that out)
        assert reopened.gc().packed_objects > 0  # the spares it makes cannot be moved there: none
        assert len(_spares(repo, "spare-")) == count - 5
    finally:
        shutil.rmtree(elsewhere)
    assert [repo.load("a", c.commit, model=None)["n"] for c in repo.log("a")] == [2, 1]
    fsck(repo)


def test_spares_that_can_be_neither_taken_nor_removed_end_their_use(new: StateRepository) -> None:
    """Spares this user can neither open for writing nor remove (another user's repository;
    here, immutable files): a save creates its files at once, as without spares, instead of
    listing the folder and trying them again and again (which never ended)."""
    repo = new
    names = [str(Path(repo.path, "gitstate", "spares", name)) for name in _spares(repo, "spare-")]
    try:
        if subprocess.run(["chattr", "+i", *names], capture_output=True, check=False).returncode:
            pytest.skip("chattr +i refused here (it needs root and ext2/3/4, xfs or btrfs)")
        saved = subprocess.run(
            [sys.executable, "-c", "import sys; from gitstate import StateRepository; "
             "StateRepository.open(sys.argv[1]).save({'agent_id': 'a', 'n': 1})", repo.path],
            capture_output=True, text=True, check=False, timeout=120)
        assert saved.returncode == 0, saved.stderr
        assert len(_spares(repo, "spare-")) == INITIAL  # none taken, none lost
    finally:
        subprocess.run(["chattr", "-i", *names], check=False)
    assert repo.load("a", model=None)["n"] == 1
    fsck(repo)


def test_spares_running_low_start_one_run_while_maintenance_is_busy(new: StateRepository) -> None:
    """With the maintenance lock held (a long run elsewhere), saves short of spares start one
    background run (which finds the lock held and stops), not one per save."""
    repo = new
    for name in _spares(repo):
        os.unlink(Path(repo.path, "gitstate", "spares", name))
    with repo._core.store.maintenance_lock(wait=False):
        repo.save({"agent_id": "a", "n": 0})
        first = repo._maintenance._worker
        assert first is not None
        first.wait()
        for n in range(1, 11):
            repo.save({"agent_id": "a", "n": n})
        assert repo._maintenance._worker is first
    assert _spares(repo) == []  # the run found the lock held: no spares were made


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


def test_init_and_gc_go_on_where_the_file_system_refuses_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``RENAME_NOREPLACE`` is refused (EINVAL, as NFS does), ``init`` and maintenance
    make no spares (writers could not take them) and do all the rest."""
    def refused(source: str, target: str) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), source, None, target)
    monkeypatch.setattr(spares_module, "_rename_noreplace", lambda: refused)
    repo = StateRepository.init(tmp_path / "r.git")
    assert _spares(repo) == [] and os.listdir(Path(repo.path, "gitstate", "spares-new")) == []
    repo.save({"agent_id": "a", "n": 1})
    assert repo.gc().packed_objects > 0
    assert _spares(repo) == []
    assert repo.load("a", model=None)["n"] == 1
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


def test_a_writer_lists_the_spares_again_at_low_and_once_all_are_tried(
        new: StateRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each take changes the folder: listing it again at each take once LOW are left cost a
    listing per file; a writer lists it when its names fall to LOW (which says whether
    maintenance should run) and again when all are tried, then creates files."""
    folder = os.path.join(new.path, "gitstate", "spares")
    listings = []
    listdir = os.listdir

    def counting(path: str) -> list[str]:
        if os.fspath(path) == folder:
            listings.append(len(listdir(path)))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    writer = Spares(new.path)
    lows = []
    for i in range(INITIAL + 3):
        os.close(writer.create(str(tmp_path / f"file-{i}"), 0o444))
        lows.append(writer.running_low)
    assert listings == [INITIAL, LOW, 0]
    assert lows.index(True) == INITIAL - LOW and all(lows[INITIAL - LOW:])
    assert _spares(new, "spare-") == []
    assert all(path.stat().st_size == 0 for path in tmp_path.glob("file-*"))


def test_writers_in_turn_see_the_spares_running_low_in_time(new: StateRepository, tmp_path: Path) -> None:
    """Four writers (as four processes) take in turn: each one's names include those the
    others took, so a writer that tried MISSED of them in vain lists the folder again, and
    one of them sees LOW left well before they run out (before, with one to spare)."""
    Spares(new.path).fill(TARGET, 0)
    folder = Path(new.path, "gitstate", "spares")
    writers = [Spares(new.path) for _ in range(4)]
    taken = 0
    while not any(writer.running_low for writer in writers):
        os.close(writers[taken % 4].create(str(tmp_path / f"file-{taken}"), 0o444))
        taken += 1
    assert LOW // 3 <= len(os.listdir(folder)) <= LOW


def test_the_spares_kept_follow_the_automatic_maintenance_threshold() -> None:
    assert target(0) == INITIAL  # no automatic maintenance: what a new repository has
    assert target(256) == 1024  # the default: 85 saves between runs use ~340, and a
    # LangGraph writer (3 a step) takes ~600 while a run packs
    assert target(1_000_000) == 4096
