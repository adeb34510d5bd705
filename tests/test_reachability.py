"""What maintenance deletes (docs/guarantees.md): gc --prune, reclaim and prune keep every
object git keeps, read refs as git reads them, and stop, touching nothing, on anything they
cannot read or prove unreachable."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import fsck, git, grow, snapshot
from gitstate import (
    AgentState,
    CorruptObjectError,
    NotARepositoryError,
    RepositoryFormatError,
    StateRepository,
)
from gitstate.retention import RetentionPolicy
from gitstate_cli.main import cli

X = "refs/heads/agents/x"
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}

OPERATIONS: dict[str, Callable[[StateRepository], object]] = {
    "gc --prune": lambda repo: repo.gc(prune=True, grace_seconds=0),
    "reclaim": lambda repo: repo.reclaim(grace=timedelta(0)),
    "prune": lambda repo: repo.prune("keep", RetentionPolicy(keep_last=1), grace=timedelta(0)),
}


def run(path: str | Path, *args: str, input: bytes = b"", cwd: str | Path | None = None) -> str:
    """The real git on the repository at ``path``; its stripped stdout."""
    return subprocess.run(["git", "--git-dir", str(path), *args], input=input, capture_output=True,
                          check=True, cwd=cwd, env={**os.environ, **IDENTITY}).stdout.decode().strip()


def objects(path: str | Path) -> set[str]:
    """Every object of the repository, as git lists them."""
    return set(run(path, "cat-file", "--batch-check=%(objectname)", "--batch-all-objects").split())


def age(path: str | Path) -> None:
    """Make every object look a day old (written long before the maintenance run)."""
    then = time.time() - 86400
    for file in Path(path, "objects").rglob("*"):
        if file.is_file():
            os.utime(file, (then, then))


def history(repo: StateRepository) -> StateRepository:
    """Agent x (3 checkpoints, the first named) and agent keep (3 checkpoints), aged."""
    for agent in ("x", "keep"):
        state = AgentState(agent_id=agent)
        for step in range(3):
            repo.save(grow(state), name="first" if agent == "x" and step == 0 else None)
    age(repo.path)
    return repo


def head(repo: StateRepository, rev: str = "agents/x") -> str:
    return git(repo, "rev-parse", rev).strip()


def replace_object(repo: StateRepository, sha: str, by: str) -> None:
    """Put loose object ``by``'s file in place of loose object ``sha`` (a valid object of another type)."""
    target = Path(repo.path, "objects", sha[:2], sha[2:])
    target.unlink()
    shutil.copyfile(Path(repo.path, "objects", by[:2], by[2:]), target)


def assert_refused(repo: StateRepository, operation: str, error: type[Exception], match: str,
                   untouched: bool = True) -> None:
    """``operation`` raises ``error`` having deleted nothing; if ``untouched``, having written nothing."""
    before, files = objects(repo.path), snapshot(repo)
    with pytest.raises(error, match=match) as caught:
        OPERATIONS[operation](repo)
    assert "\n" not in str(caught.value)
    assert objects(repo.path) >= before
    if untouched:
        assert objects(repo.path) == before and snapshot(repo) == files


# -- damage: every operation stops before deleting or rewriting anything ------------------------

def _packed(repo: StateRepository, change: Callable[[bytes], bytes]) -> None:
    git(repo, "pack-refs", "--all")
    path = Path(repo.path, "packed-refs")
    path.write_bytes(change(path.read_bytes()))


DAMAGES: dict[str, tuple[Callable[[StateRepository], None], str]] = {
    # a damaged loose ref (a crash without durable=True leaves it empty)
    "empty ref": (lambda r: Path(r.path, X).write_bytes(b""), f"ref {X} holds b''"),
    "garbage ref": (lambda r: Path(r.path, X).write_bytes(b"hello\n"), f"ref {X} holds b'hello"),
    "binary ref": (lambda r: Path(r.path, X).write_bytes(bytes(range(256))), f"ref {X} holds"),
    "ref of forty zeros": (lambda r: Path(r.path, X).write_text("0" * 40 + "\n"), f"ref {X} holds forty zeros"),
    "branch naming a blob": (lambda r: Path(r.path, X).write_text(head(r, "agents/x:state.json") + "\n"),
                             "is a blob where a commit is expected, reached from ref refs/heads/agents/x"),
    "symbolic ref to a bad name": (lambda r: Path(r.path, X).write_bytes(b"ref: refs/heads/../x\n"),
                                   f"ref {X} holds"),
    # packed-refs that git refuses (or misreads)
    "garbage in packed-refs": (lambda r: _packed(r, lambda data: data + b"garbage\n"),
                               "packed-refs line .*garbage"),
    "unterminated packed-refs": (lambda r: _packed(r, lambda data: data[:-1]), "unterminated"),
    "peeled line after nothing": (lambda r: _packed(r, lambda data: data.replace(
        b"\n", b"\n^" + b"a" * 40 + b"\n", 1)), "packed-refs line 2: b'\\^a"),
    "packed-refs with CRLF": (lambda r: _packed(r, lambda data: data.replace(b"\n", b"\r\n")),
                              "names an invalid ref"),
    # objects of another type where a commit or tree must be
    "head commit replaced by a blob": (lambda r: replace_object(r, head(r), head(r, "agents/x:state.json")),
                                       "is a blob where a commit is expected"),
    # (below the roots: prune finds them after its rewrite, in reclaim's walk; DEEP)
    "tree replaced by a blob": (lambda r: replace_object(r, head(r, "agents/x^{tree}"),
                                                         head(r, "agents/x:state.json")),
                                "is a blob where a tree is expected"),
    "parent replaced by a tree": (lambda r: replace_object(r, head(r, "agents/x~1"), head(r, "agents/x^{tree}")),
                                  "is a tree where a commit is expected"),
    # other files that name objects
    "garbage reflog line": (lambda r: _reflog(r, b"garbage\n"), "logs/refs/heads/agents/x line 2"),
    "torn reflog line": (lambda r: _reflog(r, b"%s %s gitstate" % (b"1" * 40, b"2" * 40)),
                         "logs/refs/heads/agents/x line 2"),
    "reflog naming a missing object": (lambda r: _reflog(r, b"%s %s t <t@t> 1 +0000\tx\n" % (b"0" * 40, b"1" * 40)),
                                       "1{40} is reachable but missing, reached from logs/refs/heads/agents/x line 2"),
    "garbage ORIG_HEAD": (lambda r: Path(r.path, "ORIG_HEAD").write_bytes(b"not a sha\n"), "ORIG_HEAD"),
    "empty ORIG_HEAD": (lambda r: Path(r.path, "ORIG_HEAD").write_bytes(b""), "ORIG_HEAD holds b''"),
    "HEAD naming a blob": (lambda r: Path(r.path, "HEAD").write_text(head(r, "agents/x:state.json") + "\n"),
                           "is a blob where a commit is expected, reached from HEAD"),
    "garbage journal": (lambda r: _journal(r, b"refs/heads/agents/x oops\n"), "gitstate/journal/x line 1"),
}


DEEP = {"tree replaced by a blob", "parent replaced by a tree"}


def _reflog(repo: StateRepository, line: bytes) -> None:
    path = Path(repo.path, "logs", X)
    path.parent.mkdir(parents=True, exist_ok=True)
    sha = head(repo).encode()
    path.write_bytes(b"%s %s t <t@t> 1700000000 +0000\tcreated\n" % (b"0" * 40, sha) + line)


def _journal(repo: StateRepository, content: bytes) -> None:
    Path(repo.path, "gitstate", "journal").mkdir(parents=True, exist_ok=True)
    Path(repo.path, "gitstate", "journal", "x").write_bytes(content)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_stops_maintenance_before_anything_is_deleted(repo: StateRepository, damage: str,
                                                             operation: str) -> None:
    history(repo)
    apply, match = DAMAGES[damage]
    apply(repo)
    assert_refused(repo, operation, CorruptObjectError, match,
                   untouched=not (operation == "prune" and damage in DEEP))


# -- refs git reads, maintenance reads the same way ------------------------------------------

REPAIRABLE = {
    "upper case": lambda sha: sha.upper() + "\n",
    "trailing space": lambda sha: sha + " \n",
    "carriage return": lambda sha: sha + "\r\n",
    "no newline": lambda sha: sha,
    "data after a tab": lambda sha: sha + "\tbranch 'x' of somewhere\n",
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("form", REPAIRABLE)
def test_a_ref_git_reads_keeps_its_history(repo: StateRepository, form: str, operation: str) -> None:
    history(repo)
    sha = head(repo)
    Path(repo.path, X).write_text(REPAIRABLE[form](sha))
    assert head(repo) == sha and repo.latest("x").commit == sha  # git and gitstate read it
    kept = set(git(repo, "rev-list", "--objects", sha).split()) - {"state.json"}
    OPERATIONS[operation](repo)
    assert kept <= objects(repo.path)
    assert [c.commit for c in repo.log("x")] == git(repo, "rev-list", sha).split()
    fsck(repo)


# -- more roots: journal, FETCH_HEAD, annotated tags -------------------------------------------

@contextmanager
def held_lock(repo: StateRepository, agent_id: str) -> Iterator[None]:
    """Hold an agent's lock file as a running writer does (a flock of its own)."""
    path = Path(repo.path, "gitstate", "locks", "agents", agent_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _dangling_commit(repo: StateRepository) -> str:
    """A commit (with a tree and a blob of its own) that no ref reaches."""
    blob = run(repo.path, "hash-object", "-w", "--stdin", input=b"only here\n")
    tree = run(repo.path, "mktree", input=f"100644 blob {blob}\tstate.json\n".encode())
    commit = run(repo.path, "commit-tree", tree, "-p", head(repo), "-m", "orphan")
    age(repo.path)
    return commit


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("root", ["journal new", "journal old", "FETCH_HEAD", "MERGE_HEAD", "annotated tag"])
def test_every_root_keeps_what_it_reaches(repo: StateRepository, root: str, operation: str) -> None:
    history(repo)
    commit = _dangling_commit(repo)
    kept = set(run(repo.path, "rev-list", "--objects", commit).split()) - {"state.json"}
    if root == "journal new":
        _journal(repo, f"{X} {head(repo)} {commit}\nrefs/tags/agents/x/n - {commit}\n".encode())
    elif root == "journal old":
        _journal(repo, f"{X} {commit} -\n".encode())
    elif root == "FETCH_HEAD":
        Path(repo.path, "FETCH_HEAD").write_text(
            f"{head(repo)}\t\tbranch 'x' of ../a\n{commit}\tnot-for-merge\tbranch 'y' of ../a\n")
    elif root == "MERGE_HEAD":
        Path(repo.path, "MERGE_HEAD").write_text(f"{head(repo)}\n{commit}\n")
    else:
        run(repo.path, "tag", "-a", "-m", "tag", "t0", commit)
        kept.add(run(repo.path, "rev-parse", "t0"))
        run(repo.path, "tag", "-a", "-m", "tag of tag", "t1", "t0")
        run(repo.path, "tag", "-d", "t0")  # t0's tag object: reached only through t1
    # a journal whose agent lock is held belongs to an operation still running: maintenance
    # leaves it alone (an abandoned one is completed first, see test_crash_safety.py)
    with held_lock(repo, "x") if root.startswith("journal") else nullcontext():
        OPERATIONS[operation](repo)
    assert kept <= objects(repo.path)
    fsck(repo)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_commit_without_an_author_still_keeps_its_history(repo: StateRepository, operation: str) -> None:
    """Loads refuse such a commit (CommitInfo needs its author), maintenance walks through it
    (the one commit parser reads its tree and parents) as git does."""
    history(repo)
    blob = run(repo.path, "hash-object", "-w", "--stdin", input=b"only here\n")
    tree = run(repo.path, "mktree", input=f"100644 blob {blob}\tstate.json\n".encode())
    orphan = run(repo.path, "commit-tree", tree, "-m", "reached only through the next one")
    raw = f"tree {tree}\nparent {orphan}\nparent {head(repo)}\n\nno author\n".encode()
    odd = run(repo.path, "hash-object", "-t", "commit", "-w", "--literally", "--stdin", input=raw)
    run(repo.path, "update-ref", "refs/heads/foreign", odd)
    age(repo.path)
    kept = set(run(repo.path, "rev-list", "--objects", odd).split()) - {"state.json"}
    assert {odd, orphan, blob, head(repo)} <= kept
    OPERATIONS[operation](repo)
    assert kept <= objects(repo.path)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_dangling_symbolic_ref_and_an_empty_fetch_head_are_fine(repo: StateRepository, operation: str) -> None:
    history(repo)
    git(repo, "symbolic-ref", "refs/heads/agents/ghost", "refs/heads/agents/nobody")
    Path(repo.path, "FETCH_HEAD").write_bytes(b"")  # a fetch that brought nothing
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"  # which does not exist
    kept = set(git(repo, "rev-list", "--objects", "agents/x").split()) - {"state.json"}
    OPERATIONS[operation](repo)
    assert kept <= objects(repo.path)
    Path(repo.path, "refs/heads/agents/ghost").unlink()  # which git fsck reports
    fsck(repo)


# -- repositories that are not bare ---------------------------------------------------------

def _work_tree(tmp_path: Path) -> tuple[StateRepository, str]:
    """A `git init` work tree whose .git holds agent checkpoints, with a file only its index holds."""
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    repo = history(StateRepository.open(work / ".git"))
    (work / "notes.txt").write_text("staged, never committed\n")
    subprocess.run(["git", "add", "notes.txt"], cwd=work, check=True)
    return repo, run(work / ".git", "rev-parse", ":notes.txt")


def _linked_work_tree(tmp_path: Path, repo: StateRepository) -> str:
    """A `git worktree add` on the bare repository, with a file only its index holds."""
    history(repo)
    linked = tmp_path / "linked"
    run(repo.path, "worktree", "add", "-q", str(linked), "agents/keep")
    (linked / "notes.txt").write_text("staged in the linked work tree\n")
    subprocess.run(["git", "add", "notes.txt"], cwd=linked, check=True)
    return subprocess.run(["git", "rev-parse", ":notes.txt"], cwd=linked, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("kind", ["work tree", "linked work tree", "no core.bare"])
def test_maintenance_refuses_a_repository_that_is_not_bare(repo: StateRepository, tmp_path: Path,
                                                           kind: str, operation: str) -> None:
    if kind == "work tree":
        repo, staged = _work_tree(tmp_path)
        match = r"core.bare = false"
    elif kind == "linked work tree":
        staged = _linked_work_tree(tmp_path, repo)
        match = r"linked work trees"
    else:
        staged = _dangling_commit(history(repo))
        git(repo, "config", "--unset", "core.bare")
        match = r"no core.bare = true"
    assert_refused(repo, operation, NotARepositoryError, f"not a bare repository.*{match}")
    assert staged in objects(repo.path)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_config_damaged_since_open_stops_maintenance_naming_its_line(repo: StateRepository,
                                                                       operation: str) -> None:
    staged = _dangling_commit(history(repo))
    before, config = objects(repo.path), Path(repo.path, "config")
    sound = config.read_bytes()
    config.write_bytes(sound + b"[core\n")  # git refuses it too
    with pytest.raises(RepositoryFormatError, match=r"config line \d+: .*fix it"):
        OPERATIONS[operation](repo)
    config.write_bytes(sound)
    assert objects(repo.path) == before and staged in before


def test_a_work_tree_repository_is_usable_and_packed_without_loss(tmp_path: Path) -> None:
    """Saving into a work tree's .git is allowed; gc without --prune deletes only what it packed."""
    repo, staged = _work_tree(tmp_path)
    before = objects(repo.path)
    repo.gc()
    assert objects(repo.path) == before and repo.load("x").iteration == 3
    assert subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path / "work", capture_output=True,
                          text=True, check=True).stdout == "A  notes.txt\n"
    result = CliRunner().invoke(cli, ["--repo", repo.path, "gc", "--prune"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and "not a bare repository" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and staged in objects(repo.path)


# -- never less than git keeps --------------------------------------------------------------

def _every_kind_of_ref(repo: StateRepository) -> str:
    """Refs of every namespace, packed and loose, reflogs, *HEAD files, unreachable objects."""
    history(repo)
    path = repo.path
    with_log = ["-c", "core.logAllRefUpdates=always"]

    def commit(message: str, *parents: str) -> str:
        blob = run(path, "hash-object", "-w", "--stdin", input=message.encode())
        tree = run(path, "mktree", input=f"100644 blob {blob}\t{message}.txt\n".encode())
        return run(path, "commit-tree", tree, *(f"-p{p}" for p in parents), "-m", message)

    run(path, "tag", "-a", "-m", "annotated", "annotated", head(repo))
    run(path, "tag", "-a", "-m", "tag of tag", "tag-of-tag", "annotated")
    run(path, "tag", "-a", "-m", "tag of a tree", "tree-tag", commit("tagged tree") + "^{tree}")
    run(path, "tag", "blob-tag", run(path, "hash-object", "-w", "--stdin", input=b"tagged blob"))
    run(path, "notes", "add", "-m", "a note", head(repo))
    run(path, "update-ref", "refs/remotes/origin/main", commit("remote"))
    run(path, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    run(path, "update-ref", "refs/stash", commit("stash", head(repo), commit("stash index")))
    run(path, "pack-refs", "--all")  # packed (with peeled lines), then some loose on top
    run(path, *with_log, "update-ref", "refs/heads/work", commit("work 1"))
    run(path, *with_log, "symbolic-ref", "HEAD", "refs/heads/work")
    run(path, *with_log, "update-ref", "-m", "move", "HEAD", commit("work 2"))  # work 1: reflogs only
    run(path, *with_log, "update-ref", "-m", "move", "HEAD", commit("work 3"))
    run(path, "symbolic-ref", "HEAD", "refs/heads/main")
    assert len(run(path, "reflog", "show", "refs/heads/work").splitlines()) == 3
    Path(path, "ORIG_HEAD").write_text(commit("orig") + "\n")
    Path(path, "FETCH_HEAD").write_text(f"{commit('fetched')}\t\tbranch 'f' of ../elsewhere\n")
    commit("unreachable")  # and what a rewrite leaves behind:
    repo.prune("keep", RetentionPolicy(keep_last=1), grace=timedelta(days=2))
    age(path)
    return commit("young and unreachable")  # not aged


@pytest.mark.parametrize("grace", [0, 3600])
@pytest.mark.parametrize("form", ["healthy", "upper case", "trailing space", "carriage return"])
def test_gc_prune_keeps_every_object_git_gc_keeps(repo: StateRepository, tmp_path: Path, form: str,
                                                  grace: int) -> None:
    young = _every_kind_of_ref(repo)
    if form != "healthy":  # agent keep's history: reached by its ref only
        Path(repo.path, "refs/heads/agents/keep").write_text(REPAIRABLE[form](head(repo, "agents/keep")))
    copy = tmp_path / "copy.git"
    subprocess.run(["cp", "-a", repo.path, str(copy)], check=True)
    before = objects(repo.path)
    run(copy, "gc", "--prune=now", "--quiet")
    git_kept = objects(copy)
    result = repo.gc(prune=True, grace_seconds=grace)
    kept = objects(repo.path)
    assert git_kept <= kept
    assert git_kept < before and kept < before and result.pruned_objects == len(before - kept)
    assert {run(repo.path, "rev-parse", name) for name in ("ORIG_HEAD", "FETCH_HEAD")} <= kept
    assert (young in kept) == bool(grace)
    fsck(repo)
