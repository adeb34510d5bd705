"""diff: human summary, deepdiff JSON, RFC 6902 patches that apply exactly; git diff stays readable."""

from __future__ import annotations

import itertools
import json

import jsonpatch
import pytest
from conftest import examples, git, grow
from history_helpers import build, run_beside_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstate import AgentState, InvalidArgumentError, RevisionNotFoundError
from gitstate.codec import encode
from gitstate.diff import apply_patch, json_patch, summarize


def check_patch(old, new):
    """The patch turns ``old`` into ``new`` byte for byte, with ours and an independent RFC 6902 library."""
    patch = json_patch(old, new)
    assert encode(apply_patch(old, patch)) == encode(new)
    assert encode(jsonpatch.apply_patch(old, patch)) == encode(new)
    json.dumps(patch)  # plain JSON
    return patch


def test_diff_of_a_real_run_summary_json_and_patch(repo):
    state = AgentState(agent_id="auditor")
    state.start()
    grow(state, 12)
    repo.save(state)
    grow(state, 3)
    state.add_finding({"file": "src/auth.py", "severity": "high"})
    state.set_completed({"summary": "one finding"})
    repo.save(state)
    diff = repo.diff("auditor", "latest~1")
    assert diff.summary.startswith("iteration 12→15, status running→completed, ")
    assert "messages +3" in diff.summary and "findings +1" in diff.summary
    assert "actions_taken +3" in diff.summary and "tool_calls 12→15" in diff.summary
    assert diff.changes["values_changed"]["root['iteration']"] == {"old_value": 12, "new_value": 15}
    assert "root['findings'][0]" in diff.changes["iterable_item_added"]
    old, new = repo.load("auditor", "latest~1", model=None), repo.load("auditor", model=None)
    assert diff.patch == check_patch(old, new)
    assert {"op": "add", "path": "/findings/0",
            "value": {"file": "src/auth.py", "severity": "high"}} in diff.patch
    assert [op["path"] for op in diff.patch if op["path"].startswith("/messages")] == \
        ["/messages/12", "/messages/13", "/messages/14"]
    body = diff.to_json()
    assert body["old"]["checkpoint_id"] == diff.old.checkpoint_id and body["patch"] == diff.patch
    json.dumps(body)


def test_patch_applies_between_every_pair_of_a_history(repo):
    state = AgentState(agent_id="a")
    for step in range(8):
        grow(state)
        if step % 3 == 0:
            state.add_error(f"timeout {step}")
        if step == 4:
            state.task_context = {"repo": "x/y", "files": ["a.py"]}
        if step == 6:
            state.messages.pop(2)  # removing from the middle of a list
        repo.save(state)
    commits = [c.commit for c in repo.log("a")]
    for a, b in itertools.permutations(commits, 2):
        check_patch(repo.read_state(a), repo.read_state(b))
        assert repo.diff("a", a, b).patch == json_patch(repo.read_state(a), repo.read_state(b))


def test_diff_across_agents_and_identical_states(repo):
    state = AgentState(agent_id="a")
    grow(state, 2)
    repo.save(state)
    repo.fork("a", None, "b")
    diff = repo.diff("a", "latest", other_agent="b")
    assert diff.summary == "agent_id a→b"
    assert diff.patch == [{"op": "replace", "path": "/agent_id", "value": "b"}]
    same = repo.diff("a", "latest", "latest")
    assert same.summary == "no changes" and same.patch == [] and same.changes == {}


def test_diff_bad_revisions_raise(repo):
    repo.save(AgentState(agent_id="a"))
    with pytest.raises(RevisionNotFoundError):
        repo.diff("a", "latest~5")
    with pytest.raises(RevisionNotFoundError):
        repo.diff("a", "latest", "nope")


def test_json_types_are_kept_apart():
    for old, new in [(1, 1.0), (1, True), (0, False), ({"a": 1}, {"a": 1.0}), ([1], [True]),
                     (None, {}), ([], {}), ("1", 1), (0.0, -0.0)]:
        assert json_patch(old, new) != []
        check_patch(old, new)
    assert summarize({"n": 1}, {"n": 1.0}) == "n 1→1.0"


def test_pointer_escaping_and_odd_keys():
    old = {"a/b": {"~x": 1}, "": [1, 2], "ü": None}
    new = {"a/b": {"~x": 2}, "": [2], "ü": "é"}
    patch = check_patch(old, new)
    assert {"op": "replace", "path": "/a~1b/~0x", "value": 2} in patch


def test_apply_patch_rejects_what_does_not_apply():
    with pytest.raises(InvalidArgumentError, match="operation 0"):
        apply_patch({"a": 1}, [{"op": "remove", "path": "/b"}])
    with pytest.raises(InvalidArgumentError):
        apply_patch([1], [{"op": "replace", "path": "/5", "value": 0}])
    with pytest.raises(InvalidArgumentError):
        apply_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}])
    assert apply_patch({"a": [1]}, [{"op": "move", "from": "/a", "path": "/b"},
                                    {"op": "copy", "from": "/b", "path": "/c"},
                                    {"op": "add", "path": "/c/-", "value": 2}]) == {"b": [1], "c": [1, 2]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=examples(3))
@given(json_values, json_values)
def test_patch_applies_exactly_for_any_json_values(old, new):
    check_patch(old, new)


@settings(max_examples=examples(2))
@given(st.lists(json_values, max_size=8), st.data())
def test_patch_of_edited_lists_applies_exactly(items, data):
    edited = list(items)
    for _ in range(data.draw(st.integers(0, 4))):
        action = data.draw(st.sampled_from(["insert", "delete", "change"]))
        if action == "insert" or not edited:
            edited.insert(data.draw(st.integers(0, len(edited))), data.draw(json_values))
        elif action == "delete":
            edited.pop(data.draw(st.integers(0, len(edited) - 1)))
        else:
            edited[data.draw(st.integers(0, len(edited) - 1))] = data.draw(json_values)
    check_patch({"items": items}, {"items": edited})


def test_git_diff_of_two_checkpoints_is_line_by_line(repo):
    state = AgentState(agent_id="a")
    grow(state, 5)
    repo.save(state)
    grow(state)
    state.status = "completed"
    repo.save(state)
    out = git(repo, "diff", "agents/a~1", "agents/a", "--", "state.json")
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert '-  "iteration": 5,' in changed and '+  "iteration": 6,' in changed
    assert '-  "status": "created",' in changed and '+  "status": "completed",' in changed
    assert '+      "content": "step 6: looked at file_6.py",' in changed
    assert all(line.startswith(("+", "-")) and len(line) < 120 for line in changed)
    assert len(changed) < 30  # one line per changed value, not the whole document


def test_diff_beside_a_concurrent_writer(repo):
    ids = build(repo, count=4)
    acknowledged, diff = run_beside_writer(repo, lambda: repo.diff("a", ids[0]))
    old, new = repo.read_state(diff.old.commit), repo.read_state(diff.new.commit)
    assert encode(apply_patch(old, diff.patch)) == encode(new)
    assert set(acknowledged) <= {c.checkpoint_id for c in repo.log("a")}
