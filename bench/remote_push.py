"""Time pushing many agents to a real ``git daemon`` on 127.0.0.1 in one command.

    python bench/remote_push.py                     # 200 agents x 5 checkpoints, 5 runs
    python bench/remote_push.py --agents 1000 --checkpoints 2 --repeats 3

Each run pushes every agent to a fresh bare repository (one connection),
then pushes again (nothing to send) and clones the server into a fresh
repository. Prints the median, minimum and maximum of each, and the number
of receive-pack sessions the daemon served per push.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitstate import AgentState, StateRepository  # noqa: E402


class Daemon:
    """``git daemon`` serving ``root`` with receive-pack enabled; waits for "Ready to rumble"."""

    def __init__(self, root: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log: list[str] = []
        ready = threading.Event()
        self.process = subprocess.Popen(
            ["git", "daemon", "--verbose", "--reuseaddr", "--export-all", "--enable=receive-pack",
             f"--base-path={root}", "--listen=127.0.0.1", f"--port={self.port}",
             "--log-destination=stderr", str(root)],
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                if "Ready to rumble" in line:
                    ready.set()
            ready.set()
        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30) or self.process.poll() is not None:
            raise SystemExit(f"git daemon did not start: {''.join(self.log)}")

    def receive_sessions(self) -> int:
        return sum("Request receive-pack" in line for line in self.log)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "srv").mkdir()
        repo = StateRepository.init(root / "local.git")
        for i in range(args.agents):
            state = AgentState(agent_id=f"agent-{i:04d}", task=f"audit module {i}")
            for step in range(args.checkpoints):
                state.increment_iteration()
                state.add_message("assistant", f"step {step}: read src/file_{step}.py " + "x" * 200)
                repo.save(state)
        daemon = Daemon(root / "srv")
        figures: dict[str, list[float]] = {"push": [], "push again (up to date)": [], "clone": []}
        sessions = []
        try:
            for run in range(args.repeats):
                name = f"server{run}.git"
                subprocess.run(["git", "init", "-q", "--bare", str(root / "srv" / name)], check=True)
                repo.remote_add(f"r{run}", f"git://127.0.0.1:{daemon.port}/{name}")
                before = daemon.receive_sessions()
                figures["push"].append(timed(lambda: repo.push(f"r{run}")))
                sessions.append(daemon.receive_sessions() - before)
                figures["push again (up to date)"].append(timed(lambda: repo.push(f"r{run}")))
                target = root / f"clone{run}.git"
                figures["clone"].append(timed(lambda: StateRepository.clone(
                    f"git://127.0.0.1:{daemon.port}/{name}", target)))
        finally:
            daemon.stop()
        size = sum(f.stat().st_size for f in (root / "srv" / "server0.git").rglob("*") if f.is_file())

    print(f"{args.agents} agents x {args.checkpoints} checkpoints over git:// "
          f"(server repository {size / 1e6:.1f} MB), {args.repeats} runs")
    for label, values in figures.items():
        print(f"  {label:<24} median {statistics.median(values) * 1000:8.1f} ms   "
              f"min {min(values) * 1000:8.1f}   max {max(values) * 1000:8.1f}")
    print(f"  receive-pack sessions per push: {sorted(set(sessions))}")
    print(f"  python {sys.version.split()[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
