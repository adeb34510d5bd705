"""The damage matrix: every command on a repository with one kind of damage.

Each cell copies one small repository (3 agents, the older checkpoints packed, the
newest loose), damages the copy and runs one command. Whatever the damage, the
command succeeds or fails with one ``Error:`` line naming the damage (``agents``
gives one line per unreadable agent; the library raises a ``GitstateError``),
never with a traceback; ``verify`` finds every damage git minds; and every
object that git could read before the command, git reads the same afterwards.

The remote commands talk to a ``git daemon`` on 127.0.0.1 (one per test process):
fetch and pull never move a branch so that it loses what git read there, a push
leaves the server as ``git fsck --strict`` accepts it (and untouched if it fails),
and a clone of the damaged repository (served) gets every agent git reads there, or
fails naming the damage or the source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fsck, git, grow, snapshot
from crashpoints import langgraph_step
from gitstate_cli.main import cli
from servers import GitDaemon, bare, hook

from gitstate import AgentState, CorruptObjectError, GitstateError, StateRepository
from gitstate.codec import encode
from gitstate.git.objects import object_id
from gitstate.git.reader import BLOB

AGENTS = ("a", "b", "c")
BRANCH = "refs/heads/agents/b"  # the agent most damages hit
INDEX_HEADER, FANOUT = 8, 256 * 4


# -- the repository and its damages ------------------------------------------------------

@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    """A git daemon serving the remotes of the repositories below (and clones' sources)."""
    daemon = GitDaemon(tmp_path_factory.mktemp("served"))
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def base(daemon: GitDaemon, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 agents of 4 checkpoints: the first 3 of each packed, the newest loose; a packed tag;
    remote ``origin`` (fetched) where b has 2 other checkpoints than its newest here (the
    second one not fetched yet), remote ``ahead`` holding one more checkpoint of each agent,
    remote ``backup`` empty (each push gets a new one)."""
    path = tmp_path_factory.mktemp("damage") / "base.git"
    repo = StateRepository.init(path)
    repo.configure_maintenance(auto_objects=0)
    states = {agent: AgentState(agent_id=agent, task="damage matrix") for agent in AGENTS}
    for state in states.values():
        for _ in range(3):
            repo.save(grow(state))
    repo.tag("a", "first", "latest~2")
    git(path, "pack-refs")  # the tag goes into packed-refs
    server = daemon.root / "origin.git"  # b diverges from it: one checkpoint here, two there
    shutil.copytree(path, server)
    with StateRepository.open(server) as remote:
        remote.save(grow(remote.load("b")))
        repo.remote_add("origin", daemon.url(server.name))
        repo.fetch("origin", ["b"])
        remote.save(grow(remote.load("b")))
    repo.gc()
    for state in states.values():
        repo.save(grow(state))
    ahead = daemon.root / "ahead.git"
    shutil.copytree(path, ahead)
    with StateRepository.open(ahead) as remote:
        for agent in AGENTS:
            remote.save(grow(remote.load(agent)))
    repo.remote_add("ahead", daemon.url(ahead.name))
    repo.remote_add("backup", daemon.url("backup.git"))
    repo.close()
    return path


def _head(path: Path, agent: str = "b") -> str:
    return git(path, "rev-parse", f"refs/heads/agents/{agent}").strip()


def _blob(path: Path, rev: str) -> str:
    return git(path, "rev-parse", f"{rev}:state.json").strip()


def _loose(path: Path, sha: str) -> Path:
    return path / "objects" / sha[:2] / sha[2:]


def _write(file: Path, data: bytes) -> None:
    if file.exists():
        file.chmod(0o644)  # objects and packs are read-only
    file.write_bytes(data)


def _flip(file: Path, at: int) -> None:
    data = bytearray(file.read_bytes())
    data[at] ^= 0x04
    _write(file, bytes(data))


def _truncate(file: Path) -> None:
    _write(file, file.read_bytes()[:file.stat().st_size // 2])


def _pack(path: Path) -> Path:
    """The pack of the first 3 checkpoints of each agent (the other one holds what the fetch brought)."""
    return max((path / "objects" / "pack").glob("pack-*.pack"), key=lambda pack: pack.stat().st_size)


def _ref(value: Callable[[str], bytes], harmless: bool = False) -> Callable[[Path], tuple[str, ...]]:
    """A damage writing ``value(head SHA)`` into agent b's branch."""
    def damage(path: Path) -> tuple[str, ...]:
        written = value(_head(path))
        _write(path / BRANCH, written)
        if harmless:
            return ()
        return (BRANCH, written.decode().strip()) if written.isascii() and written.strip() else (BRANCH,)
    return damage


def ref_to_blob(path: Path) -> tuple[str, ...]:
    blob = _blob(path, "agents/b")
    _write(path / BRANCH, blob.encode() + b"\n")
    return BRANCH, blob


def packed_refs_garbage(path: Path) -> tuple[str, ...]:
    with open(path / "packed-refs", "ab") as f:
        f.write(b"this line is not a ref\n")
    return ("packed-refs",)


def commit_replaced_by_blob(path: Path) -> tuple[str, ...]:
    """A valid loose object of another type where the head commit should be."""
    head = _head(path)
    content = git(path, "cat-file", "blob", _blob(path, "agents/b")).encode()
    _write(_loose(path, head), zlib.compress(b"blob %d\0" % len(content) + content))
    return (head,)


def _packed_offset(path: Path, sha: str) -> int:
    """Where object ``sha`` starts in the pack (``git verify-pack``)."""
    idx = _pack(path).with_suffix(".idx")
    return next(int(line.split()[4]) for line in git(path, "verify-pack", "-v", str(idx)).splitlines()
                if line.startswith(sha))


def truncated_pack(path: Path) -> tuple[str, ...]:
    _truncate(_pack(path))
    return (_pack(path).stem,)


def flipped_pack(path: Path) -> tuple[str, ...]:
    """A bit flipped inside the deflated data of agent b's oldest state."""
    _flip(_pack(path), _packed_offset(path, _blob(path, "agents/b~3")) + 12)
    return (_pack(path).stem,)


def truncated_index(path: Path) -> tuple[str, ...]:
    _truncate(_pack(path).with_suffix(".idx"))
    return (_pack(path).stem,)


def flipped_index(path: Path) -> tuple[str, ...]:
    """A bit flipped in the pack offset of agent b's oldest state (version 2 index)."""
    idx = _pack(path).with_suffix(".idx")
    listing = subprocess.run(["git", "show-index"], input=idx.read_bytes(), capture_output=True,
                             check=True).stdout.decode()
    names = sorted(line.split()[1] for line in listing.splitlines())
    position = names.index(_blob(path, "agents/b~3"))
    _flip(idx, INDEX_HEADER + FANOUT + len(names) * 24 + position * 4 + 3)
    return (_pack(path).stem,)


def garbage_loose(path: Path) -> tuple[str, ...]:
    head = _head(path)
    _write(_loose(path, head), b"\x13\x37 this is no zlib stream" * 3)
    return (head,)


def empty_loose(path: Path) -> tuple[str, ...]:
    blob = _blob(path, "agents/b")
    _write(_loose(path, blob), b"")
    return (blob,)


def bad_config(path: Path) -> tuple[str, ...]:
    _write(path / "config", b"[core\n\tbare = true\n[[[ not a section\n")
    return ("config",)


def garbage_head(path: Path) -> tuple[str, ...]:
    _write(path / "HEAD", b"this is not a ref\n")
    return ("HEAD",)


def missing_head(path: Path) -> tuple[str, ...]:
    (path / "HEAD").unlink()
    return ("HEAD",)


def file_for_fanout_folder(path: Path) -> tuple[str, ...]:
    """``objects/xx`` (the folder of agent b's head commit) is a file."""
    folder = _loose(path, _head(path)).parent
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder\n")
    return (f"objects/{folder.name}",)


DAMAGES: dict[str, Callable[[Path], tuple[str, ...]]] = {
    "ref-upper-case": _ref(lambda sha: sha.upper().encode() + b"\n", harmless=True),
    "ref-trailing-space": _ref(lambda sha: sha.encode() + b" \n", harmless=True),
    "ref-carriage-return": _ref(lambda sha: sha.encode() + b"\r\n", harmless=True),
    "ref-empty": _ref(lambda sha: b""),
    "ref-garbage": _ref(lambda sha: b"not a sha at all\n"),
    "ref-binary": _ref(lambda sha: bytes(range(256))),
    "ref-zeros": _ref(lambda sha: b"0" * 40 + b"\n"),
    "ref-to-blob": ref_to_blob,
    "packed-refs-garbage": packed_refs_garbage,
    "commit-replaced-by-blob": commit_replaced_by_blob,
    "pack-truncated": truncated_pack,
    "pack-bit-flipped": flipped_pack,
    "index-truncated": truncated_index,
    "index-bit-flipped": flipped_index,
    "loose-garbage": garbage_loose,
    "loose-empty": empty_loose,
    "config-unparsable": bad_config,
    "head-garbage": garbage_head,
    "head-missing": missing_head,
    "fanout-is-a-file": file_for_fanout_folder,
}
HARMLESS = {"ref-upper-case", "ref-trailing-space", "ref-carriage-return"}  # git reads these refs


# -- what git reads ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty repository that reads a damaged one's objects as its alternate (so a damaged
    config or HEAD does not stop git)."""
    path = tmp_path_factory.mktemp("checker") / "checker.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def readable(checker: Path, repo: Path, shas: list[str]) -> dict[str, bytes]:
    """``sha -> type and content`` of each of ``shas`` that git reads in ``repo``."""
    (checker / "objects" / "info" / "alternates").write_text(f"{repo / 'objects'}\n")
    found: dict[str, bytes] = {}
    while shas:
        run = subprocess.run(["git", "--git-dir", str(checker), "cat-file", "--batch"],
                             input="".join(f"{sha}\n" for sha in shas).encode(), capture_output=True,
                             check=False)
        out, at, done = run.stdout, 0, 0
        while at < len(out):
            end = out.index(b"\n", at)
            sha, kind, *size = out[at:end].split()
            if kind != b"missing":
                if end + 1 + int(size[0]) >= len(out):
                    break  # cut short: git died reading this one
                found[sha.decode()] = kind + b" " + out[end + 1:end + 1 + int(size[0])]
                end += int(size[0]) + 1
            at, done = end + 1, done + 1
        assert run.returncode in (0, 128), run.stderr
        shas = shas[done + 1:] if run.returncode else []  # git dies on a corrupt packed object
    return found


@dataclass(frozen=True)
class Damaged:
    path: Path  # the damaged repository (copied for each command)
    names: tuple[str, ...]  # an error must name one of these; () for what git reads as sound
    objects: dict[str, bytes]  # what git reads there (see ``readable``)


@pytest.fixture(scope="module")
def damaged(base: Path, checker: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Damaged]:
    """The repository with one damage, made once per damage."""
    shas = [line.split()[0] for line in
            git(base, "cat-file", "--batch-all-objects", "--batch-check").splitlines()]
    made: dict[str, Damaged] = {}

    def make(name: str) -> Damaged:
        if name not in made:
            path = tmp_path_factory.mktemp(name) / "repo.git"
            shutil.copytree(base, path)
            names = DAMAGES[name](path)
            made[name] = Damaged(path, names, readable(checker, path, shas))
        return made[name]
    return make


# -- the commands -------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int
    err: str
    exception: BaseException | None = None


def _invoke(args: list[str], input: str | None = None) -> Outcome:
    result = CliRunner().invoke(cli, args, input=input)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, result.stderr, exception)


def _cli(*args: str, input: str | None = None) -> Callable[[Path, GitDaemon], Outcome]:
    def run(path: Path, daemon: GitDaemon) -> Outcome:
        return _invoke(["--repo", str(path), *args], input=input)
    return run


def _reclaim(path: Path, daemon: GitDaemon) -> Outcome:
    try:
        StateRepository.open(path).reclaim(grace=timedelta(0))
    except GitstateError as exc:
        return Outcome(1, f"Error: {exc}\n")
    return Outcome(0, "")


def _langgraph_put(path: Path, daemon: GitDaemon) -> Outcome:
    """A LangGraph step on a new thread (a put: a small pack and a new branch)."""
    try:
        with StateRepository.open(path) as repo:
            langgraph_step(repo)
    except GitstateError as exc:
        return Outcome(1, f"Error: {exc}\n")
    return Outcome(0, "")


def _push(path: Path, daemon: GitDaemon) -> Outcome:
    """Push every agent to an empty server: it stores nothing git finds damaged, and nothing
    at all if the push fails."""
    server = daemon.root / "backup.git"
    shutil.rmtree(server, ignore_errors=True)
    bare(server)
    outcome = _cli("push", "backup")(path, daemon)
    fsck(server)
    if outcome.code:
        counts = dict(line.split(": ") for line in git(server, "count-objects", "-v").splitlines())
        assert not git(server, "for-each-ref") and counts["count"] == counts["in-pack"] == "0", counts
    return outcome


def _clone(path: Path, daemon: GitDaemon) -> Outcome:
    """Clone the damaged repository (served by the daemon): a clone that works holds every
    agent git reads there, one that fails leaves no folder (the server knows the damage: the
    error names the source if not the damage)."""
    target = path.parent / "clone.git"
    outcome = _invoke(["clone", daemon.url(path.relative_to(daemon.root).as_posix()), str(target)])
    if outcome.code == 0:
        fsck(str(target))
        cloned = {agent: sha.decode().strip() for agent, sha in _branches(target).items()}
        listed = git(path, "for-each-ref", "--format=%(objectname) %(refname:lstrip=3)", "refs/heads/agents")
        assert cloned == {agent: sha for sha, agent in map(str.split, listed.splitlines())}, outcome.err
    else:
        assert not target.exists()
    return outcome


COMMANDS: dict[str, Callable[[Path, GitDaemon], Outcome]] = {
    "show": _cli("show", "b", "latest~3"),  # reads the 4 commits and the oldest (packed) state
    "log": _cli("log", "b"),
    "agents": _cli("agents"),
    "verify": _cli("verify"),
    "save": _cli("save", "--agent", "b", input='{"agent_id": "b", "iteration": 99}'),
    "gc": _cli("gc"),
    "gc-prune": _cli("gc", "--prune", "--grace", "0"),
    "reclaim": _reclaim,
    "prune": _cli("prune", "--all", "--keep-last", "1"),
    "merge": _cli("merge", "b", "origin/b", "--strategy", "theirs"),
    "fetch": _cli("fetch", "origin"),
    "pull": _cli("pull", "ahead"),  # fast-forwards every agent
    "pull-rebase": _cli("pull", "origin", "--rebase"),
    "pull-merge": _cli("pull", "origin", "--merge", "--strategy", "theirs"),
    "push": _push,
    "clone": _clone,
    "tag-delete": _cli("tag", "-d", "a", "first"),  # a packed name
    "remote-rename": _cli("remote", "rename", "origin", "upstream"),  # moves origin/b
    "langgraph-put": _langgraph_put,
}
REMOTE = {"fetch", "pull", "pull-rebase", "pull-merge", "push", "clone"}


def _branches(path: Path) -> dict[str, bytes]:
    """The agent branches' loose ref files (the damaged repository's may hold anything)."""
    folder = path / "refs" / "heads" / "agents"
    return {file.name: file.read_bytes() for file in folder.iterdir()} if folder.is_dir() else {}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", DAMAGES)
def test_damage(damaged: Callable[[str], Damaged], checker: Path, base: Path, daemon: GitDaemon,
                damage: str, command: str) -> None:
    case = damaged(damage)
    path = daemon.root / f"{damage}-{command}" / "repo.git"  # served: clone's source
    shutil.copytree(case.path, path)
    before = _branches(path)
    outcome = COMMANDS[command](path, daemon)
    assert outcome.exception is None, "".join(traceback.format_exception(outcome.exception))
    assert outcome.code in (0, 1), outcome.err
    lines = outcome.err.splitlines()
    if damage in HARMLESS:
        assert outcome.code == 0, outcome.err
    elif command == "verify":
        assert outcome.code == 1, "verify found nothing wrong"
    if outcome.code == 1:
        assert lines, "exit code 1 and nothing on stderr"
        if command == "verify" and not lines[0].startswith("Error: "):
            assert all(" " in line and ": " in line for line in lines), outcome.err  # problems
        else:
            assert all(line.startswith("Error: ") for line in lines), outcome.err
            assert len(lines) == 1 or command == "agents", outcome.err  # agents: one per agent
        source = [daemon.url(path.relative_to(daemon.root).as_posix())] if command == "clone" else []
        assert any(name in outcome.err for name in [*case.names, *source]), (case.names, outcome.err)
    after = readable(checker, path, list(case.objects))
    lost = [sha for sha, content in case.objects.items() if after.get(sha) != content]
    assert not lost, f"{len(lost)} object(s) git read before {command} are lost: {lost}"
    if command in REMOTE:  # a branch that moved still holds the checkpoint it held (rebased or not)
        for agent, sha in _branches(path).items():
            if sha != before.get(agent):
                ids = git(checker, "log", "--format=%(trailers:key=Checkpoint-Id,valueonly)",
                          sha.decode().strip()).split()
                assert _checkpoint_id(base, agent) in ids, (agent, before.get(agent), sha)


def _checkpoint_id(path: Path, agent: str) -> str:
    return git(path, "log", "-1", "--format=%(trailers:key=Checkpoint-Id,valueonly)",
               f"refs/heads/agents/{agent}").strip()


# -- agents lists what it can read ---------------------------------------------------------

def test_agents_leaves_out_an_unreadable_agent_and_names_it(base: Path, tmp_path: Path) -> None:
    path = tmp_path / "repo.git"
    shutil.copytree(base, path)
    head = garbage_loose(path)[0]
    (path / "refs" / "tags" / "agents" / "c").mkdir(parents=True)
    (path / "refs" / "tags" / "agents" / "c" / "bad").write_text("not a sha\n")
    repo = StateRepository.open(path)
    with pytest.raises(GitstateError, match=f"agent b: .*{head}"):
        repo.agents()
    errors: dict[str, GitstateError] = {}
    assert [info.agent_id for info in repo.agents(errors=errors)] == ["a"]
    assert sorted(errors) == ["b", "c"]
    assert head in str(errors["b"]) and "refs/tags/agents/c/bad" in str(errors["c"])
    assert list(repo.heads()) == ["a", "b", "c"]  # refs alone: b's head commit, c's names unread
    (path / "refs" / "heads" / "agents" / "b").write_text("not a sha\n")
    with pytest.raises(GitstateError, match="agent b: .*refs/heads/agents/b"):
        repo.heads()
    errors = {}
    assert list(repo.heads(errors=errors)) == ["a", "c"] and list(errors) == ["b"]


def test_agents_command_lists_readable_agents_and_an_error_line_for_each_other(
        base: Path, tmp_path: Path) -> None:
    path = tmp_path / "repo.git"
    shutil.copytree(base, path)
    head = garbage_loose(path)[0]  # b cannot be listed
    parent = _head(path, "c")
    StateRepository.open(path).save({"agent_id": "c", "iteration": 9})
    _loose(path, parent).unlink()  # c's history ends at its head: COUNT unknown
    result = CliRunner().invoke(cli, ["--repo", str(path), "agents"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    rows = [line.split()[:3] for line in result.stdout.splitlines()[1:]]
    assert rows == [["a", "4", _head(path, "a")[:7]], ["c", "?", _head(path, "c")[:7]]]
    errors = result.stderr.splitlines()
    assert [line.split(":")[:2] for line in errors] == [["Error", " agent b"], ["Error", " agent c"]]
    assert head in errors[0] and parent in errors[1]
    listed = CliRunner().invoke(cli, ["--repo", str(path), "agents", "--json"])
    assert [(a["agent_id"], a["count"]) for a in json.loads(listed.stdout)] == [("a", 4), ("c", None)]


@pytest.mark.parametrize("size", [0, 200_000], ids=["small", "large"])  # large: hashed while written
@pytest.mark.parametrize("kind", ["file", "broken link"])
def test_a_save_into_a_fanout_folder_that_is_not_a_folder_is_a_typed_error(
        repo: StateRepository, size: int, kind: str) -> None:
    state = {"agent_id": "a", "notes": "x" * size}
    blob = object_id(BLOB, encode(state))
    folder = Path(repo.path, "objects", blob[:2].decode())
    if kind == "file":  # where the blob's loose object would go
        folder.write_bytes(b"")
    else:
        folder.symlink_to(Path(repo.path, "nowhere"))
    before = snapshot(repo)
    with pytest.raises(CorruptObjectError, match=f"{folder} is not a folder .* move it out"):
        repo.save(state)
    assert snapshot(repo) == before


# -- a push sends no damaged object ---------------------------------------------------------

def test_a_push_checks_every_object_before_it_tells_the_server_anything(
        base: Path, daemon: GitDaemon, tmp_path: Path) -> None:
    """A loose state blob that inflates to another state (readable, wrong for its name) is
    found before the server hears of any change: nothing lands there, and no receive-pack
    session goes beyond the ref advertisement."""
    path = tmp_path / "repo.git"
    shutil.copytree(base, path)
    blob, other = _blob(path, "agents/b"), _blob(path, "agents/b~1")
    content = git(path, "cat-file", "blob", other).encode()
    _write(_loose(path, blob), zlib.compress(b"blob %d\0" % len(content) + content))
    server = bare(daemon.root / "checked.git")
    hook(server, "pre-receive", f"touch {tmp_path / 'received'}\n")  # runs once a pack arrived
    StateRepository.open(path).remote_add("checked", daemon.url(server.name))
    with pytest.raises(CorruptObjectError, match=f"object {blob} is damaged.*nothing was pushed"):
        StateRepository.open(path).push("checked", ["b"])
    assert not git(server, "for-each-ref") and not (tmp_path / "received").exists()
    assert git(server, "count-objects", "-v").splitlines()[:3] == ["count: 0", "size: 0", "in-pack: 0"]
