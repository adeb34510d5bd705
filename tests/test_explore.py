"""Exploring histories: log --all/--graph/--oneline, log --field, find, export and its import."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from gitstate import AgentState, InvalidArgumentError, StateRepository
from gitstate.explore import StateCache, parse_path, value_at

from cli_helpers import assert_gitstate_error, save_steps
from conftest import fsck, git

AGENT = "agent_1a2b3c4d"
T0 = datetime(2025, 6, 3, 12, tzinfo=timezone.utc)


def forked(gitstate) -> dict[str, list[dict]]:
    """AGENT with 4 checkpoints; fork_b from its 2nd, which saves once more; fork_c from its 3rd."""
    saved = {AGENT: save_steps(gitstate, AGENT, 4, first=1)}
    for new, rev in (("fork_b", "latest~2"), ("fork_c", "latest~1")):
        result = gitstate("fork", AGENT, rev, new, "--json")
        assert result.code == 0, result.err
        saved[new] = [result.json()]
    state = json.loads(gitstate("show", "fork_b").out)
    state["iteration"] = 9
    result = gitstate("save", "--json", "--time", "2030-01-01T00:00:00Z", input=json.dumps(state))
    saved["fork_b"].append(result.json())
    return saved


def test_log_all_graph_draws_every_commit_once_with_forks(gitstate):
    saved = forked(gitstate)
    a, b, c = (saved[k] for k in (AGENT, "fork_b", "fork_c"))
    result = gitstate("log", "--all", "--graph", "--oneline")
    assert result.code == 0, result.err
    short = {s["commit"]: s["commit"][:7] for s in (*a, *b, *c)}
    lines = [line.split(" (")[0].split(" fork of")[0].split(f" {AGENT}")[0].split(" fork_b")[0]
             for line in result.out.splitlines()]
    # newest first: fork_b's save of 2030, then the forks (saved now), then AGENT's history;
    # fork_c's first checkpoint is newer than fork_b's, so it comes first among the forks
    expected = [f"* {short[b[1]['commit']]}",
                f"| * {short[c[0]['commit']]}",
                f"* | {short[b[0]['commit']]}",
                f"| | * {short[a[3]['commit']]}",
                "| |/",
                f"| * {short[a[2]['commit']]}",
                "|/",
                f"* {short[a[1]['commit']]}",
                f"* {short[a[0]['commit']]}"]
    assert lines == expected, result.out
    assert f"{short[a[0]['commit']]} (tag: agents/{AGENT}/first)" in result.out
    assert f"{short[b[1]['commit']]} (agents/fork_b)" in result.out
    repo = gitstate.cwd / ".gitstate"
    assert int(git(repo, "rev-list", "--all", "--count")) == 7 == sum(
        1 for line in result.out.splitlines() if "*" in line)

    table = gitstate("log", "--all").out.splitlines()
    assert table[0].split()[:3] == ["COMMIT", "AGENT", "ITER"] and len(table) == 8
    rows = gitstate("log", "--all", "--json", "-n", "2").json_lines()
    assert [r["commit"] for r in rows] == [b[1]["commit"], c[0]["commit"]]
    assert rows[0]["heads"] == ["fork_b"] and rows[0]["parents"] == [b[0]["commit"]]


def test_log_all_orders_children_before_parents_whatever_their_times(repo):
    repo.save(AgentState(agent_id="a", iteration=1), time=T0 + timedelta(days=1))
    repo.save(AgentState(agent_id="a", iteration=2), time=T0)  # older than its parent
    entries = repo.log_all()
    assert [e.checkpoint.iteration for e in entries] == [2, 1]
    assert entries[0].heads == ("a",) and entries[1].parents == ()


def test_log_field_columns_negative_indexes_and_json(gitstate):
    save_steps(gitstate, AGENT, 3)
    out = gitstate("log", AGENT, "--field", "tool_calls", "-f", "messages[-1].content",
                   "-f", "no.such").out.splitlines()
    assert out[0].split() == ["COMMIT", "ITER", "SAVED", "(UTC)", "tool_calls", "messages[-1].content",
                              "no.such"]
    assert out[1].split()[4] == "3" and out[3].split()[4] == "1"
    assert "step 3: looked at file_3.py" in out[1] and "step 1: looked at file_1.py" in out[3]
    rows = gitstate("log", AGENT, "--field", "tool_calls", "-f", "messages.-1.role",
                    "-f", "no.such", "--json").json_lines()
    assert [r["fields"] for r in rows] == [{"tool_calls": n, "messages.-1.role": "assistant"}
                                           for n in (3, 2, 1)]
    assert rows[0]["commit"] == json.loads(gitstate("log", AGENT, "--json", "-n", "1").out)["commit"]
    assert_gitstate_error(gitstate("log", AGENT, "--field", "messages[x"), "messages[x")
    assert gitstate("log", AGENT, "--field", "a", "--status", "running").code == 2
    assert gitstate("log", AGENT, "--graph").code == 2
    assert gitstate("log", "--all", AGENT).code == 2


def test_field_paths():
    state = {"a": {"b.c": [1, {"d": 2}]}, "messages": [{"role": "user"}, {"role": "tool"}], "0": "zero"}
    assert parse_path('$.a["b.c"][-1].d') == ("a", "b.c", -1, "d")
    assert value_at(state, 'a["b.c"].1.d') == 2
    assert value_at(state, "messages[-1].role") == "tool"
    assert value_at(state, "messages.-2.role") == "user"
    assert value_at(state, "0") == "zero"
    with pytest.raises(InvalidArgumentError, match=r"no field '-3' at \$\.messages"):
        value_at(state, "messages[-3]")
    with pytest.raises(InvalidArgumentError, match="names no field"):
        parse_path("$")


def test_find_changed_skips_unchanged_blobs_unread(repo):
    state = AgentState(agent_id="a")
    tokens = [0, 5, 5, 9, 9, 9, 2]
    for i, n in enumerate(tokens):
        if i != 2:  # checkpoint 2 changes another field; 4 and 5 save the same state again
            state.total_tokens = n
        if i in (1, 2, 3, 6):
            state.iteration += 1
        repo.save(state, time=T0 + timedelta(minutes=i))
    commits = [c.commit for c in reversed(repo.log("a"))]
    distinct_blobs = len({git(repo.path, "rev-parse", f"{c}:state.json") for c in commits})
    assert distinct_blobs == 5  # checkpoints 4 and 5 have checkpoint 3's blob
    cache = StateCache()
    result = repo.find("a", changed="total_tokens", cache=cache)
    assert [c.commit for c in result.checkpoints] == [commits[6], commits[3], commits[1], commits[0]]
    assert result.values == [2, 9, 5, 0]
    assert result.states_read == distinct_blobs == cache.states_read
    again = repo.find("a", where="total_tokens >= 5", cache=cache)  # every blob is cached now
    assert again.states_read == 0
    assert [c.commit for c in again.checkpoints] == commits[5:0:-1]
    assert repo.find("a", where="iteration == 4").checkpoints[0].commit == commits[6]
    assert repo.find("a", where='status == "created"').values == ["created"] * 7
    assert repo.find("a", where="missing != 1").values == [None] * 7
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        repo.find("a")
    with pytest.raises(InvalidArgumentError, match="not a condition"):
        repo.find("a", where="total_tokens")


def test_find_command(gitstate):
    saved = save_steps(gitstate, AGENT, 4)
    result = gitstate("find", AGENT, "--where", "tool_calls >= 2", "--json")
    assert [r["commit"] for r in result.json_lines()] == [s["commit"] for s in saved[:0:-1]]
    first = gitstate("find", AGENT, "--where", "tool_calls >= 2", "--first", "--json").json_lines()
    assert [(r["commit"], r["value"]) for r in first] == [(saved[1]["commit"], 2)]
    last = gitstate("find", AGENT, "--changed", "messages[-1].content", "--last").out.splitlines()
    assert last[1].startswith(saved[3]["commit"][:7]) and last[1].endswith("step 4: looked at file_4.py")
    none = gitstate("find", AGENT, "--where", "tool_calls > 99")
    assert none.code == 0 and "No checkpoint" in none.err
    assert gitstate("find", AGENT).code == 2
    assert gitstate("find", AGENT, "--changed", "a", "--where", "a == 1").code == 2


def test_export_bundle_round_trip_through_gitstate_clone_and_git_clone(gitstate, tmp_path):
    saved = forked(gitstate)
    assert gitstate("tag", "fork_b", "forked", "latest~1").code == 0
    result = gitstate("export", "fork_b", "-o", "b.bundle")
    assert result.code == 0, result.err
    assert "a git bundle" in result.out
    clone = gitstate("clone", "b.bundle", "copy")
    assert clone.code == 0, clone.err
    source = StateRepository.open(gitstate.cwd / ".gitstate")
    copy = StateRepository.open(gitstate.cwd / "copy")
    assert [a.agent_id for a in copy.agents()] == ["fork_b"]
    assert copy.log("fork_b") == source.log("fork_b")  # same commits, checkpoint ids, names
    assert [c.checkpoint_id for c in copy.log("fork_b")][-1] == saved[AGENT][0]["checkpoint_id"]
    assert copy.names("fork_b") == {"forked": saved["fork_b"][0]["commit"]}  # names come along
    fsck(copy)
    subprocess.run(["git", "clone", "-q", "b.bundle", "work"], cwd=gitstate.cwd, check=True)
    work = gitstate.cwd / "work"
    assert json.loads((work / "state.json").read_text())["iteration"] == 9
    assert git(work / ".git", "rev-parse", "HEAD").strip() == saved["fork_b"][1]["commit"]
    git(work / ".git", "fsck", "--strict")

    at = gitstate("export", AGENT, "first", "-o", "first.bundle", "--json")
    assert at.json()["commit"] == saved[AGENT][0]["commit"]
    heads = subprocess.run(["git", "bundle", "list-heads", "first.bundle"], cwd=gitstate.cwd,
                           capture_output=True, text=True, check=True).stdout
    assert f"{saved[AGENT][0]['commit']} refs/heads/agents/{AGENT}" in heads


def test_export_state_and_its_import_with_save(gitstate):
    saved = save_steps(gitstate, AGENT, 3)
    result = gitstate("export", AGENT, "latest~1", "-o", "state.json")
    assert result.code == 0 and "Exported the state of" in result.out
    repo = gitstate.cwd / ".gitstate"
    assert (gitstate.cwd / "state.json").read_text() == git(repo, "show", f"{saved[1]['commit']}:state.json")
    again = gitstate("save", "state.json", "--agent", "other", "--json").json()
    exported = json.loads((gitstate.cwd / "state.json").read_text())
    assert json.loads(gitstate("show", "other").out) == {**exported, "agent_id": "other"}
    assert again["agent_id"] == "other"
    before = sorted(p.name for p in gitstate.cwd.iterdir())
    assert_gitstate_error(gitstate("export", "nobody", "-o", "x.json"), "nobody")
    assert_gitstate_error(gitstate("export", AGENT, "latest~9", "-o", "x.bundle"), "latest~9")
    assert sorted(p.name for p in gitstate.cwd.iterdir()) == before  # nothing written, no temporary


def test_timeline_reads_each_blob_once_and_counts_lists(repo):
    state = AgentState(agent_id="a")
    for i in range(4):
        state.add_message("user", "hi") if i != 2 else None  # checkpoint 2 repeats checkpoint 1's state
        repo.save(state, time=T0 + timedelta(minutes=i))
    cache = StateCache()
    points = repo.timeline("a", ["messages", "messages[-1].role", "no.such"], cache=cache)
    assert [p.values for p in points] == [{"messages": n} for n in (1, 2, 2, 3)]  # a string is no number
    assert points[1].size == points[2].size == len(git(repo.path, "show", "agents/a~1:state.json").encode())
    assert cache.states_read == 3
    repo.timeline("a", ["messages"], cache=cache)
    assert cache.states_read == 3  # every value is cached by blob now
