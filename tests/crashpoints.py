"""Crash-point harness: stop a write operation at each file-system call it makes, then check.

In the spirit of SQLite's crash tests and the ALICE checker. For one operation
(``OPERATIONS``) on a tiny template repository:

1. *Record*: run it once under ``strace`` and list its kill points, the calls
   that can change the repository (an ``open`` that creates or writes, ``write``,
   ``rename``, ``unlink``, ``mkdir``, ``ftruncate``, ``fsync``, ``utimensat``...,
   each on a path inside it). It is recorded until two runs in a row agree.
2. *Trial*, for each kill point and fault: copy the template, run the operation
   again and make that call (the k-th call of its system call in the process)
   kill the process on entry (``KILL``: the call does not run) or fail with
   ``ENOSPC`` or ``EIO``. strace's log must show the injection on the recorded
   call (same system call, same path), after the same calls: else the trial
   *diverged* and is reported as such.
3. *Check* the repository the trial left (:func:`check`): the outcome (a fault
   must end in success or a typed error), every acknowledged checkpoint loads,
   ``verify`` and ``git fsck --strict`` are clean, no name or reflog entry
   points at history that is gone, then the next operation of every kind
   succeeds, and the same checks hold again (with, after a fault, no temporary
   file left that maintenance does not remove).

Mechanics: this (warm) process forks a child per trial; the child stops itself
with SIGSTOP right before the operation, ``strace -f -p`` attaches (its
"Process N attached" line is the synchronization), then SIGCONT. strace counts
the calls of each system call per process from the attach, which is what
``when=k`` selects. The checks also run in a forked child, so this process
keeps the same state (imported modules, caches) from the first recording to
the last trial. Object fan-out folders are created in the templates, so writing a
new object (whose SHA changes with every run) makes the same calls every time;
where calls still depend on SHAs (which folders maintenance empties), a trial
that diverges runs again.

Faults: ``KILL``, ``ENOSPC``, ``EIO``, and ``ERROR`` (ENOSPC where the call
allocates space, EIO elsewhere: one errno per point, see ``CI_FAULTS``).

``bench/crash_sweep.py`` runs it from the command line (one operation, fault or
kill point at a time, to reproduce a failure); ``tests/test_crash_points.py``
is the CI run.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import fsck, git
from gitstate_cli.main import cli
from servers import GitDaemon

from gitstate import AgentState, GitstateError, StateRepository
from gitstate.retention import RetentionPolicy

ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = ROOT / "fixtures" / "seed_checkpoints"
FAULTS = ("KILL", "ENOSPC", "EIO")
# "ERROR": one errno per kill point, the one a file system gives there: ENOSPC for the calls
# that allocate space, EIO for the others. gitstate handles every errno alike (no code
# looks at it), so this reaches its error paths with one trial per point instead of two.
ERROR = "ERROR"
_ALLOCATING = {"openat", "open", "creat", "write", "pwrite64", "writev", "pwritev", "pwritev2",
               "rename", "renameat", "renameat2", "mkdir", "mkdirat", "link", "linkat",
               "symlink", "symlinkat", "fallocate", "copy_file_range"}
_INJECT = {"KILL": "signal=KILL", "ENOSPC": "error=ENOSPC", "EIO": "error=EIO"}
_ERRNO = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
# system calls that can change a file or folder; strace skips the names prefixed by "?"
# that this architecture lacks (aarch64 has no open, rename, mkdir...)
MUTATING = ("openat", "open", "creat", "write", "pwrite64", "writev", "pwritev", "pwritev2",
            "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
            "ftruncate", "truncate", "fsync", "fdatasync", "link", "linkat", "symlink",
            "symlinkat", "utimensat", "chmod", "fchmod", "fchmodat", "fallocate", "copy_file_range")
_TRACE = "trace=" + ",".join("?" + name for name in MUTATING)
_WRITE_FLAGS = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")

# The CI run (tests/test_crash_points.py, bench/crash_sweep.py --ci): the smallest templates,
# the command where the operation has one, not durable (what `gitstate` does), three seed
# files, KILL and one errno at every kill point. The sweep: bigger templates, library calls
# with durable=True, the whole seed folder, all three faults at every point.
CI_SETTINGS: dict[str, Any] = {"size": 0, "durable": False, "via": "cli", "seed_files": 3}
CI_FAULTS = ("KILL", ERROR)
SWEEP_SETTINGS: dict[str, Any] = {"size": 3, "durable": True, "via": "library", "seed_files": 0}

ATTEMPTS = 5  # runs of a trial whose calls differ from the recording before it is reported
TRIAL_TIMEOUT = 60.0  # seconds for one traced run (a hang is reported, not waited for)
NEXT_LOCK_TIMEOUT = 0.25  # seconds the next operations wait for a lock (no one else holds one)
AGED = 2 * 3600  # template objects are made this old: past every grace period
_PR_SET_PTRACER = 0x59616D61  # Yama's prctl; with PR_SET_PTRACER_ANY, (unsigned long) -1


def fault_at(fault: str, call: Call) -> str:
    """The fault to inject at ``call`` (resolves ``ERROR``)."""
    if fault != ERROR:
        return fault
    return "ENOSPC" if call.name in _ALLOCATING else "EIO"


class HarnessError(Exception):
    """The harness itself cannot run (no strace, no ptrace, a broken template)."""


def scratch_dir() -> Path:
    """A new folder for a run, in memory (/dev/shm) where there is one: the faults are
    injected at the system-call level, so the file system does not change what is
    tested, and a tmpfs makes each trial about five times faster."""
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="gitstate-crash-", dir=where))


# -- strace's log ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One system call of a traced process: its name, its rank among the calls of that name
    in the process (strace's ``when=``), the paths it names (normalized) and its result."""

    name: str
    nth: int
    where: str
    result: str

    def __str__(self) -> str:
        return f"{self.name}#{self.nth} {self.where}"


def _split_args(text: str) -> list[str]:
    """strace's argument list split at top-level commas (strings and brackets kept whole)."""
    args, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    return args


_FD = re.compile(r"(?:AT_FDCWD|-?\d+)<(.*)>$")
_CALL = re.compile(r"(?P<name>\w+)\((?P<args>.*)\)\s+= (?P<result>.*)$")


def _is_path(arg: str) -> bool:
    """A string argument that is a path (data buffers are cut to ``""...`` by ``-s 0``)."""
    return arg.startswith('"') and not arg.endswith("...")


def _paths(args: list[str], cwd: str) -> list[str]:
    """The files a call names: descriptors shown by ``-y``, path strings (resolved against
    the descriptor before them, else ``cwd``)."""
    paths = []
    for i, arg in enumerate(args):
        fd = _FD.match(arg)
        if fd and not _is_path(args[i + 1] if i + 1 < len(args) else ""):
            paths.append(fd.group(1))
        elif _is_path(arg):
            base = _FD.match(args[i - 1]) if i else None
            paths.append(os.path.normpath(os.path.join(base.group(1) if base else cwd,
                                                       arg[1:-1])))
    return paths


def normalize(path: str, root: str) -> str:
    """A repository path with what changes from run to run (object SHAs, random temporary
    names) replaced, so a recording and a trial can be compared."""
    rel = os.path.relpath(path, root)
    rel = re.sub(r"^objects/[0-9a-f]{2}(?=/|$)", "objects/xx", rel)
    rel = re.sub(r"^objects/xx/[0-9a-f]{38}$", "objects/xx/<sha>", rel)
    rel = re.sub(r"/pack-[0-9a-f]{40}\.", "/pack-<sha>.", rel)  # a pack may hold a new commit
    rel = re.sub(r"^gitstate/(spares|spare-folders|spares-new)/spare-[0-9a-f]{12}$", r"gitstate/\1/spare-*", rel)
    rel = re.sub(r"^gitstate/replaced/[0-9a-f]{16}$", "gitstate/replaced/*", rel)
    return re.sub(r"(tmp_obj_|tmp_pack_|tmp_idx_|tmp)\w+", r"\1*", rel)


def parse_log(path: Path, root: str, cwd: str) -> tuple[list[Call], list[int]]:
    """Every call of one process's log, and the indexes of the kill points among them
    (calls that can change a file under ``root``)."""
    calls: list[Call] = []
    points: list[int] = []
    counts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        match = _CALL.match(line)
        if not match:
            continue  # "+++ exited ...", "+++ killed ..."
        name = match["name"]
        counts[name] = counts.get(name, 0) + 1
        args = _split_args(match["args"])
        inside = [p for p in _paths(args, cwd) if p == root or p.startswith(root + "/")]
        where = " -> ".join(normalize(p, root) for p in inside)
        calls.append(Call(name, counts[name], where, match["result"]))
        if inside and (name not in ("openat", "open") or _WRITE_FLAGS.search(match["args"])):
            points.append(len(calls) - 1)
    return calls, points


# -- operations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Env:
    """What an operation needs besides the repository: files outside it and the remote."""

    state_file: str
    seed_dir: str
    url: str


@dataclass(frozen=True)
class Operation:
    """A write operation: its Python API call, its command line (None: library only), the
    template it starts from, whether it may remove checkpoints (then the checkpoints
    the untroubled run removed need not load after a crash), and whether it changes the
    server (then each run pushes to a copy of it of its own)."""

    name: str
    template: str
    api: Callable[[StateRepository, Env], object]
    cli: Callable[[Env], list[str]] | None = None
    removes: bool = False
    own_server: bool = False


def _state(env: Env) -> dict[str, Any]:
    return json.loads(Path(env.state_file).read_text())


def _large_state(env: Env) -> dict[str, Any]:
    """A state large enough to be hashed by a worker thread while it is written (gitstate.git.loose)."""
    return {**_state(env), "document": "lorem ipsum " * 20_000}


THREAD = "crash thread"


def langgraph_step(repo: StateRepository, env: Env | None = None) -> None:
    """A LangGraph step: a checkpoint whose message list grows by one, with the pending
    write that carried the message (one small pack, one ref move)."""
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    from gitstate.langgraph import GitstateSaver

    saver = GitstateSaver(repo)
    config = {"configurable": {"thread_id": THREAD, "checkpoint_ns": ""}}
    latest = saver.get_tuple(config)
    messages = list(latest.checkpoint["channel_values"]["messages"]) if latest else []
    new = HumanMessage(f"step {len(messages)}", id=str(len(messages)))
    if latest is not None:
        saver.put_writes(latest.config, [("messages", [new])], "task")
        config = latest.config
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [*messages, new]}
    checkpoint["channel_versions"] = {"messages": len(messages) + 1}
    saver.put(config, checkpoint, {"source": "loop", "step": len(messages)}, {"messages": 1})


OPERATIONS = {op.name: op for op in (
    Operation("save", "basic", lambda r, e: r.save(_state(e)), lambda e: ["save", e.state_file]),
    Operation("save_named", "basic", lambda r, e: r.save(_state(e), name="fresh"),
              lambda e: ["save", e.state_file, "--name", "fresh"]),
    Operation("save_new_folders", "packed", lambda r, e: r.save(_state(e)),
              lambda e: ["save", e.state_file]),
    Operation("save_large", "basic", lambda r, e: r.save(_large_state(e))),
    Operation("save_without_spares", "nospares", lambda r, e: r.save(_state(e)),
              lambda e: ["save", e.state_file]),
    Operation("tag", "basic", lambda r, e: r.tag("a", "reviewed", "latest~1"),
              lambda e: ["tag", "a", "reviewed", "latest~1"]),
    Operation("tag_delete", "basic", lambda r, e: r.untag("a", "n2"), lambda e: ["tag", "-d", "a", "n2"]),
    Operation("rollback", "basic", lambda r, e: r.rollback("a", "latest~2"),
              lambda e: ["rollback", "a", "latest~2"]),
    Operation("rollback_hard", "basic", lambda r, e: r.rollback("a", "latest~2", hard=True),
              lambda e: ["rollback", "a", "latest~2", "--hard"], removes=True),
    Operation("fork", "basic", lambda r, e: r.fork("a", "n2", "a-fork"),
              lambda e: ["fork", "a", "n2", "a-fork"]),
    Operation("delete", "basic", lambda r, e: r.delete("a", "latest~2"),
              lambda e: ["delete", "a", "latest~2"], removes=True),
    Operation("delete_agent", "basic", lambda r, e: r.delete_agent("b"),
              lambda e: ["delete", "b", "--yes"], removes=True),
    Operation("prune", "basic", lambda r, e: r.prune("a", RetentionPolicy(keep_last=2)),
              lambda e: ["prune", "a", "--keep-last", "2"], removes=True),
    Operation("import", "basic", lambda r, e: r.import_seed(e.seed_dir),
              lambda e: ["import", e.seed_dir]),
    Operation("save_auto_gc", "auto", lambda r, e: r.save(_state(e)), lambda e: ["save", e.state_file]),
    Operation("gc", "basic", lambda r, e: r.gc(), lambda e: ["gc"]),
    Operation("gc_prune", "basic", lambda r, e: r.gc(prune=True), lambda e: ["gc", "--prune"]),
    Operation("gc_prune_young", "young", lambda r, e: r.gc(prune=True), lambda e: ["gc", "--prune"]),
    Operation("reclaim", "basic", lambda r, e: r.reclaim()),
    Operation("fetch", "remote", lambda r, e: r.fetch("origin"), lambda e: ["fetch", "origin"]),
    Operation("pull", "remote", lambda r, e: r.pull("origin"), lambda e: ["pull", "origin"]),
    Operation("pull_rebase", "diverged", lambda r, e: r.pull("origin", rebase=True),
              lambda e: ["pull", "origin", "--rebase"]),
    Operation("pull_merge", "diverged", lambda r, e: r.pull("origin", merge=True, strategy="ours"),
              lambda e: ["pull", "origin", "--merge", "--strategy", "ours"]),
    Operation("merge", "diverged", lambda r, e: r.merge("a", "origin/a", strategy="theirs"),
              lambda e: ["merge", "a", "origin/a", "--strategy", "theirs"]),
    Operation("remote_add", "basic", lambda r, e: r.remote_add("backup", e.url),
              lambda e: ["remote", "add", "backup", e.url]),
    Operation("remote_rename", "remote", lambda r, e: r.remote_rename("origin", "upstream"),
              lambda e: ["remote", "rename", "origin", "upstream"]),
    Operation("remote_set_url", "remote", lambda r, e: r.remote_set_url("origin", e.url),
              lambda e: ["remote", "set-url", "origin", e.url]),
    Operation("remote_remove", "remote", lambda r, e: r.remote_remove("origin"),
              lambda e: ["remote", "remove", "origin"]),
    Operation("push", "ahead", lambda r, e: r.push("origin", ["b", "d"]),
              lambda e: ["push", "origin", "b", "d"], own_server=True),
    Operation("configure_maintenance", "basic",
              lambda r, e: r.configure_maintenance(auto_objects=500, grace_seconds=60)),
    Operation("langgraph_put", "thread", langgraph_step),
)}


# -- templates -------------------------------------------------------------------------------

def _grow(state: AgentState, step: int) -> AgentState:
    state.increment_iteration()
    state.add_message("assistant", f"step {step}: read src/file_{step}.py")
    return state


def _age_objects(path: Path) -> None:
    """Make every object file old, as in a repository in use (past any grace period), and
    the spare files and folders too."""
    old = time.time() - AGED
    for top in ("objects", "gitstate/spares", "gitstate/spare-folders"):
        for folder, dirs, files in os.walk(path / top):
            for name in [*files, *(dirs if top == "gitstate/spare-folders" else ())]:
                os.utime(os.path.join(folder, name), (old, old))


def _fan_out(path: Path) -> None:
    for i in range(256):
        (path / "objects" / f"{i:02x}").mkdir(exist_ok=True)


def build_basic(path: Path, size: int, fan_out: bool = True) -> None:
    """Agent ``a``: ``size + 4`` checkpoints, the second named ``n2`` and the second newest
    ``recent``, the oldest two packed, a reflog (one more dropped by a hard rollback);
    agent ``b``: 2 checkpoints, one named; the objects of a deleted agent (unreachable).
    ``fan_out`` creates the 256 object folders (see the module docstring)."""
    repo = StateRepository.init(path)
    repo.configure_maintenance(auto_objects=0)
    a, count = AgentState(agent_id="a", task="audit"), size + 4
    for step in range(1, count + 2):
        repo.save(_grow(a, step), name={2: "n2", count - 1: "recent"}.get(step))
        if step == 2:
            repo.gc()
    repo.rollback("a", "latest~1", hard=True)
    b = AgentState(agent_id="b", task="review")
    repo.save(_grow(b, 1), name="b1")
    repo.save(_grow(b, 2))
    repo.save(_grow(AgentState(agent_id="gone"), 1))
    repo.delete_agent("gone")
    repo.close()
    _age_objects(path)
    if fan_out:
        _fan_out(path)


def build_packed(path: Path, size: int) -> None:
    """``basic`` right after ``gc --prune``: one pack, no loose object, and no fan-out folder
    (gitstate's maintenance leaves them; git's removes them, as here)."""
    build_basic(path, size, fan_out=False)
    with StateRepository.open(path) as repo:
        repo.gc(prune=True, grace_seconds=0)
    for folder in (path / "objects").glob("??"):
        folder.rmdir()
    _age_objects(path)


def build_young(path: Path, size: int) -> None:
    """``basic`` with a save in progress (a commit on ``a`` its branch does not name yet)
    that a ``gc`` packed: the young pack's unreachable objects are unpacked by ``gc --prune``."""
    build_basic(path, size)
    subprocess.run(["git", "--git-dir", str(path), "commit-tree",
                    "refs/heads/agents/a^{tree}", "-p", "refs/heads/agents/a", "-m", "in progress"],
                   check=True, capture_output=True)
    with StateRepository.open(path) as repo:
        repo.gc()


def build_auto(path: Path, size: int) -> None:
    """``basic`` where a save runs automatic maintenance at once, in the saving process
    (what the background process runs, ``Maintenance.run_quietly``, without a second process to trace)."""
    build_basic(path, size)
    with StateRepository.open(path) as repo:
        repo.configure_maintenance(auto_objects=1, background=False)


def build_nospares(path: Path, size: int) -> None:
    """``packed`` (no fan-out folder) without spare files and folders or replaced files
    (made by git, or by an older gitstate): a save creates its files and folders."""
    build_packed(path, size)
    for folder in ("spares", "spare-folders", "spares-new", "replaced"):
        shutil.rmtree(path / "gitstate" / folder, ignore_errors=True)


def build_thread(path: Path, size: int) -> None:
    """``basic`` with a LangGraph thread of one checkpoint (``langgraph_step``)."""
    build_basic(path, size)
    with StateRepository.open(path) as repo:
        langgraph_step(repo)
    _age_objects(path)


def build_remote(path: Path, size: int, server: Path, url: str) -> None:
    """``basic`` with remote ``origin`` (fetched once) at ``server``, which then got two
    more checkpoints of ``a`` (one named) and a new agent ``c``."""
    build_basic(server, size)
    shutil.copytree(server, path, symlinks=True)
    with StateRepository.open(path) as repo:
        repo.remote_add("origin", url)
        repo.fetch("origin")
    with StateRepository.open(server) as remote:
        _advance(remote, "a", 90, "remote-n", new_agent="c", new_name="c1")
    _age_objects(path)
    _fan_out(path)


def _advance(repo: StateRepository, agent: str, step: int, name: str, *, new_agent: str,
             new_name: str) -> None:
    """Two more checkpoints of ``agent`` (steps ``step`` and ``step + 1``, the second named
    ``name``) and a new agent ``new_agent`` of one checkpoint named ``new_name``."""
    state = repo.load(agent)
    repo.save(_grow(state, step))
    repo.save(_grow(state, step + 1), name=name)
    repo.save(_grow(AgentState(agent_id=new_agent), 1), name=new_name)


def build_diverged(path: Path, remote: Path) -> None:
    """``remote`` (copied) where ``a`` got a checkpoint of its own (named) after the fetch, and
    a second fetch brought the server's two: ``a`` and ``origin/a`` diverged."""
    shutil.copytree(remote, path, symlinks=True)
    with StateRepository.open(path) as repo:
        repo.save(_grow(repo.load("a"), 80), name="local-n")
        repo.fetch("origin")
    _age_objects(path)


def build_ahead(path: Path, remote: Path) -> None:
    """``remote`` (copied) where ``b`` got two checkpoints (the second named) and a new agent
    ``d`` one (named) after the fetch: a push of ``b`` and ``d`` fast-forwards the server."""
    shutil.copytree(remote, path, symlinks=True)
    with StateRepository.open(path) as repo:
        _advance(repo, "b", 70, "local-b", new_agent="d", new_name="d1")
    _age_objects(path)


# -- what a repository holds, read with git --------------------------------------------------

@dataclass
class Agent:
    """One agent as git sees it: checkpoint ids and commit SHAs (newest first), names."""

    ids: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # name -> commit SHA


def history(path: str) -> dict[str, Agent]:
    """Every agent of the repository, read with the git binary."""
    agents: dict[str, Agent] = {}
    refs = git(path, "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)",
               "refs/heads/agents", "refs/tags/agents")
    for line in refs.splitlines():
        ref, sha, peeled = (line.split(" ") + [""])[:3]
        if ref.startswith("refs/heads/agents/"):
            agent = agents.setdefault(ref[len("refs/heads/agents/"):], Agent())
            log = git(path, "log", "--format=%H %(trailers:key=Checkpoint-Id,valueonly,separator=)", ref)
            for entry in log.splitlines():
                commit, _, checkpoint_id = entry.partition(" ")
                agent.commits.append(commit)
                agent.ids.append(checkpoint_id)
        else:
            owner, _, name = ref[len("refs/tags/agents/"):].partition("/")
            agents.setdefault(owner, Agent()).names[name] = peeled or sha
    return agents


def _shape(agents: dict[str, Agent]) -> dict[str, tuple[int, list[str]]]:
    return {agent_id: (len(a.ids), sorted(a.names)) for agent_id, a in sorted(agents.items())}


def _touched(before: dict[str, Agent], after: dict[str, Agent]) -> list[str]:
    """The agents an untroubled run changed (or ``a``): where the next operations go."""
    changed = {agent_id for agent_id in before.keys() | after.keys()
               if before.get(agent_id) != after.get(agent_id)}
    return sorted(changed | {"a"})


# -- checks ------------------------------------------------------------------------------------

DEBRIS = re.compile(r"(^|/)(tmp[^/]*|[^/]*\.lock|[^/]*\.tmp)$")


def debris(path: str) -> list[str]:
    """Temporary files in the repository (``gitstate/locks`` holds lock files by design)."""
    found = []
    for folder, _dirs, files in os.walk(path):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), path)
            if (DEBRIS.search(rel) or rel.startswith("gitstate/journal/")) \
                    and not rel.startswith("gitstate/locks/"):
                found.append(rel)
    return sorted(found)


def names_and_reflogs(path: str, pending_ok: bool) -> list[str]:
    """Names whose checkpoint is not in their agent's history, reflog SHAs that are missing.

    With ``pending_ok``, agents with a pending journal (``gitstate/journal/<id>``) are left
    out: the next writer rolls it forward; without, a pending journal is a problem.
    """
    journal = Path(path, "gitstate", "journal")
    pending = {p.name for p in journal.iterdir()} if journal.is_dir() else set()
    problems = [] if pending_ok else [f"journal of agent {a!r} still pending" for a in sorted(pending)]
    for agent_id, agent in sorted(history(path).items()):
        if agent_id in pending and pending_ok:
            continue
        for name, sha in sorted(agent.names.items()):
            if not agent.commits:
                problems.append(f"name {agent_id}/{name} of an agent that has no branch")
            elif sha not in agent.commits:
                problems.append(f"name {agent_id}/{name} points at {sha[:12]}, "
                                f"not in the history of {agent_id!r}")
    shas: dict[str, str] = {}
    logs = Path(path, "logs")
    for log in sorted(logs.rglob("*")) if logs.is_dir() else ():
        if log.is_file():
            for line in log.read_text(errors="replace").splitlines():
                for sha in line.split(" ", 2)[:2]:
                    if sha.strip("0"):
                        shas.setdefault(sha, log.relative_to(path).as_posix())
    if shas:
        check = subprocess.run(["git", "--git-dir", path, "cat-file", "--batch-check"], check=True,
                               input="\n".join(shas) + "\n", capture_output=True, text=True)
        for line in check.stdout.splitlines():
            if line.endswith(" missing"):
                sha = line.split()[0]
                problems.append(f"reflog {shas[sha]} names {sha[:12]}, which is missing")
    return problems


@dataclass
class TrialInfo:
    """What the checks of one trial need to know."""

    path: str
    fault: str
    outcome: dict[str, Any]
    kept: list[tuple[str, str]]  # (agent, checkpoint id) that must load
    success_shape: dict[str, tuple[int, list[str]]]  # the histories after a successful run
    url: str
    remote: bool
    agents: list[str]  # the agents the next operations act on (those the operation changes)
    diverged: bool = False  # a local agent may still differ from the remote's: pull rebases


def _run_next(repo: StateRepository, info: TrialInfo) -> list[tuple[str, str]]:
    """The next operation of every kind, in-process; each failure as (check, message).

    Each agent's operations run in a chain (each needs the one before); a chain stops
    at its first failure, which names the operations left out.
    """
    failed: list[tuple[str, str]] = []

    def chain(label: str, steps: list[tuple[str, Callable[[], object]]]) -> None:
        for i, (name, call) in enumerate(steps):
            try:
                call()
            except Exception as exc:
                rest = [n for n, _ in steps[i + 1:]]
                failed.append((f"next {name}", f"{type(exc).__name__}: {exc}"
                               + (f" (not run after it: {', '.join(rest)})" if rest else "")))
                return

    def save(agent: str, name: str | None = None) -> None:
        try:
            state = repo.load(agent, model=None)
        except GitstateError:  # a new agent (a failed load of an old one is reported apart)
            state = {"agent_id": agent}
        state["iteration"] = (state.get("iteration") or 0) + 1
        repo.save(state, agent_id=agent, name=name)

    chain("maintenance settings", [("configure_maintenance",
                                    lambda: repo.configure_maintenance(auto_objects=0))])
    if info.remote:  # the template's one remote: origin, or what remote_rename made of it
        def remote() -> str:
            remotes = repo.remotes()
            if not remotes:  # remote_remove went through: the next fetch needs it added again
                repo.remote_add("origin", info.url)
                return "origin"
            return remotes[0].name
        chain("remote", [("fetch", lambda: repo.fetch(remote())),
                         ("pull", lambda: repo.pull(remote(), rebase=info.diverged)),
                         ("remote rename", lambda: repo.remote_rename(remote(), "renamed")),
                         ("fetch after the rename", lambda: repo.fetch("renamed"))])
    def agent_steps(agent: str) -> list[tuple[str, Callable[[], object]]]:
        return [
            (f"save ({agent})", lambda: save(agent)),
            (f"save with a name ({agent})", lambda: save(agent, "after-crash")),
            (f"tag ({agent})", lambda: repo.tag(agent, "after-crash-tag", "latest~1")),
            (f"rollback ({agent})", lambda: repo.rollback(agent, "latest~1")),
            (f"delete ({agent})", lambda: repo.delete(agent, "latest~1")),
            (f"rollback --hard ({agent})", lambda: repo.rollback(agent, "latest~1", hard=True)),
            (f"fork ({agent})", lambda: repo.fork(agent, None, f"{agent}-after")),
            (f"delete_agent ({agent}-after)", lambda: repo.delete_agent(f"{agent}-after")),
            (f"prune ({agent})",
             lambda: repo.prune(agent, RetentionPolicy(keep_last=2), grace=timedelta(0))),
        ]

    def thread_steps(agent: str) -> list[tuple[str, Callable[[], object]]]:
        return [(f"langgraph put ({agent})", lambda: langgraph_step(repo)),
                (f"langgraph put again ({agent})", lambda: langgraph_step(repo))]

    for agent in info.agents:  # (one the operation creates or deletes may be there or not)
        chain(agent, thread_steps(agent) if agent.startswith("lg.") else agent_steps(agent))
    chain("gc", [("gc", repo.gc)])
    chain("gc --prune", [("gc --prune", lambda: repo.gc(prune=True, grace_seconds=0))])
    chain("reclaim", [("reclaim", lambda: repo.reclaim(grace=timedelta(0)))])
    chain("remote add", [("remote add", lambda: repo.remote_add("after-crash", info.url))])
    return failed


def _state_checks(repo: StateRepository, info: TrialInfo, when: str) -> list[tuple[str, str]]:
    failed = []
    result = repo.verify()
    if not result.ok:
        failed.append((f"verify {when}", "; ".join(map(str, result.problems))))
    try:
        fsck(info.path)
    except AssertionError as exc:
        failed.append((f"git fsck {when}", " ".join(str(exc).split())))
    for problem in names_and_reflogs(info.path, pending_ok=when == "after the fault"):
        failed.append((f"names/reflogs {when}", problem))
    return failed


def _loads(repo: StateRepository, info: TrialInfo) -> list[tuple[str, str]]:
    """Every acknowledged checkpoint loads; after a success, the histories are complete."""
    failed = []
    for agent, checkpoint_id in info.kept:
        try:
            repo.load(agent, checkpoint_id, model=None)
        except Exception as exc:
            failed.append(("acknowledged checkpoint loads",
                           f"{agent} {checkpoint_id}: {type(exc).__name__}: {exc}"))
    if info.outcome.get("ok"):
        shape = _shape(history(info.path))
        if shape != info.success_shape:
            failed.append(("success is complete",
                           f"the operation succeeded but left {shape}, expected {info.success_shape}"))
    return failed


def check(info: TrialInfo) -> list[tuple[str, str]]:
    """Every check of one trial's repository; each failure as (check, message)."""
    failed: list[tuple[str, str]] = []
    if info.fault != "KILL" and not info.outcome["typed"]:
        failed.append(("typed error", info.outcome["error"]))

    def section(label: str, run: Callable[[], list[tuple[str, str]]]) -> None:
        try:
            failed.extend(run())
        except Exception as exc:  # e.g. git cannot read the repository at all
            failed.append((label, f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"))

    left: list[str] = []
    with StateRepository.open(info.path, lock_timeout=NEXT_LOCK_TIMEOUT) as repo:
        section("acknowledged checkpoint loads", lambda: _loads(repo, info))
        section("checks after the fault", lambda: _state_checks(repo, info, "after the fault"))
        left = debris(info.path)
        section("next operations", lambda: _run_next(repo, info))
        section("checks after the next operations",
                lambda: _state_checks(repo, info, "after the next operations"))
    if info.fault != "KILL":
        still = [p for p in debris(info.path) if p in left]
        if still:
            failed.append(("temporary files", "left after the fault and after maintenance: "
                           + ", ".join(still)))
    return failed


# -- forked children ---------------------------------------------------------------------------

def in_children(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call in its own forked child, all at once; their results (or exceptions, as
    ``HarnessError``) come back pickled. This process's state stays as it is."""
    children = []
    for call in calls:
        with tempfile.NamedTemporaryFile(prefix="crash-", suffix=".pickle", delete=False) as f:
            out = f.name
        pid = os.fork()
        if pid == 0:
            try:
                try:
                    value: Any = (True, call())
                except BaseException as exc:
                    value = (False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                with open(out, "wb") as f:
                    pickle.dump(value, f)
            finally:
                os._exit(0)
        children.append((pid, out))
    results = []
    for pid, out in children:
        os.waitpid(pid, 0)
        try:
            with open(out, "rb") as f:
                ok, value = pickle.load(f)
        except (OSError, EOFError) as exc:
            ok, value = False, f"the child died without a result: {exc}"
        finally:
            if os.path.exists(out):
                os.unlink(out)
        if not ok:
            raise HarnessError(value)
        results.append(value)
    return results


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a forked child (see :func:`in_children`)."""
    return in_children([lambda: fn(*args)])[0]


def _run_operation(op: Operation, path: str, env: Env, via: str, durable: bool,
                   fault: str | None) -> dict[str, Any]:
    """Run ``op`` (in the traced child); what happened, as the checks read it. An error
    is typed if it is a ``GitstateError``, or the ``OSError`` of the injected fault (the
    file system's own error, which the command line reports as one ``Error:`` line);
    the command's, if it is one ``Error:`` line and exit code 1."""
    if via == "cli" and op.cli is not None:
        try:
            cli.main(args=["--repo", path, *op.cli(env)], prog_name="gitstate")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        err = Path(path).parent.joinpath("stderr").read_text(errors="replace").splitlines()
        one_error = code == 1 and len(err) == 1 and err[0].startswith("Error: ")
        return {"ok": code == 0, "typed": code == 0 or one_error,
                "error": f"exit {code}, stderr: {' | '.join(err[-6:])}"}
    try:
        op.api(StateRepository.open(path, durable=durable), env)
        return {"ok": True, "typed": True, "error": ""}
    except GitstateError as exc:
        return {"ok": False, "typed": True, "error": f"{type(exc).__name__}: {exc}"}
    except OSError as exc:
        return {"ok": False, "typed": fault in _ERRNO and exc.errno == _ERRNO[fault],
                "error": f"{type(exc).__name__}: {exc}"}
    except BaseException as exc:
        return {"ok": False, "typed": False,
                "error": f"untyped {type(exc).__name__}: {exc} ({traceback.format_exc(limit=-3)})"}


def _first_difference(first: list[Point], second: list[Point]) -> str | None:
    def key(p: Point) -> tuple[int, str, int, str]:
        return p.process, p.call.name, p.call.nth, p.call.where
    for i in range(max(len(first), len(second))):
        a = key(first[i]) if i < len(first) else None
        b = key(second[i]) if i < len(second) else None
        if a != b:
            return f"kill point {i}: {a} then {b}"
    return None


# -- runs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One kill point: the ``nth`` call of system call ``name`` in traced process ``process``."""

    index: int
    process: int
    call: Call

    def __str__(self) -> str:
        return f"point {self.index} ({self.call})"


def pattern(message: str) -> str:
    """A failure message without what changes between trials (SHAs, numbers, temporary
    names), to group the failures that have one cause."""
    message = re.sub(r"objects/[0-9a-f]{2}/", "objects/xx/", message)
    message = re.sub(r"(tmp_obj_|tmp_pack_|tmp_idx_)\w+", r"\1*", message)
    message = re.sub(r"[0-9a-f]{7,40}", "<sha>", message)
    return re.sub(r"\d+", "N", message)


@dataclass
class Failure:
    """One failed check of one trial (``point`` None: the operation could not be recorded)."""

    op: str
    fault: str
    point: Point | None
    check: str
    message: str
    flags: str = ""  # the settings of bench/crash_sweep.py that rerun it

    def __str__(self) -> str:
        where = str(self.point) if self.point else "recording"
        return f"{self.op} {self.fault} at {where}: {self.check}: {self.message}"

    def reproduce(self) -> str:
        if self.point is None:
            return f"python bench/crash_sweep.py {self.flags}--op {self.op} --list"
        return (f"python bench/crash_sweep.py {self.flags}--op {self.op} --fault {self.fault} "
                f"--point {self.point.index}")


@dataclass
class Traced:
    """One traced run: each process's calls and kill points, and how the child ended."""

    processes: list[tuple[list[Call], list[int]]]
    status: int
    outcome: dict[str, Any]


@dataclass
class Result:
    """What the trials of one operation found."""

    op: str
    points: list[Point] = field(default_factory=list)
    trials: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    def report(self, limit: int = 40) -> str:
        """The failures, one line each, grouped by check and message, with how to rerun one."""
        groups: dict[tuple[str, str], list[Failure]] = {}
        for f in self.failures:
            groups.setdefault((f.check, pattern(f.message)), []).append(f)
        lines = [(f"{self.op}: {len(self.failures)} failed check(s) in "
                  f"{sum(self.trials.values())} trial(s), {len(groups)} distinct:")]
        for (check_name, _), found in list(groups.items())[:limit]:
            first = found[0]
            where = ", ".join(f"{f.fault}@{f.point.index if f.point else '-'}" for f in found[:8])
            lines.append(f"- [{check_name}] x{len(found)} ({where}{', ...' if len(found) > 8 else ''})")
            lines.append(f"    {first}")
            lines.append(f"    rerun: {first.reproduce()}")
        return "\n".join(lines)


class Harness:
    """Templates, the git server and the runs of one session (see the module docstring).

    ``size`` grows the templates; ``durable`` opens repositories with ``durable=True``
    (library calls only); ``via`` is ``"cli"`` (the command, where the operation has
    one) or ``"library"``; ``seed_files`` limits the import to the first files of the
    seed folder (0: all); ``keep`` keeps strace's logs and a copy of the repository as the
    fault left it (``repo-after-fault``) beside each trial's.
    """

    def __init__(self, workdir: Path, *, size: int = 0, durable: bool = False, via: str = "cli",
                 seed_files: int = 0, keep: bool = False):
        if shutil.which("strace") is None:
            raise HarnessError("strace is not installed (apt-get install strace)")
        if via not in ("cli", "library"):
            raise HarnessError(f"via must be 'cli' or 'library', got {via!r}")
        if durable and via == "cli":
            raise HarnessError("durable=True needs via='library' (the command has no durable option)")
        self.workdir, self.size, self.durable, self.via, self.keep = workdir, size, durable, via, keep
        settings = {"size": size, "durable": durable, "via": via, "seed_files": seed_files}
        self.flags = "--ci " if settings == CI_SETTINGS else (
            f"--size {size} --{'' if durable else 'no-'}durable --via {via} --seed-files {seed_files} ")
        self.templates: dict[str, Path] = {}
        self.recordings: dict[str, tuple[list[Point], dict[str, Any]]] = {}
        self.retried = 0  # trials run again because their calls differed from the recording
        self.slot = ""  # a worker's suffix of the trial folder (see run)
        server_root = workdir / "server"
        server_root.mkdir(parents=True)
        self.daemon = GitDaemon(server_root)
        seed = workdir / "seed"
        seed.mkdir()
        for i, file in enumerate(sorted(SEED_DIR.glob("*.json"))):
            if not seed_files or i < seed_files:
                shutil.copy2(file, seed)
        state = workdir / "state.json"
        state.write_text(json.dumps({"agent_id": "a", "task": "audit", "iteration": 99,
                                     "status": "running", "messages": []}))
        self.env = Env(str(state), str(seed), self.daemon.url("server.git"))

    def close(self) -> None:
        self.daemon.stop()

    # templates and recordings ---------------------------------------------------------------
    def template(self, name: str) -> Path:
        if name not in self.templates:
            path = self.workdir / "templates" / name
            path.parent.mkdir(exist_ok=True)
            if name == "remote":
                build_remote(path, self.size, self.workdir / "server" / "server.git", self.env.url)
            elif name == "diverged":
                build_diverged(path, self.template("remote"))
            elif name == "ahead":
                build_ahead(path, self.template("remote"))
            else:
                builders = {"basic": build_basic, "packed": build_packed, "auto": build_auto,
                            "young": build_young, "thread": build_thread, "nospares": build_nospares}
                builders[name](path, self.size)
            self.templates[name] = path
        return self.templates[name]

    def _trial_dir(self, op: Operation) -> Path:
        """Where this process runs ``op``'s trials (one folder per worker, see ``run``)."""
        return self.workdir / "trial" / f"{op.name}{self.slot}"

    def _traced(self, op: Operation, fault: str | None = None, call: Call | None = None) -> Traced:
        """Run ``op`` on a fresh copy of its template, in a forked child traced by strace
        (injecting ``fault`` into ``call``, if given)."""
        trial = self._trial_dir(op)
        shutil.rmtree(trial, ignore_errors=True)
        trial.mkdir(parents=True)
        repo = trial / "repo"
        shutil.copytree(self.template(op.template), repo, symlinks=True)
        if op.own_server:  # a copy of the server for this run, named in the copy's config
            own = f"{op.name}{self.slot}.git"
            shutil.rmtree(self.workdir / "server" / own, ignore_errors=True)
            shutil.copytree(self.workdir / "server" / "server.git", self.workdir / "server" / own,
                            symlinks=True)
            config = repo / "config"
            config.write_text(config.read_text().replace(self.env.url, self.daemon.url(own)))
        logs = trial / "strace"
        result_file = trial / "outcome.json"
        pid = os.fork()
        if pid == 0:  # the traced child
            try:
                for fd, name in ((1, "stdout"), (2, "stderr")):  # (also under pytest's capture)
                    os.dup2(os.open(trial / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                sys.stdout = open(1, "w", closefd=False)
                sys.stderr = open(2, "w", closefd=False)
                os.chdir(trial)
                try:  # Yama's ptrace_scope=1 (a CI runner): let strace, a sibling, attach
                    ctypes.CDLL(None).prctl(_PR_SET_PTRACER, ctypes.c_ulong(-1), 0, 0, 0)
                except (OSError, AttributeError):
                    pass
                os.kill(os.getpid(), signal.SIGSTOP)
                outcome = _run_operation(op, str(repo), self.env, self.via, self.durable, fault)
                result_file.write_text(json.dumps(outcome))
            finally:
                os._exit(0)
        os.waitpid(pid, os.WUNTRACED)
        command = ["strace", "-f", "-ff", "-y", "-s", "0", "-e", "signal=none", "-e", _TRACE,
                   "-o", str(logs), "-p", str(pid)]
        if fault is not None and call is not None:
            command += ["-e", f"inject={call.name}:{_INJECT[fault]}:when={call.nth}"]
        tracer = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        assert tracer.stderr is not None
        said = []
        for line in tracer.stderr:  # synchronization: strace says when it holds the child
            said.append(line)
            if f"Process {pid} attached" in line:
                break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise HarnessError(f"strace could not attach (ptrace not permitted?): {''.join(said)}")
        os.kill(pid, signal.SIGCONT)
        try:
            tracer.wait(TRIAL_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            tracer.wait()
            os.waitpid(pid, 0)
            return Traced([], -1, {"ok": False, "typed": False,
                                   "error": f"hang: no end after {TRIAL_TIMEOUT:g} s"})
        tracer.stderr.read()
        _, status = os.waitpid(pid, 0)
        pids = sorted(int(p.name.rpartition(".")[2]) for p in trial.glob("strace.*"))
        pids.sort(key=lambda p: p != pid)  # the child first, then its processes in pid order
        processes = [parse_log(trial / f"strace.{p}", str(repo), str(trial)) for p in pids]
        outcome = json.loads(result_file.read_text()) if result_file.exists() else {}
        if not self.keep:
            for p in trial.glob("strace.*"):
                p.unlink()
        return Traced(processes, status, outcome)

    def record(self, op: Operation) -> tuple[list[Point], dict[str, Any]]:
        """The kill points of ``op`` (run until two runs in a row agree) and the histories
        before and after an untroubled run."""
        if op.name in self.recordings:
            return self.recordings[op.name]
        before = history(str(self.template(op.template)))
        runs: list[list[Point]] = []
        while True:  # until two runs in a row agree (see trial() on why they may not)
            run = self._traced(op)
            if not run.outcome.get("ok"):
                raise HarnessError(f"{op.name} fails without any fault: {run.outcome}")
            found = [(proc, calls[k]) for proc, (calls, kills) in enumerate(run.processes) for k in kills]
            runs.append([Point(i, proc, call) for i, (proc, call) in enumerate(found)])
            if len(runs) >= 2 and _first_difference(runs[-2], runs[-1]) is None:
                break
            if len(runs) == ATTEMPTS + 1:
                raise HarnessError(f"{op.name} does not make the same calls twice in a row in "
                                   f"{len(runs)} runs: {_first_difference(runs[-2], runs[-1])}")
        points = runs[-1]
        after = history(str(self._trial_dir(op) / "repo"))
        if not op.removes:
            lost = {(a, c) for a, h in before.items() for c in h.ids} - \
                   {(a, c) for a, h in after.items() for c in h.ids}
            if lost:
                raise HarnessError(f"{op.name} loses checkpoints without any fault: {sorted(lost)}")
        self.recordings[op.name] = (points, {"before": before, "after": after})
        return self.recordings[op.name]

    # trials ---------------------------------------------------------------------------------
    @staticmethod
    def _diverged(recorded: list[Point], point: Point, fault: str, traced: Traced) -> str | None:
        """Why the trial did not inject at the recorded call (None if it did)."""
        if point.process >= len(traced.processes):
            return f"process {point.process} of the recording did not run"
        calls, points = traced.processes[point.process]
        if fault == "KILL":
            hit = [i for i, c in enumerate(calls) if c.result == "?"]
            if not (os.WIFSIGNALED(traced.status) and os.WTERMSIG(traced.status) == signal.SIGKILL):
                return f"the process was not killed (status {traced.status}); calls: {len(calls)}"
        else:
            hit = [i for i, c in enumerate(calls) if c.result.endswith("(INJECTED)")]
        if len(hit) != 1:
            return f"{len(hit)} injected calls in process {point.process}"
        got = calls[hit[0]]
        if (got.name, got.nth, got.where) != (point.call.name, point.call.nth, point.call.where):
            return f"injected into {got}, recorded {point.call}"
        before = [(calls[k].name, calls[k].where) for k in points if k < hit[0]]
        expected = [(p.call.name, p.call.where) for p in recorded
                    if p.process == point.process and p.index < point.index]
        if before != expected:
            return "the calls before the injected one differ from the recording"
        return None

    def trial(self, op: Operation, fault: str, point: Point) -> list[Failure]:
        """One trial: inject ``fault`` at ``point``, then run every check.

        A trial whose calls differ from the recording runs again (up to ``ATTEMPTS``
        times): a new commit's SHA changes with every run, and in a template without
        fan-out folders, whether its folder exists already changes the calls made.
        """
        recorded, reference = self.recordings[op.name]
        fault = fault_at(fault, point.call)
        for attempt in range(1, ATTEMPTS + 1):
            traced = self._traced(op, fault, point.call)
            if traced.status == -1:
                return [Failure(op.name, fault, point, "hang", traced.outcome["error"], self.flags)]
            why = self._diverged(recorded, point, fault, traced)
            if why is None:
                break
            if attempt == ATTEMPTS:
                return [Failure(op.name, fault, point, "DIVERGED from the recording", why, self.flags)]
            self.retried += 1
        before, after = reference["before"], reference["after"]
        kept_ids = {(a, c) for a, h in after.items() for c in h.ids}
        kept = [(a, c) for a, h in before.items() for c in h.ids if (a, c) in kept_ids]
        path = str(self._trial_dir(op) / "repo")
        if self.keep:  # the repository as the fault left it, before the checks change it
            shutil.rmtree(path + "-after-fault", ignore_errors=True)
            shutil.copytree(path, path + "-after-fault", symlinks=True)
        info = TrialInfo(path=path, fault=fault,
                         outcome=traced.outcome if fault != "KILL" else {"ok": False, "typed": True},
                         kept=kept, success_shape=_shape(after), url=self.env.url,
                         remote=op.template in ("remote", "diverged", "ahead"),
                         agents=_touched(before, after), diverged=op.template == "diverged")
        try:
            failed = in_child(check, info)
        except HarnessError as exc:
            failed = [("checks crashed", str(exc).splitlines()[0])]
        return [Failure(op.name, fault, point, name, message.replace(path, "$REPO"), self.flags)
                for name, message in failed]

    def run(self, op: str | Operation, faults: Iterable[str] = FAULTS,
            points: Iterable[int] | None = None, jobs: int = 1) -> Result:
        """Every trial of one operation (``points``: the kill point indexes to try, default
        all), in ``jobs`` forked workers, each with its own trial folder."""
        started = time.perf_counter()
        op = OPERATIONS[op] if isinstance(op, str) else op
        result = Result(op.name)
        try:
            result.points, _ = self.record(op)
        except HarnessError as exc:
            result.failures.append(Failure(op.name, "-", None, "recording", str(exc), self.flags))
            return result
        chosen = [result.points[i] for i in points] if points is not None else result.points
        trials = [(fault, point) for fault in faults for point in chosen]
        for fault, _point in trials:
            result.trials[fault] = result.trials.get(fault, 0) + 1
        slices = [trials[k::jobs] for k in range(max(1, min(jobs, len(trials))))]
        for failures, retried in self._workers(op, slices):
            result.failures += failures
            self.retried += retried
        result.failures.sort(key=lambda f: (FAULTS.index(f.fault) if f.fault in FAULTS else 9,
                                            f.point.index if f.point else -1))
        result.seconds = time.perf_counter() - started
        return result

    def _workers(self, op: Operation, slices: list[list[tuple[str, Point]]]
                 ) -> list[tuple[list[Failure], int]]:
        """Run each slice of trials in a forked worker (in this process if there is one)."""
        def work(k: int) -> tuple[list[Failure], int]:
            self.slot, self.retried = (f".{k}" if len(slices) > 1 else ""), 0
            failures = [f for fault, point in slices[k] for f in self.trial(op, fault, point)]
            return failures, self.retried
        if len(slices) == 1:
            saved = self.retried
            failures, retried = work(0)
            self.retried = saved
            return [(failures, retried)]
        return in_children([functools.partial(work, k) for k in range(len(slices))])
