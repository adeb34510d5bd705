"""Writers that never lose a checkpoint: processes, threads, crashed writers, foreign locks."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import fsck, git
from gitstate import ConcurrentUpdateError, StateRepository

WRITER = r"""
import sys
from gitstate import StateRepository
path, writer, count, agents = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
repo = StateRepository.open(path)
print("ready", flush=True)
sys.stdin.readline()  # start together
for i in range(count):
    agent = agents[i % len(agents)]
    repo.save({"agent_id": agent, "iteration": i, "writer": writer})
print("done", flush=True)
"""


def start_writers(repo: StateRepository, jobs: list[tuple[str, int, list[str]]]) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, repo.path, name, str(n), ",".join(agents)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name, n, agents in jobs]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # release them all at once
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "done"


def chain(repo: StateRepository, agent: str) -> list[tuple[str, int]]:
    """(writer, iteration) of every commit of the agent; asserts the history is linear."""
    parents = git(repo, "rev-list", "--parents", f"agents/{agent}").splitlines()
    assert all(len(line.split()) <= 2 for line in parents), "history must be one linear chain"
    assert len([line for line in parents if len(line.split()) == 1]) == 1, "one root"
    return [(repo.read_state(c.commit)["writer"], c.iteration) for c in repo.log(agent)]


def test_four_processes_on_one_agent_make_one_chain_of_400(repo: StateRepository) -> None:
    start_writers(repo, [(f"w{i}", 100, ["shared"]) for i in range(4)])
    saved = chain(repo, "shared")
    assert len(saved) == 400
    assert sorted(saved) == sorted((f"w{w}", i) for w in range(4) for i in range(100))
    for w in range(4):  # each writer's saves appear in the order it made them
        mine = [i for writer, i in reversed(saved) if writer == f"w{w}"]
        assert mine == list(range(100))
    fsck(repo)


def test_processes_on_separate_and_shared_agents(repo: StateRepository) -> None:
    start_writers(repo, [(f"w{i}", 60, [f"own-{i}", "common"]) for i in range(4)])
    for i in range(4):
        assert sorted(it for _, it in chain(repo, f"own-{i}")) == list(range(0, 60, 2))
    assert len(chain(repo, "common")) == 4 * 30
    assert [a.agent_id for a in repo.agents()] == ["common", "own-0", "own-1", "own-2", "own-3"]
    fsck(repo)


def test_threads_sharing_one_repository_object(repo: StateRepository) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                repo.save({"agent_id": "threaded", "iteration": i, "writer": f"t{n}"})
                repo.load("threaded", model=None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(chain(repo, "threaded")) == 200
    fsck(repo)


CRASH_MID_UPDATE = r"""
import os, sys
from gitstate import StateRepository
repo = StateRepository.open(sys.argv[1])
def hang(src, dst):  # the ref lock is written; die before it replaces the ref
    print("locked", flush=True)
    sys.stdin.readline()
os.rename = hang
repo.save({"agent_id": "victim", "iteration": 99})
"""


def test_lock_left_by_a_killed_writer_does_not_block_the_agent(repo: StateRepository) -> None:
    repo.save({"agent_id": "victim", "iteration": 1})
    child = subprocess.Popen([sys.executable, "-c", CRASH_MID_UPDATE, repo.path],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    child.send_signal(signal.SIGKILL)
    child.wait()
    lock = Path(repo.path) / "refs/heads/agents/victim.lock"
    assert lock.exists()  # the debris a crash leaves

    cp = repo.save({"agent_id": "victim", "iteration": 2})
    assert not lock.exists()
    assert [c.iteration for c in repo.log("victim")] == [2, 1]  # the unfinished save is not there
    assert cp.parent == repo.log("victim")[1].commit
    fsck(repo)


def test_a_live_foreign_lock_is_waited_for_never_broken(tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git", lock_timeout=0.2)
    first = repo.save({"agent_id": "busy", "iteration": 1})
    lock = Path(repo.path) / "refs/heads/agents/busy.lock"
    lock.write_text("held by another git process\n")  # as `git update-ref` holds it
    with pytest.raises(ConcurrentUpdateError, match="busy.lock"):
        repo.save({"agent_id": "busy", "iteration": 2})
    assert lock.read_text() == "held by another git process\n"
    assert repo.latest("busy").commit == first.commit
    lock.unlink()
    assert repo.save({"agent_id": "busy", "iteration": 2}).parent == first.commit


def test_a_writer_outside_gitstate_moving_the_branch_is_not_overwritten(repo: StateRepository) -> None:
    """If git itself moves the branch between our read and our swap, we rebase onto it."""
    repo.save({"agent_id": "mixed", "iteration": 1})
    outside = repo.save({"agent_id": "other", "iteration": 7})
    real_update_ref = repo._core.store.update_ref
    moved = []

    def git_moves_branch_then_update_ref(lock, ref: bytes, old, new, **options) -> bool:
        if ref == b"refs/heads/agents/mixed" and not moved:  # after our read, before our swap
            moved.append(True)
            git(repo, "update-ref", "refs/heads/agents/mixed", outside.commit)
        return real_update_ref(lock, ref, old, new, **options)

    repo._core.store.update_ref = git_moves_branch_then_update_ref
    cp = repo.save({"agent_id": "mixed", "iteration": 2})
    assert cp.parent == outside.commit
    assert [c.iteration for c in repo.log("mixed")] == [2, 7]


SAVE_AND_ACK = r"""
import sys
from gitstate import StateRepository
repo = StateRepository.open(sys.argv[1])
i = 0
while True:
    i += 1
    cp = repo.save({"agent_id": "crashy", "iteration": i, "pad": "x" * (i * 997 % 20000)})
    print(cp.commit, flush=True)
"""


@pytest.mark.parametrize("acks", [1, 7, 23, 40])
def test_kill_at_any_moment_keeps_every_acknowledged_save(repo: StateRepository, acks: int) -> None:
    acknowledged = []
    for _round in range(3):
        child = subprocess.Popen([sys.executable, "-c", SAVE_AND_ACK, repo.path],
                                 stdout=subprocess.PIPE, text=True)
        for _ in range(acks):
            acknowledged.append(child.stdout.readline().strip())
        child.send_signal(signal.SIGKILL)  # lands somewhere inside a later save
        child.wait()
        fsck(repo)
        history = set(git(repo, "rev-list", "agents/crashy").split())
        assert set(acknowledged) <= history
    assert repo.save({"agent_id": "crashy", "iteration": 0}).parent in history
    fsck(repo)
