"""Prune and reclaim figures: time and bytes on disk before/after, loose and packed.

Run: ``python bench/prune.py [checkpoints] [kept]`` (default 300 and 30). A growing agent
state (one message and one action per step, like a real run) is saved per checkpoint;
object files are aged past the reclaim grace, then ``prune(keep_last=kept)`` runs. The
packed case runs ``git gc`` first (needs the git binary; gitstate itself does not).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitstate import AgentState, RetentionPolicy, StateRepository


def disk_size(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path, "objects").rglob("*") if p.is_file())


def age(path: str) -> None:
    then = time.time() - 86400
    for p in Path(path, "objects").rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))


def run(count: int, kept: int, packed: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = StateRepository.init(Path(tmp, "bench.git"))
        state = AgentState(agent_id="bench")
        for step in range(count):
            state.increment_iteration()
            state.add_message("assistant", f"step {step}: read src/module_{step}.py " + "x" * 200)
            state.add_action({"tool": "read_file", "path": f"src/module_{step}.py"})
            repo.save(state)
        if packed:
            subprocess.run(["git", "--git-dir", repo.path, "gc", "--quiet"], check=True)
        age(repo.path)
        before = disk_size(repo.path)
        start = time.perf_counter()
        result = repo.prune("bench", RetentionPolicy(keep_last=kept))
        seconds = time.perf_counter() - start
        after = disk_size(repo.path)
        print(f"{'packed' if packed else 'loose':6} {count} checkpoints, keep {kept}: "
              f"{before / 1e6:8.2f} MB -> {after / 1e6:7.2f} MB ({after / before:6.1%}), "
              f"removed {result.removed}, reclaimed {result.reclaimed.objects} objects, "
              f"prune+reclaim {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    kept = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    run(count, kept, packed=False)
    run(count, kept, packed=True)
