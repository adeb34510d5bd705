"""Killing a child process at an exact system call with strace (crash tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from gitstate import StateRepository

CHILD = "import sys\nfrom gitstate import StateRepository\nrepo = StateRepository.open(sys.argv[1])\n"


def kill_at(repo: StateRepository, code: str, syscall: str, path: str | None, when: int = 1) -> str:
    """Run ``code`` (``repo`` is open) in a child that strace kills as it enters its
    ``when``-th ``syscall`` on ``path`` (relative to the repository; None: on any
    path); return the line strace printed for that call."""
    only = [] if path is None else ["-P", os.path.join(repo.path, path)]
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", "signal=none", *only, "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:signal=KILL:when={when}", sys.executable, "-c", CHILD + code,
         repo.path], check=False, capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    killed = [line for line in result.stderr.splitlines() if line.endswith("= ?")]
    assert len(killed) == 1 and f"{syscall}(" in killed[0], result.stderr
    assert path is None or path in killed[0], result.stderr
    return killed[0]
