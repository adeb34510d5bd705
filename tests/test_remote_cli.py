"""The remote commands of ``gitstate``, run in-process against real git servers."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result
from conftest import git, grow
from servers import GitDaemon, GitHttpServer, bare

from gitstate import AgentState, StateRepository
from gitstate_cli.main import cli


def run(repo: StateRepository, *args: str, as_json: bool = False) -> Result:
    """``gitstate --repo REPO ARGS`` (``--json`` appended if asked)."""
    return CliRunner().invoke(cli, ["--repo", repo.path, *args, *(["--json"] if as_json else [])])


def rows(result: Result) -> list[list[str]]:
    """The words of each table row under the header (``STATUS AGENT HEAD NOTE``)."""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "AGENT", "HEAD", "NOTE"], result.output
    return [line.split() for line in lines[1:]]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    (tmp_path / "srv").mkdir()
    bare(tmp_path / "srv" / "server.git")
    running = GitDaemon(tmp_path / "srv")
    yield running
    running.stop()


def test_push_fetch_pull_clone_through_the_command_line(daemon: GitDaemon, repo: StateRepository,
                                                        tmp_path: Path) -> None:
    state = AgentState(agent_id="cli-agent")
    repo.save(grow(state))
    assert run(repo, "remote", "add", "origin", daemon.url("server.git")).exit_code == 0
    listed = run(repo, "remote")
    assert listed.output == f"origin\t{daemon.url('server.git')}\n"

    pushed = run(repo, "push")
    assert pushed.exit_code == 0, pushed.output
    assert rows(pushed)[0][:2] == ["new", "cli-agent"]
    assert daemon.sessions("receive-pack") == 1

    other = tmp_path / "other.git"
    cloned = run(repo, "clone", daemon.url("server.git"), str(other))
    assert cloned.exit_code == 0 and "cloned 1 agent(s)" in cloned.output
    copy = StateRepository.open(other)
    assert copy.load("cli-agent") == state

    repo.save(grow(state))
    assert run(repo, "push", "origin", "cli-agent").exit_code == 0
    fetched = run(copy, "fetch", "origin")
    assert rows(fetched)[0][:2] == ["updated", "cli-agent"]
    pulled = run(copy, "pull", as_json=True)
    assert pulled.exit_code == 0
    [result] = json.loads(pulled.output)
    assert result["status"] == "updated" and result["new"] == repo.latest("cli-agent").commit

    assert run(repo, "remote", "remove", "origin").output == "removed origin\n"
    assert run(repo, "remote", "list", as_json=True).output == "[]\n"


def test_failures_exit_non_zero_and_name_each_agent(daemon: GitDaemon, repo: StateRepository,
                                                    tmp_path: Path) -> None:
    state = AgentState(agent_id="split")
    repo.save(grow(state))
    run(repo, "remote", "add", "origin", daemon.url("server.git"))
    run(repo, "push")
    copy = StateRepository.clone(daemon.url("server.git"), tmp_path / "copy.git")
    copy.save(grow(state.model_copy(deep=True)))
    repo.save(grow(state))
    run(repo, "push")

    pulled = run(copy, "pull")
    assert pulled.exit_code == 1
    assert rows(pulled)[0][:2] == ["diverged", "split"]
    assert "gitstate pull origin split --into split-origin" in pulled.output
    assert "Error: 1 agent(s) diverged from origin; nothing of them was changed\n" in pulled.output
    pushed = run(copy, "push")
    assert pushed.exit_code == 1 and rows(pushed)[0][:2] == ["rejected", "split"]
    kept = run(copy, "pull", "origin", "split", "--into", "split-origin")
    assert kept.exit_code == 0 and rows(kept)[0][:2] == ["new", "split-origin"]
    forced = run(copy, "push", "--force")
    assert forced.exit_code == 0 and rows(forced)[0][:2] == ["forced", "split"]
    assert git(daemon.root / "server.git", "rev-parse", "agents/split").strip() == copy.latest("split").commit

    missing = run(repo, "push", "nowhere")
    assert missing.exit_code == 1 and "Error: no remote 'nowhere'" in missing.output


def test_the_command_line_never_prints_credentials(tmp_path: Path, repo: StateRepository) -> None:
    (tmp_path / "srv").mkdir()
    bare(tmp_path / "srv" / "server.git", **{"http.receivepack": "true"})
    http = GitHttpServer(tmp_path / "srv", credentials=("user", "hunter2-secret"))
    try:
        repo.save(AgentState(agent_id="c"))
        outputs = [
            run(repo, "remote", "add", "origin", http.url("server.git", "user:hunter2-secret")),
            run(repo, "remote", "add", "bad", http.url("server.git", "user:wrong-hunter2-secret")),
            run(repo, "remote", "list"),
            run(repo, "remote", "list", as_json=True),
            run(repo, "push"),
            run(repo, "push", "bad"),
            run(repo, "clone", http.url("server.git", "user:hunter2-secret"), str(tmp_path / "c.git")),
        ]
    finally:
        http.stop()
    outputs.append(run(repo, "fetch"))  # the server is gone
    assert [r.exit_code for r in outputs] == [0, 0, 0, 0, 0, 1, 0, 1]
    assert "user:***@" in outputs[2].output and "user:***@" in outputs[5].output
    assert not [r.output for r in outputs if "hunter2" in r.output]


def _on_terminal(*args: str) -> tuple[int, str]:
    """Run the installed ``gitstate ARGS`` with stderr on a pseudo-terminal; (exit code, stderr)."""
    leader, follower = pty.openpty()
    proc = subprocess.run([str(Path(sys.executable).with_name("gitstate")), *args],
                          stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal has no writer left
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_progress_shows_on_a_terminal_and_not_in_pipes(daemon: GitDaemon, repo: StateRepository,
                                                       tmp_path: Path) -> None:
    repo.save(grow(AgentState(agent_id="p"), 3))
    run(repo, "remote", "add", "origin", daemon.url("server.git"))
    code, terminal = _on_terminal("--repo", repo.path, "push")
    assert code == 0 and "counting objects" in terminal
    piped = subprocess.run([str(Path(sys.executable).with_name("gitstate")), "clone",
                            daemon.url("server.git"), str(tmp_path / "c.git")], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""
    code, terminal = _on_terminal("clone", daemon.url("server.git"), str(tmp_path / "d.git"))
    assert code == 0 and "objects" in terminal.lower()
