"""``StateRepository``: save, load, resolve and list agent checkpoints in a bare git repo."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Optional, TypeVar

from dulwich.config import ConfigFile
from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit, ShaFile, Tree, object_class, parse_tree
from dulwich.repo import Repo
from pydantic import BaseModel, ValidationError

from . import codec
from .git.config import check_format, update_config
from .message import build as build_message, integer, parse as parse_message
from .errors import (
    AgentNotFoundError,
    AmbiguousRevisionError,
    CorruptObjectError,
    EncodingError,
    GitstateError,
    InvalidArgumentError,
    InvalidStateError,
    NameTakenError,
    NotARepositoryError,
    RevisionNotFoundError,
)
from .ids import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    branch_ref,
    is_checkpoint_id,
    is_sha,
    is_valid_name,
    new_checkpoint_id,
    tag_prefix,
    tag_ref,
    validate_agent_id,
    validate_name,
)
from .diff import DiffMixin
from .history import HistoryMixin
from .git.journal import RefUpdate
from .git.layout import STATE_FILE, CommitInfo, aware, checkpoint_commit, checkpoint_time, state_objects
from .maintenance import MaintenanceMixin
from .models import AgentInfo, AgentState, Checkpoint
from .prune import PruneMixin
from .git.reader import CACHE_BYTES
from .remote import RemoteMixin
from .seed_import import SeedImportMixin
from .git.store import Store

M = TypeVar("M", bound=BaseModel)
O = TypeVar("O", bound=ShaFile)

CORE_TRAILERS = ("Checkpoint-Id", "Agent-Id", "Iteration", "Status", "Schema-Version")
_REV = re.compile(r"(?P<base>[^~^]*)(?P<steps>(?:~\d*|\^)*)")
_HEX = re.compile(r"[0-9a-f]{7,40}")


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class StateRepository(HistoryMixin, PruneMixin, DiffMixin, SeedImportMixin, RemoteMixin,
                      MaintenanceMixin):
    """Agent checkpoints in a bare git repository: one branch per agent, one commit per save.

    Open one with :meth:`init` or :meth:`open`. Instances may be shared between
    threads and used from many processes at once. ``durable=True`` fsyncs
    objects, refs and their directories before :meth:`save` returns;
    ``cache_bytes`` bounds the cache of inflated objects (0 turns it off).
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False,
                 lock_timeout: float = 60.0, cache_bytes: int = CACHE_BYTES):
        if type(cache_bytes) is not int or cache_bytes < 0:
            raise InvalidArgumentError(f"cache_bytes must be an integer >= 0, got {cache_bytes!r}")
        if type(lock_timeout) not in (int, float) or not lock_timeout >= 0:
            raise InvalidArgumentError(f"lock_timeout must be a number of seconds >= 0, got {lock_timeout!r}")
        self.path = os.path.abspath(os.fspath(path))
        self._store = Store(self.path, durable=durable, lock_timeout=lock_timeout,
                            cache_bytes=cache_bytes)

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str], **options: Any) -> "StateRepository":
        """Create a bare repository at ``path`` (or open the one already there)."""
        path = os.fspath(path)
        instance = cls(path, **options)  # checks the options before anything is created
        if os.path.exists(os.path.join(path, "objects")) and os.path.exists(os.path.join(path, "HEAD")):
            return cls.open(path, **options)
        _check_head(path)
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotARepositoryError(f"{path} exists and is not a directory")
        if os.path.isdir(path) and os.listdir(path):
            raise NotARepositoryError(f"{path} exists, is not empty and is not a git repository")
        os.makedirs(path, exist_ok=True)
        repo = Repo.init_bare(path)
        repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
        repo.close()
        update_config(instance._store, _init_config)
        return instance

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> "StateRepository":
        """Open an existing bare repository (any bare git repo, e.g. a ``git clone --bare``).

        ``RepositoryFormatError`` if its config does not parse or asks for what
        gitstate cannot write (SHA-256 objects, another ref storage, a repository
        format or extension it does not know); nothing is written then.
        """
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise NotARepositoryError(f"{path} does not exist or is not a directory")
        check_format(path)
        _check_head(path)
        try:
            repo = Repo(path)
        except NotGitRepository:
            raise NotARepositoryError(f"{path} is not a git repository") from None
        bare = repo.bare
        repo.close()
        if not bare:
            raise NotARepositoryError(f"{path} is a git work tree; gitstate needs a bare repository")
        return cls(path, **options)

    def close(self) -> None:
        """Release open files, pack indexes and cached objects (``with`` does it at the end).

        The repository stays usable: a later call opens what it needs again.
        """
        self._store.close()

    def __enter__(self) -> "StateRepository":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- saving ----------------------------------------------------------------------
    def save(
        self,
        state: BaseModel | Mapping[str, Any],
        *,
        agent_id: Optional[str] = None,
        name: Optional[str] = None,
        message: Optional[str] = None,
        time: Optional[datetime] = None,
        trailers: Optional[Mapping[str, str]] = None,
    ) -> Checkpoint:
        """Save ``state`` as a new checkpoint (a commit on the agent's branch).

        The agent is ``agent_id`` if given (also written into the state), else
        the state's own ``agent_id``. ``name`` tags the checkpoint and must be
        new for this agent. ``time`` (timezone-aware, within 1970..9999 UTC)
        sets the author time, default now. ``trailers`` adds commit trailers
        beside gitstate's own.
        """
        data, schema_version = _plain(state)
        extra = _extra_trailers(trailers)
        if message is not None and not isinstance(message, str):
            raise InvalidArgumentError(f"message must be a string, got {type(message).__name__}")
        agent_id = validate_agent_id(agent_id if agent_id is not None else data.get("agent_id"))
        self._store.writable_ref(branch_ref(agent_id))  # damaged or symbolic: before any write
        if data.get("agent_id") != agent_id:
            data = {**data, "agent_id": agent_id}
        if name is not None:
            validate_name(name)
            with self._store.agent_lock(agent_id):  # completes an interrupted operation first
                self._check_name_free(agent_id, name)
        when = None if time is None else checkpoint_time(time)
        iteration, status = data.get("iteration"), data.get("status")
        iteration = iteration if type(iteration) is int else None
        status = status if isinstance(status, str) else None
        fields = {"Checkpoint-Id": new_checkpoint_id(), "Agent-Id": agent_id}
        if iteration is not None:
            fields["Iteration"] = str(iteration)
        if status is not None:
            fields["Status"] = status
        fields["Schema-Version"] = str(schema_version)
        fields.update(extra)
        summary = message if message is not None else _summary(agent_id, iteration, status, name)
        text = build_message(summary, fields)

        blob, tree = state_objects(data)
        self._store.write(blob)
        self._store.write(tree)
        commit = self._commit_on_branch(agent_id, tree.id, text, when, name)
        self._after_save(3, len(blob.data))
        return self._checkpoint(commit, agent_id, (name,) if name else ())

    def _commit_on_branch(self, agent_id: str, tree: bytes, text: bytes, when: Optional[int],
                          name: Optional[str]) -> Commit:
        """Commit ``tree`` on the agent's branch (author time ``when``, default now), tag it ``name``."""
        store, ref = self._store, branch_ref(agent_id)
        with store.agent_lock(agent_id) as lock:
            if name is not None:
                self._check_name_free(agent_id, name)
            while True:
                parent = store.writable_ref(ref)  # damaged or symbolic: before the commit
                commit = checkpoint_commit(tree, parent, agent_id, text, when)
                store.write(commit)
                updates = [RefUpdate(ref, parent, commit.id)]
                if name is not None:
                    updates.append(RefUpdate(tag_ref(agent_id, name), None, commit.id))
                if store.update_refs(lock, agent_id, updates):
                    break  # else a non-gitstate writer moved the branch: rebuild on its head
        return commit

    def _check_name_free(self, agent_id: str, name: str) -> None:
        taken = self._store.read_ref(tag_ref(agent_id, name))
        if taken is not None:
            raise NameTakenError(
                f"agent {agent_id!r} already has a checkpoint named {name!r} ({taken[:7].decode()})"
            )

    def tag(self, agent_id: str, name: str, rev: Optional[str] = None) -> Checkpoint:
        """Name the checkpoint at ``rev`` (default: the latest); names are never reused.

        ``rev`` is resolved under the agent's lock, so a concurrent delete, prune
        or rollback cannot leave the name on a checkpoint that left the history.
        """
        validate_agent_id(agent_id)
        validate_name(name)
        self._head(agent_id)  # no lock file for an agent that does not exist
        with self._store.agent_lock(agent_id) as lock:
            target = self.resolve(agent_id, rev)
            head = self._head(agent_id)
            if not any(c.id.decode() == target.commit for c in self._walk(head)):
                raise RevisionNotFoundError(f"{rev!r} names {target.commit[:7]}, which is not in "
                                            f"the history of agent {agent_id!r}")
            self._check_name_free(agent_id, name)
            if not self._store.update_ref(lock, tag_ref(agent_id, name), None, target.commit.encode()):
                raise NameTakenError(f"agent {agent_id!r}: the name {name!r} was just taken by a "
                                     "writer outside gitstate")
        return target.model_copy(update={"names": tuple(sorted((*target.names, name)))})

    # -- reading ---------------------------------------------------------------------
    def _raw(self, sha: bytes, kind: type[ShaFile]) -> bytes:
        """The content of object ``sha``, which must be a ``kind``."""
        try:
            type_num, content = self._store.reader.read(sha)
        except KeyError:
            raise CorruptObjectError(f"object {sha.decode()} is missing from {self.path}") from None
        except ValueError as exc:  # damaged: the reader's message names the object or its file
            raise CorruptObjectError(f"object {sha.decode()} cannot be read: {exc}") from None
        if type_num != kind.type_num:
            raise CorruptObjectError(f"object {sha.decode()} is a {object_class(type_num).type_name.decode()}, "
                                     f"expected a {kind.type_name.decode()}")
        return content

    def _object(self, sha: bytes, kind: type[O]) -> O:
        """Object ``sha`` parsed by dulwich (use :meth:`_commit` for reading commits)."""
        raw = self._raw(sha, kind)
        try:
            return kind.from_raw_string(kind.type_num, raw, sha)
        except Exception as exc:
            raise CorruptObjectError(f"object {sha.decode()} cannot be parsed: {exc}") from exc

    def _commit(self, sha: bytes) -> CommitInfo:
        raw = self._raw(sha, Commit)
        try:
            return CommitInfo.parse(sha, raw)
        except ValueError as exc:
            raise CorruptObjectError(f"commit {sha.decode()} cannot be parsed: {exc}") from exc

    def _head(self, agent_id: str) -> bytes:
        head = self._store.read_ref(branch_ref(validate_agent_id(agent_id, existing=True)))
        if head is None:
            raise AgentNotFoundError(f"no agent {agent_id!r} in {self.path}")
        return head

    def _walk(self, start: bytes) -> Iterator[CommitInfo]:
        """Commits from ``start`` back along first parents, newest first, lazily."""
        sha: Optional[bytes] = start
        while sha is not None:
            commit = self._commit(sha)
            yield commit
            sha = commit.parents[0] if commit.parents else None

    def _names(self, agent_id: str) -> dict[bytes, list[str]]:
        """Commit SHA -> checkpoint names of one agent."""
        prefix = tag_prefix(agent_id)
        names: dict[bytes, list[str]] = {}
        for ref, sha in self._store.read_refs(prefix).items():
            names.setdefault(sha, []).append(ref[len(prefix):].decode())
        return names

    def _checkpoint(self, commit: CommitInfo | Commit, agent_id: str, names: tuple[str, ...] = ()) -> Checkpoint:
        """The checkpoint of a commit; trailers that are not integers leave the defaults."""
        summary, trailers = parse_message(commit.message)
        schema_version = integer(trailers.get("Schema-Version"))
        return Checkpoint(
            checkpoint_id=trailers.get("Checkpoint-Id", commit.id.decode()),
            commit=commit.id.decode(),
            agent_id=trailers.get("Agent-Id", agent_id),
            iteration=integer(trailers.get("Iteration")),
            status=trailers.get("Status"),
            names=tuple(sorted(names)),
            created=_utc(commit.author_time),
            message=summary,
            parent=commit.parents[0].decode() if commit.parents else None,
            schema_version=1 if schema_version is None else schema_version,
            trailers=trailers,
        )

    def resolve(self, agent_id: str, rev: Optional[str] = None) -> Checkpoint:
        """The checkpoint a revision names, in the agent's history.

        Revisions: ``None``/``latest`` (the head), a checkpoint name, a checkpoint
        id, a full or abbreviated (7+ hex digits) commit SHA, each optionally
        followed by ``~N`` (N checkpoints older) or ``^`` (one older).
        """
        commit = self._find(agent_id, rev)
        return self._checkpoint(commit, agent_id, tuple(self._names(agent_id).get(commit.id, ())))

    def _find(self, agent_id: str, rev: Optional[str]) -> CommitInfo:
        """The commit ``rev`` names in the agent's history (see :meth:`resolve`)."""
        head = self._head(agent_id)
        text = "latest" if rev is None else str(rev).strip()
        match = _REV.fullmatch(text)
        if not match:
            raise RevisionNotFoundError(f"{text!r} is not a revision")
        base = match["base"] or "latest"
        steps = sum(1 if s == "^" else int(s[1:] or 1)
                    for s in re.findall(r"~\d*|\^", match["steps"]))
        sha = self._resolve_base(agent_id, head, base)
        for i, commit in enumerate(self._walk(sha)):
            if i == steps:
                return commit
        raise RevisionNotFoundError(
            f"{text!r}: agent {agent_id!r} has only {i} checkpoint(s) older than {base!r}"
        )

    def _resolve_base(self, agent_id: str, head: bytes, base: str) -> bytes:
        if base in ("latest", "HEAD"):
            return head
        if is_valid_name(base):
            tagged = self._store.read_ref(tag_ref(agent_id, base))
            if tagged is not None:
                return tagged
        if is_checkpoint_id(base):
            for commit in self._walk(head):
                if f"\nCheckpoint-Id: {base}\n".encode() in commit.message:
                    return commit.id
        elif _HEX.fullmatch(base.lower()):
            prefix = base.lower().encode()
            found = [c.id for c in self._walk(head) if c.id.startswith(prefix)]
            if len(found) > 1:
                listed = ", ".join(sha.decode() for sha in found)
                raise AmbiguousRevisionError(f"{base!r} matches {len(found)} checkpoints of "
                                             f"{agent_id!r}: {listed}", [s.decode() for s in found])
            if found:
                return found[0]
        raise RevisionNotFoundError(f"no checkpoint {base!r} in the history of agent {agent_id!r}")

    def latest(self, agent_id: str) -> Checkpoint:
        """The newest checkpoint of an agent."""
        return self.resolve(agent_id, None)

    def load(self, agent_id: str, rev: Optional[str] = None, *,
             model: Optional[type[M]] = AgentState) -> Any:  # M, or a dict when model is None
        """The state saved at ``rev`` (default: the latest), as ``model`` or a plain dict."""
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidArgumentError(f"model must be a pydantic model class or None, got {model!r}")
        commit = self._find(agent_id, rev)
        data = self._state_of(commit)
        if model is None:
            return data
        trailers = parse_message(commit.message)[1]
        label = trailers.get("Checkpoint-Id", commit.id.decode())
        stored = integer(trailers.get("Schema-Version", "1"))
        if stored is None:
            raise CorruptObjectError(f"checkpoint {label} of {agent_id!r} has Schema-Version "
                                     f"{trailers['Schema-Version']!r}, not an integer")
        version = getattr(model, "schema_version", 1)
        if stored != version:
            migrate = getattr(model, "migrate", None)
            if migrate is None:
                warnings.warn(f"checkpoint {label} has schema version {stored}, "
                              f"{model.__name__} expects {version}")
            else:
                data = migrate(data, stored)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InvalidStateError(f"checkpoint {label} of {agent_id!r} "
                                    f"is not a valid {model.__name__}: {exc}") from exc

    def read_state(self, commit: str) -> Any:
        """The decoded ``state.json`` of one checkpoint commit (its full hex SHA)."""
        sha = commit.lower().encode() if isinstance(commit, str) and commit.isascii() else b""
        if not is_sha(sha):
            raise InvalidArgumentError(f"commit must be a full 40-digit hex SHA, got {commit!r}")
        return self._state_of(self._commit(sha))

    def _state_of(self, commit: CommitInfo) -> Any:
        """The decoded ``state.json`` of a checkpoint commit."""
        try:
            return codec.decode(self._state_json(commit))
        except EncodingError as exc:
            raise CorruptObjectError(f"the state.json of commit {commit.id.decode()} "
                                     f"is not valid JSON: {exc}") from exc

    def _state_json(self, commit: CommitInfo) -> bytes:
        """The raw bytes of a checkpoint commit's ``state.json``."""
        raw = self._raw(commit.tree, Tree)
        try:
            entries = parse_tree(raw, 20)
        except Exception as exc:
            raise CorruptObjectError(f"tree {commit.tree.decode()} cannot be parsed: {exc}") from exc
        for name, _mode, sha in entries:
            if name == STATE_FILE:
                return self._raw(sha, Blob)
        raise CorruptObjectError(f"commit {commit.id.decode()} has no state.json")

    def log(self, agent_id: str, *, limit: Optional[int] = None,
            before: Optional[datetime] = None, since: Optional[datetime] = None,
            status: Optional[str] = None) -> list[Checkpoint]:
        """Checkpoints of an agent, newest first, read lazily (``limit=20`` reads ~20 commits).

        ``before``/``since`` keep checkpoints created before / at or after a time;
        ``status`` keeps those with that status.
        """
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidArgumentError(f"limit must be an integer >= 0, got {limit!r}")
        before = None if before is None else aware(before, "before")
        since = None if since is None else aware(since, "since")
        head = self._head(agent_id)
        names = self._names(agent_id)
        result: list[Checkpoint] = []
        for commit in self._walk(head):
            if limit is not None and len(result) >= limit:
                break
            created = _utc(commit.author_time)
            if before is not None and created >= before:
                continue
            if since is not None and created < since:
                continue
            checkpoint = self._checkpoint(commit, agent_id, tuple(names.get(commit.id, ())))
            if status is not None and checkpoint.status != status:
                continue
            result.append(checkpoint)
        return result

    def agents(self, *, errors: dict[str, GitstateError] | None = None) -> list[AgentInfo]:
        """Every agent, sorted by id, with its newest checkpoint.

        An agent whose branch, names or head commit cannot be read raises
        ``CorruptObjectError`` naming it; given ``errors``, it is left out and its
        error put there under its id instead.
        """
        bad: dict[bytes, CorruptObjectError] = {}
        tags = self._store.read_refs(TAG_PREFIX.encode(), bad)
        branches = self._store.read_refs(BRANCH_PREFIX.encode(), bad)
        failed: dict[str, GitstateError] = {}
        for ref, damaged in sorted(bad.items()):  # a damaged branch or name fails its agent
            parts = ref.decode(errors="replace").split("/")
            if len(parts) < 4:  # a damaged file of many refs (packed-refs): no list to trust
                raise damaged
            failed.setdefault(parts[3], damaged)
        names: dict[tuple[str, bytes], list[str]] = {}
        for ref, sha in tags.items():
            agent, _, name = ref[len(TAG_PREFIX):].decode(errors="replace").partition("/")
            names.setdefault((agent, sha), []).append(name)
        result = []
        prefix = len(BRANCH_PREFIX)
        for ref, sha in sorted(branches.items()):
            agent_id = ref[prefix:].decode(errors="replace")
            if agent_id in failed:
                continue
            try:
                head = self._checkpoint(self._commit(sha), agent_id,
                                        tuple(names.get((agent_id, sha), ())))
            except CorruptObjectError as exc:
                failed[agent_id] = exc
                continue
            result.append(AgentInfo(agent_id=agent_id, head=head))
        if failed and errors is None:
            agent_id, error = min(failed.items())
            raise CorruptObjectError(f"agent {agent_id}: {error}") from error
        if errors is not None:
            errors.update(failed)
        return result


def _init_config(config: ConfigFile) -> None:
    config.set((b"gitstate",), b"version", b"1")
    config.set((b"gc",), b"auto", b"0")  # no automatic gc by git or dulwich: gitstate's maintenance


def _check_head(path: str) -> None:
    """``NotARepositoryError`` naming the missing ``HEAD`` of what is otherwise a repository."""
    if (os.path.isdir(os.path.join(path, "objects")) and os.path.isdir(os.path.join(path, "refs"))
            and not os.path.lexists(os.path.join(path, "HEAD"))):
        raise NotARepositoryError(
            f"{path} has objects/ and refs/ but no HEAD file, which git needs to see a repository "
            f"(damaged?); restore it with: printf 'ref: refs/heads/main\\n' > {os.path.join(path, 'HEAD')}")


def _plain(state: BaseModel | Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The state as a JSON-mode dict, and its schema version."""
    if isinstance(state, BaseModel):
        try:
            data = state.model_dump(mode="json")
        except ValueError as exc:  # an unknown type, or nesting deeper than pydantic writes
            raise EncodingError(f"the state cannot be dumped in JSON mode: {exc}") from None
        return data, getattr(type(state), "schema_version", 1)
    if isinstance(state, Mapping):
        return dict(state), 1
    raise InvalidArgumentError(
        f"state must be a pydantic model or a mapping, not {type(state).__name__}")


def _extra_trailers(trailers: Optional[Mapping[str, str]]) -> dict[str, str]:
    """The caller's trailers, checked: a mapping of strings, no core trailer, no key twice.

    git reads trailer keys case-insensitively, so keys are compared that way.
    """
    if trailers is None:
        return {}
    if not isinstance(trailers, Mapping):
        raise InvalidArgumentError(f"trailers must be a mapping, not {type(trailers).__name__}")
    core = {key.lower() for key in CORE_TRAILERS}
    seen: dict[str, str] = {}
    for key, value in trailers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgumentError(f"trailer {key!r}: {value!r}: keys and values must be strings")
        if key.lower() in core:
            raise InvalidArgumentError(f"trailer {key!r} is set by gitstate itself")
        if key.lower() in seen:
            raise InvalidArgumentError(f"trailers {seen[key.lower()]!r} and {key!r} differ only in case")
        seen[key.lower()] = key
    return dict(trailers)


def _summary(agent_id: str, iteration: Optional[int], status: Optional[str],
             name: Optional[str]) -> str:
    parts = [agent_id]
    if iteration is not None:
        parts.append(f"iteration {iteration}")
    if status is not None:
        parts.append(status)
    if name is not None:
        parts.append(f"[{name}]")
    return " ".join(parts)
