"""rollback, fork, delete, delete_agent: results, git's view, bad input, concurrent writers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from concurrent_writer import ConcurrentWriter
from conftest import examples, fsck, git, grow, snapshot
from history_helpers import build, ids_of, inject_foreign_commit, logs, run_beside_writer

from gitstate import (
    AgentExistsError,
    AgentNotFoundError,
    ConcurrentUpdateError,
    InvalidAgentIdError,
    InvalidArgumentError,
    RevisionNotFoundError,
    StateRepository,
)


# -- rollback -------------------------------------------------------------------------
def test_soft_rollback_adds_a_checkpoint_with_the_old_state(repo):
    ids = build(repo)
    result = repo.rollback("a", ids[1])
    assert not result.hard and result.dropped == ()
    assert ids_of(repo) == ids + [result.checkpoint.checkpoint_id]
    assert result.checkpoint.trailers["Rollback-Of"] == ids[1]
    assert result.checkpoint.iteration == 2
    assert repo.load("a") == repo.load("a", ids[1])
    assert git(repo, "rev-parse", "agents/a^{tree}") == git(repo, "rev-parse", f"agents/a~{len(ids) - 1}^{{tree}}")
    trailer = git(repo, "log", "-1", "--format=%(trailers:key=Rollback-Of,valueonly)", "agents/a")
    assert trailer.strip() == ids[1]
    fsck(repo)


def test_hard_rollback_moves_the_branch_and_keeps_dropped_commits_in_the_reflog(repo):
    ids = build(repo, names={5: "five"})
    old_head = git(repo, "rev-parse", "agents/a").strip()
    result = repo.rollback("a", "latest~3", hard=True)
    assert result.hard and [c.checkpoint_id for c in result.dropped] == ids[:2:-1]
    assert len(result.dropped) == 3
    assert ids_of(repo) == ids[:3] and result.checkpoint.checkpoint_id == ids[2]
    assert git(repo, "tag", "--list").strip() == ""  # the name of a dropped checkpoint went
    reflog = git(repo, "reflog", "show", "--format=%H %gs", "refs/heads/agents/a").split("\n")[0]
    assert reflog.endswith(f"rollback to {ids[2]}")
    assert git(repo, "cat-file", "-t", old_head).strip() == "commit"
    fsck(repo)


@pytest.mark.parametrize("hard", [False, True])
def test_rollback_bad_input_changes_nothing(repo, hard):
    build(repo, count=3)
    before = snapshot(repo)
    with pytest.raises(InvalidArgumentError, match="already the latest"):
        repo.rollback("a", "latest", hard=hard)
    with pytest.raises(RevisionNotFoundError):
        repo.rollback("a", "no-such-name", hard=hard)
    with pytest.raises(RevisionNotFoundError):
        repo.rollback("a", "latest~9", hard=hard)
    with pytest.raises(AgentNotFoundError):
        repo.rollback("ghost", "latest~1", hard=hard)
    assert snapshot(repo) == before


# -- fork -----------------------------------------------------------------------------
def test_fork_shares_history_and_the_new_agent_saves_on_its_own_branch(repo):
    ids = build(repo)
    forked = repo.fork("a", ids[2], "b")
    assert forked.agent_id == "b" and forked.trailers["Forked-From"] == ids[2]
    assert forked.trailers["Forked-From-Agent"] == "a"
    assert ids_of(repo, "b") == ids[:3] + [forked.checkpoint_id]
    assert git(repo, "merge-base", "agents/a", "agents/b").strip() == repo.resolve("a", ids[2]).commit
    state = repo.load("b")
    assert state.agent_id == "b" and state.iteration == 3
    grow(state)
    saved = repo.save(state)
    assert saved.agent_id == "b" and repo.latest("b").checkpoint_id == saved.checkpoint_id
    assert ids_of(repo, "a") == ids
    fsck(repo)


def test_a_fork_rolled_back_to_an_inherited_checkpoint_stays_itself_and_verifies(repo):
    """Agent-Id names the agent that wrote a checkpoint: a fork holds its parent's checkpoints."""
    ids = build(repo, count=4)
    repo.fork("a", ids[2], "b")
    result = repo.rollback("b", ids[0])  # written by a, inherited by b
    assert result.checkpoint.agent_id == "b" and result.checkpoint.trailers["Rollback-Of"] == ids[0]
    state = repo.load("b")
    assert state.agent_id == "b" and state.iteration == 1
    saved = repo.save(grow(state))
    assert repo.latest("b").checkpoint_id == saved.checkpoint_id and ids_of(repo, "a") == ids
    writers = git(repo, "log", "--format=%(trailers:key=Agent-Id,valueonly)", "agents/b").split()
    assert writers == ["b", "b", "b", "a", "a", "a"]
    check = repo.verify()
    assert check.ok, check.problems
    fsck(repo)


def test_fork_bad_input_changes_nothing(repo):
    build(repo, count=3)
    build(repo, agent_id="b", count=1)
    before = snapshot(repo)
    with pytest.raises(AgentExistsError):
        repo.fork("a", None, "b")
    with pytest.raises(AgentExistsError):
        repo.fork("a", None, "a")
    with pytest.raises(InvalidAgentIdError):
        repo.fork("a", None, "bad id")
    with pytest.raises(RevisionNotFoundError):
        repo.fork("a", "0000000", "c")
    assert snapshot(repo) == before


# -- delete ---------------------------------------------------------------------------
def test_delete_rewrites_history_keeping_ids_and_moving_tags(repo):
    ids = build(repo, names={2: "two", 3: "three", 5: "five"})
    states = {i: repo.load("a", i) for i in ids}
    removed = repo.delete("a", "three")
    assert removed.checkpoint_id == ids[2]
    assert ids_of(repo) == ids[:2] + ids[3:]
    for i in ids[:2] + ids[3:]:
        assert repo.load("a", i) == states[i]
    tags = dict(line.split() for line in git(repo, "show-ref", "--tags").splitlines())
    assert set(tags.values()) == {"refs/tags/agents/a/two", "refs/tags/agents/a/five"}
    assert repo.resolve("a", "five").checkpoint_id == ids[4]
    assert repo.resolve("a", "two").checkpoint_id == ids[1]
    # the commits before the removed one keep their SHAs; git sees the new chain
    assert git(repo, "rev-list", "--count", "agents/a").strip() == str(len(ids) - 1)
    with pytest.raises(RevisionNotFoundError):
        repo.resolve("a", ids[2])
    fsck(repo)


def test_delete_the_latest_and_the_oldest(repo):
    ids = build(repo, count=4)
    repo.delete("a", "latest")
    repo.delete("a", ids[0])
    assert ids_of(repo) == ids[1:3]
    assert repo.log("a")[-1].parent is None
    fsck(repo)


def test_deleting_the_only_checkpoint_deletes_the_agent(repo):
    build(repo, count=1, names={1: "one"})
    build(repo, agent_id="other", count=1)
    repo.delete("a", "one")
    assert git(repo, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/agents/other"]
    fsck(repo)


def test_delete_bad_input_changes_nothing(repo):
    build(repo, count=1)
    before = snapshot(repo)
    with pytest.raises(RevisionNotFoundError):
        repo.delete("a", "nope")
    with pytest.raises(AgentNotFoundError):
        repo.delete("ghost", "latest")
    with pytest.raises(AgentNotFoundError):
        repo.delete_agent("ghost")
    assert snapshot(repo) == before


def test_delete_agent_removes_branch_names_and_reflog(repo):
    build(repo, names={1: "one"})
    build(repo, agent_id="other", count=2)
    repo.rollback("a", "latest~1", hard=True)
    repo.delete_agent("a")
    assert [info.agent_id for info in repo.agents()] == ["other"]
    assert git(repo, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/agents/other"]
    assert git(repo, "reflog", "exists", "refs/heads/agents/a", check=False) == ""
    with pytest.raises(AgentNotFoundError):
        repo.latest("a")
    fsck(repo)


# -- concurrent writers ---------------------------------------------------------------
@pytest.mark.parametrize("operation", ["soft rollback", "delete", "fork"])
def test_no_acknowledged_save_is_lost_beside_a_concurrent_writer(repo, operation):
    ids = build(repo, count=20)
    actions = {
        "soft rollback": lambda: repo.rollback("a", ids[5]),
        "delete": lambda: repo.delete("a", ids[10]),
        "fork": lambda: repo.fork("a", ids[7], "b"),
    }
    acknowledged, _ = run_beside_writer(repo, actions[operation])
    history = ids_of(repo)
    assert set(acknowledged) <= set(history)
    assert len(history) == len(set(history))
    expected_old = [i for i in ids if not (operation == "delete" and i == ids[10])]
    assert [i for i in history if i in ids] == expected_old
    fsck(repo)


def test_hard_rollback_beside_a_concurrent_writer_drops_only_what_it_reports(repo):
    ids = build(repo, count=20)
    acknowledged, result = run_beside_writer(repo, lambda: repo.rollback("a", ids[9], hard=True))
    history = ids_of(repo)
    dropped = {c.checkpoint_id for c in result.dropped}
    assert history[:10] == ids[:10]
    assert set(ids[10:]) <= dropped and not dropped & set(history)
    assert set(acknowledged) <= set(history) | dropped
    fsck(repo)


@pytest.mark.parametrize("operation", ["hard rollback", "delete"])
def test_a_foreign_writer_moving_the_branch_fails_the_rewrite_and_changes_nothing(repo, operation):
    ids = build(repo, count=5, names={2: "two", 4: "four"})
    seen = inject_foreign_commit(repo)
    with pytest.raises(ConcurrentUpdateError, match="nothing was changed"):
        if operation == "delete":
            repo.delete("a", ids[1])
        else:
            repo.rollback("a", ids[1], hard=True)
    assert git(repo, "for-each-ref") == seen["refs"]
    assert logs(repo) == seen["logs"]
    fsck(repo)


def test_fork_beside_a_foreign_writer_still_forks_from_the_checkpoint(repo):
    ids = build(repo, count=5)
    inject_foreign_commit(repo)
    repo.fork("a", ids[1], "b")
    assert ids_of(repo, "b")[:2] == ids[:2]
    assert git(repo, "log", "-1", "--format=%s", "agents/a").strip() == "foreign"
    fsck(repo)


def test_delete_agent_beside_a_concurrent_writer(repo):
    """Saves acknowledged before the delete went with the agent; the later ones start it anew."""
    build(repo, count=5)
    with ConcurrentWriter(repo.path, "a") as writer:
        writer.wait_for(3)
        repo.delete_agent("a")
        while True:  # read acknowledgements until one made after the delete shows up
            writer.wait_for(1)
            if repo.agents() and writer.acknowledged[-1] in ids_of(repo):
                break
        acknowledged = writer.stop()
    history = ids_of(repo)
    assert history == acknowledged[len(acknowledged) - len(history):]  # the newest saves, in order
    assert repo.log("a")[-1].parent is None  # a fresh root: nothing of the deleted history
    fsck(repo)


def test_derived_checkpoints_do_not_inherit_event_trailers(repo):
    ids = build(repo, count=3)
    forked = repo.fork("a", ids[1], "b")
    repo.save(grow(repo.load("b")))
    rolled = repo.rollback("b", forked.checkpoint_id).checkpoint
    assert rolled.trailers["Rollback-Of"] == forked.checkpoint_id and rolled.iteration == 2
    assert "Forked-From" not in rolled.trailers and rolled.trailers["Agent-Id"] == "b"
    assert repo.load("b").agent_id == "b"


@settings(max_examples=examples(0.25))
@given(st.data())
def test_random_deletes_keep_ids_states_and_names(tmp_path_factory, data):
    repo = StateRepository.init(tmp_path_factory.mktemp("random") / "state.git")
    count = data.draw(st.integers(2, 12))
    names = {i: f"n{i}" for i in data.draw(st.sets(st.integers(1, count), max_size=4))}
    ids = build(repo, count=count, names=names)
    states = {i: repo.load("a", i) for i in ids}
    name_of = {ids[i - 1]: name for i, name in names.items()}
    alive = list(ids)
    for _ in range(data.draw(st.integers(1, count - 1))):
        victim = data.draw(st.sampled_from(alive))
        repo.delete("a", victim)
        alive.remove(victim)
    assert ids_of(repo) == alive
    for i in alive:
        assert repo.load("a", i) == states[i]
    expected_tags = sorted(f"refs/tags/agents/a/{name_of[i]}" for i in alive if i in name_of)
    assert sorted(git(repo, "tag", "--list", "--format=%(refname)").split()) == expected_tags
    for i in alive:
        if i in name_of:
            assert repo.resolve("a", name_of[i]).checkpoint_id == i
    fsck(repo)
