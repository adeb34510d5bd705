"""Start-up time of the ``gitstate`` command: ``--version``, ``--help`` and shell completion.

Each case runs the installed executable in a fresh process N times (default 10) and prints
the median and the slowest wall-clock time, plus what a bare ``python -c pass`` costs on this
machine for comparison. Completion is what bash asks for on TAB: the commands (``gitstate
lo<TAB>``) and the agent ids of a repository of 3 agents (``gitstate log <TAB>``).

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXECUTABLE = Path(sys.executable).with_name("gitstate")


def timed(command: list[str], env: dict[str, str], cwd: str, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="gitstate-startup-")
    try:
        env = {**os.environ, "GITSTATE_REPO": os.path.join(folder, "repo.git")}
        for agent in ("recon-1", "triage-2", "audit-3"):
            subprocess.run([str(EXECUTABLE), "save"], input=f'{{"agent_id": "{agent}"}}', text=True,
                           env=env, check=True, capture_output=True)
        complete = {**env, "_GITSTATE_COMPLETE": "bash_complete"}
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], env),
            ("gitstate --version", [str(EXECUTABLE), "--version"], env),
            ("gitstate --help", [str(EXECUTABLE), "--help"], env),
            ("completion: gitstate lo<TAB>", [str(EXECUTABLE)],
             {**complete, "COMP_WORDS": "gitstate lo", "COMP_CWORD": "1"}),
            ("completion: gitstate log <TAB> (agent ids)", [str(EXECUTABLE)],
             {**complete, "COMP_WORDS": "gitstate log ", "COMP_CWORD": "2"}),
        ]
        print(f"{'case':45} {'median ms':>10} {'max ms':>8}   ({args.runs} runs each)")
        for label, command, case_env in cases:
            median, slowest = timed(command, case_env, folder, args.runs)
            print(f"{label:45} {median:10.1f} {slowest:8.1f}")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
