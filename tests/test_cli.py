"""The ``gitstate`` command line, in-process through click's runner; what only a real process shows
(entry point, exit status, streams, terminal) through the installed executable."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gitstate import StateRepository, __version__, codec

from cli_helpers import (
    EXECUTABLE, FIXTURE, Gitstate, as_a_process, assert_gitstate_error, on_terminal, save_steps, state_json)
from conftest import fsck, git, snapshot

# -- help, exit codes, repository location --------------------------------------------

def test_help_documents_repository_and_exit_codes(gitstate):
    result = gitstate("--help")
    assert result.code == 0
    for text in ("--repo PATH", "GITSTATE_REPO", "./.gitstate", "Exit codes", "0  success", "1  a gitstate error",
                 "problems found by 'verify'", "2  a usage error"):
        assert text in result.out
    listed = {line.split()[0] for line in result.out.split("Commands:\n")[1].split("\n\n")[0].splitlines()}
    assert listed == {"init", "save", "agents", "log", "show", "tag", "import", "rollback", "fork", "delete",
                      "diff", "prune", "gc", "verify", "remote", "push", "fetch", "pull", "clone",
                      "merge", "merge-base", "find", "export", "serve"}
    for command in listed:
        assert gitstate(command, "--help").code == 0


def test_usage_errors_exit_2(gitstate):
    assert gitstate("frobnicate").code == 2
    assert gitstate("log").code == 2                       # missing AGENT
    assert gitstate("log", "a", "--limit", "-1").code == 2
    assert gitstate("log", "a", "--since", "last tuesday").code == 2
    assert gitstate("save", "missing.json").code == 2
    assert gitstate("save", "--trailer", "novalue", input="{}").code == 2
    assert gitstate("import", "no/such/dir").code == 2
    assert not Path(gitstate.cwd, ".gitstate").exists()


def test_init_creates_the_default_repository(gitstate):
    result = gitstate("init")
    path = gitstate.cwd / ".gitstate"
    assert result.code == 0 and f"Initialized empty gitstate repository in {path}" in result.out
    assert git(path, "rev-parse", "--is-bare-repository").strip() == "true"
    again = gitstate("init")
    assert again.code == 0 and "already exists" in again.out
    other = gitstate("init", "elsewhere.git")
    assert other.code == 0 and (gitstate.cwd / "elsewhere.git" / "HEAD").exists()
    (gitstate.cwd / "junk").mkdir()
    (gitstate.cwd / "junk" / "file.txt").write_text("x")
    assert_gitstate_error(gitstate("init", "junk"), "not empty")


@pytest.mark.parametrize("args", [["agents"], ["log", "agent_1a2b3c4d"], ["show", "agent_1a2b3c4d"],
                                  ["tag", "agent_1a2b3c4d", "x"]])
def test_commands_other_than_save_need_an_existing_repository(gitstate, args):
    result = gitstate(*args)
    assert_gitstate_error(result, "no gitstate repository at", str(gitstate.cwd / ".gitstate"), "gitstate init")
    assert not (gitstate.cwd / ".gitstate").exists()


def test_repo_option_and_environment_variable(gitstate):
    assert gitstate("--repo", "a.git", "save", input=state_json("agent_a")).code == 0
    assert gitstate("save", input=state_json("agent_b"), env={"GITSTATE_REPO": "b.git"}).code == 0
    assert [a["agent_id"] for a in gitstate("--repo", "a.git", "agents", "--json").json()] == ["agent_a"]
    from_env = gitstate("agents", "--json", env={"GITSTATE_REPO": "b.git"})
    assert [a["agent_id"] for a in from_env.json()] == ["agent_b"]
    overridden = gitstate("--repo", "a.git", "agents", "--json", env={"GITSTATE_REPO": "b.git"})
    assert [a["agent_id"] for a in overridden.json()] == ["agent_a"]
    assert not (gitstate.cwd / ".gitstate").exists()


def test_errors_are_one_line_and_debug_shows_the_traceback(gitstate):
    save_steps(gitstate, "agent_1a2b3c4d", 1)
    assert_gitstate_error(gitstate("show", "agent_1a2b3c4d", "nope"), "no checkpoint 'nope'")
    assert_gitstate_error(gitstate("log", "agent_ffffffff"), "no agent 'agent_ffffffff'")
    assert_gitstate_error(gitstate("log", "bad id"), "agent id 'bad id'")
    debug = gitstate("--debug", "show", "agent_1a2b3c4d", "nope")
    assert debug.code == 1 and type(debug.exception).__name__ == "RevisionNotFoundError"  # a process: below


# -- save, agents, log, show, tag ----------------------------------------------------

def test_save_creates_the_repository_and_a_commit(gitstate):
    result = gitstate("save", "--json", "--name", "start", "--trailer", "Task-Id=task-7",
                      "--time", "2025-06-03T14:02:11Z", input=state_json(steps=2))
    assert result.code == 0, result.err
    checkpoint = result.json()
    path = gitstate.cwd / ".gitstate"
    assert checkpoint["agent_id"] == "agent_1a2b3c4d" and checkpoint["names"] == ["start"]
    assert checkpoint["iteration"] == 2 and checkpoint["trailers"]["Task-Id"] == "task-7"
    assert git(path, "rev-parse", "agents/agent_1a2b3c4d").strip() == checkpoint["commit"]
    assert git(path, "rev-parse", "agents/agent_1a2b3c4d/start").strip() == checkpoint["commit"]
    assert git(path, "log", "-1", "--format=%at", "agents/agent_1a2b3c4d").strip() == "1748959331"
    stored = json.loads(git(path, "show", "agents/agent_1a2b3c4d:state.json"))
    assert stored == json.loads(state_json(steps=2))
    fsck(str(path))


def test_save_from_a_file_with_agent_override_and_message(gitstate):
    (gitstate.cwd / "state.json").write_text(state_json("agent_1a2b3c4d", 1))
    result = gitstate("save", "state.json", "--agent", "agent_copy", "-m", "hand-made checkpoint")
    assert result.code == 0, result.err
    assert result.out.startswith("Saved ") and "hand-made checkpoint" in result.out
    repo = StateRepository.open(gitstate.cwd / ".gitstate")
    assert repo.load("agent_copy").agent_id == "agent_copy"
    assert repo.latest("agent_copy").message == "hand-made checkpoint"


def test_save_errors_leave_the_repository_unchanged(gitstate):
    save_steps(gitstate, "agent_1a2b3c4d", 1, start=1)
    repo = StateRepository.open(gitstate.cwd / ".gitstate")
    before = snapshot(repo)
    assert_gitstate_error(gitstate("save", input="{not json"), "invalid JSON")
    assert_gitstate_error(gitstate("save", input="[1, 2]"), "JSON object")
    assert_gitstate_error(gitstate("save", input='{"iteration": 1}'), "no \"agent_id\"", "--agent ID")
    assert_gitstate_error(gitstate("save", "--name", "start", input=state_json()), "already has", "'start'")
    assert_gitstate_error(gitstate("save", "--trailer", "Agent-Id=x", input=state_json()), "Agent-Id")
    assert snapshot(repo) == before


def test_agents_lists_heads_and_counts(gitstate):
    save_steps(gitstate, "agent_aaaa0001", 3, final=3)
    save_steps(gitstate, "agent_bbbb0002", 1)
    data = gitstate("agents", "--json").json()
    assert [(a["agent_id"], a["count"], a["head"]["iteration"], a["head"]["names"]) for a in data] == [
        ("agent_aaaa0001", 3, 3, ["final"]), ("agent_bbbb0002", 1, 1, [])]
    lines = gitstate("agents").out.splitlines()
    assert lines[0].split() == ["AGENT", "COUNT", "HEAD", "ITER", "STATUS", "SAVED", "(UTC)", "NAMES"]
    assert lines[1].split()[:5] == ["agent_aaaa0001", "3", data[0]["head"]["commit"][:7], "3", "created"]
    assert lines[1].endswith("final")
    assert lines[1].index(data[0]["head"]["commit"][:7]) == lines[0].index("HEAD")  # aligned


def test_log_streams_json_lines_and_filters(gitstate):
    saved = save_steps(gitstate, "agent_1a2b3c4d", 4)
    entries = gitstate("log", "agent_1a2b3c4d", "--json").json_lines()
    assert [e["commit"] for e in entries] == [c["commit"] for c in reversed(saved)]
    assert [e["commit"] for e in gitstate("log", "agent_1a2b3c4d", "-n", "2", "--json").json_lines()] == \
        [saved[3]["commit"], saved[2]["commit"]]
    assert gitstate("log", "agent_1a2b3c4d", "--status", "failed", "--json").out == ""
    assert len(gitstate("log", "agent_1a2b3c4d", "--status", "created", "--json").json_lines()) == 4
    def iterations(*options: str) -> list[int]:
        return [e["iteration"] for e in gitstate("log", "agent_1a2b3c4d", "--json", *options).json_lines()]

    assert iterations("--since", "2025-06-03T12:02:00") == [4, 3, 2]
    assert iterations("--until", "2025-06-03T12:02:00") == [2, 1]
    assert iterations("--since", "2025-06-03T14:02:00+02:00", "--until", "2025-06-03 12:03:00Z") == [3, 2]
    assert iterations("--until", "2025-06-03") == []
    assert iterations("--since", "1h") == []
    assert iterations("--until", "1h") == [4, 3, 2, 1]
    table = gitstate("log", "agent_1a2b3c4d").out.splitlines()
    assert table[0].split()[:2] == ["COMMIT", "ITER"] and len(table) == 5
    assert table[1].startswith(saved[3]["commit"][:7]) and saved[3]["checkpoint_id"] in table[1]


def test_show_prints_canonical_state_and_fields(gitstate):
    save_steps(gitstate, "agent_1a2b3c4d", 3, first=1)
    old = gitstate("show", "agent_1a2b3c4d", "latest~2")
    assert old.code == 0
    assert old.out.encode() == codec.encode(json.loads(state_json(steps=1)))
    assert gitstate("show", "agent_1a2b3c4d", "first").out == old.out
    assert json.loads(gitstate("show", "agent_1a2b3c4d").out)["iteration"] == 3
    assert gitstate("show", "agent_1a2b3c4d", "--field", "task").out == "audit payments-service\n"
    assert gitstate("show", "agent_1a2b3c4d", "--field", "task", "--json").out == '"audit payments-service"\n'
    assert gitstate("show", "agent_1a2b3c4d", "-f", "iteration").out == "3\n"
    content = gitstate("show", "agent_1a2b3c4d", "-f", "messages[1].content").out
    assert content == "step 2: looked at file_2.py\n"
    assert gitstate("show", "agent_1a2b3c4d", "-f", "$.actions_taken.0.tool").out == "read_file\n"
    assert_gitstate_error(gitstate("show", "agent_1a2b3c4d", "-f", "messages[9]"), "no field '9'")


def test_show_output_saved_back_restores_an_old_state(gitstate):
    save_steps(gitstate, "agent_1a2b3c4d", 3)
    (gitstate.cwd / "old.json").write_text(gitstate("show", "agent_1a2b3c4d", "latest~2").out)
    assert gitstate("save", "old.json").code == 0
    assert gitstate("show", "agent_1a2b3c4d").out == gitstate("show", "agent_1a2b3c4d", "latest~3").out


def test_tag_names_a_checkpoint(gitstate):
    saved = save_steps(gitstate, "agent_1a2b3c4d", 3)
    result = gitstate("tag", "agent_1a2b3c4d", "reviewed", "latest~1", "--json")
    assert result.code == 0 and result.json()["commit"] == saved[1]["commit"]
    path = gitstate.cwd / ".gitstate"
    assert git(path, "rev-parse", "agents/agent_1a2b3c4d/reviewed").strip() == saved[1]["commit"]
    human = gitstate("tag", "agent_1a2b3c4d", "head")
    assert human.code == 0 and human.out.startswith(f"Tagged {saved[2]['commit'][:7]}")
    assert_gitstate_error(gitstate("tag", "agent_1a2b3c4d", "reviewed"), "already has", "'reviewed'")
    assert_gitstate_error(gitstate("tag", "agent_1a2b3c4d", "latest"), "reserved")


# -- import --------------------------------------------------------------------------

def seed_envelopes() -> dict[str, dict]:
    envelopes = {}
    for path in FIXTURE.glob("*.json"):
        try:
            envelopes[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
    return envelopes


def test_import_seed_fixture_into_history(gitstate):
    result = gitstate("import", str(FIXTURE), "--task-id", "audit-2025-06-03", "--json")
    assert result.code == 0, result.err
    outcomes = {o["file"]: o for o in result.json()}
    envelopes = seed_envelopes()
    assert len(outcomes) == len(list(FIXTURE.glob("*.json"))) == len(envelopes) + 1
    [corrupt] = [o for o in outcomes.values() if o["status"] == "rejected"]
    assert corrupt["file"] not in envelopes and "not JSON" in corrupt["reason"]

    path = gitstate.cwd / ".gitstate"
    for agent_id in {e["state"]["agent_id"] for e in envelopes.values()}:
        files = sorted((e["serialized_at"], name) for name, e in envelopes.items()
                       if e["state"]["agent_id"] == agent_id)
        log = git(path, "log", "--reverse", "--format=%H %aI %(trailers:key=Imported-From,valueonly,separator=)",
                  f"agents/{agent_id}").splitlines()
        assert len(log) == len(files)
        for line, (serialized_at, name) in zip(log, files):
            commit, author_date, source = line.split(" ")
            assert source.startswith(f"{name}@")
            saved_at = serialized_at.split(".")[0].replace("+00:00", "")
            assert author_date.replace("+00:00", "") == saved_at
            stored = json.loads(git(path, "show", f"{commit}:state.json"))
            assert stored == envelopes[name]["state"]
            suffix = name[len(agent_id) + 1:-len(".json")]
            if not suffix[:8].isdigit():
                assert git(path, "rev-parse", f"agents/{agent_id}/{suffix}").strip() == commit
        assert set(git(path, "log", "--format=%(trailers:key=Task-Id,valueonly)",
                       f"agents/{agent_id}").split()) == {"audit-2025-06-03"}
    tags = git(path, "tag", "--list").split()
    assert "agents/agent_7c1e9a42/initial" in tags and not any(t[-15:-7].isdigit() for t in tags)
    fsck(str(path))

    before = snapshot(StateRepository.open(path))
    again = gitstate("import", str(FIXTURE))
    assert again.code == 0
    assert again.out.splitlines()[-1] == f"Imported 0 files, {len(envelopes)} already imported, 1 rejected."
    assert snapshot(StateRepository.open(path)) == before


def test_import_table_and_dry_run(gitstate):
    dry = gitstate("import", str(FIXTURE), "--dry-run")
    assert dry.code == 0
    assert dry.out.splitlines()[0].split()[:3] == ["STATUS", "FILE", "AGENT"]
    assert dry.out.splitlines()[-1] == f"Would import {len(seed_envelopes())} files, 0 already imported, 1 rejected."
    assert not (gitstate.cwd / ".gitstate").exists()  # a dry run creates no repository either
    real = gitstate("import", str(FIXTURE))
    rows = [line.split() for line in real.out.splitlines()[1:-1]]
    assert [row[0] for row in rows].count("imported") == len(seed_envelopes())
    assert rows[-1][0] == "rejected" and "not JSON" in " ".join(rows[-1])


# -- terminal behaviour: colour, progress, completion ----------------------------------

def test_colour_only_on_a_terminal_and_never_under_no_color(gitstate):
    save_steps(gitstate, "agent_1a2b3c4d", 1)
    assert "\x1b[" not in gitstate("agents").out  # the runner's output is no terminal (a pipe: below)
    assert "\x1b[" in gitstate("agents", color=True).out
    assert "\x1b[" not in gitstate("agents", color=True, env={"NO_COLOR": "1"}).out


def test_progress_bars_on_a_terminal_only(tmp_path):
    env = {**os.environ, "GITSTATE_REPO": str(tmp_path / "repo.git")}
    code, out, drawn = on_terminal("import", str(FIXTURE), env=env)
    assert code == 0 and b"Importing" in drawn and b"100%" in drawn and b"Importing" not in out
    code, out, drawn = on_terminal("prune", "--all", "--keep-last", "1", "--dry-run", env=env)
    assert code == 0 and b"Pruning" in drawn and b"100%" in drawn and b"Pruning" not in out

    env["GITSTATE_REPO"] = str(tmp_path / "other.git")
    for args in (["import", str(FIXTURE)], ["prune", "--all", "--keep-last", "1"]):
        piped = subprocess.run([str(EXECUTABLE), *args], capture_output=True, env=env)
        assert piped.returncode == 0 and piped.stderr == b""


def complete(gitstate: Gitstate, line: str) -> list[str]:
    """What bash completion offers for ``line`` (the last word is being completed)."""
    words = line.split(" ")
    result = gitstate(env={"_GITSTATE_COMPLETE": "bash_complete", "COMP_WORDS": line,
                           "COMP_CWORD": str(len(words) - 1)})
    assert result.code == 0, result.err
    return [entry.split(",", 1)[1] for entry in result.out.splitlines() if entry]


def test_completion_of_agents_and_revisions(gitstate):
    saved = save_steps(gitstate, "agent_aaaa0001", 2, first=1)
    save_steps(gitstate, "agent_bbbb0002", 1)
    assert complete(gitstate, "gitstate log ") == ["agent_aaaa0001", "agent_bbbb0002"]
    assert complete(gitstate, "gitstate show agent_b") == ["agent_bbbb0002"]
    revisions = complete(gitstate, "gitstate show agent_aaaa0001 ")
    assert revisions == ["latest", "first", saved[1]["commit"][:7], saved[0]["commit"][:7]]
    assert complete(gitstate, "gitstate show agent_aaaa0001 fi") == ["first"]
    assert complete(gitstate, "gitstate --repo elsewhere.git log ") == []


# -- what only a real process shows ----------------------------------------------------

@as_a_process
def test_the_installed_script_shows_version_help_and_completion(gitstate):
    version = gitstate("--version")
    assert (version.code, version.out, version.err) == (0, f"gitstate, version {__version__}\n", "")
    usage = gitstate("--help")
    assert usage.code == 0 and usage.err == ""
    assert usage.out.startswith("Usage: gitstate [OPTIONS] COMMAND") and "Exit codes" in usage.out
    StateRepository.init(gitstate.cwd / ".gitstate").save(json.loads(state_json("agent_aaaa0001")))
    # the completion variable, _GITSTATE_COMPLETE, comes from the name the script runs under
    assert complete(gitstate, "gitstate show agent_a") == ["agent_aaaa0001"]


@as_a_process
def test_a_process_exits_0_1_or_2_with_results_on_stdout_and_messages_on_stderr(gitstate):
    saved = gitstate("save", input=state_json())  # the state through a real stdin pipe
    assert saved.code == 0 and saved.err == "" and saved.out.startswith("Saved ")
    assert "\x1b[" not in saved.out  # no colour in a pipe (on a terminal, the SHA is yellow)
    assert StateRepository.open(gitstate.cwd / ".gitstate").load("agent_1a2b3c4d").iteration == 0
    failed = gitstate("show", "agent_1a2b3c4d", "nope")
    assert failed.out == ""
    assert_gitstate_error(failed, "no checkpoint 'nope'")  # one line, no traceback
    debug = gitstate("--debug", "show", "agent_1a2b3c4d", "nope")
    assert debug.code == 1 and "Traceback" in debug.err and "RevisionNotFoundError" in debug.err
    usage = gitstate("log", "agent_1a2b3c4d", "--limit", "-1")
    assert (usage.code, usage.out) == (2, "") and usage.err.startswith("Usage: gitstate log ")
    assert "Traceback" not in usage.err
    (gitstate.cwd / ".gitstate/refs/heads/agents/agent_e81d2c07").write_text("0" * 40 + "\n")
    problems = gitstate("verify")  # exit 1 with a report, not through an error
    assert problems.code == 1 and problems.out.endswith(": 1 problem\n")
    assert problems.err.startswith("ref refs/heads/agents/agent_e81d2c07: ")
    assert "Traceback" not in problems.err
