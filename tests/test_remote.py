"""Remotes against real git servers on 127.0.0.1: a path, file://, git daemon and smart HTTP."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Iterator, Optional

import pytest
from conftest import fsck, git, grow, snapshot
from servers import GitDaemon, GitHttpServer, bare, hook

from gitstate import (
    AgentNotFoundError,
    AgentState,
    CorruptObjectError,
    DivergedError,
    InvalidArgumentError,
    PushRejectedError,
    RemoteError,
    RemoteExistsError,
    RemoteNotFoundError,
    RetentionPolicy,
    StateRepository,
    TransferStatus,
)

TRANSPORTS = ["path", "file", "git", "http"]
NETWORK = ["git", "http"]  # the local-path client ignores server-side refusals


class Server:
    """Bare repositories served over one transport; ``new()`` makes one and returns its URL."""

    def __init__(self, kind: str, root: Path, daemon: Optional[GitDaemon], http: Optional[GitHttpServer]):
        self.kind, self.root, self.daemon, self.http = kind, root, daemon, http

    def new(self, name: str = "server.git", **config: str) -> tuple[str, Path]:
        path = bare(self.root / name, **{"http.receivepack": "true", **config})
        url = {"path": str(path), "file": f"file://{path}"}.get(self.kind)
        if self.kind == "git":
            assert self.daemon
            url = self.daemon.url(name)
        elif self.kind == "http":
            assert self.http
            url = self.http.url(name)
        assert url
        return url, path

    def sessions(self, service: str) -> int:
        server = self.daemon or self.http
        assert server is not None, "only network servers count sessions"
        return server.sessions(service)


def _serve(kind: str, root: Path) -> Iterator[Server]:
    daemon = GitDaemon(root) if kind == "git" else None
    http = GitHttpServer(root) if kind == "http" else None
    try:
        yield Server(kind, root, daemon, http)
    finally:
        for running in (daemon, http):
            if running:
                running.stop()


@pytest.fixture(params=TRANSPORTS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "srv").mkdir()
    yield from _serve(request.param, tmp_path / "srv")


@pytest.fixture(params=NETWORK)
def net_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "srv").mkdir()
    yield from _serve(request.param, tmp_path / "srv")


def agent(repo: StateRepository, agent_id: str, steps: int, *, name_at: Optional[int] = None) -> AgentState:
    """Save ``steps`` checkpoints of a growing agent; the one at iteration ``name_at`` is named."""
    state = AgentState(agent_id=agent_id, agent_name=agent_id)
    for _ in range(steps):
        grow(state)
        name = f"step-{state.iteration}" if state.iteration == name_at else None
        repo.save(state, name=name)
    return state


def history(path: StateRepository | Path, rev: str) -> list[str]:
    return git(path, "log", "--format=%H %(trailers:key=Checkpoint-Id,valueonly)", rev).split()


def test_push_lands_agents_and_names_that_stock_git_reads(server: Server, repo: StateRepository) -> None:
    url, path = server.new()
    agent(repo, "recon", 3, name_at=2)
    agent(repo, "analysis", 2)
    repo.remote_add("origin", url)
    assert "origin" in git(repo, "remote", "-v")

    results = repo.push("origin")

    assert [(r.agent_id, r.status) for r in results] == [
        ("analysis", TransferStatus.NEW), ("recon", TransferStatus.NEW)]
    for agent_id in ("recon", "analysis"):
        assert history(path, f"agents/{agent_id}") == history(repo, f"agents/{agent_id}")
    assert git(path, "rev-parse", "agents/recon/step-2") == git(repo, "rev-parse", "agents/recon/step-2")
    assert git(path, "show", "agents/recon~1:state.json") == git(repo, "show", "agents/recon~1:state.json")
    assert git(path, "for-each-ref", "--format=%(refname)").split() == [
        "refs/heads/agents/analysis", "refs/heads/agents/recon", "refs/tags/agents/recon/step-2"]
    fsck(path)
    # the tracking refs now show what the remote holds, for stock git too
    assert git(repo, "rev-parse", "origin/agents/recon") == git(repo, "rev-parse", "agents/recon")
    assert [r.status for r in repo.push("origin")] == [TransferStatus.UP_TO_DATE] * 2


def _pack_objects(server: Path, before: set[Path]) -> list[list[str]]:
    """``git verify-pack -v`` object lines of the one pack a push left on ``server``."""
    (pack,) = set((server / "objects" / "pack").glob("*.pack")) - before
    lines = git(server, "verify-pack", "-v", str(pack.with_suffix(".idx"))).splitlines()
    return [line.split() for line in lines if len(line.split()) in (5, 7) and len(line.split()[0]) == 40]


def test_a_pushed_history_travels_as_deltas_and_only_what_the_server_lacks(
        server: Server, repo: StateRepository, tmp_path: Path) -> None:
    """N checkpoints of a growing state are sent as one state and deltas along the history
    (chains capped), not as N states; later pushes send only what the server lacks."""
    url, path = server.new(**{"receive.unpackLimit": "1"})  # the server keeps the pack as sent
    elsewhere = StateRepository.init(tmp_path / "elsewhere.git")
    agent(elsewhere, "other", 2)  # on the server, not here: a have this push cannot follow
    elsewhere.remote_add("origin", url)
    elsewhere.push("origin")
    agent(repo, "big", 120)
    repo.remote_add("origin", url)
    before = set((path / "objects" / "pack").glob("*.pack"))
    repo.push("origin")
    sent = _pack_objects(path, before)
    blobs = [fields for fields in sent if fields[1] == "blob"]
    assert len(sent) == 360 and len(blobs) == 120
    assert sum(len(fields) == 7 for fields in blobs) >= 117  # deltas
    assert max(int(fields[5]) for fields in sent if len(fields) == 7) <= 50  # chain depth
    ours = sum(int(fields[3]) for fields in sent)
    by_git = bare(tmp_path / "by-git.git", **{"receive.unpackLimit": "1"})
    git(repo, "push", "-q", str(by_git), "refs/heads/agents/big")
    assert ours <= 1.5 * sum(int(fields[3]) for fields in _pack_objects(by_git, set()))
    fsck(path)

    repo.fork("big", "latest~100", "small")  # on a commit the server has
    repo.save(grow(repo.load("big")))
    before = set((path / "objects" / "pack").glob("*.pack"))
    repo.push("origin")
    assert sorted(fields[1] for fields in _pack_objects(path, before)) == ["blob", "blob", "commit",
                                                                           "commit", "tree", "tree"]
    assert history(path, "agents/small") == history(repo, "agents/small")
    assert history(path, "agents/big") == history(repo, "agents/big")
    fsck(path)


@pytest.mark.parametrize("lost", ["tree", "state.json"])
def test_a_push_missing_an_object_is_a_typed_error_and_changes_nothing(
        net_server: Server, repo: StateRepository, lost: str) -> None:
    url, path = net_server.new()
    agent(repo, "a", 3)
    sha = git(repo, "rev-parse", "agents/a~2^{tree}" if lost == "tree" else "agents/a~2:state.json").strip()
    Path(repo.path, "objects", sha[:2], sha[2:]).unlink()
    repo.remote_add("origin", url)
    with pytest.raises(CorruptObjectError, match=f"{sha} is missing"):
        repo.push("origin")
    assert git(path, "for-each-ref") == ""


def test_a_second_clone_pulls_what_the_first_pushes(server: Server, tmp_path: Path) -> None:
    url, path = server.new()
    first = StateRepository.clone(url, tmp_path / "first.git")  # an empty server clones too
    assert first.agents() == []
    state = agent(first, "worker", 2)
    first.push("origin")
    second = StateRepository.clone(url, tmp_path / "second.git")
    assert second.load("worker") == first.load("worker")
    assert git(second, "config", "gc.auto").strip() == "0"

    grow(state, 2)
    first.save(state, name="done")
    assert [r.status for r in first.push("origin")] == [TransferStatus.UPDATED]
    results = second.pull("origin")

    assert [(r.agent_id, r.status) for r in results] == [("worker", TransferStatus.UPDATED)]
    assert [c.checkpoint_id for c in second.log("worker")] == [c.checkpoint_id for c in first.log("worker")]
    assert second.load("worker", "done") == state
    assert [r.status for r in second.pull("origin")] == [TransferStatus.UP_TO_DATE]
    second.save(grow(state))
    [ahead] = second.pull("origin")
    assert ahead.status is TransferStatus.AHEAD and ahead.new == second.latest("worker").commit
    fsck(second)
    fsck(path)


def test_a_diverged_pull_fails_naming_both_heads_and_loses_nothing(server: Server, tmp_path: Path) -> None:
    url, _ = server.new()
    alice = StateRepository.clone(url, tmp_path / "alice.git")
    state = agent(alice, "shared", 2)
    agent(alice, "other", 1)
    alice.push("origin")
    bob = StateRepository.clone(url, tmp_path / "bob.git")
    bob_state = state.model_copy(deep=True)
    grow(state)
    alice.save(state)
    alice.push("origin")
    grow(bob_state, 2)
    bob.save(bob_state)
    ours, theirs = bob.latest("shared"), alice.latest("shared")
    bob_history = history(bob, "agents/shared")

    with pytest.raises(DivergedError) as caught:
        bob.pull("origin")

    message = str(caught.value)
    assert ours.short in message and theirs.short in message
    assert ours.checkpoint_id in message and theirs.checkpoint_id in message
    assert "--into" in message and "--force" in message
    statuses = {r.agent_id: r.status for r in caught.value.results}
    assert statuses == {"shared": TransferStatus.DIVERGED, "other": TransferStatus.UP_TO_DATE}
    assert history(bob, "agents/shared") == bob_history  # yours untouched
    assert git(bob, "rev-parse", "origin/agents/shared").strip() == theirs.commit  # theirs kept

    # keep theirs beside yours, then yours wins on the server only with force
    [kept] = bob.pull("origin", ["shared"], into="shared-origin")
    assert kept.status is TransferStatus.NEW and bob.load("shared-origin") == state
    with pytest.raises(PushRejectedError, match="--rebase .*--force, which drops 1 checkpoint"):
        bob.push("origin", ["shared"])
    [forced] = bob.push("origin", ["shared"], force=True)
    assert forced.status is TransferStatus.FORCED and forced.old == theirs.commit
    alice.pull("origin", ["other"])
    with pytest.raises(DivergedError):
        alice.pull("origin", ["shared"])
    assert alice.latest("shared").commit == theirs.commit


def test_an_agent_pulled_into_another_id_keeps_its_writers_agent_id_and_verifies(
        repo: StateRepository, tmp_path: Path) -> None:
    other = StateRepository.init(tmp_path / "other.git")
    agent(other, "scout", 3)
    repo.remote_add("origin", other.path)
    [pulled] = repo.pull("origin", ["scout"], into="scout-copy")
    assert pulled.status is TransferStatus.NEW
    assert {c.trailers["Agent-Id"] for c in repo.log("scout-copy")} == {"scout"}
    check = repo.verify()
    assert check.ok and (check.agents, check.checkpoints) == (1, 3), check.problems


def test_fetch_fills_tracking_refs_only_and_prunes_deleted_agents(server: Server, repo: StateRepository,
                                                                  tmp_path: Path) -> None:
    url, path = server.new()
    source = StateRepository.init(tmp_path / "source.git")
    agent(source, "a", 2, name_at=1)
    agent(source, "b", 1)
    source.remote_add("origin", url)
    source.push("origin")
    repo.remote_add("origin", url)

    [only_a] = repo.fetch("origin", ["a"])
    assert only_a.agent_id == "a" and only_a.status is TransferStatus.NEW
    assert repo.agents() == []  # fetch never touches local agents
    assert git(repo, "for-each-ref", "--format=%(refname)").split() == [
        "refs/remotes/origin/agents/a", "refs/remotes/origin/tags/agents/a/step-1"]
    assert git(repo, "log", "--format=%H", "origin/agents/a").split() == history(source, "agents/a")[::2]
    fsck(repo)

    results = {r.agent_id: r.status for r in repo.fetch("origin")}
    assert results == {"a": TransferStatus.UP_TO_DATE, "b": TransferStatus.NEW}
    git(path, "update-ref", "refs/heads/agents/a", "agents/a~1")  # rewritten on the server
    git(path, "update-ref", "-d", "refs/heads/agents/b")
    results = {r.agent_id: r.status for r in repo.fetch("origin")}
    assert results == {"a": TransferStatus.FORCED, "b": TransferStatus.DELETED}
    assert git(repo, "for-each-ref", "--format=%(refname)").split() == [
        "refs/remotes/origin/agents/a", "refs/remotes/origin/tags/agents/a/step-1"]
    with pytest.raises(AgentNotFoundError, match="'b'"):
        repo.fetch("origin", ["b"])


def test_names_travel_with_their_agent(server: Server, repo: StateRepository) -> None:
    url, path = server.new()
    agent(repo, "n", 3, name_at=1)
    repo.remote_add("origin", url)
    repo.push("origin", tags=False)
    assert git(path, "tag", "-l").split() == []
    [result] = repo.push("origin")
    assert result.status is TransferStatus.UPDATED and result.old == result.new
    assert git(path, "tag", "-l").split() == ["agents/n/step-1"]
    # a name pointing elsewhere on the remote needs force to move
    git(path, "update-ref", "refs/tags/agents/n/step-1", repo.resolve("n", "latest").commit)
    with pytest.raises(PushRejectedError, match="'step-1'"):
        repo.push("origin")
    repo.push("origin", force=True)
    assert git(path, "rev-parse", "agents/n/step-1") == git(repo, "rev-parse", "agents/n/step-1")


def test_pull_adds_missing_names_and_keeps_differing_ones(repo: StateRepository, tmp_path: Path) -> None:
    server = bare(tmp_path / "server.git")
    agent(repo, "n", 2, name_at=1)
    repo.remote_add("origin", str(server))
    repo.push("origin")
    copy = StateRepository.clone(str(server), tmp_path / "copy.git")
    step_1, latest = repo.resolve("n", "step-1").commit, repo.latest("n").commit
    assert copy.resolve("n", "step-1").commit == step_1
    repo.tag("n", "final")
    repo.push("origin")
    git(server, "update-ref", "refs/tags/agents/n/step-1", latest)

    [result] = copy.pull("origin")

    assert result.status is TransferStatus.UP_TO_DATE
    assert result.reason == "kept the local name(s) 'step-1' (they differ on origin)"
    assert copy.resolve("n", "final").commit == latest
    assert copy.resolve("n", "step-1").commit == step_1
    fsck(copy)


@pytest.mark.parametrize("deny", [True, False])
def test_a_rewritten_history_needs_force_and_a_strict_server_refuses_it(
        net_server: Server, repo: StateRepository, deny: bool) -> None:
    url, path = net_server.new(**({"receive.denyNonFastForwards": "true"} if deny else {}))
    agent(repo, "rewritten", 3)
    rewritten_head = repo.latest("rewritten")
    steady = agent(repo, "steady", 1)
    repo.remote_add("origin", url)
    repo.push("origin")
    server_head = git(path, "rev-parse", "agents/rewritten")
    repo.prune("rewritten", RetentionPolicy(keep_last=2))  # new commits, same checkpoint ids
    assert repo.latest("rewritten").checkpoint_id == rewritten_head.checkpoint_id
    grow(steady)
    repo.save(steady)

    with pytest.raises(PushRejectedError, match=r"rewritten \(e.g. by retention\).*push with force") as caught:
        repo.push("origin")
    statuses = {r.agent_id: r.status for r in caught.value.results}
    assert statuses == {"rewritten": TransferStatus.REJECTED, "steady": TransferStatus.UPDATED}
    assert git(path, "rev-parse", "agents/steady") == git(repo, "rev-parse", "agents/steady")
    assert git(path, "rev-parse", "agents/rewritten") == server_head

    if deny:
        with pytest.raises(PushRejectedError, match="non-fast-forward") as caught:
            repo.push("origin", force=True)
        [refused, up_to_date] = caught.value.results
        assert (refused.agent_id, refused.status) == ("rewritten", TransferStatus.REJECTED)
        assert "refused by origin" in (refused.reason or "") and refused.new == server_head.strip()
        assert up_to_date.status is TransferStatus.UP_TO_DATE
        assert git(path, "rev-parse", "agents/rewritten") == server_head
        assert git(repo, "rev-parse", "origin/agents/rewritten") == server_head
    else:
        results = repo.push("origin", force=True)
        assert [r.status for r in results] == [TransferStatus.FORCED, TransferStatus.UP_TO_DATE]
        assert git(path, "rev-parse", "agents/rewritten") == git(repo, "rev-parse", "agents/rewritten")
    fsck(path)
    fsck(repo)


def test_hooks_refuse_per_agent_and_the_rest_is_pushed(net_server: Server, repo: StateRepository) -> None:
    url, path = net_server.new()
    hook(path, "update", 'case "$1" in refs/heads/agents/blocked) echo "no: $1" >&2; exit 1;; esac\n')
    for agent_id in ("blocked", "fine"):
        agent(repo, agent_id, 2)
    repo.remote_add("origin", url)

    with pytest.raises(PushRejectedError) as caught:
        repo.push("origin")

    results = {r.agent_id: r for r in caught.value.results}
    assert results["blocked"].status is TransferStatus.REJECTED
    assert "hook declined" in (results["blocked"].reason or "")
    assert results["fine"].status is TransferStatus.NEW
    assert history(path, "agents/fine") == history(repo, "agents/fine")
    assert git(path, "for-each-ref", "refs/heads/agents/blocked") == ""
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/remotes").split() == [
        "refs/remotes/origin/agents/fine"]

    hook(path, "pre-receive", "echo 'repository is read-only' >&2; exit 1\n")
    agent(repo, "late", 1)
    with pytest.raises(PushRejectedError, match="pre-receive hook declined") as caught:
        repo.push("origin", ["late"])
    assert [r.status for r in caught.value.results] == [TransferStatus.REJECTED]
    assert git(path, "for-each-ref", "refs/heads/agents/late") == ""
    fsck(path)


def test_two_hundred_agents_travel_in_one_connection(net_server: Server, repo: StateRepository,
                                                     tmp_path: Path) -> None:
    url, path = net_server.new()
    ids = [f"agent-{i:03d}" for i in range(200)]
    for agent_id in ids:
        repo.save(AgentState(agent_id=agent_id, iteration=1))
    repo.remote_add("origin", url)

    results = repo.push("origin")

    assert len(results) == 200 and {r.status for r in results} == {TransferStatus.NEW}
    assert net_server.sessions("receive-pack") == 1
    if net_server.http:
        assert net_server.http.requests.count("GET /server.git/info/refs?service=git-receive-pack") == 1
    assert len(git(path, "for-each-ref", "refs/heads/agents").splitlines()) == 200
    fsck(path)

    clone = StateRepository.clone(url, tmp_path / "clone.git")
    assert [a.agent_id for a in clone.agents()] == ids
    assert net_server.sessions("upload-pack") <= 2  # protocol v2 over HTTP: ls-refs, then fetch
    if net_server.http:
        assert net_server.http.requests.count("GET /server.git/info/refs?service=git-upload-pack") == 1


def test_progress_is_reported(net_server: Server, repo: StateRepository, tmp_path: Path) -> None:
    url, _ = net_server.new()
    agent(repo, "p", 3)
    repo.remote_add("origin", url)
    pushed: list[str] = []
    repo.push("origin", progress=pushed.append)
    assert any("objects" in text for text in pushed), pushed
    cloned: list[str] = []
    StateRepository.clone(url, tmp_path / "c.git", progress=cloned.append)
    assert any("objects" in text.lower() for text in cloned), cloned


def test_credentials_never_show(tmp_path: Path, repo: StateRepository,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "srv"
    root.mkdir()
    bare(root / "server.git", **{"http.receivepack": "true"})
    http = GitHttpServer(root, credentials=("user", "s3cr3t-pw"))
    seen: list[str] = []
    try:
        agent(repo, "c", 2)
        remote = repo.remote_add("origin", http.url("server.git", "user:s3cr3t-pw"))
        seen += [repr(remote), repr(repo.remotes())]
        assert repo.remotes()[0].url == f"http://user:***@127.0.0.1:{http.port}/server.git"
        results = repo.push("origin", progress=seen.append)
        seen += [repr(results), repr(repo.fetch("origin", progress=seen.append))]
        assert http.authorizations and all(http.authorizations)  # the credentials were used
        clone = StateRepository.clone(http.url("server.git", "user:s3cr3t-pw"), tmp_path / "c.git")
        seen.append(repr(clone.remotes()))

        repo.remote_add("wrong", http.url("server.git", "user:wrong-s3cr3t-pw"))
        with pytest.raises(RemoteError) as refused:
            repo.push("wrong")
        seen.append(str(refused.value))
        assert "user:***@" in str(refused.value)
    finally:
        http.stop()
    repo.remote_add("down", http.url("server.git", "user:s3cr3t-pw"))  # nothing listens there now
    with pytest.raises(RemoteError) as unreachable:
        repo.fetch("down")
    seen.append(str(unreachable.value))
    assert unreachable.value.__cause__ is None and unreachable.value.__context__ is None
    repo.remote_add("token", http.url("server.git", "s3cr3t-token"))  # a token as the user name
    with pytest.raises(RemoteError) as unreachable:
        repo.push("token")
    assert "http://***@127.0.0.1" in str(unreachable.value)
    seen += [str(unreachable.value), repr(repo.remotes())]
    seen += [record.getMessage() for record in caplog.records]
    assert not [text for text in seen if "s3cr3t" in text]


def test_bad_input_is_refused_before_any_change(tmp_path: Path, repo: StateRepository) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    daemon = GitDaemon(root)
    try:
        bare(root / "server.git")
        agent(repo, "x", 1)
        repo.remote_add("origin", daemon.url("server.git"))
        before = snapshot(repo)
        with pytest.raises(RemoteExistsError):
            repo.remote_add("origin", "/elsewhere")
        for name in ("", "-x", "a b", "a/b", "..", None):
            with pytest.raises(InvalidArgumentError):
                repo.remote_add(name, "/elsewhere")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            repo.remote_add("new", "")
        with pytest.raises(RemoteNotFoundError, match="remote_add"):
            repo.push("nowhere")
        with pytest.raises(AgentNotFoundError):
            repo.push("origin", ["x", "missing"])
        with pytest.raises(InvalidArgumentError, match="exactly one"):
            repo.pull("origin", ["x", "y"], into="z")
        assert daemon.sessions("receive-pack") == daemon.sessions("upload-pack") == 0
        with pytest.raises(AgentNotFoundError, match="no agent 'ghost'"):
            repo.pull("origin", ["ghost"])
        assert snapshot(repo) == before
        with pytest.raises(InvalidArgumentError, match="not an empty folder"):
            StateRepository.clone(daemon.url("server.git"), repo.path)
        with pytest.raises(RemoteError):
            StateRepository.clone(daemon.url("missing.git"), tmp_path / "new.git")
        assert not (tmp_path / "new.git").exists()
        (tmp_path / "empty").mkdir()
        with pytest.raises(RemoteError):
            StateRepository.clone(daemon.url("missing.git"), tmp_path / "empty")
        assert os.listdir(tmp_path / "empty") == []
    finally:
        daemon.stop()


def test_remotes_live_in_git_config_and_stock_git_uses_them(tmp_path: Path, repo: StateRepository) -> None:
    server = bare(tmp_path / "server.git")
    agent(repo, "s", 2, name_at=1)
    repo.remote_add("origin", str(server))
    repo.remote_add("backup", f"file://{tmp_path / 'backup.git'}")
    assert [(r.name, r.url) for r in repo.remotes()] == [
        ("backup", f"file://{tmp_path / 'backup.git'}"), ("origin", str(server))]
    git(repo, "push", "origin")  # stock git pushes exactly the agent refs
    assert git(server, "for-each-ref", "--format=%(refname)").split() == [
        "refs/heads/agents/s", "refs/tags/agents/s/step-1"]
    git(repo, "fetch", "origin")
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/remotes").split() == [
        "refs/remotes/origin/agents/s", "refs/remotes/origin/tags/agents/s/step-1"]
    assert [r.status for r in repo.fetch("origin")] == [TransferStatus.UP_TO_DATE]

    repo.remote_remove("origin")
    assert [r.name for r in repo.remotes()] == ["backup"]
    assert "origin" not in git(repo, "remote")
    assert git(repo, "for-each-ref", "refs/remotes") == ""
    with pytest.raises(RemoteNotFoundError):
        repo.remote_remove("origin")
    fsck(repo)


def test_remote_remove_leaves_the_refs_another_tool_wrote_under_the_remote(tmp_path: Path,
                                                                          repo: StateRepository) -> None:
    # a stock git fetch writes refs/remotes/origin/main: removing the remote raised IndexError
    server = bare(tmp_path / "server.git")
    agent(repo, "s", 2, name_at=1)
    repo.remote_add("origin", str(server))
    repo.push("origin")
    repo.fetch("origin")
    git(repo, "update-ref", "refs/remotes/origin/main", "refs/remotes/origin/agents/s")
    repo.remote_remove("origin")
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/remotes") == "refs/remotes/origin/main\n"
    assert git(repo, "remote") == ""
    fsck(repo)


def test_remote_rename_moves_config_and_tracking_refs(tmp_path: Path, repo: StateRepository) -> None:
    server = bare(tmp_path / "server.git")
    agent(repo, "s", 2, name_at=1)
    agent(repo, "t", 1)
    repo.remote_add("origin", str(server))
    repo.remote_add("backup", str(server))
    repo.push("origin")
    repo.fetch("origin")
    tracked = git(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin")
    before = snapshot(repo)
    with pytest.raises(RemoteNotFoundError, match="'nosuch'"):
        repo.remote_rename("nosuch", "x")
    with pytest.raises(RemoteExistsError, match="'backup'"):
        repo.remote_rename("origin", "backup")
    with pytest.raises(InvalidArgumentError):
        repo.remote_rename("origin", "a/b")
    assert snapshot(repo) == before

    # a rename killed halfway: one tracking ref moved, the config not yet changed
    git(repo, "update-ref", "refs/remotes/upstream/agents/s", "refs/remotes/origin/agents/s")
    git(repo, "update-ref", "-d", "refs/remotes/origin/agents/s")
    assert repo.remote_rename("origin", "upstream").name == "upstream"  # run again: finishes it
    assert git(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/upstream") == \
        tracked.replace("refs/remotes/origin/", "refs/remotes/upstream/")
    assert git(repo, "for-each-ref", "refs/remotes/origin") == ""
    assert git(repo, "remote").split() == ["backup", "upstream"]
    assert git(repo, "config", "--get-all", "remote.upstream.fetch").split() == [
        "+refs/heads/agents/*:refs/remotes/upstream/agents/*",
        "+refs/tags/agents/*:refs/remotes/upstream/tags/agents/*"]
    git(repo, "fetch", "upstream")  # stock git fetches into the renamed tracking refs
    assert [r.status for r in repo.fetch("upstream")] == [TransferStatus.UP_TO_DATE] * 2
    fsck(repo)


def test_remote_set_url_changes_the_url_only(tmp_path: Path, repo: StateRepository) -> None:
    agent(repo, "s", 1)
    repo.remote_add("origin", str(bare(tmp_path / "old.git")))
    repo.push("origin")
    before = snapshot(repo)
    with pytest.raises(RemoteNotFoundError):
        repo.remote_set_url("nosuch", str(tmp_path / "new.git"))
    with pytest.raises(InvalidArgumentError):
        repo.remote_set_url("origin", "")
    assert snapshot(repo) == before
    changed = repo.remote_set_url("origin", "https://me:s3cr3t@git.example.com/fleet.git")
    assert changed.url == "https://me:***@git.example.com/fleet.git" == repo.remotes()[0].url
    assert "s3cr3t" not in repr(changed)
    new = bare(tmp_path / "new.git")
    repo.remote_set_url("origin", str(new))
    assert git(repo, "remote", "get-url", "origin").strip() == str(new)
    assert [r.status for r in repo.push("origin")] == [TransferStatus.NEW]
    assert git(new, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/agents/s"]


def test_pull_beside_a_concurrent_writer_loses_no_save(tmp_path: Path, repo: StateRepository) -> None:
    server = bare(tmp_path / "server.git")
    source = StateRepository.init(tmp_path / "source.git")
    source.remote_add("origin", str(server))
    repo.remote_add("origin", str(server))
    state = agent(source, "busy", 1)
    source.push("origin")
    repo.pull("origin")
    local = state.model_copy(deep=True)
    saved: list[str] = []
    go = threading.Event()

    def writer() -> None:
        go.wait()
        for _ in range(10):
            saved.append(repo.save(grow(local)).commit)

    thread = threading.Thread(target=writer)
    thread.start()
    go.set()
    statuses = set()
    while thread.is_alive():
        source.save(grow(state))
        source.push("origin")
        try:
            statuses |= {r.status for r in repo.pull("origin")}
        except DivergedError as exc:
            statuses |= {r.status for r in exc.results}
    thread.join()
    assert statuses <= {TransferStatus.UPDATED, TransferStatus.DIVERGED}
    assert len(saved) == 10 and set(saved) <= set(history(repo, "agents/busy")[::2])
    assert repo.latest("busy").commit == saved[-1]
    fsck(repo)


def test_no_pruning_gc_runs_while_a_fetch_lands_its_objects(net_server: Server, repo: StateRepository,
                                                            tmp_path: Path) -> None:
    url, _ = net_server.new()
    agent(repo, "f", 3)
    repo.remote_add("origin", url)
    repo.push("origin")
    copy = StateRepository.init(tmp_path / "copy.git")
    copy.remote_add("origin", url)
    during: list[bool] = []

    def progress(text: str) -> None:  # called while the pack arrives, before any ref names it
        if not during:
            during.append(StateRepository.open(copy.path).gc(prune=True, grace_seconds=0).skipped)

    copy.fetch("origin", progress=progress)
    assert during == [True]
    assert not copy.gc(prune=True, grace_seconds=0).skipped  # once the fetch is over
    assert history(copy.path, "refs/remotes/origin/agents/f") == history(repo.path, "refs/heads/agents/f")
    fsck(copy)
