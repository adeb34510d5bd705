"""StateRepository: save, load, resolve, log, agents, tag; checked with the real git binary."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import pytest
from dulwich.objects import Blob, Commit, Tree
from pydantic import BaseModel

from conftest import fsck, git, grow, snapshot
from gitstate import (AgentNotFoundError, AgentState, AgentStatus, AmbiguousRevisionError, Checkpoint,
                      InvalidNameError, InvalidStateError, RevisionNotFoundError,
                      StateRepository)
from gitstate.codec import encode
from gitstate.ids import branch_ref


def run(repo: StateRepository, agent_id: str = "auditor", steps: int = 5, **kw) -> list[Checkpoint]:
    state = AgentState(agent_id=agent_id, agent_name="Auditor", task="audit the payment service")
    state.start()
    saved = []
    for _ in range(steps):
        grow(state)
        saved.append(repo.save(state, **kw))
    return saved


def test_save_creates_one_commit_per_checkpoint_on_the_agent_branch(repo: StateRepository) -> None:
    saved = run(repo, steps=5)
    log = git(repo, "log", "--format=%H", "agents/auditor").split()
    assert log == [c.commit for c in reversed(saved)]
    assert git(repo, "ls-tree", "--name-only", "agents/auditor") == "state.json\n"
    fsck(repo)


def test_git_log_shows_trailers_and_author(repo: StateRepository) -> None:
    saved = run(repo, steps=4)
    iterations = git(repo, "log", "--format=%(trailers:key=Iteration,valueonly)", "agents/auditor")
    assert [int(x) for x in iterations.split()] == [4, 3, 2, 1]
    ids = git(repo, "log", "--format=%(trailers:key=Checkpoint-Id,valueonly)", "agents/auditor")
    assert ids.split() == [c.checkpoint_id for c in reversed(saved)]
    fields = git(repo, "log", "-1", "--format=%an|%(trailers:key=Status,valueonly,separator=)|"
                 "%(trailers:key=Agent-Id,valueonly,separator=)", "agents/auditor")
    assert fields.strip() == "auditor|running|auditor"
    # the message is a summary line, a blank line and only trailers
    body = git(repo, "log", "-1", "--format=%B", "agents/auditor").rstrip("\n").split("\n")
    assert body[1] == "" and all(": " in line for line in body[2:])


def test_git_show_is_byte_identical_to_canonical_load(repo: StateRepository) -> None:
    run(repo, steps=6)
    shown = subprocess.run(["git", "--git-dir", repo.path, "show", "agents/auditor~2:state.json"],
                           capture_output=True, check=True).stdout
    loaded = repo.load("auditor", "latest~2")
    assert shown == encode(loaded.model_dump(mode="json"))
    assert loaded.iteration == 4


def test_bare_clone_opens_and_loads(repo: StateRepository, tmp_path: Path) -> None:
    saved = run(repo, steps=3, name=None)
    repo.tag("auditor", "baseline", "latest~1")
    subprocess.run(["git", "clone", "-q", "--bare", repo.path, str(tmp_path / "copy.git")], check=True)
    copy = StateRepository.open(tmp_path / "copy.git")
    assert copy.load("auditor").iteration == 3
    assert copy.load("auditor", "baseline").iteration == 2
    assert copy.latest("auditor").checkpoint_id == saved[-1].checkpoint_id
    copy.save(grow(copy.load("auditor")))  # packed refs from the clone are updated correctly
    assert [c.iteration for c in copy.log("auditor")] == [4, 3, 2, 1]
    fsck(copy)


def test_revisions_all_resolve_to_the_same_checkpoint(repo: StateRepository) -> None:
    saved = run(repo, steps=5)
    target = saved[1]
    repo.tag("auditor", "after-recon", target.commit)
    for rev in [target.commit, target.commit[:7], target.commit[:12].upper(), target.checkpoint_id,
                "after-recon", "latest~3", "latest^^^", f"{saved[3].commit}~2", "after-recon~0",
                f"{saved[2].checkpoint_id}~1", f"{saved[2].commit[:9]}^"]:
        assert repo.resolve("auditor", rev).commit == target.commit, rev
    assert repo.resolve("auditor", None) == repo.resolve("auditor", "latest") == repo.latest("auditor")
    assert repo.resolve("auditor", "after-recon").names == ("after-recon",)


def test_load_returns_model_or_dict(repo: StateRepository) -> None:
    run(repo, steps=2)
    state = repo.load("auditor")
    assert isinstance(state, AgentState) and state.status == AgentStatus.RUNNING.value
    assert repo.load("auditor", model=None)["iteration"] == 2

    class Slim(BaseModel):
        agent_id: str
        iteration: int

    assert repo.load("auditor", "latest~1", model=Slim) == Slim(agent_id="auditor", iteration=1)


def test_plain_mapping_and_other_models_can_be_saved(repo: StateRepository) -> None:
    class Planner(BaseModel):
        agent_id: str
        plan: list[str]
        when: datetime

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    repo.save(Planner(agent_id="planner", plan=["a", "b"], when=when))
    assert repo.load("planner", model=Planner).when == when
    cp = repo.save({"notes": ["x"], "score": 0.5}, agent_id="notes-1")
    assert cp.iteration is None and cp.status is None
    assert repo.load("notes-1", model=None) == {"agent_id": "notes-1", "notes": ["x"], "score": 0.5}


def test_agent_id_override_is_written_into_the_state(repo: StateRepository) -> None:
    state = AgentState(agent_id="original")
    repo.save(state, agent_id="renamed")
    assert repo.load("renamed").agent_id == "renamed"
    assert [a.agent_id for a in repo.agents()] == ["renamed"]


def test_names_tag_checkpoints(repo: StateRepository) -> None:
    cp = run(repo, steps=1, name="first")[0]
    assert cp.names == ("first",)
    assert git(repo, "rev-parse", "agents/auditor/first").strip() == cp.commit
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/tags").split() == [
        "refs/tags/agents/auditor/first"]
    later = repo.tag("auditor", "reviewed")
    assert later.names == ("first", "reviewed")


def test_untag_deletes_a_name_and_keeps_its_checkpoint(repo: StateRepository) -> None:
    first = run(repo, steps=1, name="first")[0]
    run(repo, steps=1)
    second = repo.tag("auditor", "reviewed")
    git(repo, "pack-refs", "--all")  # a packed name is deleted from packed-refs too
    assert repo.untag("auditor", "first") == first.commit
    assert repo.names("auditor") == {"reviewed": second.commit}
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/tags").split() == [
        "refs/tags/agents/auditor/reviewed"]
    assert repo.load("auditor", first.commit).iteration == first.iteration
    assert repo.tag("auditor", "first", first.commit).names == ("first",)  # free to name again
    before = snapshot(repo)
    with pytest.raises(RevisionNotFoundError, match="no checkpoint named 'nosuch'"):
        repo.untag("auditor", "nosuch")
    with pytest.raises(AgentNotFoundError):
        repo.untag("nobody", "first")
    with pytest.raises(InvalidNameError):
        repo.untag("auditor", "../x")
    assert snapshot(repo) == before
    fsck(repo)


def test_custom_time_message_and_trailers(repo: StateRepository) -> None:
    when = datetime(2025, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    cp = repo.save(AgentState(agent_id="a"), time=when, message="before\nthe deploy",
                   trailers={"Task-Id": "task-42"})
    assert cp.created == when and cp.created.tzinfo == timezone.utc
    assert cp.message == "before the deploy" and cp.trailers["Task-Id"] == "task-42"
    assert git(repo, "log", "-1", "--format=%ad|%s|%(trailers:key=Task-Id,valueonly)",
               "--date=iso-strict", "agents/a").strip() == "2025-06-01T10:30:00+00:00|before the deploy|task-42"


def test_log_filters_and_limit(repo: StateRepository) -> None:
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    state = AgentState(agent_id="w")
    for i in range(10):
        grow(state)
        state.status = AgentStatus.COMPLETED.value if i % 3 == 0 else AgentStatus.RUNNING.value
        repo.save(state, time=base + timedelta(hours=i))
    assert [c.iteration for c in repo.log("w", limit=3)] == [10, 9, 8]
    assert [c.iteration for c in repo.log("w", status="completed")] == [10, 7, 4, 1]
    assert [c.iteration for c in repo.log("w", before=base + timedelta(hours=3))] == [3, 2, 1]
    assert [c.iteration for c in repo.log("w", since=base + timedelta(hours=8))] == [10, 9]
    assert repo.log("w", limit=0) == []
    assert len(repo.log("w")) == 10


def test_log_is_streaming(repo: StateRepository) -> None:
    """limit=20 reads about 20 commits: older commits are not even looked at."""
    run(repo, steps=40)
    commits = git(repo, "rev-list", "agents/auditor").split()
    for sha in commits[21:]:  # delete the objects of the 19 oldest checkpoints
        (Path(repo.path) / "objects" / sha[:2] / sha[2:]).unlink()
    assert len(repo.log("auditor", limit=20)) == 20


def test_agents_lists_every_agent_with_its_head(repo: StateRepository) -> None:
    heads = {agent: run(repo, agent, steps=n)[-1] for agent, n in [("b", 2), ("a", 3), ("c.d-e_f", 1)]}
    listed = repo.agents()
    assert [a.agent_id for a in listed] == ["a", "b", "c.d-e_f"]
    assert all(a.head == heads[a.agent_id] for a in listed)
    assert StateRepository.init(Path(repo.path).parent / "empty.git").agents() == []


def test_heads_lists_every_agent_with_its_head_commit_from_refs_alone(repo: StateRepository) -> None:
    for agent, n in [("b", 2), ("a", 3), ("c.d-e_f", 1)]:
        run(repo, agent, steps=n)
    repo.tag("a", "kept")
    git(repo, "pack-refs", "--all")  # packed and loose refs alike
    run(repo, "b", steps=1)
    heads = repo.heads()
    assert list(heads) == ["a", "b", "c.d-e_f"]
    assert heads == {a.agent_id: a.head.commit for a in repo.agents()}
    assert heads == {ref.split("/", 3)[3]: sha for sha, ref in
                     (line.split() for line in git(repo, "for-each-ref", "--format=%(objectname) %(refname)",
                                                   "refs/heads/agents/").splitlines())}
    for sha in heads.values():  # heads reads no commit: they may all be gone
        (Path(repo.path) / "objects" / sha[:2] / sha[2:]).unlink(missing_ok=True)
    for pack in Path(repo.path, "objects", "pack").glob("*"):
        pack.unlink()
    assert repo.heads() == heads


def test_init_is_idempotent_and_configures_the_repo(repo: StateRepository) -> None:
    run(repo, steps=1)
    again = StateRepository.init(repo.path)
    assert again.load("auditor").iteration == 1
    assert git(repo, "config", "gc.auto").strip() == "0"
    assert git(repo, "rev-parse", "--is-bare-repository").strip() == "true"


def test_durable_mode_saves_and_loads(tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "d.git", durable=True)
    run(repo, steps=3)
    assert StateRepository.open(tmp_path / "d.git").load("auditor").iteration == 3
    fsck(repo)


def _chain_with_colliding_prefix(repo: StateRepository) -> tuple[str, str]:
    """Write a real chain of commits in which two SHAs share their first 7 hex digits."""
    store = repo._core.store
    blob = Blob.from_string(encode({"agent_id": "x"}))
    tree = Tree()
    tree.add(b"state.json", 0o100644, blob.id)
    store.write(blob)
    store.write(tree)

    def commit(parent: bytes | None, salt: int) -> Commit:
        c = Commit()
        c.tree, c.parents = tree.id, [parent] if parent else []
        c.author = c.committer = b"x <x@gitstate>"
        c.author_time = c.commit_time = 1_700_000_000
        c.author_timezone = c.commit_timezone = 0
        c.message = b"x\n\nAgent-Id: x\nSalt: %d\n" % salt
        return c

    seen: dict[bytes, bytes] = {}
    parent = None
    for i in range(2048):
        c = commit(parent, i)
        store.write(c)
        seen[c.id[:7]] = c.id
        parent = c.id
    # brute-force one more commit on top whose prefix matches an earlier one (hashing its raw
    # form with the salt swapped in: building each candidate with dulwich is ten times slower)
    salt = 2048
    head = commit(parent, salt).as_raw_string()[:-len(b"%d\n" % salt)]
    while True:
        raw = head + b"%d\n" % salt
        sha = hashlib.sha1(b"commit %d\x00" % len(raw) + raw).hexdigest().encode()
        if sha[:7] in seen:
            break
        salt += 1
    c = commit(parent, salt)
    assert c.id == sha
    store.write(c)
    (Path(repo.path) / branch_ref("x").decode()).parent.mkdir(parents=True, exist_ok=True)
    (Path(repo.path) / branch_ref("x").decode()).write_bytes(c.id + b"\n")
    return c.id.decode(), seen[c.id[:7]].decode()


def test_ambiguous_abbreviation_lists_candidates(repo: StateRepository) -> None:
    newer, older = _chain_with_colliding_prefix(repo)
    with pytest.raises(AmbiguousRevisionError) as info:
        repo.resolve("x", newer[:7])
    assert sorted(info.value.candidates) == sorted([newer, older])
    assert newer in str(info.value) and older in str(info.value)
    longer = next(n for n in range(8, 41) if newer[:n] != older[:n])
    assert repo.resolve("x", newer[:longer]).commit == newer


def test_schema_version_trailer_and_migration_hook(repo: StateRepository) -> None:
    class V1(BaseModel):
        agent_id: str
        name: str

    class V2(BaseModel):
        schema_version: ClassVar[int] = 2
        agent_id: str
        first: str
        last: str

        @classmethod
        def migrate(cls, data: dict, from_version: int) -> dict:
            first, last = data.pop("name").split(" ", 1)
            return {**data, "first": first, "last": last}

    cp = repo.save(V1(agent_id="person", name="Ada Lovelace"))
    assert cp.schema_version == 1
    assert repo.load("person", model=V2) == V2(agent_id="person", first="Ada", last="Lovelace")
    assert repo.save(repo.load("person", model=V2)).trailers["Schema-Version"] == "2"
    with pytest.warns(UserWarning, match="schema version 2"), pytest.raises(InvalidStateError):
        repo.load("person", model=V1)  # no migrate() going back: warned, then validated


def test_count_and_names_agree_with_git(repo: StateRepository) -> None:
    saved = run(repo, steps=4)
    repo.tag("auditor", "first", saved[0].commit)
    repo.tag("auditor", "third", "latest~1")
    run(repo, agent_id="other", steps=2)
    assert repo.count("auditor") == int(git(repo, "rev-list", "--count", "--first-parent",
                                            "agents/auditor"))
    assert repo.count("other") == 2
    listed = git(repo, "for-each-ref", "--format=%(refname:lstrip=4) %(objectname)",
                 "refs/tags/agents/auditor/")
    assert repo.names("auditor") == dict(line.split() for line in listed.splitlines())
    assert repo.names("auditor") == {"first": saved[0].commit, "third": saved[2].commit}
    assert repo.names("other") == {}
    with pytest.raises(AgentNotFoundError):
        repo.count("nobody")
    with pytest.raises(AgentNotFoundError):
        repo.names("nobody")
