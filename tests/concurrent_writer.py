"""A writer in another process that saves checkpoints of one agent in a loop (concurrency tests).

Run as a script (``python concurrent_writer.py REPO AGENT``) it prints the
checkpoint id of every acknowledged save, one per line, flushed, and stops
after the save during which a line arrives on stdin. Tests drive it with
:class:`ConcurrentWriter`.
"""

from __future__ import annotations

import select
import subprocess
import sys


class ConcurrentWriter:
    """Start the writer process; ``acknowledged`` collects the ids of its saves."""

    def __init__(self, repo_path: str, agent_id: str):
        self.process = subprocess.Popen([sys.executable, __file__, repo_path, agent_id],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.acknowledged: list[str] = []

    def __enter__(self) -> "ConcurrentWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait_for(self, count: int) -> None:
        """Block until the writer has acknowledged ``count`` more saves."""
        for _ in range(count):
            line = self.process.stdout.readline()
            assert line, "the writer process died"
            self.acknowledged.append(line.strip())

    def stop(self) -> list[str]:
        """Stop the writer after its current save; return every acknowledged id."""
        self.process.stdin.write("stop\n")
        self.process.stdin.close()
        self.acknowledged += [line.strip() for line in self.process.stdout]
        assert self.process.wait() == 0
        return self.acknowledged


def main() -> None:
    from gitstate import StateRepository

    path, agent_id = sys.argv[1], sys.argv[2]
    repo = StateRepository.open(path)
    i = 0
    while True:
        i += 1
        checkpoint = repo.save({"agent_id": agent_id, "iteration": 10_000 + i, "writer": True})
        print(checkpoint.checkpoint_id, flush=True)
        if select.select([sys.stdin], [], [], 0)[0]:
            return


if __name__ == "__main__":
    main()
