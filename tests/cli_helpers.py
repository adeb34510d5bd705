"""Running the ``gitstate`` command line in tests: through click's runner, or the installed executable
where only a real process shows the behaviour."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from click.testing import CliRunner

from gitstate import AgentState
from gitstate_cli.main import cli

from conftest import grow

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "seed_checkpoints"
EXECUTABLE = Path(sys.executable).with_name("gitstate")
NOON = "2025-06-03T12:00:00+00:00"


@dataclass
class Result:
    code: int
    out: str
    err: str
    exception: Optional[BaseException] = None

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


class Gitstate:
    """Runs ``gitstate ARGS`` in ``cwd``, in-process with CliRunner or as the installed executable."""

    def __init__(self, mode: str, cwd: Path):
        self.mode, self.cwd = mode, cwd

    def __call__(self, *args: str, input: Optional[str] = None, env: Optional[dict[str, str]] = None,
                 color: bool = False) -> Result:
        if self.mode == "runner":
            result = CliRunner().invoke(cli, list(args), input=input, env=env, color=color,
                                        prog_name="gitstate")
            exception = None if isinstance(result.exception, SystemExit) else result.exception
            return Result(result.exit_code, result.stdout, result.stderr, exception)
        proc = subprocess.run([str(EXECUTABLE), *args], input=input, capture_output=True, text=True,
                              cwd=self.cwd, env={**os.environ, **(env or {})})
        return Result(proc.returncode, proc.stdout, proc.stderr)


# The ``gitstate`` fixture (conftest.py) runs in-process; these run a test through the executable.
as_a_process = pytest.mark.parametrize("gitstate", ["executable"], indirect=True)
both_ways = pytest.mark.parametrize("gitstate", ["runner", "executable"], indirect=True)


def interruptible() -> None:
    """``preexec_fn`` for a command a test interrupts with SIGINT: its default action back, as
    in a terminal (a shell starts background jobs, e.g. a CI script's, with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def state_json(agent_id: str = "agent_1a2b3c4d", steps: int = 0) -> str:
    """A state after ``steps`` steps, the same every time it is asked for."""
    state = grow(AgentState(agent_id=agent_id, task="audit payments-service", created_at=NOON), steps)
    data = state.model_dump(mode="json")
    data["last_updated"] = NOON
    for entry in data["messages"] + data["actions_taken"]:
        entry["timestamp"] = NOON
    return json.dumps(data)


def save_steps(gitstate: Gitstate, agent_id: str, steps: int, **names: int) -> list[dict]:
    """Save checkpoints for iterations 1..steps at 12:01, 12:02, ... (names: name=iteration)."""
    saved = []
    for step in range(1, steps + 1):
        args = ["save", "--json", "--time", f"2025-06-03T12:{step:02d}:00Z"]
        args += [a for name, at in names.items() if at == step for a in ("--name", name)]
        result = gitstate(*args, input=state_json(agent_id, step))
        assert result.code == 0, result.err
        saved.append(result.json())
    return saved


def assert_gitstate_error(result: Result, *words: str) -> None:
    """Exit code 1, one line on stderr naming the problem, no traceback."""
    assert result.code == 1, (result.out, result.err, result.exception)
    assert result.exception is None
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    for word in words:
        assert word in lines[0]


def on_terminal(*args: str, env: Optional[dict[str, str]] = None) -> tuple[int, bytes, bytes]:
    """Run the executable with stderr on a pseudo-terminal: (exit code, stdout, what stderr drew).

    The terminal is read while the command runs, so a long bar never fills it up.
    """
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([str(EXECUTABLE), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=secondary, env=env)
    drawn = drain_terminal(primary, secondary)
    out, _ = proc.communicate()
    return proc.returncode, out, drawn


def drain_terminal(primary: int, secondary: int) -> bytes:
    """What a command drew on the pseudo-terminal ``(primary, secondary)`` it was given, read
    while it runs (so it never blocks on a full terminal); closes both ends."""
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO once the command has exited and the terminal is drained
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    return drawn
