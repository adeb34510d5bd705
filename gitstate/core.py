"""The core: what every feature needs of one repository's agents and checkpoints.

A :class:`Core` holds the git engine's :class:`~gitstate.git.store.Store` of one
repository and offers, by name: an agent's head, its history (first parents,
newest first), its checkpoint names, revisions resolved in its history, a
checkpoint's record and state, and the one way to add a checkpoint to an
agent's branch (:meth:`Core.append`: under the agent's lock, by
compare-and-swap). The features (:mod:`gitstate.checkpoints`,
:mod:`gitstate.history`, :mod:`gitstate.prune`, ...) are functions over a Core;
``StateRepository`` delegates to them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from . import codec
from .errors import (
    AgentNotFoundError,
    AmbiguousRevisionError,
    CorruptObjectError,
    EncodingError,
    InvalidArgumentError,
    NameTakenError,
    RevisionNotFoundError,
)
from .git import bare
from .git.journal import RefUpdate
from .git.layout import (
    CommitInfo,
    checkpoint_commit,
    reaches,
    state_blob,
    tree_entries,
)
from .git.objects import RawObject
from .git.reader import BLOB, CACHE_BYTES, COMMIT, TREE, type_name
from .git.store import Store
from .ids import (
    branch_ref,
    is_checkpoint_id,
    is_valid_name,
    naming_problem,
    tag_prefix,
    tag_ref,
    tracking_branch,
    tracking_tag_prefix,
    validate_agent_id,
)
from .message import integer
from .message import parse as parse_message
from .models import Checkpoint

_REV = re.compile(r"(?P<base>[^~^]*)(?P<steps>(?:~\d*|\^)*)")
_HEX = re.compile(r"[0-9a-f]{7,40}")


def utc(seconds: int) -> datetime:
    """A commit time (Unix seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


class Core:
    """One repository's agents and checkpoints (see the module docstring).

    Safe to share between threads; any number of processes may use the same
    repository. ``durable``, ``lock_timeout`` and ``cache_bytes`` are the options
    of ``StateRepository.open``.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False,
                 lock_timeout: float = 60.0, cache_bytes: int = CACHE_BYTES):
        if type(cache_bytes) is not int or cache_bytes < 0:
            raise InvalidArgumentError(f"cache_bytes must be an integer >= 0, got {cache_bytes!r}")
        if type(lock_timeout) not in (int, float) or not lock_timeout >= 0:
            raise InvalidArgumentError(f"lock_timeout must be a number of seconds >= 0, got {lock_timeout!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.store = Store(self.path, durable=durable, lock_timeout=lock_timeout,
                           cache_bytes=cache_bytes)

    @classmethod
    def init(cls, path: str | os.PathLike[str], **options: Any) -> Core:
        """The repository at ``path``, created (bare) if it does not exist yet."""
        core = cls(path, **options)  # checks the options before anything is created
        if bare.exists(core.path):
            bare.check(os.fspath(path))
        else:
            bare.create(os.fspath(path), core.store)
        return core

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> Core:
        """The existing repository at ``path``; ``NotARepositoryError`` (or its subclass
        ``RepositoryFormatError``) if it is not one gitstate can write."""
        bare.check(os.fspath(path))
        return cls(path, **options)

    def close(self) -> None:
        """Release open files, pack indexes and cached objects (reopened when needed)."""
        self.store.close()

    # -- objects ---------------------------------------------------------------------
    def raw(self, sha: bytes, type_num: int) -> bytes:
        """The content of object ``sha``, which must be of type ``type_num``."""
        try:
            found, content = self.store.reader.read(sha)
        except KeyError:
            raise CorruptObjectError(f"object {sha.decode()} is missing from {self.path}") from None
        except ValueError as exc:  # damaged: the reader's message names the object or its file
            raise CorruptObjectError(f"object {sha.decode()} cannot be read: {exc}") from None
        if found != type_num:
            raise CorruptObjectError(f"object {sha.decode()} is a {type_name(found)}, "
                                     f"expected a {type_name(type_num)}")
        return content

    def commit(self, sha: bytes) -> CommitInfo:
        """Commit ``sha``, parsed (``CorruptObjectError`` if it cannot be)."""
        raw = self.raw(sha, COMMIT)
        try:
            return CommitInfo.parse(sha, raw)
        except ValueError as exc:
            raise CorruptObjectError(f"commit {sha.decode()} cannot be parsed: {exc}") from exc

    def blob_id(self, commit: CommitInfo) -> bytes:
        """The SHA of a checkpoint commit's ``state.json`` blob (its tree read, not the blob)."""
        try:
            blob = state_blob(self.raw(commit.tree, TREE))
        except ValueError as exc:
            raise CorruptObjectError(f"tree {commit.tree.decode()}: {exc}") from exc
        if blob is None:
            raise CorruptObjectError(f"commit {commit.id.decode()} has no state.json")
        return blob

    def state_json(self, commit: CommitInfo) -> bytes:
        """The raw bytes of a checkpoint commit's ``state.json``."""
        return self.raw(self.blob_id(commit), BLOB)

    def state(self, commit: CommitInfo) -> Any:
        """The decoded ``state.json`` of a checkpoint commit."""
        try:
            return codec.decode(self.state_json(commit))
        except EncodingError as exc:
            raise CorruptObjectError(f"the state.json of commit {commit.id.decode()} "
                                     f"is not valid JSON: {exc}") from exc

    def freshen(self, tree: bytes) -> None:
        """Write tree ``tree`` and its entries again as loose objects (or refresh their
        times), so that a reclaim running now counts them as young and spares them."""
        raw = self.raw(tree, TREE)
        try:
            entries = tree_entries(raw)
        except ValueError as exc:
            raise CorruptObjectError(f"tree {tree.decode()}: {exc}") from exc
        for _name, _mode, sha in entries:
            self.store.write(RawObject(BLOB, self.raw(sha, BLOB), sha))
        self.store.write(RawObject(TREE, raw, tree))

    # -- agents and their histories ----------------------------------------------------
    def refs_of(self, agent_id: str) -> tuple[bytes, bytes]:
        """The branch and the names' prefix of an agent; ``REMOTE/AGENT`` names the copy of a
        remote's agent that the last fetch left (its remote-tracking refs, read-only)."""
        remote, slash, agent = agent_id.partition("/") if isinstance(agent_id, str) else ("", "", "")
        if not slash:
            validate_agent_id(agent_id, existing=True)
            return branch_ref(agent_id), tag_prefix(agent_id)
        problem = naming_problem(remote, "remote name")
        if problem:
            raise InvalidArgumentError(f"{agent_id!r} is not REMOTE/AGENT: {problem}")
        validate_agent_id(agent, existing=True)
        return tracking_branch(remote, agent), tracking_tag_prefix(remote, agent)

    def head(self, agent_id: str) -> bytes:
        """The SHA of the agent's newest commit (``REMOTE/AGENT``: the remote-tracking head,
        see :meth:`refs_of`); ``AgentNotFoundError`` if there is none."""
        head = self.store.read_ref(self.refs_of(agent_id)[0])
        if head is None:
            remote, slash, agent = agent_id.partition("/")
            if slash:
                raise AgentNotFoundError(f"no remote-tracking agent {agent_id!r} in {self.path}: "
                                         f"fetch it first (gitstate fetch {remote} {agent})")
            raise AgentNotFoundError(f"no agent {agent_id!r} in {self.path}")
        return head

    def walk(self, start: bytes) -> Iterator[CommitInfo]:
        """Commits from ``start`` back along first parents, newest first, lazily."""
        sha: bytes | None = start
        while sha is not None:
            commit = self.commit(sha)
            yield commit
            sha = commit.parents[0] if commit.parents else None

    def ancestors(self, head: bytes) -> set[bytes]:
        """``head`` and every commit in its history, all parents followed."""
        seen: set[bytes] = set()
        todo = [head]
        while todo:
            sha = todo.pop()
            if sha not in seen:
                seen.add(sha)
                todo.extend(self.commit(sha).parents)
        return seen

    def merge_bases(self, ours: bytes, theirs: bytes) -> list[bytes]:
        """The best common ancestors of two commits (``git merge-base --all``), newest first:
        the common ancestors that are not in the history of another common ancestor."""
        in_ours = self.ancestors(ours)
        common: list[bytes] = []
        seen: set[bytes] = set()
        todo = [theirs]
        while todo:
            sha = todo.pop()
            if sha in seen:
                continue
            seen.add(sha)
            if sha in in_ours:
                common.append(sha)
            else:
                todo.extend(self.commit(sha).parents)
        best = [sha for sha in common
                if not any(other != sha and reaches(lambda c: self.commit(c).parents, other, sha)
                           for other in common)]
        return sorted(best, key=lambda sha: (-self.commit(sha).author_time, sha))

    def history(self, agent_id: str) -> list[CommitInfo]:
        """The agent's commits, newest first (read it under the agent lock before rewriting)."""
        return list(self.walk(self.head(agent_id)))

    def position(self, agent_id: str, history: Sequence[CommitInfo], target: Checkpoint) -> int:
        """Where ``target`` is in ``history`` (newest first); ``RevisionNotFoundError`` if it
        left the history (e.g. while an operation waited for the agent's lock)."""
        for i, commit in enumerate(history):
            if commit.id.decode() == target.commit:
                return i
        raise RevisionNotFoundError(f"checkpoint {target.checkpoint_id} is not in the history of "
                                    f"agent {agent_id!r} (it left it while this operation waited?)")

    def names(self, agent_id: str) -> dict[bytes, list[str]]:
        """Commit SHA -> checkpoint names of one agent (or ``REMOTE/AGENT``)."""
        prefix = self.refs_of(agent_id)[1]
        names: dict[bytes, list[str]] = {}
        for ref, sha in self.store.read_refs(prefix).items():
            names.setdefault(sha, []).append(ref[len(prefix):].decode())
        return names

    def checkpoint(self, commit: Any, agent_id: str, names: Sequence[str] = ()) -> Checkpoint:
        """The checkpoint of a commit (a ``CommitInfo``, or a commit just written);
        trailers that are not integers leave the defaults."""
        summary, trailers = parse_message(commit.message)
        schema_version = integer(trailers.get("Schema-Version"))
        return Checkpoint(
            checkpoint_id=trailers.get("Checkpoint-Id", commit.id.decode()),
            commit=commit.id.decode(),
            agent_id=trailers.get("Agent-Id", agent_id),
            iteration=integer(trailers.get("Iteration")),
            status=trailers.get("Status"),
            names=tuple(sorted(names)),
            created=utc(commit.author_time),
            message=summary,
            parent=commit.parents[0].decode() if commit.parents else None,
            schema_version=1 if schema_version is None else schema_version,
            trailers=trailers,
        )

    # -- revisions ---------------------------------------------------------------------
    def resolve(self, agent_id: str, rev: str | None = None) -> Checkpoint:
        """The checkpoint a revision names in the agent's history (see :meth:`find`)."""
        commit = self.find(agent_id, rev)
        return self.checkpoint(commit, agent_id, self.names(agent_id).get(commit.id, ()))

    def find(self, agent_id: str, rev: str | None) -> CommitInfo:
        """The commit ``rev`` names in the agent's history.

        Revisions: ``None``/``latest`` (the head), a checkpoint name, a checkpoint
        id, a full or abbreviated (7+ hex digits) commit SHA, each optionally
        followed by ``~N`` (N checkpoints older) or ``^`` (one older). ``REMOTE/AGENT``
        names the head of a remote-tracking agent (what the last fetch brought), in or
        out of this agent's history (``origin/a~2`` is two checkpoints older).
        """
        head = self.head(agent_id)
        text = "latest" if rev is None else str(rev).strip()
        match = _REV.fullmatch(text)
        if not match:
            raise RevisionNotFoundError(f"{text!r} is not a revision")
        base = match["base"] or "latest"
        steps = sum(1 if s == "^" else int(s[1:] or 1)
                    for s in re.findall(r"~\d*|\^", match["steps"]))
        older = -1
        for older, commit in enumerate(self.walk(self._base(agent_id, head, base))):
            if older == steps:
                return commit
        raise RevisionNotFoundError(
            f"{text!r}: agent {agent_id!r} has only {older} checkpoint(s) older than {base!r}")

    def _base(self, agent_id: str, head: bytes, base: str) -> bytes:
        if base in ("latest", "HEAD"):
            return head
        if "/" in base:
            return self.head(base)
        if is_valid_name(base):
            tagged = self.store.read_ref(self.refs_of(agent_id)[1] + base.encode())
            if tagged is not None:
                return tagged
        if is_checkpoint_id(base):
            for commit in self.walk(head):
                if f"\nCheckpoint-Id: {base}\n".encode() in commit.message:
                    return commit.id
        elif _HEX.fullmatch(base.lower()):
            prefix = base.lower().encode()
            found = [c.id for c in self.walk(head) if c.id.startswith(prefix)]
            if len(found) > 1:
                listed = ", ".join(sha.decode() for sha in found)
                raise AmbiguousRevisionError(f"{base!r} matches {len(found)} checkpoints of "
                                             f"{agent_id!r}: {listed}", [s.decode() for s in found])
            if found:
                return found[0]
        raise RevisionNotFoundError(f"no checkpoint {base!r} in the history of agent {agent_id!r}")

    # -- adding checkpoints ------------------------------------------------------------
    def check_name_free(self, agent_id: str, name: str) -> None:
        """``NameTakenError`` if the agent already has a checkpoint named ``name``."""
        taken = self.store.read_ref(tag_ref(agent_id, name))
        if taken is not None:
            raise NameTakenError(
                f"agent {agent_id!r} already has a checkpoint named {name!r} ({taken[:7].decode()})")

    def append(self, agent_id: str, tree: bytes, message: bytes, when: int | None = None,
               name: str | None = None) -> Any:
        """Commit ``tree`` on the agent's branch, named ``name`` if given; return the commit.

        Under the agent's lock: the commit's parent is the head read there, and the
        branch moves by compare-and-swap from it (a writer outside gitstate that
        moved it meanwhile makes the commit be rebuilt on its head). Branch and
        name move as one journaled operation. ``when`` is the author time (Unix
        seconds, default now).
        """
        store, ref = self.store, branch_ref(agent_id)
        with store.agent_lock(agent_id) as lock:
            if name is not None:
                self.check_name_free(agent_id, name)
            while True:
                parent = store.writable_ref(ref)  # damaged or symbolic: before the commit
                commit = checkpoint_commit(tree, parent, agent_id, message, when)
                store.write(commit, new=True)  # its message names a new checkpoint id
                updates = [RefUpdate(ref, parent, commit.id)]
                if name is not None:
                    updates.append(RefUpdate(tag_ref(agent_id, name), None, commit.id))
                if store.update_refs(lock, agent_id, updates):
                    return commit

    def write_commit(self, agent_id: str, tree: bytes, parents: Sequence[bytes], message: bytes,
                     when: int | None = None, objects: Sequence[RawObject] = ()) -> Any:
        """Write a commit of ``tree`` by ``agent_id`` with ``parents`` (the first parent first)
        and return it; no ref moves (the caller moves one by compare-and-swap under the
        agent's lock). For histories that are not a line (``gitstate.langgraph``).
        ``when`` is the author time (Unix seconds, default now). ``objects``, the new
        objects its tree needs, are written with it as one small pack (two files instead of
        one per object: :meth:`Store.write_pack <gitstate.git.store.Store.write_pack>`);
        without them the commit is a loose object."""
        commit: Any = checkpoint_commit(tree, None, agent_id, message, when)  # the engine's object
        commit.parents = list(parents)
        if objects:
            self.store.write_pack([*objects, commit])
        else:
            self.store.write(commit)
        return commit
