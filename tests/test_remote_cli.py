"""The remote commands of ``gitstate`` against real git servers (in-process; the executable where a
real process shows more: its whole stderr, progress on a terminal)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from conftest import git, grow
from servers import GitDaemon, GitHttpServer, bare

from cli_helpers import EXECUTABLE, Gitstate, Result, both_ways, on_terminal
from gitstate import AgentState, StateRepository


@pytest.fixture
def run(gitstate: Gitstate):
    """``run(repo, ARGS)``: ``gitstate --repo REPO ARGS`` (``--json`` appended if asked)."""
    def run(repo: StateRepository, *args: str, as_json: bool = False) -> Result:
        return gitstate("--repo", repo.path, *args, *(["--json"] if as_json else []))
    return run


def rows(result: Result) -> list[list[str]]:
    """The words of each table row under the header (``STATUS AGENT HEAD NOTE``)."""
    lines = result.out.splitlines()
    assert lines[0].split() == ["STATUS", "AGENT", "HEAD", "NOTE"], (result.out, result.err)
    return [line.split() for line in lines[1:]]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    (tmp_path / "srv").mkdir()
    bare(tmp_path / "srv" / "server.git")
    running = GitDaemon(tmp_path / "srv")
    yield running
    running.stop()


def test_push_fetch_pull_clone_through_the_command_line(run, daemon: GitDaemon, repo: StateRepository,
                                                        tmp_path: Path) -> None:
    state = AgentState(agent_id="cli-agent")
    repo.save(grow(state))
    assert run(repo, "remote", "add", "origin", daemon.url("server.git")).code == 0
    assert run(repo, "remote").out == "origin\n"  # as git remote: names; -v: with their URLs
    url = daemon.url("server.git")
    assert run(repo, "remote", "-v").out == f"origin\t{url} (fetch)\norigin\t{url} (push)\n"
    assert run(repo, "remote", "list", "-v").out == run(repo, "remote", "-v").out

    pushed = run(repo, "push")
    assert pushed.code == 0, pushed.err
    assert rows(pushed)[0][:2] == ["new", "cli-agent"]
    assert daemon.sessions("receive-pack") == 1

    other = tmp_path / "other.git"
    cloned = run(repo, "clone", daemon.url("server.git"), str(other))
    assert cloned.code == 0 and f"Cloned 1 agent into {other}" in cloned.out
    copy = StateRepository.open(other)
    assert copy.load("cli-agent") == state

    repo.save(grow(state))
    assert run(repo, "push", "origin", "cli-agent").code == 0
    fetched = run(copy, "fetch", "origin")
    assert rows(fetched)[0][:2] == ["updated", "cli-agent"]
    pulled = run(copy, "pull", as_json=True)
    assert pulled.code == 0
    [result] = pulled.json()
    assert result["status"] == "updated" and result["new"] == repo.latest("cli-agent").commit

    assert run(repo, "remote", "remove", "origin").out == "Removed remote origin\n"
    assert run(repo, "remote", "list", as_json=True).out == "[]\n"


def test_push_without_tags_and_clone_under_another_remote_name(run, daemon: GitDaemon, repo: StateRepository,
                                                                tmp_path: Path) -> None:
    repo.save(AgentState(agent_id="named"), name="first")
    repo.remote_add("origin", daemon.url("server.git"))
    pushed = run(repo, "push", "--no-tags", as_json=True)
    assert pushed.code == 0 and [(r["agent_id"], r["status"]) for r in pushed.json()] == [("named", "new")]
    server = daemon.root / "server.git"
    assert git(server, "for-each-ref", "--format=%(refname)") == "refs/heads/agents/named\n"

    cloned = run(repo, "clone", "--origin", "upstream", daemon.url("server.git"), str(tmp_path / "c.git"),
                 as_json=True)
    assert cloned.code == 0 and cloned.json()["agents"] == ["named"]
    copy = StateRepository.open(tmp_path / "c.git")
    assert [r["name"] for r in run(copy, "remote", "list", as_json=True).json()] == ["upstream"]
    assert copy.latest("named").commit == repo.latest("named").commit


def test_failures_exit_non_zero_and_name_each_agent(run, daemon: GitDaemon, repo: StateRepository,
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
    assert pulled.code == 1
    assert rows(pulled)[0][:2] == ["diverged", "split"]
    assert "gitstate pull origin split --into split-origin" in pulled.out
    assert pulled.err == "Error: 1 agent(s) diverged from origin; nothing of them was changed\n"
    pushed = run(copy, "push")
    assert pushed.code == 1 and rows(pushed)[0][:2] == ["rejected", "split"]
    kept = run(copy, "pull", "origin", "split", "--into", "split-origin")
    assert kept.code == 0 and rows(kept)[0][:2] == ["new", "split-origin"]
    forced = run(copy, "push", "--force")
    assert forced.code == 0 and rows(forced)[0][:2] == ["forced", "split"]
    assert git(daemon.root / "server.git", "rev-parse", "agents/split").strip() == copy.latest("split").commit

    missing = run(repo, "push", "nowhere")
    assert missing.code == 1 and missing.err.startswith("Error: no remote 'nowhere'")


@both_ways  # a process prints what the libraries log, which pytest captures in-process
def test_the_command_line_never_prints_credentials(run, tmp_path: Path, repo: StateRepository) -> None:
    (tmp_path / "srv").mkdir()
    bare(tmp_path / "srv" / "server.git", **{"http.receivepack": "true"})
    http = GitHttpServer(tmp_path / "srv", credentials=("user", "hunter2-secret"))
    try:
        repo.save(AgentState(agent_id="c"))
        outputs = [
            run(repo, "remote", "add", "origin", http.url("server.git", "user:hunter2-secret")),
            run(repo, "remote", "add", "bad", http.url("server.git", "user:wrong-hunter2-secret")),
            run(repo, "remote", "-v"),
            run(repo, "remote", "list", as_json=True),
            run(repo, "push"),
            run(repo, "push", "bad"),
            run(repo, "clone", http.url("server.git", "user:hunter2-secret"), str(tmp_path / "c.git")),
        ]
    finally:
        http.stop()
    outputs.append(run(repo, "fetch"))  # the server is gone
    assert [r.code for r in outputs] == [0, 0, 0, 0, 0, 1, 0, 1]
    assert "user:***@" in outputs[2].out and "user:***@" in outputs[5].out + outputs[5].err
    assert not [r for r in outputs if "hunter2" in r.out + r.err]


def test_progress_shows_on_a_terminal_and_not_in_pipes(daemon: GitDaemon, repo: StateRepository,
                                                       tmp_path: Path) -> None:
    repo.save(grow(AgentState(agent_id="p"), 3))
    repo.remote_add("origin", daemon.url("server.git"))
    code, _out, terminal = on_terminal("--repo", repo.path, "push")
    assert code == 0 and b"counting objects" in terminal
    piped = subprocess.run([str(EXECUTABLE), "clone",
                            daemon.url("server.git"), str(tmp_path / "c.git")], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""
    code, _out, terminal = on_terminal("clone", daemon.url("server.git"), str(tmp_path / "d.git"))
    assert code == 0 and b"objects" in terminal.lower()
