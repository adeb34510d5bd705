"""The loose-object writer: large objects hashed by a worker thread while they are written."""

from __future__ import annotations

import os
import sys
import subprocess
import threading
from pathlib import Path

import pytest

from gitstate import StateRepository
from gitstate.git.loose import LooseWriter
from gitstate.git.reader import BLOB
from gitstate.git.spares import Spares

from conftest import fsck, git, snapshot

LARGE = b"lorem ipsum dolor sit amet\n" * 20_000  # past the size hashed while written


def writer(repo: StateRepository) -> LooseWriter:
    return LooseWriter(os.path.join(repo.path, "objects"), durable=False, spares=Spares(repo.path))


def hash_object(repo: StateRepository, data: bytes) -> str:
    return subprocess.run(["git", "--git-dir", repo.path, "hash-object", "--stdin"], input=data,
                          capture_output=True, check=True).stdout.decode().strip()


@pytest.mark.parametrize("size", [100, len(LARGE)], ids=["small", "large"])
def test_an_added_object_is_what_git_names_and_reads(repo: StateRepository, size: int) -> None:
    data = LARGE[:size]
    sha = writer(repo).add(BLOB, data)
    assert sha is not None and sha.decode() == hash_object(repo, data)
    git_read = subprocess.run(["git", "--git-dir", repo.path, "cat-file", "blob", sha.decode()],
                              capture_output=True, check=True).stdout
    assert git_read == data
    assert not [p for p in Path(repo.path, "objects").rglob("tmp*")]
    fsck(repo)


def test_an_object_already_there_is_freshened_not_written_again(repo: StateRepository) -> None:
    sha = writer(repo).add(BLOB, LARGE)
    assert sha is not None
    path = Path(repo.path, "objects", sha[:2].decode(), sha[2:].decode())
    os.utime(path, (1_000_000, 1_000_000))
    assert writer(repo).add(BLOB, LARGE) == sha
    assert path.stat().st_mtime > 1_000_000
    assert not [p for p in Path(repo.path, "objects").rglob("tmp*")]


def test_threads_adding_large_objects_at_once_get_their_own_ids(repo: StateRepository) -> None:
    shared = writer(repo)
    datas = [LARGE + b"%d\n" % i for i in range(8)]
    got: dict[int, bytes | None] = {}

    def add(i: int) -> None:
        got[i] = shared.add(BLOB, datas[i])

    threads = [threading.Thread(target=add, args=(i,)) for i in range(len(datas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {i: (sha or b"").decode() for i, sha in got.items()} == {
        i: hash_object(repo, data) for i, data in enumerate(datas)}
    assert git(repo, "count-objects").startswith(f"{len(datas)} objects")
    fsck(repo)


def test_a_process_that_cannot_start_the_worker_thread_hashes_on_its_own(tmp_path: Path) -> None:
    """Out of address space for a thread's stack (as under ``ulimit -v``), a large save
    hashes on the saving thread, and later ones still work once memory is back."""
    script = f"""
import os, resource, signal
from gitstate import StateRepository
repo = StateRepository.init({str(tmp_path / 'state.git')!r})
state = {{"agent_id": "a", "notes": ["lorem ipsum " * 100] * 200}}
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + (4 << 20), hard))  # no room for a thread stack
repo.save(state)
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
signal.alarm(20)  # a worker that never started would make this wait forever
repo.save({{**state, "i": 2}})
print(len(repo.log("a")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "2", result.stderr
    fsck(str(tmp_path / "state.git"))
