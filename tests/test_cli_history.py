"""The history commands of the command line: rollback, fork, delete, diff, prune."""

from __future__ import annotations

import json

import pytest

from gitstate import StateRepository
from gitstate.diff import apply_patch

from cli_helpers import assert_gitstate_error, save_steps
from conftest import fsck, git, snapshot

AGENT = "agent_1a2b3c4d"


def state_at(gitstate, rev: str, agent_id: str = AGENT) -> dict:
    return json.loads(gitstate("show", agent_id, rev).out)


def repo_of(gitstate) -> StateRepository:
    return StateRepository.open(gitstate.cwd / ".gitstate")


def test_rollback_adds_a_checkpoint_or_resets_with_hard(gitstate):
    saved = save_steps(gitstate, AGENT, 4, first=1)
    soft = gitstate("rollback", AGENT, "first", "--json")
    assert soft.code == 0, soft.err
    result = soft.json()
    assert result["hard"] is False and result["dropped"] == []
    assert result["checkpoint"]["trailers"]["Rollback-Of"] == saved[0]["checkpoint_id"]
    assert state_at(gitstate, "latest") == state_at(gitstate, "first")
    assert len(gitstate("log", AGENT, "--json").json_lines()) == 5

    hard = gitstate("rollback", AGENT, saved[2]["commit"][:7], "--hard")
    assert hard.code == 0 and hard.out.startswith(f"Reset {AGENT} to {saved[2]['commit'][:7]}")
    assert "dropped 2 checkpoints" in hard.out and saved[3]["commit"][:7] in hard.out
    path = gitstate.cwd / ".gitstate"
    assert git(path, "rev-parse", f"agents/{AGENT}").strip() == saved[2]["commit"]
    assert_gitstate_error(gitstate("rollback", AGENT, "latest"), "already the latest")
    assert gitstate("rollback", AGENT).code == 2  # REV is required
    fsck(str(path))


def test_fork_starts_a_new_agent_sharing_history(gitstate):
    saved = save_steps(gitstate, AGENT, 3)
    result = gitstate("fork", AGENT, "latest~1", "agent_retry", "--json")
    assert result.code == 0, result.err
    forked = result.json()
    assert forked["agent_id"] == "agent_retry" and forked["parent"] == saved[1]["commit"]
    path = gitstate.cwd / ".gitstate"
    assert git(path, "merge-base", f"agents/{AGENT}", "agents/agent_retry").strip() == saved[1]["commit"]
    assert state_at(gitstate, "latest", "agent_retry")["agent_id"] == "agent_retry"
    assert state_at(gitstate, "latest", "agent_retry")["iteration"] == 2
    human = gitstate("fork", AGENT, "latest", "agent_other")
    assert human.code == 0 and human.out.startswith("Forked agent_other: ")
    assert_gitstate_error(gitstate("fork", AGENT, "latest", "agent_retry"), "already exists")


def test_delete_a_checkpoint_or_with_yes_the_whole_agent(gitstate):
    saved = save_steps(gitstate, AGENT, 3, last=3)
    result = gitstate("delete", AGENT, "latest~1", "--json")
    assert result.code == 0 and result.json()["commit"] == saved[1]["commit"]
    remaining = gitstate("log", AGENT, "--json").json_lines()
    assert [c["checkpoint_id"] for c in remaining] == [saved[2]["checkpoint_id"], saved[0]["checkpoint_id"]]
    assert remaining[0]["names"] == ["last"]

    assert gitstate("delete", AGENT, "latest").code == 0
    before = snapshot(repo_of(gitstate))
    only = gitstate("delete", AGENT, "latest")
    assert only.code == 2 and "only checkpoint" in only.err and "--yes" in only.err
    refused = gitstate("delete", AGENT)
    assert refused.code == 2 and "--yes" in refused.err
    assert snapshot(repo_of(gitstate)) == before
    gone = gitstate("delete", AGENT, "--yes")
    assert gone.code == 0 and gone.out == f"Deleted agent {AGENT}\n"
    path = gitstate.cwd / ".gitstate"
    assert git(path, "for-each-ref", "refs/heads/agents/", "refs/tags/agents/") == ""
    assert_gitstate_error(gitstate("delete", AGENT, "--yes"), f"no agent '{AGENT}'")


def test_diff_in_every_format(gitstate):
    saved = save_steps(gitstate, AGENT, 3)
    summary = gitstate("diff", AGENT, "latest~2")
    assert summary.code == 0
    assert summary.out.startswith(f"{saved[0]['commit'][:7]}..{saved[2]['commit'][:7]} iteration 1→3")
    assert "messages +2" in summary.out

    document = gitstate("diff", AGENT, "latest~2", "latest~1", "--json").json()
    assert gitstate("diff", AGENT, "latest~2", "latest~1", "--format", "json").json() == document
    assert (document["old"]["commit"], document["new"]["commit"]) == (saved[0]["commit"], saved[1]["commit"])
    assert document["changes"]["values_changed"]["root['iteration']"] == {"new_value": 2, "old_value": 1}

    patch = gitstate("diff", AGENT, "latest~2", "--format", "patch").json()
    assert apply_patch(state_at(gitstate, "latest~2"), patch) == state_at(gitstate, "latest")

    text = gitstate("diff", AGENT, "latest~2", "--format", "text").out.splitlines()
    assert text[:2] == [f"--- {AGENT}@{saved[0]['commit'][:7]}", f"+++ {AGENT}@{saved[2]['commit'][:7]}"]
    assert '-  "iteration": 1,' in text and '+  "iteration": 3,' in text

    save_steps(gitstate, "agent_other", 3)
    across = gitstate("diff", AGENT, "latest", "latest", "--other-agent", "agent_other", "--json").json()
    assert across["new"]["agent_id"] == "agent_other" and across["patch"] == [
        {"op": "replace", "path": "/agent_id", "value": "agent_other"}]
    assert gitstate("diff", AGENT, "latest~1", "--format", "xml").code == 2
    assert_gitstate_error(gitstate("diff", AGENT, "nope"), "no checkpoint 'nope'")


def test_prune_lists_every_decision_and_rewrites_history(gitstate):
    saved = save_steps(gitstate, AGENT, 5, start=1)
    save_steps(gitstate, "agent_other", 2)
    before = snapshot(repo_of(gitstate))
    dry = gitstate("prune", AGENT, "--keep-last", "2", "--dry-run")
    assert dry.code == 0 and snapshot(repo_of(gitstate)) == before
    rows = [line.split() for line in dry.out.splitlines()[1:-1]]
    decisions = {row[1]: (row[-2], row[-1]) if row[-1] != "remove" else ("remove", "") for row in rows}
    assert decisions == {saved[4]["commit"][:7]: ("keep", "last"), saved[3]["commit"][:7]: ("keep", "last"),
                         saved[2]["commit"][:7]: ("remove", ""), saved[1]["commit"][:7]: ("remove", ""),
                         saved[0]["commit"][:7]: ("keep", "named")}
    assert dry.out.splitlines()[-1] == "Would remove 2 checkpoints of 1 agent."

    result = gitstate("prune", AGENT, "--keep-last", "2", "--json")
    assert result.code == 0, result.err
    document = result.json()
    assert document["removed"] == 2 and document["policy"] == {"keep_last": 2, "keep_named": True}
    assert [d["keep"] for d in document["agents"][AGENT]] == [True, True, False, False, True]
    path = gitstate.cwd / ".gitstate"
    kept_ids = git(path, "log", "--format=%(trailers:key=Checkpoint-Id,valueonly)", f"agents/{AGENT}").split()
    assert kept_ids == [saved[i]["checkpoint_id"] for i in (4, 3, 0)]
    assert git(path, "rev-list", "--count", "agents/agent_other").strip() == "2"

    everyone = gitstate("prune", "--all", "--keep-last", "1", "--no-keep-named", "--json").json()
    assert sorted(everyone["agents"]) == [AGENT, "agent_other"] and everyone["removed"] == 3
    for agent in ("agent_other", AGENT):
        assert git(path, "rev-list", "--count", f"agents/{agent}").strip() == "1"
    fsck(str(path))


def test_prune_passes_every_keep_rule_to_the_policy(gitstate):
    saved = save_steps(gitstate, AGENT, 3)  # all within one hour
    before = snapshot(repo_of(gitstate))
    result = gitstate("prune", AGENT, "--keep-hourly", "1", "--keep-daily", "1", "--keep-weekly", "1",
                      "--keep-monthly", "1", "--keep-yearly", "1", "--keep-within", "2h", "--no-keep-named",
                      "--dry-run", "--json")
    assert result.code == 0, result.err
    document = result.json()
    assert document["policy"] == {"keep_hourly": 1, "keep_daily": 1, "keep_weekly": 1, "keep_monthly": 1,
                                  "keep_yearly": 1, "keep_within": "2h", "keep_named": False}
    decisions = [(d["checkpoint"]["commit"], d["keep"], d["reasons"]) for d in document["agents"][AGENT]]
    assert decisions == [(saved[2]["commit"], True, ["hourly", "daily", "weekly", "monthly", "yearly"]),
                         (saved[1]["commit"], False, []), (saved[0]["commit"], False, [])]
    assert document["dry_run"] is True and snapshot(repo_of(gitstate)) == before


@pytest.mark.parametrize("args", [["prune", "--keep-last", "1"], ["prune", AGENT, "--all", "--keep-last", "1"],
                                  ["prune", AGENT], ["prune", AGENT, "--no-keep-named"],
                                  ["prune", AGENT, "--keep-within", "2x"], ["prune", AGENT, "--keep-daily", "-1"]])
def test_prune_usage_errors_change_nothing(gitstate, args):
    save_steps(gitstate, AGENT, 2)
    before = snapshot(repo_of(gitstate))
    assert gitstate(*args).code == 2
    assert snapshot(repo_of(gitstate)) == before
