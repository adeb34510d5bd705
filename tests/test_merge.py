"""Divergence without loss: pull --rebase, merge, merge-base and merges in every history operation,
against real git servers on 127.0.0.1 and checked with the real git."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import fsck, git, grow, snapshot
from servers import GitDaemon, GitHttpServer, bare, hook

from gitstate import (
    AgentState,
    DivergedError,
    InvalidAgentIdError,
    InvalidArgumentError,
    MergeConflictError,
    PushRejectedError,
    RetentionPolicy,
    StateRepository,
    TransferStatus,
)

AGENT = "shared"


@pytest.fixture(params=["git", "http"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(URL, path) of a bare repository served by git daemon or git http-backend."""
    root = tmp_path / "srv"
    root.mkdir()
    path = bare(root / "server.git", **{"http.receivepack": "true"})
    running = GitDaemon(root) if request.param == "git" else GitHttpServer(root)
    try:
        yield running.url("server.git"), path
    finally:
        running.stop()


def ids(path: Path | StateRepository, *args: str) -> list[str]:
    """Checkpoint ids of ``git log ARGS`` (newest first)."""
    out = git(path, "log", "--format=%(trailers:key=Checkpoint-Id,valueonly,separator=)", *args)
    return out.split()


def records(repo: StateRepository, rev: str) -> dict[str, tuple]:
    """checkpoint id -> (time, message, trailers, state) of each checkpoint of ``git log rev``."""
    found = {}
    for line in git(repo, "log", "--format=%H", rev).split():
        checkpoint = repo.core.checkpoint(repo.core.commit(line.encode()), AGENT)
        found[checkpoint.checkpoint_id] = (checkpoint.created, checkpoint.message, checkpoint.trailers,
                                           json.dumps(repo.read_state(line), sort_keys=True))
    return found


def diverge(url: str, tmp_path: Path) -> tuple[StateRepository, StateRepository]:
    """alice and bob share 2 checkpoints of AGENT; then alice saves 2 (one named), bob 3 (one
    named) and pushes: alice diverged from the server."""
    alice = StateRepository.init(tmp_path / "alice.git")
    alice.configure_maintenance(auto_objects=0)
    alice.remote_add("origin", url)
    state = AgentState(agent_id=AGENT, task="divergence")
    alice.save(grow(state), name="start")
    alice.save(grow(state))
    alice.push("origin")
    bob = StateRepository.clone(url, tmp_path / "bob.git")
    bob.configure_maintenance(auto_objects=0)
    theirs = bob.load(AGENT)
    for step in range(3):
        bob.save(grow(theirs), name="bob-n" if step == 1 else None)
    bob.push("origin")
    for step in range(2):
        alice.save(grow(state), name="alice-n" if step == 0 else None)
    return alice, bob


def test_pull_rebase_then_push_keeps_every_checkpoint_of_both_sides_once(
        server: tuple[str, Path], tmp_path: Path) -> None:
    url, path = server
    alice, bob = diverge(url, tmp_path)
    mine = records(alice, f"agents/{AGENT}")
    theirs = records(bob, f"agents/{AGENT}")
    with pytest.raises(PushRejectedError, match="diverged: .*--rebase .*--force, which drops"):
        alice.push("origin")

    [result] = alice.pull("origin", [AGENT], rebase=True)
    assert result.status is TransferStatus.REBASED and "replayed 2 local checkpoint" in result.reason
    [pushed] = alice.push("origin")
    assert pushed.status is TransferStatus.UPDATED  # a fast-forward of the server's head
    on_server = ids(path, f"agents/{AGENT}")
    assert sorted(on_server) == sorted(mine.keys() | theirs.keys())  # each exactly once
    assert ids(path, "--first-parent", f"agents/{AGENT}") == on_server  # one line, no merge
    assert on_server[:2] == ids(alice, f"agents/{AGENT}")[:2] == list(mine)[:2]  # ours on top
    assert records(alice, f"agents/{AGENT}") == {**mine, **theirs}  # times, messages, trailers, states
    names = alice.names(AGENT)
    assert alice.resolve(AGENT, "alice-n").checkpoint_id == alice.log(AGENT)[1].checkpoint_id
    assert names["bob-n"] == bob.names(AGENT)["bob-n"]
    fsck(str(path))
    fsck(alice)
    bob.pull("origin")
    assert bob.latest(AGENT).checkpoint_id == alice.latest(AGENT).checkpoint_id


def test_pull_merge_then_push_keeps_both_histories_in_a_merge(server: tuple[str, Path],
                                                              tmp_path: Path) -> None:
    url, path = server
    alice, bob = diverge(url, tmp_path)
    mine, theirs = records(alice, f"agents/{AGENT}"), records(bob, f"agents/{AGENT}")
    ours_state, their_state = alice.load(AGENT, model=None), bob.load(AGENT, model=None)
    shared = alice.resolve(AGENT, "latest~2").commit  # the newest checkpoint both sides have

    [result] = alice.pull("origin", [AGENT], merge=True, strategy="theirs")
    assert result.status is TransferStatus.MERGED
    assert "both sides appended to $.actions_taken, $.messages (ours first)" in result.reason
    alice.push("origin")
    head = git(path, "rev-parse", f"agents/{AGENT}").strip()
    assert head == result.new
    first, second = git(path, "rev-parse", f"{head}^1", f"{head}^2").split()
    assert second == bob.latest(AGENT).commit
    assert git(path, "merge-base", first, second).strip() == shared
    assert alice.latest(AGENT).trailers["Merge-Base"] == alice.resolve(AGENT, shared).checkpoint_id
    on_server = ids(path, f"agents/{AGENT}")
    merge_id = alice.latest(AGENT).checkpoint_id
    assert sorted(on_server) == sorted(mine.keys() | theirs.keys() | {merge_id})  # each once
    assert ids(path, "--first-parent", f"agents/{AGENT}") == [merge_id, *mine]
    assert records(alice, f"agents/{AGENT}~1") == mine and records(alice, f"agents/{AGENT}^2") == theirs
    merged = alice.load(AGENT, model=None)
    shared_messages = 2  # one per shared checkpoint
    assert merged["messages"] == (ours_state["messages"]
                                  + their_state["messages"][shared_messages:])  # ours first
    assert merged["iteration"] == their_state["iteration"]  # a conflict: strategy theirs
    trailers = alice.latest(AGENT).trailers
    assert trailers["Merge-Of"] == bob.latest(AGENT).checkpoint_id
    fsck(str(path))
    assert alice.verify().ok


def test_a_conflicting_pull_merge_writes_nothing_and_says_how_to_choose(server: tuple[str, Path],
                                                                        tmp_path: Path) -> None:
    url, _path = server
    alice, _bob = diverge(url, tmp_path)
    alice.fetch("origin")
    before = snapshot(alice)
    with pytest.raises(MergeConflictError) as raised:
        alice.merge(AGENT, f"origin/{AGENT}")
    paths = [c.path for c in raised.value.conflicts]
    assert "$.iteration" in paths and all(c.resolved is None for c in raised.value.conflicts)
    assert snapshot(alice) == before
    with pytest.raises(DivergedError, match=r"conflicts at .*\$.iteration.*--strategy ours\|theirs"):
        alice.pull("origin", [AGENT], merge=True)
    assert alice.names(AGENT) == {"start": alice.resolve(AGENT, "start").commit,
                                  "alice-n": alice.resolve(AGENT, "alice-n").commit}


def test_a_server_refusal_is_reported_as_a_divergence_with_the_ways_out(tmp_path: Path) -> None:
    """Another push lands between the server's advertisement and its ref update (an update
    hook moves the branch): git refuses the ref, gitstate says what happened and what to do."""
    root = tmp_path / "srv"
    root.mkdir()
    path = bare(root / "server.git")
    daemon = GitDaemon(root)
    try:
        alice, bob = diverge(daemon.url("server.git"), tmp_path)
        won = git(path, "rev-parse", f"agents/{AGENT}").strip()
        git(path, "update-ref", "refs/heads/side", won)
        git(path, "update-ref", f"refs/heads/agents/{AGENT}", f"{won}~3")  # as alice last saw it
        hook(path, "update", f'[ "$1" = refs/heads/agents/{AGENT} ] && '
                             f'git update-ref "$1" "$(git rev-parse refs/heads/side)"\nexit 0\n')
        with pytest.raises(PushRejectedError) as raised:
            alice.push("origin")
        [result] = raised.value.results
        assert result.status is TransferStatus.REJECTED
        assert result.reason.startswith("refused by origin: refs/heads/agents/shared: ")
        assert f"diverged: origin has checkpoints this one lacks (another push landed first). Keep " \
               f"both: gitstate pull origin {AGENT} --rebase (or --merge)" in result.reason
        assert "--force, which drops the checkpoints pushed there meanwhile" in result.reason
        assert git(path, "rev-parse", f"agents/{AGENT}").strip() == won  # the winner stays
    finally:
        daemon.stop()


def test_rebase_reports_names_both_sides_gave_to_different_checkpoints(tmp_path: Path) -> None:
    server = bare(tmp_path / "server.git")
    alice, bob = diverge(str(server), tmp_path)
    alice.tag(AGENT, "bob-n")  # the same name as bob's, another checkpoint
    [result] = alice.pull("origin", [AGENT], rebase=True)
    assert result.status is TransferStatus.REBASED
    assert "kept the local name(s) 'bob-n'" in result.reason
    assert alice.names(AGENT)["bob-n"] == alice.latest(AGENT).commit  # followed its checkpoint
    fsck(alice)


def fork_and_merge(repo: StateRepository) -> tuple[list[str], list[str]]:
    """Agent a (3 checkpoints), fork a-fork at its second, 2 checkpoints on each side, then
    merge a-fork back into a. Returns the checkpoint ids of a's line and of the fork's."""
    state = AgentState(agent_id="a", task="fork and merge")
    for _ in range(3):
        repo.save(grow(state))
    repo.fork("a", "latest~1", "a-fork")
    fork = repo.load("a-fork")
    for _ in range(2):
        repo.save(grow(fork))
        repo.save(grow(state))
    result = repo.merge("a", "a-fork", strategy="ours")
    assert result.status == "merged" and "$.messages" in result.appended
    line = [c.checkpoint_id for c in repo.log("a")]
    forked = [c.checkpoint_id for c in repo.log("a-fork")]
    return line, forked


def test_merge_brings_a_forks_work_back_and_keeps_the_agents_id(repo: StateRepository) -> None:
    line, forked = fork_and_merge(repo)
    merged = repo.load("a", model=None)
    fork_state = repo.load("a-fork", model=None)
    assert merged["agent_id"] == "a"  # not the fork's
    assert fork_state["messages"][-1] in merged["messages"]
    assert merged["iteration"] == repo.load("a", "latest~1").iteration  # ours, by strategy
    head = repo.latest("a").commit
    assert git(repo, "rev-parse", f"{head}^2").strip() == repo.latest("a-fork").commit
    base = repo.merge_base("a", "a-fork")
    assert base is not None and base.commit == repo.latest("a-fork").commit  # merged already
    assert base.commit == git(repo, "merge-base", "agents/a", "agents/a-fork").strip()
    assert repo.latest("a").trailers["Merge-Base"] == repo.resolve(
        "a-fork", git(repo, "merge-base", f"{head}^1", f"{head}^2").strip()).checkpoint_id
    assert repo.merge("a", "a-fork").status == "up to date"
    assert line == ids(repo, "--first-parent", "agents/a") and len(line) == 6  # log: a's own line
    assert set(forked) <= set(ids(repo, "agents/a"))
    assert repo.verify().ok
    fsck(repo)


def test_merge_fast_forwards_when_the_agent_has_nothing_of_its_own(tmp_path: Path) -> None:
    server = bare(tmp_path / "server.git")
    alice = StateRepository.init(tmp_path / "alice.git")
    alice.remote_add("origin", str(server))
    state = AgentState(agent_id="x")
    alice.save(grow(state))
    alice.push("origin")
    bob = StateRepository.clone(str(server), tmp_path / "bob.git")
    bob.save(grow(bob.load("x")))
    bob.push("origin")
    alice.fetch("origin")
    result = alice.merge("x", "origin/x")
    assert result.status == "fast-forward" and result.checkpoint.commit == bob.latest("x").commit


def test_merges_survive_retention_rollback_and_gc(repo: StateRepository) -> None:
    fork_and_merge(repo)
    state = repo.load("a")
    repo.save(grow(state))  # a checkpoint on top of the merge
    reachable = set(git(repo, "rev-list", "agents/a").split())
    fork_ids = set(ids(repo, "agents/a-fork"))
    repo.delete_agent("a-fork")  # only a's merge still references the fork's history
    fork_head = git(repo, "rev-parse", "agents/a~1^2").strip()
    # keep the merge: its second parent stays
    repo.prune("a", RetentionPolicy(keep_last=3), grace=timedelta(0))
    assert len(repo.log("a")) == 3
    assert git(repo, "rev-parse", "agents/a~1^2").strip() == fork_head
    assert fork_ids <= set(ids(repo, "agents/a"))
    # remove everything below the newest: the oldest kept checkpoint has no parent; what the
    # merge brought in stays through the reflog (never expired by gitstate), so gc keeps it
    repo.prune("a", RetentionPolicy(keep_last=1), grace=timedelta(0))
    assert len(repo.log("a")) == 1 and len(git(repo, "rev-list", "agents/a").split()) == 1
    repo.gc(prune=True, grace_seconds=0)
    repo.reclaim(grace=timedelta(0))
    fsck(repo)
    assert fork_ids <= set(ids(repo, "--reflog"))
    git(repo, "cat-file", "-e", f"{fork_head}^{{commit}}")
    assert repo.verify().ok


def test_rollback_and_diff_over_a_merge(repo: StateRepository) -> None:
    line, _forked = fork_and_merge(repo)
    merge_commit = repo.latest("a")
    assert "messages +2" in repo.diff("a", "latest~1").summary  # ours -> merge: theirs' appends
    soft = repo.rollback("a", "latest~1")
    assert repo.load("a", model=None) == repo.load("a", "latest~2", model=None)
    assert soft.checkpoint.trailers["Rollback-Of"] == line[1]
    hard = repo.rollback("a", line[1], hard=True)
    assert [c.checkpoint_id for c in hard.dropped] == [soft.checkpoint.checkpoint_id,
                                                       merge_commit.checkpoint_id]
    assert repo.verify().ok
    fsck(repo)


def test_delete_keeps_the_merged_history(repo: StateRepository) -> None:
    _line, forked = fork_and_merge(repo)
    repo.save(grow(repo.load("a")))
    repo.delete("a", "latest~1")  # the merge itself
    assert set(forked) <= set(ids(repo, "agents/a"))
    assert len(git(repo, "rev-parse", "agents/a^2").split()) == 1  # the next one is the merge now
    fsck(repo)


def test_verify_checks_the_checkpoints_a_merge_brought_in(repo: StateRepository) -> None:
    fork_and_merge(repo)
    fork_head = repo.latest("a-fork").commit
    repo.delete_agent("a-fork")
    assert repo.verify().ok
    blob = git(repo, "rev-parse", f"{fork_head}:state.json").strip()
    loose = Path(repo.path, "objects", blob[:2], blob[2:])
    loose.chmod(0o644)
    loose.write_bytes(b"not zlib")
    problems = [str(p) for p in StateRepository.open(repo.path).verify().problems]  # (no cache)
    assert any(f"a@{fork_head[:12]}" in p and "state.json unreadable" in p for p in problems), problems


def test_remote_tracking_agents_are_read_only_revisions(tmp_path: Path) -> None:
    server = bare(tmp_path / "server.git")
    alice, bob = diverge(str(server), tmp_path)
    alice.fetch("origin")
    theirs = bob.log(AGENT)
    assert [c.checkpoint_id for c in alice.log(f"origin/{AGENT}")] == [c.checkpoint_id for c in theirs]
    assert alice.resolve(f"origin/{AGENT}", "bob-n").commit == bob.names(AGENT)["bob-n"]
    assert alice.load(AGENT, f"origin/{AGENT}~1", model=None) == bob.load(AGENT, "latest~1", model=None)
    assert alice.diff(AGENT, "latest", f"origin/{AGENT}").new.commit == theirs[0].commit
    before = snapshot(alice)
    for write in (lambda: alice.rollback(f"origin/{AGENT}", "latest~1"),
                  lambda: alice.delete(f"origin/{AGENT}", "latest~1"),
                  lambda: alice.delete_agent(f"origin/{AGENT}"),
                  lambda: alice.prune(f"origin/{AGENT}", RetentionPolicy(keep_last=1)),
                  lambda: alice.fork(f"origin/{AGENT}", None, "copy"),
                  lambda: alice.merge(f"origin/{AGENT}", AGENT)):
        with pytest.raises(InvalidAgentIdError, match="origin/shared"):
            write()
    assert snapshot(alice) == before
    with pytest.raises(Exception, match="fetch it first"):
        alice.log("backup/shared")


def test_unrelated_histories_and_bad_arguments_are_refused_before_any_write(repo: StateRepository) -> None:
    repo.save({"agent_id": "a", "n": 1})
    repo.save({"agent_id": "b", "n": 2})
    before = snapshot(repo)
    with pytest.raises(InvalidArgumentError, match="shares no checkpoint"):
        repo.merge("a", "b")
    assert repo.merge_base("a", "b") is None
    with pytest.raises(InvalidArgumentError, match="strategy"):
        repo.merge("a", "b", strategy="both")
    with pytest.raises(InvalidArgumentError, match="exclude each other"):
        repo.pull("origin", rebase=True, merge=True)
    with pytest.raises(InvalidArgumentError, match="pass merge=True"):
        repo.pull("origin", strategy="ours")
    assert snapshot(repo) == before


# -- the command line ----------------------------------------------------------------------

def test_the_command_line_reads_remote_tracking_agents_and_merges(gitstate, tmp_path: Path) -> None:
    server = bare(tmp_path / "server.git")
    alice, bob = diverge(str(server), tmp_path)
    alice.fetch("origin")
    repo = ["--repo", alice.path]
    theirs = bob.latest(AGENT)

    logged = gitstate(*repo, "log", f"origin/{AGENT}", "--json")
    assert [json.loads(line)["checkpoint_id"] for line in logged.out.splitlines()] == [
        c.checkpoint_id for c in bob.log(AGENT)]
    shown = gitstate(*repo, "show", f"origin/{AGENT}")
    assert json.loads(shown.out) == bob.load(AGENT, model=None)
    diffed = gitstate(*repo, "diff", AGENT, "latest", f"origin/{AGENT}")
    assert diffed.code == 0 and f"..{theirs.short}" in diffed.out
    base = gitstate(*repo, "merge-base", AGENT, f"origin/{AGENT}", "--json")
    assert json.loads(base.out)["commit"] == git(alice, "merge-base", f"agents/{AGENT}",
                                                  f"origin/agents/{AGENT}").strip()

    before = snapshot(alice)
    conflict = gitstate(*repo, "merge", AGENT, f"origin/{AGENT}")
    assert conflict.code == 1 and conflict.err.count("\n") == 1
    assert conflict.err.startswith("Error: ") and "--strategy ours|theirs" in conflict.err
    assert conflict.out.split()[:3] == ["CONFLICT", "OURS", "THEIRS"] and "$.iteration" in conflict.out
    assert snapshot(alice) == before

    merged = gitstate(*repo, "merge", AGENT, f"origin/{AGENT}", "--resolve", "$=theirs", "--json")
    assert merged.code == 0, merged.err
    result = json.loads(merged.out)
    assert result["status"] == "merged" and {c["path"] for c in result["conflicts"]} >= {"$.iteration"}
    assert all(c["resolved"] == "theirs" for c in result["conflicts"])
    assert git(alice, "rev-parse", f"agents/{AGENT}^2").strip() == theirs.commit
    usage = gitstate(*repo, "merge", AGENT, f"origin/{AGENT}", "--strategy", "ours", "--resolve", "$=ours")
    assert usage.code == 2


def test_pull_rebase_through_the_command_line(gitstate, tmp_path: Path) -> None:
    server = bare(tmp_path / "server.git")
    alice, _bob = diverge(str(server), tmp_path)
    pulled = gitstate("--repo", alice.path, "pull", "origin", AGENT, "--rebase")
    assert pulled.code == 0, pulled.err
    assert pulled.out.splitlines()[1].split()[:2] == ["rebased", AGENT]
    diverged = gitstate("--repo", alice.path, "push")
    assert diverged.code == 0, diverged.err
    fsck(str(server))
