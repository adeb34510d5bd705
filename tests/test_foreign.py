"""What other git tools may leave in a repository: odd commits and refs give typed errors, never crashes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli_helpers import assert_gitstate_error
from conftest import git, snapshot
from gitstate import AgentState, CorruptObjectError, InvalidArgumentError, StateRepository
from gitstate.compat import AgentStatePersistence
from gitstate.git.layout import CommitInfo

HUGE_TIME = "99999999999999999999"


def plumb(repo: StateRepository, *args: str, input: bytes = b"") -> str:
    """Run git with ``input`` on stdin; its stripped stdout."""
    return subprocess.run(["git", "--git-dir", repo.path, *args], input=input, capture_output=True,
                          check=True).stdout.decode().strip()


def foreign_commit(repo: StateRepository, agent: str, message: str, *, author_time: str = "1700000000",
                   tree: str | None = None) -> str:
    """Commit (as git would not) on the agent's branch, reusing its head's tree unless given one."""
    parent = git(repo, "rev-parse", f"refs/heads/agents/{agent}").strip()
    tree = tree or git(repo, "rev-parse", f"{parent}^{{tree}}").strip()
    text = (f"tree {tree}\nparent {parent}\nauthor x <x@y> {author_time} +0000\n"
            f"committer x <x@y> 1700000000 +0000\n\n{message}")
    sha = plumb(repo, "hash-object", "-t", "commit", "-w", "--literally", "--stdin", input=text.encode())
    git(repo, "update-ref", f"refs/heads/agents/{agent}", sha)
    return sha


def state_tree(repo: StateRepository, content: bytes, name: str = "state.json") -> str:
    blob = plumb(repo, "hash-object", "-w", "--stdin", input=content)
    return plumb(repo, "mktree", input=f"100644 blob {blob}\t{name}\n".encode())


@pytest.fixture
def two(repo: StateRepository) -> StateRepository:
    """Agent a1 with two checkpoints."""
    state = AgentState(agent_id="a1")
    for _ in range(2):
        state.increment_iteration()
        repo.save(state)
    return repo


# -- commits -----------------------------------------------------------------------------

def test_unparseable_trailers_are_listed_but_not_loaded(two: StateRepository) -> None:
    sha = foreign_commit(two, "a1", "odd\n\nAgent-Id: a1\nIteration: --5\nSchema-Version: two\n")
    head = two.latest("a1")
    assert (head.commit, head.iteration, head.schema_version) == (sha, None, 1)
    assert head.trailers["Schema-Version"] == "two" and head.trailers["Iteration"] == "--5"
    assert [c.commit for c in two.log("a1")][0] == sha
    assert [a.head.commit for a in two.agents()] == [sha]
    with pytest.raises(CorruptObjectError, match=f"{sha}.*'two'"):
        two.load("a1")
    assert two.load("a1", model=None)["agent_id"] == "a1"  # no model, no version to check
    assert two.load("a1", "latest~1").iteration == 2


def test_iteration_of_unicode_digits_is_not_an_iteration(two: StateRepository) -> None:
    foreign_commit(two, "a1", "odd\n\nAgent-Id: a1\nIteration: \u00b2\nSchema-Version: \u0663\n")
    head = two.latest("a1")
    assert (head.iteration, head.schema_version) == (None, 1)
    flagged = {p.message.split(" ")[0] for p in two.verify().problems if p.kind == "trailer"}
    assert {"Iteration", "Schema-Version"} <= flagged


def test_author_time_beyond_datetime_is_a_corrupt_commit(two: StateRepository) -> None:
    sha = foreign_commit(two, "a1", "far\n\nAgent-Id: a1\n", author_time=HUGE_TIME)
    with pytest.raises(ValueError, match="author time"):
        CommitInfo.parse(sha.encode(), plumb(two, "cat-file", "commit", sha).encode())
    for call in (lambda: two.latest("a1"), lambda: two.log("a1"), two.agents):
        with pytest.raises(CorruptObjectError, match=sha):
            call()


def test_cli_lists_odd_commits_and_reports_corrupt_ones_in_one_line(gitstate, tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git")
    repo.save(AgentState(agent_id="a1"))
    foreign_commit(repo, "a1", "odd\n\nAgent-Id: a1\nSchema-Version: two\n")
    listed = gitstate("--repo", repo.path, "log", "a1")
    assert listed.code == 0 and "odd" in listed.out, listed.err
    assert gitstate("--repo", repo.path, "show", "a1").code == 0
    sha = foreign_commit(repo, "a1", "far\n\nAgent-Id: a1\n", author_time=HUGE_TIME)
    assert_gitstate_error(gitstate("--repo", repo.path, "agents"), sha)
    assert_gitstate_error(gitstate("--repo", repo.path, "log", "a1"), sha)


def test_state_json_that_is_not_json_is_a_corrupt_commit(two: StateRepository) -> None:
    sha = foreign_commit(two, "a1", "bad\n\nAgent-Id: a1\nSchema-Version: 1\n",
                         tree=state_tree(two, b'{"agent_id": "a1",'))
    for call in (lambda: two.load("a1"), lambda: two.read_state(sha)):
        with pytest.raises(CorruptObjectError, match=sha):
            call()
    problems = [p for p in two.verify().problems if p.kind == "state"]
    assert len(problems) == 1 and "not valid JSON" in problems[0].message


def test_commit_without_state_json_is_a_typed_error_everywhere(two: StateRepository) -> None:
    sha = foreign_commit(two, "a1", "empty\n\nAgent-Id: a1\nSchema-Version: 1\n",
                         tree=state_tree(two, b"{}", name="other.json"))
    with pytest.raises(CorruptObjectError, match=f"{sha}.*state.json"):
        two.load("a1")
    with pytest.raises(CorruptObjectError, match=f"{sha}.*state.json"):
        AgentStatePersistence(two.path).list_checkpoints("a1")
    problems = [p for p in two.verify().problems if p.kind == "state"]
    assert len(problems) == 1 and "state.json" in problems[0].message


# -- refs --------------------------------------------------------------------------------

def test_symbolic_refs_are_followed(two: StateRepository) -> None:
    head = git(two, "rev-parse", "refs/heads/agents/a1").strip()
    git(two, "symbolic-ref", "refs/heads/agents/b2", "refs/heads/agents/a1")
    git(two, "symbolic-ref", "refs/heads/agents/c3", "refs/heads/agents/b2")  # two levels
    assert two._core.store.read_ref(b"refs/heads/agents/b2") == head.encode()
    assert two._core.store.read_refs(b"refs/heads/agents/") == {
        b"refs/heads/agents/" + name: head.encode() for name in (b"a1", b"b2", b"c3")}
    assert [(a.agent_id, a.head.commit) for a in two.agents()] == [("a1", head), ("b2", head), ("c3", head)]
    assert two.latest("c3").commit == git(two, "rev-parse", "agents/c3").strip()
    check = two.verify()  # b2 and c3 hold a1's checkpoints: Agent-Id names their writer, a1
    assert check.ok and check.agents == 3, check.problems


def test_dangling_symbolic_ref_is_an_absent_ref(two: StateRepository) -> None:
    git(two, "symbolic-ref", "refs/heads/agents/ghost", "refs/heads/agents/nobody")
    assert two._core.store.read_ref(b"refs/heads/agents/ghost") is None
    assert [a.agent_id for a in two.agents()] == ["a1"]


@pytest.mark.parametrize("content", [b"hello\n", b"G" * 40 + b"\n", b"ref: ../../config\n",
                                     b"ref: refs/heads/agents/loop\n"])
def test_bad_ref_files_are_corrupt_refs(two: StateRepository, content: bytes) -> None:
    ref = "refs/heads/agents/loop"
    Path(two.path, ref).write_bytes(content)
    with pytest.raises(CorruptObjectError, match=ref):
        two._core.store.read_ref(ref.encode())
    with pytest.raises(CorruptObjectError, match=ref):
        two.agents()
    problems = two.verify().problems
    assert [(p.kind, p.subject) for p in problems] == [("ref", ref)]


def test_a_packed_refs_file_git_refuses_is_corrupt(two: StateRepository) -> None:
    Path(two.path, "packed-refs").write_bytes(b"# pack-refs with: peeled\nnot-a-sha refs/heads/agents/p\n")
    with pytest.raises(CorruptObjectError, match="packed-refs line 2: b'not-a-sha refs/heads/agents/p'"):
        two._core.store.read_ref(b"refs/heads/agents/p")
    problems = two.verify().problems  # the loose agent a1 is still checked
    assert [(p.kind, p.subject) for p in problems] == [("ref", "packed-refs")]
    assert two.verify().agents == 1


def test_verify_reports_refs_to_trees_and_reads_through_the_repository(two: StateRepository) -> None:
    tree = git(two, "rev-parse", "agents/a1^{tree}").strip()
    git(two, "update-ref", "refs/tags/agents/a1/t", tree)
    problems = two.verify().problems
    assert [(p.kind, p.subject) for p in problems] == [("ref", "refs/tags/agents/a1/t")]
    assert "tree" in problems[0].message


def test_cli_verify_lists_bad_refs(gitstate, tmp_path: Path) -> None:
    repo = StateRepository.init(tmp_path / "r.git")
    repo.save(AgentState(agent_id="a1"))
    git(repo, "symbolic-ref", "refs/heads/agents/b2", "refs/heads/agents/a1")
    Path(repo.path, "refs/heads/agents/zz").write_bytes(b"ref: refs/heads/agents/zz\n")
    result = gitstate("--repo", repo.path, "verify")
    assert result.code == 1 and result.exception is None, result.err
    assert "refs/heads/agents/zz" in result.out + result.err and "Traceback" not in result.err


def test_save_onto_a_damaged_branch_writes_nothing(two: StateRepository) -> None:
    Path(two.path, "refs/heads/agents/a1").write_bytes(b"hello\n")
    before = snapshot(two)
    with pytest.raises(CorruptObjectError, match="refs/heads/agents/a1"):
        two.save(AgentState(agent_id="a1"))
    assert snapshot(two) == before


def test_an_upper_case_sha_in_a_ref_file_is_read_as_git_reads_it(two: StateRepository) -> None:
    ref = Path(two.path, "refs/heads/agents/a1")
    head = ref.read_text().strip()
    ref.write_text(head.upper() + "\n")
    assert git(two, "rev-parse", "refs/heads/agents/a1").strip() == head
    assert two.latest("a1").commit == head


def test_gitstate_does_not_write_through_a_symbolic_agent_ref(two: StateRepository) -> None:
    git(two, "symbolic-ref", "refs/heads/agents/b2", "refs/heads/agents/a1")
    before = snapshot(two)
    writes = {
        "save": lambda: two.save({"agent_id": "b2", "n": 1}),
        "rollback": lambda: two.rollback("b2", "latest~1"),
        "hard rollback": lambda: two.rollback("b2", "latest~1", hard=True),
        "delete": lambda: two.delete("b2", "latest~1"),
        "delete agent": lambda: two.delete_agent("b2"),
    }
    for what, write in writes.items():
        with pytest.raises(InvalidArgumentError, match="symbolic ref"):
            write()
        assert snapshot(two) == before, what
    assert two.save({"agent_id": "a1", "n": 1}).agent_id == "a1"  # the real branch moves
    assert git(two, "rev-parse", "agents/b2") == git(two, "rev-parse", "agents/a1")
