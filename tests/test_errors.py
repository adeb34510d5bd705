"""Every error is typed, names what was wrong, and leaves the repository exactly as it was."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from conftest import fsck, snapshot
from gitstate import (
    AgentNotFoundError,
    AgentState,
    CorruptObjectError,
    EncodingError,
    GitstateError,
    InvalidAgentIdError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    NameTakenError,
    NotARepositoryError,
    RevisionNotFoundError,
    StateRepository,
)


@pytest.fixture
def filled(repo: StateRepository) -> StateRepository:
    state = AgentState(agent_id="a1")
    for i in range(3):
        state.increment_iteration()
        repo.save(state, name="first" if i == 0 else None)
    return repo


def unchanged(repo: StateRepository, call, error: type[GitstateError], *words: str) -> GitstateError:
    before = snapshot(repo)
    with pytest.raises(error) as info:
        call()
    assert snapshot(repo) == before
    for word in words:
        assert word in str(info.value)
    return info.value


@pytest.mark.parametrize("bad", ["", ".hidden", "-dash", "a b", "a/b", "x.lock", "a..b", "tab\t",
                                 "ü", "a~1", "a:b", "x" * 129, 42])
def test_invalid_agent_ids(filled: StateRepository, bad: object) -> None:
    unchanged(filled, lambda: filled.save(AgentState(), agent_id=bad), InvalidAgentIdError, "agent id")
    # (reading, a/b names remote a's agent b as last fetched: docs/merging.md)
    unchanged(filled, lambda: filled.load(bad), AgentNotFoundError if bad == "a/b" else InvalidAgentIdError)


@pytest.mark.parametrize("good", ["a", "A-1", "agent_1f2e", "x" * 128, "v1.2", "_private"])
def test_valid_agent_ids(repo: StateRepository, good: str) -> None:
    assert repo.save({}, agent_id=good).agent_id == good


def test_state_without_agent_id(filled: StateRepository) -> None:
    unchanged(filled, lambda: filled.save({"iteration": 1}), InvalidAgentIdError, "agent id must be a string")


def test_unknown_agent(filled: StateRepository) -> None:
    for call in (lambda: filled.load("ghost"), lambda: filled.log("ghost"),
                 lambda: filled.resolve("ghost", "latest"), lambda: filled.tag("ghost", "n")):
        unchanged(filled, call, AgentNotFoundError, "ghost")


@pytest.mark.parametrize("rev", ["nope", "latest~3", "first~1", "0000000", "deadbeefdeadbeef",
                                 "01a214ad-5f8f-779d-ab3b-2f767a895c66", "~~x", "a b"])
def test_unknown_revisions(filled: StateRepository, rev: str) -> None:
    unchanged(filled, lambda: filled.load("a1", rev), RevisionNotFoundError, repr(rev).strip("'")[:4])


def test_revision_of_another_agent_is_not_found(filled: StateRepository) -> None:
    other = filled.save({"agent_id": "a2"})
    unchanged(filled, lambda: filled.load("a1", other.commit), RevisionNotFoundError)
    unchanged(filled, lambda: filled.load("a1", other.checkpoint_id), RevisionNotFoundError)


def test_name_taken_is_never_overwritten(filled: StateRepository) -> None:
    first = filled.resolve("a1", "first")
    unchanged(filled, lambda: filled.save(AgentState(agent_id="a1"), name="first"), NameTakenError, "first")
    unchanged(filled, lambda: filled.tag("a1", "first", "latest"), NameTakenError, "first")
    assert filled.resolve("a1", "first") == first


@pytest.mark.parametrize("name", ["latest", "HEAD", "has space", "x.lock", "-x", "a/b", ""])
def test_invalid_names(filled: StateRepository, name: str) -> None:
    unchanged(filled, lambda: filled.save(AgentState(agent_id="a1"), name=name), InvalidNameError)


@pytest.mark.parametrize(("state", "path"), [
    ({"agent_id": "a1", "score": math.nan}, "$.score"),
    ({"agent_id": "a1", "messages": [{"content": "ok"}, {"content": {1, 2}}]}, "$.messages[1].content"),
    ({"agent_id": "a1", "blob": b"\x00"}, "$.blob"),
    ({"agent_id": "a1", "ids": {3: "x"}}, "$.ids"),
])
def test_unencodable_states(filled: StateRepository, state: dict, path: str) -> None:
    error = unchanged(filled, lambda: filled.save(state), EncodingError, path)
    assert error.path == path


def test_bad_arguments(filled: StateRepository) -> None:
    from datetime import datetime
    unchanged(filled, lambda: filled.save(AgentState(agent_id="a1"), time=datetime(2026, 1, 1)),
              InvalidArgumentError, "timezone-aware")
    unchanged(filled, lambda: filled.save(["not", "a", "mapping"]), InvalidArgumentError, "list")
    unchanged(filled, lambda: filled.save(AgentState(agent_id="a1"), trailers={"Iteration": "5"}),
              InvalidArgumentError, "Iteration")
    unchanged(filled, lambda: filled.save(AgentState(agent_id="a1"), trailers={"Bad Key": "x"}),
              InvalidArgumentError, "Bad Key")
    unchanged(filled, lambda: filled.log("a1", limit=-1), InvalidArgumentError, "limit")


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(NotARepositoryError, match="does not exist"):
        StateRepository.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepositoryError, match="not a git repository"):
        StateRepository.open(tmp_path / "plain")
    subprocess.run(["git", "init", "-q", str(tmp_path / "work")], check=True)
    with pytest.raises(NotARepositoryError, match="bare"):
        StateRepository.open(tmp_path / "work")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(NotARepositoryError, match="not empty"):
        StateRepository.init(tmp_path / "full")
    assert os.listdir(tmp_path / "full") == ["notes.txt"]


def _object_file(repo: StateRepository, sha: str) -> Path:
    return Path(repo.path) / "objects" / sha[:2] / sha[2:]


def test_corrupt_and_missing_objects(filled: StateRepository) -> None:
    blob = subprocess.run(["git", "--git-dir", filled.path, "rev-parse", "agents/a1:state.json"],
                          capture_output=True, text=True, check=True).stdout.strip()
    path = _object_file(filled, blob)
    path.chmod(0o644)
    path.write_bytes(b"garbage, not zlib")
    unchanged(filled, lambda: filled.load("a1"), CorruptObjectError, blob)
    path.unlink()
    unchanged(filled, lambda: filled.load("a1"), CorruptObjectError, blob, "missing")


def test_state_that_does_not_fit_the_model(filled: StateRepository) -> None:
    filled.save({"agent_id": "odd", "iteration": "not a number"})
    unchanged(filled, lambda: filled.load("odd"), InvalidStateError, "odd", "AgentState")


def test_errors_share_one_base_class() -> None:
    import gitstate.errors as errors
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert all(issubclass(c, GitstateError) for c in classes)


def test_repository_stays_valid_after_all_errors(filled: StateRepository) -> None:
    for call in (lambda: filled.save({"agent_id": "a1", "x": math.inf}),
                 lambda: filled.save(AgentState(agent_id="a1"), name="first")):
        with pytest.raises(GitstateError):
            call()
    fsck(filled)


@pytest.mark.parametrize("commit", ["..config", "../../../etc/passwd", "zz", "0" * 39, "g" * 40,
                                    "0" * 40 + "\n", 42, None, b"0" * 40])
def test_read_state_wants_a_full_hex_sha(filled: StateRepository, commit: object) -> None:
    unchanged(filled, lambda: filled.read_state(commit), InvalidArgumentError, repr(commit))


def test_read_state_accepts_an_upper_case_sha(filled: StateRepository) -> None:
    head = filled.latest("a1").commit
    assert filled.read_state(head.upper()) == filled.read_state(head)


def test_init_on_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    with pytest.raises(NotARepositoryError, match="not a directory"):
        StateRepository.init(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("call, words", [
    (lambda r: r.save(AgentState(agent_id="a1"), trailers=[("Task", "x")]), ("trailers", "list")),
    (lambda r: r.save(AgentState(agent_id="a1"), trailers={"Task": 5}), ("Task", "strings")),
    (lambda r: r.save(AgentState(agent_id="a1"), trailers={5: "x"}), ("5", "strings")),
    (lambda r: r.save(AgentState(agent_id="a1"), message=5), ("message", "int")),
    (lambda r: r.log("a1", limit="3"), ("limit", "'3'")),
    (lambda r: r.log("a1", limit=True), ("limit", "True")),
    (lambda r: r.load("a1", model=int), ("model", "int")),
    (lambda r: StateRepository(r.path, cache_bytes="1"), ("cache_bytes", "'1'")),
    (lambda r: StateRepository(r.path, lock_timeout="1"), ("lock_timeout", "'1'")),
    (lambda r: r.save(AgentState(agent_id="a1"), trailers={"checkpoint-id": "x"}), ("checkpoint-id",)),
    (lambda r: r.save(AgentState(agent_id="a1"), trailers={"SCHEMA-VERSION": "7"}), ("SCHEMA-VERSION",)),
    (lambda r: r.save(AgentState(agent_id="a1"), trailers={"Task-Id": "1", "task-id": "2"}),
     ("Task-Id", "task-id", "case")),
], ids=["trailers-list", "trailer-int-value", "trailer-int-key", "message-int", "limit-str", "limit-bool",
        "model-int", "cache_bytes-str", "lock_timeout-str", "core-key-lower", "core-key-upper",
        "keys-differing-in-case"])
def test_wrong_types_and_trailer_keys_are_invalid_arguments(filled: StateRepository, call, words) -> None:
    unchanged(filled, lambda: call(filled), InvalidArgumentError, *words)
