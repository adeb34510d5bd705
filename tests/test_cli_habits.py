"""git's habits on the command line: short flags, log's --reverse/--format, one line for a no-op
push, errors in the command line's words (in-process; the executable where a process matters)."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import (
    EXECUTABLE,
    FIXTURE,
    as_a_process,
    assert_gitstate_error,
    drain_terminal,
    interruptible,
    save_steps,
    state_json,
)
from conftest import fsck, git
from gitstate_cli.params import CHECKPOINT_FIELDS, STATUSES

from gitstate import AgentStatus, Checkpoint, StateRepository, refnames

AGENT = "agent_1a2b3c4d"


def test_the_command_lines_lists_match_the_library():
    assert tuple(s.value for s in AgentStatus) == STATUSES
    assert set(CHECKPOINT_FIELDS) == set(Checkpoint.model_fields) - {"trailers"}


# -- short flags ----------------------------------------------------------------------------

def test_y_confirms_deleting_an_agent(gitstate):
    save_steps(gitstate, AGENT, 2)
    assert gitstate("delete", AGENT).code == 2
    deleted = gitstate("delete", AGENT, "-y")
    assert deleted.code == 0 and deleted.out == f"Deleted agent {AGENT}\n"
    assert gitstate("agents", "--json").json() == []


def test_q_silences_import_prune_and_push(gitstate, tmp_path):
    imported = gitstate("import", "-q", str(FIXTURE))
    assert (imported.code, imported.out, imported.err) == (0, "", "")
    assert len(git(tmp_path / ".gitstate", "rev-list", "--all").split()) == 9
    pruned = gitstate("prune", "--all", "--keep-last", "1", "--no-keep-named", "-q")
    assert (pruned.code, pruned.out, pruned.err) == (0, "", "")
    assert len(git(tmp_path / ".gitstate", "rev-list", "--all").split()) == 3
    git(tmp_path, "init", "-q", "--bare", "server.git")
    assert gitstate("remote", "add", "origin", str(tmp_path / "server.git")).code == 0
    pushed = gitstate("push", "-q")
    assert (pushed.code, pushed.out, pushed.err) == (0, "", "")
    assert len(git(tmp_path / "server.git", "for-each-ref", "refs/heads/agents/").splitlines()) == 3


def test_import_dry_run_writes_nothing_not_even_the_repository(gitstate, tmp_path):
    dry = gitstate("import", "--dry-run", str(FIXTURE))
    assert dry.code == 0 and dry.out.splitlines()[-1] == "Would import 9 files, 0 already imported, 1 rejected."
    assert not (tmp_path / ".gitstate").exists()


# -- log ------------------------------------------------------------------------------------

def test_log_reverse_lists_oldest_first_after_the_limit(gitstate):
    saved = save_steps(gitstate, AGENT, 4)
    newest_first = [c["commit"] for c in reversed(saved)]
    assert [c["commit"] for c in gitstate("log", AGENT, "--reverse", "--json").json_lines()] == newest_first[::-1]
    assert [c["commit"] for c in gitstate("log", AGENT, "-n", "2", "--reverse", "--json").json_lines()] == \
        newest_first[:2][::-1]


def test_log_format_fills_placeholders(gitstate):
    [first, second] = save_steps(gitstate, AGENT, 2, reviewed=2)
    result = gitstate("log", AGENT, "--format",
                      "%h %H %an %ad %(iteration) %(status) %(names) %(checkpoint_id) "
                      "%(trailer:Agent-Id) 100%% %s%n--")
    assert result.code == 0, result.err
    assert result.out == "".join(
        f"{c['commit'][:7]} {c['commit']} {AGENT} {c['created']} {c['iteration']} {c['status']} "
        f"{','.join(c['names'])} {c['checkpoint_id']} {AGENT} 100% {c['message']}\n--\n"
        for c in (second, first))
    assert gitstate("log", AGENT, "--format", "%(parent)", "-n", "1").out == f"{first['commit']}\n"


@pytest.mark.parametrize("template, words", [("%x", ["'%x'", "%H %h"]),
                                             ("%(nosuch)", ["'nosuch'", "iteration", "checkpoint_id"])])
def test_log_format_refuses_unknown_placeholders(gitstate, template, words):
    save_steps(gitstate, AGENT, 1)
    result = gitstate("log", AGENT, "--format", template)
    assert (result.code, result.out) == (2, "")
    assert all(word in result.err for word in words), result.err


def test_log_refuses_an_unknown_status_listing_the_valid_ones(gitstate):
    save_steps(gitstate, AGENT, 1)
    result = gitstate("log", AGENT, "--status", "done")
    assert (result.code, result.out) == (2, "")
    assert "'done' is not one of" in result.err and "'completed'" in result.err and "'running'" in result.err


# -- show -----------------------------------------------------------------------------------

def test_show_field_takes_negative_indexes(gitstate):
    save_steps(gitstate, AGENT, 3)
    last = gitstate("show", AGENT, "--field", "messages[-1].content")
    assert last.code == 0 and last.out == "step 3: looked at file_3.py\n"
    assert gitstate("show", AGENT, "--field", "messages.-3.content").out == "step 1: looked at file_1.py\n"
    assert_gitstate_error(gitstate("show", AGENT, "--field", "messages[-4]"), "no field '-4' at $.messages")


# -- push -----------------------------------------------------------------------------------

def test_a_push_with_nothing_to_do_prints_one_line(gitstate, tmp_path):
    save_steps(gitstate, AGENT, 1)
    save_steps(gitstate, "agent_9f8e7d6c", 1)
    git(tmp_path, "init", "-q", "--bare", "server.git")
    gitstate("remote", "add", "origin", str(tmp_path / "server.git"))
    assert gitstate("push").out.splitlines()[0].split() == ["STATUS", "AGENT", "HEAD", "NOTE"]
    again = gitstate("push")
    assert (again.code, again.out, again.err) == (0, "Everything up-to-date\n", "")
    assert [r["status"] for r in gitstate("push", "--json").json()] == ["up to date", "up to date"]


# -- errors speak the command line --------------------------------------------------------

def test_errors_name_commands_and_options_not_python(gitstate, tmp_path):
    save_steps(gitstate, AGENT, 1)
    assert_gitstate_error(gitstate("push", "nosuch"), "no remote 'nosuch'", "gitstate remote add nosuch URL")
    assert_gitstate_error(gitstate("save", input="{}"), 'no "agent_id"', "--agent ID")
    assert_gitstate_error(gitstate("save", input='{"agent_id": 7}'), 'a non-string "agent_id"')

    git(tmp_path, "init", "-q", "--bare", "server.git")
    gitstate("remote", "add", "origin", str(tmp_path / "server.git"))
    assert gitstate("push").code == 0
    git(tmp_path / "server.git", "update-ref", f"refs/heads/agents/{AGENT}",  # the server moves ahead
        git(tmp_path / "server.git", "commit-tree", "-p", f"agents/{AGENT}", "-m", "x",
            f"agents/{AGENT}^{{tree}}").strip())
    rejected = gitstate("push")
    assert rejected.code == 1 and "--force" in rejected.out
    assert "with force" not in rejected.out + rejected.err


@pytest.mark.parametrize("scheme", ["http", "git"])
def test_a_network_failure_is_one_short_line_with_the_errno(gitstate, scheme):
    save_steps(gitstate, AGENT, 1)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gitstate("remote", "add", "gone", f"{scheme}://127.0.0.1:{port}/server.git")
    result = gitstate("push", "gone")
    assert_gitstate_error(result, f"pushing to {scheme}://127.0.0.1:{port}/server.git failed: ",
                          "Connection refused (errno 111)")
    assert len(result.err) < 120 and "urllib3" not in result.err and "Pool" not in result.err


def test_pull_into_speaks_of_the_option(gitstate, tmp_path):
    save_steps(gitstate, AGENT, 1)
    git(tmp_path, "init", "-q", "--bare", "server.git")
    gitstate("remote", "add", "origin", str(tmp_path / "server.git"))
    result = gitstate("pull", "origin", "--into", "copy")
    assert_gitstate_error(result, "--into needs exactly one agent")
    assert not Path(tmp_path, ".gitstate", "refs", "heads", "agents", "copy").exists()


# -- start-up: what --version, --help and completion import -------------------------------

HEAVY = ("dulwich", "pydantic", "deepdiff", "gitstate.repository", "gitstate.core")
LOADED = ("import atexit, sys\n"
          "atexit.register(lambda: print(sorted({m for m in sys.modules if m.startswith(HEAVY)}),"
          " file=open(sys.argv[1], 'w')))\n"
          "from gitstate_cli.main import cli\n"
          "cli(sys.argv[2:], prog_name='gitstate')\n")


def completing(line: str) -> dict[str, str]:
    """What bash sets to complete the last word of ``line`` (its TAB)."""
    return {"_GITSTATE_COMPLETE": "bash_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(line.split(" ")) - 1)}


@pytest.mark.parametrize("args, env, shown", [
    (["--version"], {}, "gitstate, version"), (["--help"], {}, "Exit codes"), (["log", "--help"], {}, "--reverse"),
    ([], completing("gitstate lo"), "plain,log"),
    ([], completing("gitstate log --st"), "plain,--status"),
    ([], completing("gitstate log "), f"plain,{AGENT}\nplain,agent_9f8e7d6c"),  # agent ids
    ([], completing("gitstate diff agent_9"), "plain,agent_9f8e7d6c"),
    ([], completing(f"gitstate tag -d {AGENT} "), "plain,reviewed"),  # names
])
def test_start_up_imports_no_git_code_pydantic_or_deepdiff(tmp_path, args, env, shown):
    """A fresh interpreter (a real process: what a module imports shows only there), in a
    folder whose repository has two agents, one with a name."""
    with StateRepository.init(tmp_path / ".gitstate") as repo:
        repo.save({"agent_id": "agent_9f8e7d6c"})
        repo.save({"agent_id": AGENT}, name="reviewed")
    report = tmp_path / "modules"
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{LOADED}", str(report), *args],
                          env={**os.environ, **env}, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert shown in proc.stdout  # it printed the version, the help or the completions
    assert report.read_text() == "[]\n"


def test_completion_reads_packed_and_loose_refs_and_leaves_out_damaged_ones(repo):
    packed = repo.save({"agent_id": "packed"}, name="first")
    git(repo, "pack-refs", "--all")
    loose = repo.save({"agent_id": "loose"})
    repo.save({"agent_id": "damaged"})
    Path(repo.path, "refs", "heads", "agents", "damaged").write_text("not a sha\n")
    assert refnames.agent_ids(repo.path) == {"loose": loose.commit, "packed": packed.commit}
    assert refnames.checkpoint_names(repo.path, "packed") == {"first": packed.commit}
    assert refnames.checkpoint_names(repo.path, "../x") == {}
    assert refnames.agent_ids(Path(repo.path, "nowhere")) == {}


def test_a_command_still_loads_what_it_needs(gitstate):
    saved = save_steps(gitstate, AGENT, 1)
    assert gitstate("log", AGENT, "--json").json_lines()[0]["commit"] == saved[0]["commit"]


# -- the pager: on a terminal only, as git ---------------------------------------------------

def stdout_on_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run the executable with stdout on a pseudo-terminal: (exit code, what it drew, stderr)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([str(EXECUTABLE), *args], stdin=subprocess.DEVNULL, stdout=secondary,
                            stderr=subprocess.PIPE, env={**os.environ, **env})
    drawn = drain_terminal(primary, secondary)
    _, err = proc.communicate()
    return proc.returncode, drawn, err


def test_log_show_and_diff_page_on_a_terminal_only(gitstate, tmp_path):
    save_steps(gitstate, AGENT, 2)
    env = {"GITSTATE_REPO": str(tmp_path / ".gitstate"), "GITSTATE_PAGER": "sed 's/^/paged: /'"}
    for args in (["log", AGENT], ["show", AGENT], ["diff", AGENT, "latest~1"]):
        code, drawn, err = stdout_on_terminal(*args, env=env)
        lines = drawn.decode().splitlines()
        assert (code, err) == (0, b"") and lines and all(line.startswith("paged: ") for line in lines), drawn
        code, drawn, err = stdout_on_terminal("--no-pager", *args, env=env)
        assert code == 0 and drawn and b"paged: " not in drawn
    piped = subprocess.run([str(EXECUTABLE), "log", AGENT], capture_output=True, text=True,
                           env={**os.environ, **env})
    assert piped.returncode == 0 and piped.stdout.startswith("COMMIT")  # a pipe is never paged
    code, drawn, _ = stdout_on_terminal("log", AGENT, env={**env, "GITSTATE_PAGER": "", "PAGER": "no-such"})
    assert code == 0 and b"COMMIT" in drawn  # an empty GITSTATE_PAGER turns paging off
    code, drawn, _ = stdout_on_terminal("log", AGENT, env={**env, "GITSTATE_PAGER": "head -1"})
    assert (code, drawn.count(b"\n")) == (0, 1)  # a pager that quits early: no error


def test_without_gitstate_pager_the_pager_is_pager(tmp_path, gitstate, monkeypatch):
    save_steps(gitstate, AGENT, 1)
    env = {"GITSTATE_REPO": str(tmp_path / ".gitstate"), "PAGER": "sed 's/^/from PAGER: /'"}
    monkeypatch.delenv("GITSTATE_PAGER", raising=False)
    code, drawn, _ = stdout_on_terminal("log", AGENT, env=env)
    assert code == 0 and drawn.startswith(b"from PAGER: COMMIT")


def test_tag_lists_names_as_git_tag(gitstate):
    saved = save_steps(gitstate, AGENT, 3, first=1)
    assert gitstate("tag", AGENT, "reviewed", "latest~1").code == 0
    assert gitstate("tag", AGENT).out == "first\nreviewed\n"
    assert gitstate("tag", "-l", AGENT).out == "first\nreviewed\n"
    assert gitstate("tag", AGENT, "--list", "--json").json() == {"first": saved[0]["commit"],
                                                                 "reviewed": saved[1]["commit"]}
    assert gitstate("tag", AGENT, "x", "--list").code == 2
    assert_gitstate_error(gitstate("tag", "agent_nobody"), "agent_nobody")


def test_tag_d_deletes_names_as_git_tag_d(gitstate, tmp_path):
    saved = save_steps(gitstate, AGENT, 3, first=1, second=2, third=3)
    deleted = gitstate("tag", "-d", AGENT, "first", "third")
    assert (deleted.code, deleted.err) == (0, "")
    assert deleted.out == (f"Deleted name first (was {saved[0]['commit'][:7]})\n"
                           f"Deleted name third (was {saved[2]['commit'][:7]})\n")
    assert git(tmp_path / ".gitstate", "for-each-ref", "--format=%(refname)", "refs/tags").split() == [
        f"refs/tags/agents/{AGENT}/second"]
    assert gitstate("log", AGENT, "--format", "%h").out.split() == [c["commit"][:7] for c in saved[::-1]]
    assert gitstate("tag", AGENT, "--delete", "second", "--json").json() == {"second": saved[1]["commit"]}
    save_steps(gitstate, "agent_9f8e7d6c", 1, kept=1)
    refs = git(tmp_path / ".gitstate", "for-each-ref")
    wrong = gitstate("tag", "-d", "agent_9f8e7d6c", "kept", "nosuch")  # deletes none of them
    assert_gitstate_error(wrong, "no checkpoint named 'nosuch'", "nothing was deleted")
    assert git(tmp_path / ".gitstate", "for-each-ref") == refs
    assert gitstate("tag", "-d", AGENT).code == 2
    assert gitstate("tag", "-d", "-l", AGENT, "x").code == 2


def test_remote_rename_and_set_url_as_git_remote(gitstate, tmp_path):
    save_steps(gitstate, AGENT, 1)
    git(tmp_path, "init", "-q", "--bare", "server.git")
    gitstate("remote", "add", "origin", str(tmp_path / "server.git"))
    gitstate("push", "-q")
    gitstate("fetch")
    renamed = gitstate("remote", "rename", "origin", "upstream")
    assert (renamed.code, renamed.out, renamed.err) == (0, "Renamed remote origin to upstream\n", "")
    assert git(tmp_path / ".gitstate", "for-each-ref", "--format=%(refname)", "refs/remotes").split() == [
        f"refs/remotes/upstream/agents/{AGENT}"]
    assert gitstate("fetch", "upstream").out == "Everything up-to-date\n"
    set_url = gitstate("remote", "set-url", "upstream", "https://me:s3cr3t@git.example.com/fleet.git")
    assert set_url.out == "Set the URL of remote upstream to https://me:***@git.example.com/fleet.git\n"
    assert gitstate("remote", "-v").out == ("upstream\thttps://me:***@git.example.com/fleet.git (fetch)\n"
                                            "upstream\thttps://me:***@git.example.com/fleet.git (push)\n")
    gitstate("remote", "add", "backup", "https://you:t0ken@git.example.com/b.git")
    assert_gitstate_error(gitstate("remote", "rename", "upstream", "backup"),
                          "remote 'backup' already exists (https://you:***@git.example.com/b.git)")
    assert_gitstate_error(gitstate("remote", "rename", "origin", "x"), "no remote 'origin'",
                          "gitstate remote add origin URL")
    assert_gitstate_error(gitstate("remote", "set-url", "origin", "x"), "no remote 'origin'")


# -- Ctrl-C: as git, killed by SIGINT (130 in a shell), no message -------------------------

def test_ctrl_c_ends_a_command_silently_killed_by_sigint(gitstate, tmp_path):
    """A save waiting for its agent's lock gets SIGINT (the real signal, sent by strace as the
    command tries the lock a second time): no traceback, no message, nothing written."""
    save_steps(gitstate, AGENT, 1)
    repo = tmp_path / ".gitstate"
    (tmp_path / "state.json").write_text(state_json(AGENT, 2))
    lock = repo / "gitstate" / "locks" / "agents" / AGENT
    refs = git(repo, "for-each-ref")
    held = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # another writer of the agent is busy
        proc = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "signal=none", "-P", str(lock),
                               "-e", "trace=flock", "-e", "inject=flock:signal=INT:when=2",
                               str(EXECUTABLE), "--repo", str(repo), "save", "state.json"],
                              cwd=tmp_path, capture_output=True, text=True, preexec_fn=interruptible)
    finally:
        os.close(held)
    assert (proc.returncode, proc.stdout, proc.stderr) == (-signal.SIGINT, "", "")
    assert git(repo, "for-each-ref") == refs
    assert not [p for p in repo.rglob("*") if p.name.endswith(".lock") or p.name.startswith("tmp")]
    fsck(str(repo))
    assert gitstate("save", "state.json").code == 0  # nothing left in the way


# -- the habits once more, through the installed executable ------------------------------------

@as_a_process
def test_the_habits_through_the_installed_executable(gitstate, tmp_path):
    """Each habit above once through the real ``gitstate`` (the tests above run in-process)."""
    saved = save_steps(gitstate, AGENT, 3, reviewed=2)
    shas = [c["commit"] for c in saved]
    oneline = gitstate("log", AGENT, "--oneline", "--reverse")
    assert oneline.code == 0 and oneline.out == "".join(f"{c['commit'][:7]} {c['message']}\n" for c in saved)
    assert gitstate("log", AGENT, "--format", "%h %(iteration)", "-n", "1").out == f"{shas[2][:7]} 3\n"
    assert gitstate("tag", "--list", AGENT).out == "reviewed\n"
    deleted = gitstate("tag", "--delete", AGENT, "reviewed")
    assert deleted.code == 0 and "reviewed" in deleted.out and gitstate("tag", "-l", AGENT).out == ""
    git(tmp_path, "init", "-q", "--bare", "server.git")
    assert gitstate("remote", "add", "origin", str(tmp_path / "server.git")).code == 0
    assert gitstate("remote", "-v").out.split() == ["origin", str(tmp_path / "server.git"), "(fetch)",
                                                   "origin", str(tmp_path / "server.git"), "(push)"]
    assert gitstate("push", "-q").out == ""
    assert (gitstate("push").out, gitstate("push").code) == ("Everything up-to-date\n", 0)
    refused = gitstate("log", AGENT, "--status", "done")
    assert refused.code == 2 and "'done' is not one of" in refused.err
    assert gitstate("show", AGENT, "--field", "messages[-1].content").out == "step 3: looked at file_3.py\n"
    assert_gitstate_error(gitstate("save", input='{"iteration": 1}'), "agent_id", "--agent")
    assert_gitstate_error(gitstate("delete", AGENT, "--yes", "latest~9"), AGENT)
