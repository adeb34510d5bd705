"""Maintenance: delta packs, chain caps, geometric merging, prune, verify, automatic runs."""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from dulwich.objects import Blob

from conftest import fsck, git, grow, snapshot
from gitstate import AgentState, CorruptObjectError, InvalidArgumentError, StateRepository, codec
from gitstate.ids import new_checkpoint_id
from gitstate.maintenance import MaintenanceSettings, _loose_estimate


def save_run(repo: StateRepository, agent: str, steps: int) -> list[bytes]:
    """Save ``steps`` growing checkpoints; return each saved state's canonical bytes."""
    state = AgentState(agent_id=agent)
    saved = []
    for _ in range(steps):
        grow(state)
        repo.save(state)
        saved.append(codec.encode(state.model_dump(mode="json")))
    return saved


def manual(repo: StateRepository, **settings: object) -> StateRepository:
    repo.configure_maintenance(auto_objects=0, **settings)
    return repo


def loose_count(repo: StateRepository) -> int:
    counts = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    return int(counts["count"])


def pack_stats(repo: StateRepository) -> list[str]:
    """``git verify-pack -v`` lines of every pack (run by the real git)."""
    pack_dir = Path(repo.path, "objects", "pack")
    out = []
    for idx in sorted(pack_dir.glob("*.idx")):
        out += git(repo, "verify-pack", "-v", str(idx)).splitlines()
    return out


def chain_depths(repo: StateRepository) -> list[int]:
    """Delta depth of every deltified object, as git reports it."""
    depths = []
    for line in pack_stats(repo):
        fields = line.split()
        if len(fields) == 7 and re.fullmatch(r"[0-9a-f]{40}", fields[0]):
            depths.append(int(fields[5]))
    return depths


def test_gc_packs_with_deltas_and_history_reads_back(repo: StateRepository) -> None:
    manual(repo)
    saved = save_run(repo, "a1", 40)
    before = sum(f.stat().st_size for f in Path(repo.path, "objects").rglob("*") if f.is_file())
    result = repo.gc()
    assert result.packed_objects == 120 and result.loose_removed == 120
    assert loose_count(repo) == 0
    after = sum(f.stat().st_size for f in Path(repo.path, "objects").rglob("*") if f.is_file())
    assert after * 10 < before
    assert len(chain_depths(repo)) >= 35  # the older states are deltas
    fsck(repo)
    for back, expected in enumerate(reversed(saved)):
        assert git(repo, "show", f"agents/a1~{back}:state.json").encode() == expected
        assert codec.encode(repo.load("a1", f"latest~{back}", model=None)) == expected


def test_delta_chains_are_capped(repo: StateRepository) -> None:
    manual(repo, max_depth=4)
    saved = save_run(repo, "a1", 60)
    repo.gc()
    depths = chain_depths(repo)
    assert depths and max(depths) <= 4
    whole_blobs = [line for line in pack_stats(repo) if " blob " in line and len(line.split()) == 5]
    assert len(whole_blobs) <= 10  # the spine shares one whole blob among ~max_depth**2/2 states
    fsck(repo)
    assert git(repo, "show", "agents/a1~59:state.json").encode() == saved[0]


def test_geometric_merging_keeps_few_packs(repo: StateRepository) -> None:
    manual(repo)
    saved = save_run(repo, "a1", 5)
    for _ in range(12):
        repo.gc()
        saved += save_run(repo, "a2", 5)
    repo.gc()
    packs = list(Path(repo.path, "objects", "pack").glob("*.pack"))
    assert 1 <= len(packs) <= 4
    fsck(repo)
    assert len(repo.log("a2")) == 60
    assert git(repo, "rev-list", "--count", "agents/a2").strip() == "60"


def test_gc_result_skipped_while_another_maintenance_runs(repo: StateRepository) -> None:
    import fcntl
    manual(repo)
    save_run(repo, "a1", 3)
    lock = Path(repo.path, "gitstate", "locks", "maintenance")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert repo.gc().skipped
    assert not repo.gc().skipped


def assert_progress_reached(calls: list[tuple[int, int]], written: int) -> None:
    """``done`` and ``total`` never go back, ``done <= total``, and the last call is (written, written)."""
    assert calls and all(done <= total for done, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert [total for _, total in calls] == sorted(total for _, total in calls)
    assert calls[-1] == (written, written)


def test_gc_reports_progress_while_writing_packs(repo: StateRepository) -> None:
    manual(repo)
    save_run(repo, "a1", 5)
    repo.gc()
    save_run(repo, "a2", 5)
    calls: list[tuple[int, int]] = []
    result = repo.gc(progress=lambda done, total: calls.append((done, total)))
    assert result.packs_merged == 2 and result.packed_objects == 15 + 30  # packed, then merged
    assert_progress_reached(calls, result.packed_objects)
    assert calls[0][1] == 15  # the merge was not known when the bar started

    save_run(repo, "a3", 100)
    calls.clear()
    result = repo.gc(prune=True, grace_seconds=0, progress=lambda done, total: calls.append((done, total)))
    assert result.packed_objects == 330
    assert_progress_reached(calls, 330)
    assert len(calls) < 330 / 2  # throttled, not one call per object

    calls.clear()
    assert repo.gc(progress=lambda done, total: calls.append((done, total))).packed_objects == 0
    assert calls == []
    fsck(repo)


def _delete_branch(repo: StateRepository, agent: str) -> None:
    from gitstate.ids import branch_ref
    ref = branch_ref(agent)
    with repo._core.store.agent_lock(agent) as lock:
        assert repo._core.store.update_ref(lock, ref, repo._core.store.read_ref(ref), None)


def test_prune_deletes_unreachable_and_keeps_the_rest(repo: StateRepository) -> None:
    manual(repo)
    kept = save_run(repo, "keep", 10)
    save_run(repo, "gone", 10)
    repo.gc()  # some of it packed ...
    save_run(repo, "gone2", 3)  # ... some loose
    gone_blob = git(repo, "rev-parse", "agents/gone:state.json").strip()
    gone2_blob = git(repo, "rev-parse", "agents/gone2:state.json").strip()
    _delete_branch(repo, "gone")
    _delete_branch(repo, "gone2")

    young = repo.gc(prune=True)  # default grace: what gone and gone2 wrote is young, kept
    assert young.pruned_objects == 0
    assert loose_count(repo) == 30 + 9  # left loose: gone's 10 commits, trees, blobs unpacked
    for blob in (gone_blob, gone2_blob):
        assert subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", blob]).returncode == 0

    old = repo.gc(prune=True, grace_seconds=0)
    assert old.pruned_objects == 39
    assert subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", gone_blob]).returncode != 0
    assert subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", gone2_blob]).returncode != 0
    assert len(list(Path(repo.path, "objects", "pack").glob("*.pack"))) == 1
    assert loose_count(repo) == 0
    fsck(repo)
    assert git(repo, "show", "agents/keep~9:state.json").encode() == kept[0]
    assert repo.verify().ok


def test_prune_keeps_objects_only_a_reflog_reaches(repo: StateRepository) -> None:
    manual(repo)
    save_run(repo, "a1", 3)
    old_head = git(repo, "rev-parse", "agents/a1").strip()
    first = git(repo, "rev-parse", "agents/a1~2").strip()
    git(repo, "update-ref", "--create-reflog", "-m", "rewind", "refs/heads/agents/a1", first)
    assert old_head in Path(repo.path, "logs", "refs", "heads", "agents", "a1").read_text()
    repo.gc(prune=True, grace_seconds=0)
    assert subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", old_head]).returncode == 0
    fsck(repo)


def test_a_rewrite_identical_to_the_existing_pack_keeps_it(repo: StateRepository) -> None:
    manual(repo)
    saved = save_run(repo, "a1", 5)
    repo.gc(prune=True, grace_seconds=0)
    repo.gc(prune=True, grace_seconds=0)  # same objects, same order: same pack name
    fsck(repo)
    assert git(repo, "show", "agents/a1~4:state.json").encode() == saved[0]


def test_automatic_maintenance_inline(repo: StateRepository) -> None:
    repo.gc()  # spares topped up (they would start a run when low): only object counts do here
    repo.configure_maintenance(auto_objects=30, background=False)
    save_run(repo, "a1", 25)  # 75 objects: maintenance ran twice (at 30 and 60)
    assert len(list(Path(repo.path, "objects", "pack").glob("*.pack"))) >= 1
    assert loose_count(repo) == 15
    fsck(repo)


def test_automatic_maintenance_in_background(repo: StateRepository) -> None:
    repo.configure_maintenance(auto_objects=30, background=True)
    save_run(repo, "a1", 10)
    repo.wait_for_maintenance()
    assert list(Path(repo.path, "objects", "pack").glob("*.pack"))
    assert loose_count(repo) <= 3
    assert len(repo.log("a1")) == 10
    fsck(repo)


def _run_python(code: str, *args: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], check=True,
                   cwd=Path(__file__).parent)


def test_process_exit_packs_what_a_long_run_left_loose(tmp_path: Path) -> None:
    path = str(tmp_path / "s.git")
    StateRepository.init(path)
    code = """
        import sys
        from conftest import grow
        from gitstate import AgentState, StateRepository
        repo = StateRepository.open(sys.argv[1])
        state = AgentState(agent_id=sys.argv[2])
        for _ in range(int(sys.argv[3])):
            repo.save(grow(state))
    """
    _run_python(code, path, "short", "2")  # a one-off save: left loose, no pack
    assert loose_count(StateRepository.open(path)) == 6
    assert not list(Path(path, "objects", "pack").glob("*.pack"))
    _run_python(code, path, "long", "20")
    repo = StateRepository.open(path)
    assert loose_count(repo) == 0
    assert len(repo.log("long")) == 20 and len(repo.log("short")) == 2
    fsck(repo)


def test_settings_are_stored_in_git_config_and_validated(repo: StateRepository) -> None:
    settings = repo.configure_maintenance(max_depth=20, background=False)
    assert settings.max_depth == 20 and not settings.background
    assert git(repo, "config", "gitstate.maxdepth").strip() == "20"
    assert StateRepository.open(repo.path).maintenance_settings.max_depth == 20
    before = Path(repo.path, "config").read_text()
    for bad in ({"max_depth": -1}, {"depth": 3}, {"background": "yes"}, {"pack_factor": 1}):
        with pytest.raises(InvalidArgumentError):
            repo.configure_maintenance(**bad)
    assert Path(repo.path, "config").read_text() == before
    with pytest.raises(InvalidArgumentError):
        repo.gc(grace_seconds=-5)


# -- writers and readers in other processes while maintenance runs ---------------------

def _writer(path: str, agent: str, steps: int, ready) -> None:
    repo = StateRepository.open(path)
    state = AgentState(agent_id=agent)
    ready.set()
    for _ in range(steps):
        repo.save(grow(state))


def _reader(path: str, agents: list[str], stop, errors, reads) -> None:
    """Two threads sharing one repository object read every agent until told to stop."""
    repo = StateRepository.open(path)

    def read() -> None:
        while not stop.is_set():
            try:
                repo.load("seeded")
                repo.log("seeded", limit=5)
                for agent in agents:
                    if agent not in {a.agent_id for a in repo.agents()}:
                        continue
                    newest = repo.load(agent).iteration
                    iterations = [c.iteration for c in repo.log(agent)]
                    assert iterations == list(range(iterations[0], 0, -1)), iterations
                    assert iterations[0] >= newest
                    with reads.get_lock():
                        reads.value += 1
            except Exception as exc:  # any failure is the finding
                errors.put(repr(exc))
                return

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_writers_lose_nothing_while_maintenance_runs(repo: StateRepository) -> None:
    manual(repo)
    save_run(repo, "seeded", 5)
    ctx = multiprocessing.get_context("spawn")
    steps = 60
    ready = [ctx.Event() for _ in range(3)]
    stop, errors = ctx.Event(), ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(repo.path, f"w{i}", steps, ready[i])) for i in range(3)]
    reads = ctx.Value("i", 0)
    reader = ctx.Process(target=_reader,
                         args=(repo.path, [f"w{i}" for i in range(3)], stop, errors, reads))
    reader.start()
    for w in writers:
        w.start()
    for event in ready:
        assert event.wait(60)
    runs = 0
    try:
        while any(w.is_alive() for w in writers) or runs < 3:
            repo.gc(prune=runs % 2 == 1)
            runs += 1
    finally:  # a failed run must not leave the reader spinning
        stop.set()
        for w in writers:
            w.join()
        reader.join()
    assert all(w.exitcode == 0 for w in writers)
    assert errors.empty(), errors.get()
    assert reads.value > 0  # the reader read the writers' agents while maintenance ran
    repo.gc(prune=True)
    for i in range(3):
        log = repo.log(f"w{i}")
        assert len(log) == steps
        assert [c.iteration for c in log] == list(range(steps, 0, -1))
    fsck(repo)
    assert repo.verify().ok


def _save_in_progress(repo: StateRepository, agent: str) -> str:
    """A commit on top of ``agent`` written by the real git (loose), its branch not moved
    yet: what maintenance sees of a save between its objects and its ref."""
    return git(repo, "commit-tree", f"agents/{agent}^{{tree}}", "-p", f"agents/{agent}",
               "-m", "in progress").strip()


def _pack_times(repo: StateRepository) -> list[float]:
    return sorted(p.stat().st_mtime for p in Path(repo.path, "objects", "pack").glob("*.pack"))


def test_gc_prune_keeps_a_save_in_progress_that_gc_packed(repo: StateRepository) -> None:
    # A gc packs every loose object, a save's too; a gc --prune that followed while the save
    # had still not moved its branch deleted it with its pack (the branch then named a
    # missing commit). Packed objects younger than the grace are kept, as loose ones are.
    manual(repo)
    save_run(repo, "a", 3)
    commit = _save_in_progress(repo, "a")
    repo.gc()
    assert loose_count(repo) == 0
    result = repo.gc(prune=True)
    assert result.pruned_objects == 0
    git(repo, "update-ref", "refs/heads/agents/a", commit)  # the save moves its branch
    fsck(repo)
    assert len(repo.log("a")) == 4


def test_an_unreachable_object_keeps_its_age_through_packing(repo: StateRepository) -> None:
    # The grace counts from when an object was written: packing it, merging its pack or
    # unpacking it again does not make it young, so it goes once the grace has passed.
    manual(repo)
    save_run(repo, "a", 3)
    commit = _save_in_progress(repo, "a")
    two_hours_ago = time.time() - 7200
    for root, _dirs, files in os.walk(Path(repo.path, "objects")):
        for name in files:
            os.utime(os.path.join(root, name), (two_hours_ago, two_hours_ago))
    repo.gc()
    assert _pack_times(repo) == [pytest.approx(two_hours_ago, abs=1)]
    save_run(repo, "b", 1)
    repo.gc()  # the new pack is dated by its newest object; merged packs keep the newest time
    assert max(_pack_times(repo)) > two_hours_ago + 3600
    repo.gc(prune=True, grace_seconds=3 * 3600)  # young: kept, unpacked with its pack's time
    assert os.stat(Path(repo.path, "objects", commit[:2], commit[2:])).st_mtime \
        == pytest.approx(two_hours_ago, abs=1)
    result = repo.gc(prune=True)  # a grace of one hour: it goes
    assert result.pruned_objects == 1
    assert subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", commit]).returncode != 0
    fsck(repo)


# -- verify ------------------------------------------------------------------------------

def test_verify_accepts_a_sound_repository(repo: StateRepository) -> None:
    manual(repo)
    save_run(repo, "a1", 4)
    repo.gc()
    save_run(repo, "a2", 2)
    repo.tag("a1", "v1", "latest~1")
    result = repo.verify()
    assert result.ok and result.problems == []
    assert (result.agents, result.checkpoints, result.objects) == (2, 6, 18)


def _plumb_commit(repo: StateRepository, agent: str, content: bytes, message: str) -> None:
    """Commit ``content`` as state.json on an agent's branch with the real git."""
    blob = subprocess.run(["git", "--git-dir", repo.path, "hash-object", "-w", "--stdin"],
                          input=content, capture_output=True, check=True).stdout.decode().strip()
    tree = subprocess.run(["git", "--git-dir", repo.path, "mktree"], capture_output=True, check=True,
                          input=f"100644 blob {blob}\tstate.json\n".encode()).stdout.decode().strip()
    parent = git(repo, "rev-parse", f"agents/{agent}").strip()
    commit = git(repo, "commit-tree", tree, "-p", parent, "-m", message).strip()
    git(repo, "update-ref", f"refs/heads/agents/{agent}", commit)


def test_verify_reports_non_canonical_states_and_bad_trailers(repo: StateRepository) -> None:
    save_run(repo, "a1", 2)
    _plumb_commit(repo, "a1", b'{"agent_id": "a1", "b": 1}\n', "hand-made\n\nAgent-Id: a1")
    problems = repo.verify().problems
    kinds = sorted((p.kind, p.message.split(" ")[0]) for p in problems)
    assert ("state", "state.json") in kinds
    assert ("trailer", "Checkpoint-Id") in kinds and ("trailer", "Schema-Version") in kinds
    assert all(p.subject.startswith("a1@") for p in problems)


def test_verify_reports_damaged_objects_and_dangling_refs(repo: StateRepository) -> None:
    manual(repo)
    save_run(repo, "a1", 2)
    blob = git(repo, "rev-parse", "agents/a1:state.json").strip()
    path = Path(repo.path, "objects", blob[:2], blob[2:])
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    Path(repo.path, "refs", "heads", "agents", "ghost").write_text("1" * 40 + "\n")
    problems = repo.verify().problems
    assert any(p.kind == "object" and p.subject == blob for p in problems)
    assert any(p.kind == "ref" and p.subject == "refs/heads/agents/ghost" for p in problems)


def test_verify_lists_every_problem_and_checks_every_agent(repo: StateRepository) -> None:
    manual(repo)
    for agent in ("a1", "a2", "a3"):
        save_run(repo, agent, 3)
    parent = git(repo, "rev-parse", "agents/a1~1").strip()
    Path(repo.path, "objects", parent[:2], parent[2:]).unlink()  # a1's history ends at its head
    second = git(repo, "rev-parse", "agents/a2~1").strip()
    tree = git(repo, "rev-parse", "agents/a2~1^{tree}").strip()
    Path(repo.path, "objects", tree[:2], tree[2:]).unlink()  # one state of a2 cannot be read
    Path(repo.path, "refs", "heads", "agents", "a4").write_text("garbage\n")
    result = repo.verify()
    found = {(p.kind, p.subject): p.message for p in result.problems}
    assert found.keys() == {("history", "a1"), ("state", f"a2@{second[:12]}"),
                            ("ref", "refs/heads/agents/a4")}, result.problems
    assert parent in found["history", "a1"] and tree in found["state", f"a2@{second[:12]}"]
    assert (result.agents, result.checkpoints) == (3, 1 + 3 + 3)


def _plumb_checkpoint(repo: StateRepository, agent: str, state: dict, writer: str) -> None:
    """A checkpoint of ``state`` on ``agent``'s branch, its trailers naming ``writer``."""
    message = (f"hand-made\n\nCheckpoint-Id: {new_checkpoint_id()}\nAgent-Id: {writer}\n"
               "Schema-Version: 1")
    _plumb_commit(repo, agent, codec.encode(state), message)


def test_verify_checks_agent_id_against_the_state_not_the_branch(repo: StateRepository) -> None:
    save_run(repo, "a1", 1)
    _plumb_checkpoint(repo, "a1", {"agent_id": "a9"}, "a9")  # another agent's, as a fork holds
    assert repo.verify().ok
    _plumb_checkpoint(repo, "a1", {"agent_id": "a1"}, "a9")
    _plumb_checkpoint(repo, "a1", {"agent_id": "a1"}, "not an id")
    newest, second = git(repo, "rev-list", "-2", "agents/a1").split()
    problems = {(p.kind, p.subject): p.message for p in repo.verify().problems}
    assert problems.keys() == {("state", f"a1@{second[:12]}"), ("trailer", f"a1@{newest[:12]}")}
    assert "'a1'" in problems["state", f"a1@{second[:12]}"]
    assert "'a9'" in problems["state", f"a1@{second[:12]}"]
    assert "not an id" in problems["trailer", f"a1@{newest[:12]}"]


MAINTAINER = r"""
import select, sys
from gitstate import StateRepository
repo = StateRepository.open(sys.argv[1])
i = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    for _ in range(20):
        i += 1
        repo.save({"agent_id": "w", "iteration": i})
    repo.gc()  # packs the new loose objects, removes them and their folders, merges packs
    print(i, flush=True)
"""


def test_verify_beside_maintenance_finds_nothing_wrong(repo: StateRepository) -> None:
    """Loose objects, fan-out folders and packs that maintenance removes meanwhile are no problem."""
    manual(repo)
    save_run(repo, "a1", 3)
    maintainer = subprocess.Popen([sys.executable, "-c", MAINTAINER, repo.path], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    cycles: list[str] = []
    try:
        assert maintainer.stdout.readline(), "the maintenance process died"
        threading.Thread(target=lambda: cycles.extend(maintainer.stdout), daemon=True).start()
        results = []
        while len(cycles) < 3:  # verify all along 3 maintenance runs
            assert maintainer.poll() is None, "the maintenance process died"
            results.append(repo.verify())
    finally:
        maintainer.stdin.write("stop\n")
        maintainer.stdin.close()
        assert maintainer.wait() == 0
    assert [r.problems for r in results if not r.ok] == []
    assert repo.verify().ok


@pytest.mark.parametrize("value", ["lots", "²", "\udcff"])  # a word, a digit Python's int() refuses, not UTF-8
def test_a_bad_setting_in_the_config_falls_back_to_the_default(repo: StateRepository, value: str) -> None:
    config = Path(repo.path, "config")
    config.write_bytes(config.read_bytes() + b"[gitstate]\n\tmaxdepth = "
                       + value.encode("utf-8", "surrogateescape") + b"\n")
    reopened = StateRepository.open(repo.path)
    assert reopened.maintenance_settings.max_depth == 50
    reopened.save({"agent_id": "a", "iteration": 1})  # automatic maintenance reads them too


def test_loose_estimate_is_not_fooled_by_one_object(repo: StateRepository) -> None:
    blob = next(b for b in (Blob.from_string(b"%d" % i) for i in range(10_000))
                if b.id.startswith(b"17"))
    repo._core.store.write(blob)  # one loose object, in the folder git's estimate samples
    assert _loose_estimate(repo.path) < MaintenanceSettings().auto_objects
    for i in range(400):
        repo._core.store.write(Blob.from_string(b"object %d" % i))
    assert 200 <= _loose_estimate(repo.path) <= 800  # 401 objects, estimated from 1/16


# -- one marking for gc(prune=True) and reclaim -------------------------------------------

def _age_all(repo: StateRepository, days: int = 1) -> None:
    then = time.time() - days * 86400
    for path in Path(repo.path, "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def _exists(repo: StateRepository, sha: str) -> bool:
    return subprocess.run(["git", "--git-dir", repo.path, "cat-file", "-e", sha]).returncode == 0


@pytest.mark.parametrize("how", ["gc", "reclaim"])
def test_what_a_young_loose_object_reaches_is_kept(repo: StateRepository, how: str) -> None:
    """A save in progress (new tree, no ref yet) may reuse an old unreachable blob."""
    manual(repo)
    save_run(repo, "a1", 2)
    old_blob = git(repo, "rev-parse", "agents/a1~1:state.json").strip()
    _delete_branch(repo, "a1")
    repo.gc()  # old blob now packed (pack and loose files aged below)
    _age_all(repo)
    tree = subprocess.run(["git", "--git-dir", repo.path, "mktree"], capture_output=True, check=True,
                          input=f"100644 blob {old_blob}\tdraft.json\n".encode()).stdout.decode().strip()
    assert _exists(repo, tree)  # written just now: young, reached by no ref
    if how == "gc":
        result = repo.gc(prune=True, grace_seconds=600)
        assert result.pruned_objects == 5  # 2 commits, 2 trees, the newer blob
    else:
        assert repo.reclaim(grace=timedelta(minutes=10)).objects == 5
    assert _exists(repo, tree) and _exists(repo, old_blob)
    assert Path(repo.path, "objects", tree[:2], tree[2:]).exists()  # still loose, untouched
    fsck(repo)


@pytest.mark.parametrize("how", ["gc", "reclaim"])
def test_a_missing_reachable_object_stops_before_deleting(repo: StateRepository, how: str) -> None:
    manual(repo)
    save_run(repo, "keep", 3)
    save_run(repo, "gone", 3)
    _delete_branch(repo, "gone")
    tree = git(repo, "rev-parse", "agents/keep~1^{tree}").strip()
    Path(repo.path, "objects", tree[:2], tree[2:]).unlink()
    _age_all(repo)
    before = sorted(p.name for p in Path(repo.path, "objects").rglob("*") if p.is_file())
    with pytest.raises(CorruptObjectError, match=tree):
        repo.gc(prune=True, grace_seconds=0) if how == "gc" else repo.reclaim(grace=timedelta(0))
    assert sorted(p.name for p in Path(repo.path, "objects").rglob("*") if p.is_file()) == before


def _damage_packed_state(repo: StateRepository, agent: str) -> str:
    """Overwrite bytes inside the deflated head state of ``agent`` in its pack; return its SHA."""
    blob = git(repo, "rev-parse", f"agents/{agent}:state.json").strip()
    idx = next(Path(repo.path, "objects", "pack").glob("*.idx"))
    offset = next(int(line.split()[4]) for line in git(repo, "verify-pack", "-v", str(idx)).splitlines()
                  if line.startswith(blob))
    pack = idx.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    data[offset + 4:offset + 40] = b"\xff" * 36
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    return blob


@pytest.mark.parametrize("prune", [False, True])
def test_a_damaged_object_stops_gc_with_a_typed_error(repo: StateRepository, prune: bool) -> None:
    manual(repo)
    save_run(repo, "a", 3)
    repo.gc()
    save_run(repo, "b", 3)  # loose: packing them makes gc merge, reading the damaged pack
    blob = _damage_packed_state(repo, "a")
    _age_all(repo)
    before = snapshot(repo)
    damaged = rf"{blob}|pack-[0-9a-f]{{40}}\.pack does not match its checksum"  # (checked first)
    with pytest.raises(CorruptObjectError, match=damaged):
        repo.gc(prune=prune, grace_seconds=0)
    for agent in ("a", "b"):  # nothing lost
        for sha in git(repo, "rev-list", f"agents/{agent}").split():
            git(repo, "cat-file", "-e", sha)
    assert repo.load("b").iteration == 3
    if prune:
        assert snapshot(repo) == before  # stopped before writing anything


def test_gc_does_not_rewrite_a_pack_whose_index_does_not_match_its_checksum(
        repo: StateRepository) -> None:
    """Two offsets swapped in an index: each object reads as the other, only the checksum tells."""
    manual(repo)
    save_run(repo, "a", 3)
    repo.gc()
    save_run(repo, "b", 3)  # loose: packing them makes gc merge the first pack
    idx = next(Path(repo.path, "objects", "pack").glob("*.idx"))
    good = idx.read_bytes()
    names = sorted(line.split()[1] for line in subprocess.run(
        ["git", "show-index"], input=good, capture_output=True, check=True).stdout.decode().splitlines())
    first, second = (names.index(git(repo, "rev-parse", f"agents/a~{n}:state.json").strip()) for n in (1, 2))
    table = 8 + 256 * 4 + len(names) * 24  # past the header, fan-out, names and CRCs
    swapped = bytearray(good)
    swapped[table + first * 4:table + first * 4 + 4] = good[table + second * 4:table + second * 4 + 4]
    swapped[table + second * 4:table + second * 4 + 4] = good[table + first * 4:table + first * 4 + 4]
    idx.chmod(0o644)
    idx.write_bytes(bytes(swapped))
    with pytest.raises(CorruptObjectError, match=rf"{idx.name} does not match its checksum"):
        repo.gc()
    idx.write_bytes(good)  # the pack was neither rewritten nor deleted: repaired, all is there
    fsck(repo)
    assert repo.verify().ok


def test_a_save_survives_automatic_maintenance_failing(repo: StateRepository,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    manual(repo)
    save_run(repo, "a", 3)
    repo.gc()
    _damage_packed_state(repo, "a")
    repo.configure_maintenance(auto_objects=3, background=False)
    state = AgentState(agent_id="b")
    for _ in range(3):
        checkpoint = repo.save(grow(state))  # the third one runs maintenance inline: it fails
    assert repo.latest("b").commit == checkpoint.commit
    assert any("automatic maintenance" in r.getMessage() for r in caplog.records)


def test_a_loose_ref_hides_its_stale_packed_entry(repo: StateRepository) -> None:
    manual(repo)
    save_run(repo, "a1", 4)
    git(repo, "pack-refs", "--all")  # packed-refs: agents/a1 -> the 4th checkpoint
    first = git(repo, "rev-parse", "agents/a1~3").strip()
    newest = git(repo, "rev-parse", "agents/a1").strip()
    git(repo, "update-ref", "--no-deref", "refs/heads/agents/a1", first)  # a loose ref wins
    for log in Path(repo.path, "logs").rglob("*"):
        if log.is_file():
            log.unlink()  # as `git reflog expire` would
    assert newest in Path(repo.path, "packed-refs").read_text()
    result = repo.gc(prune=True, grace_seconds=0)
    assert result.pruned_objects == 9 and not _exists(repo, newest)
    assert git(repo, "rev-list", "--count", "agents/a1").strip() == "1"
    fsck(repo)


def test_reclaim_rewrites_a_git_pack_whose_base_has_hundreds_of_deltas(repo: StateRepository,
                                                                      tmp_path: Path) -> None:
    """git may make one object the base of more deltas than a byte counts (here 299, with
    --depth=1); rewriting that pack without an unreachable object keeps them all."""
    def plumb(*args: str, input: str) -> str:
        return subprocess.run(["git", "--git-dir", repo.path, *args], input=input, capture_output=True,
                              text=True, check=True).stdout.strip()

    repo.save({"agent_id": "a"})
    text = "".join(f"line {i} of the text every file shares\n" for i in range(400))
    files = [tmp_path / f"f{i:03d}" for i in range(300)]
    for i, file in enumerate(files):
        file.write_text(f"{text}variant {i}\n")
    blobs = git(repo, "hash-object", "-w", *map(str, files)).split()
    plumb("hash-object", "-w", "--stdin", input="reached by nothing\n")
    tree = plumb("mktree", input="".join(f"100644 blob {b}\tf{i:03d}\n" for i, b in enumerate(blobs)))
    git(repo, "update-ref", "refs/heads/star", git(repo, "commit-tree", tree, "-m", "star").strip())
    every = git(repo, "cat-file", "--batch-check=%(objectname)", "--batch-all-objects")
    plumb("pack-objects", "-q", "--window=300", "--depth=1", f"{repo.path}/objects/pack/pack", input=every)
    git(repo, "prune-packed")
    bases = [line.split()[-1] for line in pack_stats(repo) if len(line.split()) == 7]
    assert max(bases.count(base) for base in bases) > 255
    then = time.time() - 86400
    for file in Path(repo.path, "objects").rglob("*"):
        os.utime(file, (then, then))
    kept = {line.split()[0] for line in git(repo, "rev-list", "--objects", "--all").splitlines()}
    assert repo.reclaim(grace=timedelta(0)).objects == 1
    assert set(git(repo, "cat-file", "--batch-check=%(objectname)", "--batch-all-objects").split()) == kept
    fsck(repo)


def _maintained(path: Path) -> dict[str, object]:
    """Run every maintenance path on the repository at ``path``: what it left."""
    repo = StateRepository.open(path)
    results = [repo.gc(), repo.gc()]  # pack the loose objects, merge the packs
    repo.delete_agent("a1")
    reclaimed = repo.reclaim(grace=timedelta(0))
    pruned = repo.gc(prune=True, grace_seconds=0)
    fsck(repo)
    packs = sorted(p.name for p in Path(path, "objects", "pack").iterdir())
    return {"packed": [r.packed_objects for r in results], "reclaimed": reclaimed,
            "pruned": pruned.pruned_objects, "packs": packs,
            "states": [repo.load("a0", f"latest~{i}", model=None) for i in range(10)]}


def test_maintenance_with_its_tables_in_a_scratch_file_does_what_it_does_in_memory(
        repo: StateRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same runs on two copies give the same packs (same names: same bytes), once with
    every table in memory and once in a scratch file whose pages are given back at every
    step, the pack indexes mapped (what histories past ``SCRATCH_OBJECTS`` objects get)."""
    from gitstate.git import objectset, reader
    manual(repo)
    for agent in ("a0", "a1", "a2"):
        save_run(repo, agent, 12)
    repo.gc()
    save_run(repo, "a2", 3)
    repo.gc()  # two packs
    save_run(repo, "a0", 5)  # and loose objects
    twin = tmp_path / "twin.git"
    subprocess.run(["cp", "-a", repo.path, str(twin)], check=True)
    in_memory = _maintained(Path(repo.path))
    monkeypatch.setattr(objectset, "SCRATCH_OBJECTS", 0)
    monkeypatch.setattr(objectset, "CHECK_EVERY", 1)
    monkeypatch.setattr(objectset, "RESIDENT_BUDGET", -1)  # give pages back at every step
    monkeypatch.setattr(reader, "MAP_INDEX_BYTES", 0)
    assert objectset.Scratch.for_objects(1, str(twin)).mapped
    assert _maintained(twin) == in_memory
