"""The object reader: every object it returns equals what git itself reads, from any layout."""

from __future__ import annotations

import os
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from dulwich.objects import Commit

from gitstate import AgentState, StateRepository
from gitstate.errors import CorruptObjectError, DamagedObjectError, InvalidArgumentError
from gitstate.git.layout import CommitInfo
from gitstate.git.reader import ObjectReader, entry_header, inflate

from conftest import fsck, git, grow


def history(repo: StateRepository, agents: int = 2, steps: int = 40) -> None:
    for i in range(agents):
        state = AgentState(agent_id=f"agent-{i}", task="read back")
        for _ in range(steps):
            repo.save(grow(state))


def git_objects(repo: StateRepository) -> dict[bytes, tuple[str, bytes]]:
    """Every object in the repository, read by ``git cat-file --batch``: sha -> (type, content)."""
    out = subprocess.run(["git", "--git-dir", repo.path, "cat-file", "--batch-all-objects",
                          "--batch"], capture_output=True, check=True).stdout
    objects, pos = {}, 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        sha, kind, size = out[pos:header_end].split()
        start = header_end + 1
        objects[sha] = (kind.decode(), out[start:start + int(size)])
        pos = start + int(size) + 1
    return objects


def assert_reads_like_git(repo: StateRepository) -> int:
    expected = git_objects(repo)
    reader = ObjectReader(os.path.join(repo.path, "objects"), fallback=_no_fallback)
    names = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
    for sha, (kind, content) in expected.items():
        type_num, raw = reader.read(sha)
        assert (names[type_num], raw) == (kind, content), sha
    return len(expected)


def _no_fallback(sha: bytes):
    raise KeyError(sha)


def entry_types(repo: StateRepository) -> set[int]:
    """Pack entry types (1-4 whole objects, 6 offset delta, 7 ref delta) of every pack,
    read from the entry headers at the offsets ``git verify-pack -v`` lists."""
    types = set()
    for idx in Path(repo.path, "objects", "pack").glob("*.idx"):
        data = idx.with_suffix(".pack").read_bytes()
        for line in git(repo, "verify-pack", "-v", str(idx)).splitlines():
            fields = line.split()
            if len(fields) in (5, 7):  # sha type size size-in-pack offset [depth base]
                types.add((data[int(fields[4])] >> 4) & 7)
    return types


def test_loose_objects_read_like_git(repo):
    history(repo, agents=1, steps=5)
    assert not list(Path(repo.path, "objects", "pack").glob("*.pack"))
    assert assert_reads_like_git(repo) == 15


def test_gitstate_packs_with_offset_deltas_read_like_git(repo):
    history(repo)
    repo.gc()
    assert entry_types(repo) == {1, 2, 3, 6}
    assert assert_reads_like_git(repo) == 2 * 40 * 3


def test_packs_by_git_with_ref_deltas_read_like_git(repo):
    history(repo)
    git(repo, "-c", "repack.useDeltaBaseOffset=false", "repack", "-a", "-d", "-f", "-q",
        "--depth=20")
    assert 7 in entry_types(repo) and 6 not in entry_types(repo)
    assert assert_reads_like_git(repo) == 2 * 40 * 3
    fsck(repo)


def test_reader_follows_packs_written_and_deleted_by_maintenance(repo):
    state = AgentState(agent_id="a", task="follow packs")
    for _ in range(30):
        repo.save(grow(state))
    repo.gc()
    assert repo.load("a").iteration == 30
    first_packs = {p.index.path for p in repo._core.store.reader._packs}
    for _ in range(30):
        repo.save(grow(state))
    repo.gc(prune=True, grace_seconds=0)  # one new pack replaces the old ones
    assert repo.load("a").iteration == 60
    assert [cp.iteration for cp in repo.log("a")] == list(range(60, 0, -1))
    now = {p.index.path for p in repo._core.store.reader._packs}
    assert now and not now & first_packs  # the deleted packs are no longer open
    assert all(os.path.exists(name) for name in now)


def test_cache_stays_within_its_budget(repo):
    history(repo, agents=1, steps=60)
    reader = ObjectReader(os.path.join(repo.path, "objects"), fallback=_no_fallback,
                          cache_bytes=20_000)
    for sha in git_objects(repo):
        reader.read(sha)
        assert reader._cached <= reader.cache_bytes
    assert 0 < len(reader._cache) < 180


def test_objects_behind_alternates_are_read_through_dulwich(repo, tmp_path):
    history(repo, agents=1, steps=3)
    clone = tmp_path / "shared.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--shared", repo.path, str(clone)], check=True)
    assert (clone / "objects" / "info" / "alternates").exists()
    assert not any((clone / "objects").glob("??/*"))
    assert StateRepository.open(clone).load("agent-0").iteration == 3


def test_a_damaged_packed_object_is_a_typed_error(repo):
    state = AgentState(agent_id="a", task="damage")
    for _ in range(3):
        repo.save(grow(state))
    repo.gc()
    pack = next(Path(repo.path, "objects", "pack").glob("*.pack"))
    blob = git(repo, "rev-parse", "refs/heads/agents/a:state.json").strip()
    offset = next(int(line.split()[4]) for line in
                  git(repo, "verify-pack", "-v", str(pack.with_suffix(".idx"))).splitlines()
                  if line.startswith(blob))
    data = bytearray(pack.read_bytes())
    data[offset + 4:offset + 40] = b"\xff" * 36  # inside the compressed stream
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match=blob):
        StateRepository.open(repo.path).load("a")


@pytest.mark.parametrize("damage", ["garbage", "empty", "fan-out folder is a file"])
def test_a_damaged_loose_object_is_a_typed_error_naming_its_file(repo, damage):
    repo.save({"agent_id": "a", "n": 1})
    head = git(repo, "rev-parse", "agents/a").strip()
    path = Path(repo.path, "objects", head[:2], head[2:])
    path.chmod(0o644)
    if damage == "garbage":
        path.write_bytes(b"not a zlib stream")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        for loose in path.parent.iterdir():
            loose.unlink()
        path.parent.rmdir()
        path.parent.write_bytes(b"")
    named = str(path.parent if damage.startswith("fan-out") else path)
    reader = ObjectReader(os.path.join(repo.path, "objects"), fallback=_no_fallback)
    with pytest.raises(DamagedObjectError, match=named) as caught:
        reader.read(head.encode())
    assert isinstance(caught.value, ValueError)  # what maintenance's read_or_stop expects
    with pytest.raises(CorruptObjectError, match=f"{head} cannot be read: .*{named}"):
        StateRepository.open(repo.path).load("a")


def test_a_miss_beside_a_damaged_index_names_the_index(repo):
    history(repo, agents=1, steps=3)
    repo.gc()
    idx = next(Path(repo.path, "objects", "pack").glob("pack-*.idx"))
    idx.chmod(0o644)
    idx.write_bytes(idx.read_bytes()[:1000])  # dulwich, the fallback, fails on it too (struct.error)
    with pytest.raises(CorruptObjectError, match=f"may hold it is damaged: {idx}"):
        StateRepository.open(repo.path).load("agent-0")


SIGNED = (b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
          b"parent 1111111111111111111111111111111111111111\n"
          b"parent 2222222222222222222222222222222222222222\n"
          b"author A U Thor <a@example.com> 1700000000 -0130\n"
          b"committer C O Mitter <c@example.com> 1700000100 +0200\n"
          b"encoding ISO-8859-1\n"
          b"gpgsig -----BEGIN PGP SIGNATURE-----\n"
          b" parent 3333333333333333333333333333333333333333\n"
          b" \n"
          b" author fake <f@example.com> 1 +0000\n"
          b" -----END PGP SIGNATURE-----\n"
          b"\n"
          b"summary\n\nbody\n\nCheckpoint-Id: x\n")


@pytest.mark.parametrize("raw", [SIGNED, SIGNED.replace(b"\n\nbody\n\nCheckpoint-Id: x\n", b""),
                                 b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
                                 b"author a <a@b> 5 +0000\ncommitter a <a@b> 5 +0000\n\n"])
def test_commit_info_reads_what_dulwich_reads(raw):
    sha = Commit.from_raw_string(Commit.type_num, raw).id
    info, full = CommitInfo.parse(sha, raw), Commit.from_raw_string(Commit.type_num, raw)
    assert (info.tree, list(info.parents), info.author_time, info.message) == \
        (full.tree, full.parents, full.author_time, full.message)
    assert info.full().as_raw_string() == raw


def test_a_commit_without_an_author_is_a_typed_error(repo):
    state = AgentState(agent_id="a", task="bad commit")
    repo.save(grow(state))
    tree = git(repo, "rev-parse", "refs/heads/agents/a^{tree}").strip()
    bad = subprocess.run(["git", "--git-dir", repo.path, "hash-object", "-t", "commit", "-w",
                          "--literally", "--stdin"], input=f"tree {tree}\n\nno author\n".encode(),
                         capture_output=True, check=True).stdout.decode().strip()
    git(repo, "update-ref", "refs/heads/agents/a", bad)
    with pytest.raises(CorruptObjectError, match=bad):
        repo.load("a")


@pytest.mark.parametrize("entry, problem", [
    (bytes([0x65, 0x00]), "delta against itself"),  # an offset delta whose base is itself
    (bytes([0x65, 0x7F]), "outside the pack"),  # ... or before the pack's first byte
    (bytes([0x55]), "type 5"),  # a type git does not have
    (bytes([0x95]), "cut short"),  # a size that goes on past the data
])
def test_damaged_entry_headers_are_errors(entry, problem):
    with pytest.raises(ValueError, match=problem):
        entry_header(entry, 12)


def test_close_releases_pack_files_and_the_repository_stays_usable(repo):
    history(repo, agents=1, steps=10)
    repo.gc()
    packs = {str(p) for p in Path(repo.path, "objects", "pack").iterdir()}

    def open_packs() -> set[str]:
        fds = Path("/proc/self/fd")
        return {os.readlink(fd) for fd in fds.iterdir() if fd.exists()} & packs

    with StateRepository.open(repo.path) as reader:
        assert reader.load("agent-0").iteration == 10
        assert open_packs()
    assert not open_packs()
    assert reader.load("agent-0").iteration == 10  # reopens what it needs
    reader.close()
    assert not open_packs()


def test_cache_size_is_an_option_and_zero_turns_it_off(repo):
    history(repo, agents=1, steps=5)
    uncached = StateRepository.open(repo.path, cache_bytes=0)
    assert uncached.load("agent-0").iteration == 5
    assert uncached._core.store.reader._cache == {}
    cached = StateRepository.open(repo.path)
    cached.load("agent-0")
    assert len(cached._core.store.reader._cache) == 3  # commit, tree, state
    with pytest.raises(InvalidArgumentError, match="cache_bytes"):
        StateRepository.open(repo.path, cache_bytes=-1)
    with pytest.raises(InvalidArgumentError, match="cache_bytes"):
        StateRepository.init(Path(repo.path).parent / "new.git", cache_bytes=-1)
    assert not (Path(repo.path).parent / "new.git").exists()


def test_a_damaged_or_temporary_index_beside_good_packs_is_ignored(repo):
    history(repo, agents=1, steps=5)
    repo.gc()
    pack_dir = Path(repo.path, "objects", "pack")
    good = next(pack_dir.glob("pack-*.idx")).read_bytes()
    (pack_dir / ("pack-" + "0" * 40 + ".idx")).write_bytes(good[:600])  # cut short
    (pack_dir / ("pack-" + "0" * 40 + ".pack")).write_bytes(b"PACK")
    (pack_dir / "tmp_idx_123_456.idx").write_bytes(good)  # a pack being written
    fresh = StateRepository.open(repo.path)
    assert fresh.load("agent-0").iteration == 5
    assert len(fresh._core.store.reader._packs) == 1


def test_a_zlib_stream_longer_than_zlibs_bound_is_read(tmp_path):
    data = os.urandom(12_000)  # random bytes, flushed every 16: the stream outgrows the data
    deflater = zlib.compressobj(9)
    stream = b"".join(deflater.compress(data[i:i + 16]) + deflater.flush(zlib.Z_SYNC_FLUSH)
                      for i in range(0, len(data), 16)) + deflater.flush()
    assert len(stream) > len(data) + (len(data) >> 12) + (len(data) >> 14) + 64
    path = tmp_path / "entry"
    path.write_bytes(b"xx" + stream + b"\0" * 20)
    with open(path, "rb") as f:
        assert inflate(f.fileno(), 2, len(data)) == data
        with pytest.raises(ValueError, match="holds"):
            inflate(f.fileno(), 2, len(data) - 1)


def test_threads_through_dulwich_leave_no_open_files_and_close_spares_them(repo, tmp_path):
    history(repo, agents=1, steps=5)
    repo.gc()
    clone = tmp_path / "shared.git"  # objects behind alternates: read through dulwich
    subprocess.run(["git", "clone", "-q", "--bare", "--shared", repo.path, str(clone)], check=True)
    shared = StateRepository.open(clone, cache_bytes=0)
    packs = {str(p) for p in Path(repo.path, "objects", "pack").glob("*.pack")}

    def open_pack_files() -> int:
        fds = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.exists()]
        return sum(fd in packs for fd in fds)

    threads = [threading.Thread(target=shared.load, args=("agent-0",)) for _ in range(30)]
    for thread in threads:
        thread.start()
        thread.join()
    assert open_pack_files() <= 1  # each ended thread's dulwich repository went with it

    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                assert shared.load("agent-0").iteration == 5
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):
        shared.close()  # from another thread: the reader reopens, never fails
    stop.set()
    reader.join()
    assert errors == []
