"""``StateRepository``: the public façade of gitstate, one method per operation.

Each method delegates to the module that implements it (the layers are listed in
docs/architecture.md): :mod:`gitstate.checkpoints` (save, load, log, names),
:mod:`gitstate.history` (rollback, fork, delete), :mod:`gitstate.prune`,
:mod:`gitstate.diff`, :mod:`gitstate.seed_import`, :mod:`gitstate.remote` (transfers),
:mod:`gitstate.maintenance` and :mod:`gitstate.verify`, all over one
:class:`~gitstate.core.Core`. Write operations go through
:meth:`Maintenance.after`, which starts automatic maintenance when enough was
written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from . import checkpoints, diff, explore, history, prune, seed_import, verify
from . import merge as merging
from . import remote as transfers
from .core import Core
from .errors import GitstateError
from .explore import FieldRow, FindResult, GraphEntry, Point, StateCache
from .git.gc import GcResult
from .git.reader import CACHE_BYTES
from .git.reclaim import ReclaimResult
from .git.transport import Progress
from .history import RollbackResult
from .jsonmerge import Strategy
from .maintenance import Maintenance
from .merge import MergeResult
from .models import AgentInfo, AgentState, Checkpoint
from .prune import PruneResult
from .remote import Remote, TransferResult
from .retention import RetentionPolicy
from .seed_import import FileOutcome
from .settings import MaintenanceSettings
from .verify import VerifyResult

ProgressCount = Callable[[int, int], None]


class StateRepository:
    """Agent checkpoints in a bare git repository: one branch per agent, one commit per save.

    Open one with :meth:`init` or :meth:`open`. Instances may be shared between
    threads and used from many processes at once. ``durable=True`` fsyncs
    objects, refs and their directories before a write returns; ``lock_timeout``
    is how long a writer waits for a lock (seconds); ``cache_bytes`` bounds the
    cache of inflated objects (0 turns it off).
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False,
                 lock_timeout: float = 60.0, cache_bytes: int = CACHE_BYTES):
        self._attach(Core(path, durable=durable, lock_timeout=lock_timeout, cache_bytes=cache_bytes))

    def _attach(self, core: Core) -> None:
        self.path = core.path
        self._core = core
        self._maintenance = Maintenance(core)

    @classmethod
    def _of(cls, core: Core) -> StateRepository:
        repo = cls.__new__(cls)
        repo._attach(core)
        return repo

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str], **options: Any) -> StateRepository:
        """Create a bare repository at ``path`` (or open the one already there)."""
        return cls._of(Core.init(path, **options))

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> StateRepository:
        """Open an existing bare repository (any bare git repo, e.g. a ``git clone --bare``).

        ``RepositoryFormatError`` if its config does not parse or asks for what
        gitstate cannot write (SHA-256 objects, a repository format or extension
        it does not know); nothing is written then.
        """
        return cls._of(Core.open(path, **options))

    @classmethod
    def clone(cls, url: str, path: str | os.PathLike[str], *, remote: str = "origin",
              progress: Progress | None = None, **options: Any) -> StateRepository:
        """Create a repository at ``path`` holding every agent of ``url`` (added as ``remote``);
        if the clone fails, ``path`` is left as it was."""
        return cls._of(transfers.clone(url, path, remote=remote, progress=progress, **options))

    @property
    def core(self) -> Core:
        """The :class:`~gitstate.core.Core` this repository works on, for integrations built
        on the core (``GitstateSaver(repo)`` in :mod:`gitstate.langgraph`)."""
        return self._core

    def close(self) -> None:
        """Release open files, pack indexes and cached objects (``with`` does it at the end).

        The repository stays usable: a later call opens what it needs again.
        """
        self._core.close()

    def __enter__(self) -> StateRepository:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- checkpoints (gitstate.checkpoints) ------------------------------------------
    def save(self, state: BaseModel | Mapping[str, Any], *, agent_id: str | None = None,
             name: str | None = None, message: str | None = None,
             time: datetime | None = None, trailers: Mapping[str, str] | None = None) -> Checkpoint:
        """Save ``state`` as a new checkpoint (a commit on the agent's branch); see
        :func:`gitstate.checkpoints.save`."""
        return self._maintenance.after(checkpoints.save(self._core, state, agent_id=agent_id, name=name,
                                                        message=message, time=time, trailers=trailers))

    def tag(self, agent_id: str, name: str, rev: str | None = None) -> Checkpoint:
        """Name the checkpoint at ``rev`` (default: the latest); a name is never moved: :meth:`untag` it."""
        return checkpoints.tag(self._core, agent_id, name, rev)

    def untag(self, agent_id: str, name: str) -> str:
        """Delete a checkpoint name (the checkpoint stays); return the commit SHA it named."""
        return checkpoints.untag(self._core, agent_id, name)

    def load(self, agent_id: str, rev: str | None = None, *,
             model: type[BaseModel] | None = AgentState) -> Any:  # M, or a dict when model is None
        """The state saved at ``rev`` (default: the latest), as ``model`` or a plain dict."""
        return checkpoints.load(self._core, agent_id, rev, model=model)

    def read_state(self, commit: str) -> Any:
        """The decoded ``state.json`` of one checkpoint commit (its full hex SHA)."""
        return checkpoints.read_state(self._core, commit)

    def resolve(self, agent_id: str, rev: str | None = None) -> Checkpoint:
        """The checkpoint a revision names in the agent's history (see :meth:`Core.find`)."""
        return self._core.resolve(agent_id, rev)

    def latest(self, agent_id: str) -> Checkpoint:
        """The newest checkpoint of an agent."""
        return self._core.resolve(agent_id, None)

    def log(self, agent_id: str, *, limit: int | None = None, before: datetime | None = None,
            since: datetime | None = None, status: str | None = None) -> list[Checkpoint]:
        """Checkpoints of an agent, newest first, read lazily (see :func:`gitstate.checkpoints.log`)."""
        return checkpoints.log(self._core, agent_id, limit=limit, before=before, since=since, status=status)

    def count(self, agent_id: str) -> int:
        """How many checkpoints the agent's history holds."""
        return checkpoints.count(self._core, agent_id)

    def names(self, agent_id: str) -> dict[str, str]:
        """The agent's checkpoint names, each with the commit SHA it names."""
        return checkpoints.names(self._core, agent_id)

    def agents(self, *, errors: dict[str, GitstateError] | None = None) -> list[AgentInfo]:
        """Every agent, sorted by id, with its newest checkpoint (see
        :func:`gitstate.checkpoints.agents` for ``errors``)."""
        return checkpoints.agents(self._core, errors=errors)

    def heads(self, *, errors: dict[str, GitstateError] | None = None) -> dict[str, str]:
        """Every agent id with its newest commit SHA, refs only (see
        :func:`gitstate.checkpoints.heads`): the light form of :meth:`agents`."""
        return checkpoints.heads(self._core, errors=errors)

    # -- history (gitstate.history) --------------------------------------------------
    def rollback(self, agent_id: str, rev: str, *, hard: bool = False) -> RollbackResult:
        """Return the agent to the state saved at ``rev`` (see :func:`gitstate.history.rollback`)."""
        return self._maintenance.after(history.rollback(self._core, agent_id, rev, hard=hard))

    def fork(self, agent_id: str, rev: str | None, new_agent_id: str) -> Checkpoint:
        """Start agent ``new_agent_id`` from ``agent_id``'s checkpoint ``rev`` (``git branch``)."""
        return self._maintenance.after(history.fork(self._core, agent_id, rev, new_agent_id))

    def delete(self, agent_id: str, rev: str) -> Checkpoint:
        """Remove one checkpoint from the agent's history and return it."""
        return self._maintenance.after(history.delete(self._core, agent_id, rev))

    def delete_agent(self, agent_id: str) -> None:
        """Delete an agent: its branch, its names and its reflog."""
        history.delete_agent(self._core, agent_id)

    def merge(self, agent_id: str, other: str, *, strategy: Strategy = None) -> MergeResult:
        """Merge ``other`` (``AGENT`` or ``REMOTE/AGENT``, optionally ``~N``) into the agent:
        a three-way merge of the states in a merge checkpoint (see :func:`gitstate.merge.merge`)."""
        return self._maintenance.after(merging.merge(self._core, agent_id, other, strategy=strategy))

    def merge_base(self, agent_id: str, other: str) -> Checkpoint | None:
        """The newest checkpoint both the agent and ``other`` have in their histories."""
        return merging.merge_base(self._core, agent_id, other)

    def diff(self, agent_id: str, rev_a: str, rev_b: str | None = None, *,
             other_agent: str | None = None) -> diff.StateDiff:
        """Diff checkpoint ``rev_a`` of ``agent_id`` against ``rev_b`` (default: the latest) of
        ``other_agent`` (default: the same agent)."""
        return diff.diff(self._core, agent_id, rev_a, rev_b, other_agent=other_agent)

    # -- exploring histories (gitstate.explore) --------------------------------------
    def log_all(self, *, limit: int | None = None) -> list[GraphEntry]:
        """Checkpoints of every agent, newest first, each commit once (:func:`gitstate.explore.log_all`)."""
        return explore.log_all(self._core, limit=limit)

    def fields(self, agent_id: str, paths: Sequence[str], *, limit: int | None = None,
               cache: StateCache | None = None) -> list[FieldRow]:
        """The values of field ``paths`` at each checkpoint of the agent, newest first."""
        return explore.fields(self._core, agent_id, paths, limit=limit, cache=cache)

    def find(self, agent_id: str, *, changed: str | None = None, where: str | None = None,
             cache: StateCache | None = None) -> FindResult:
        """Checkpoints where a field changed or a condition holds (see :func:`gitstate.explore.find`)."""
        return explore.find(self._core, agent_id, changed=changed, where=where, cache=cache)

    def timeline(self, agent_id: str, paths: Sequence[str] = (), *,
                 cache: StateCache | None = None) -> list[Point]:
        """Every checkpoint, oldest first, with its state's size and numeric ``paths`` values."""
        return explore.timeline(self._core, agent_id, paths, cache=cache)

    def export_state(self, agent_id: str, rev: str | None, path: str | os.PathLike[str]) -> Checkpoint:
        """Write the ``state.json`` saved at ``rev`` (default: latest) to ``path``."""
        return explore.export_state(self._core, agent_id, rev, path)

    def export_bundle(self, agent_id: str, rev: str | None, path: str | os.PathLike[str]) -> Checkpoint:
        """Write the agent up to ``rev`` with its names as a git bundle (``git clone`` reads it)."""
        return explore.export_bundle(self._core, agent_id, rev, path)

    # -- retention (gitstate.prune) --------------------------------------------------
    def prune(self, agent_id: str | None, policy: RetentionPolicy, *, dry_run: bool = False,
              now: datetime | None = None, grace: timedelta | None = None,
              progress: ProgressCount | None = None) -> PruneResult:
        """Apply ``policy`` to one agent (or every agent when ``agent_id`` is None)."""
        return prune.prune(self._core, agent_id, policy, dry_run=dry_run, now=now,
                                        grace=grace, progress=progress)

    def reclaim(self, *, grace: timedelta | None = None) -> ReclaimResult:
        """Delete the objects proven unreachable and older than the grace period."""
        return prune.reclaim(self._core, grace)

    # -- seed import (gitstate.seed_import) ------------------------------------------
    def import_seed(self, directory: str | os.PathLike[str], *, task_id: str | None = None,
                    dry_run: bool = False, progress: ProgressCount | None = None) -> list[FileOutcome]:
        """Import a folder of the seed's checkpoint files (see :mod:`gitstate.seed_import`)."""
        return self._maintenance.after(seed_import.import_seed(self._core, directory, task_id=task_id,
                                                               dry_run=dry_run, progress=progress))

    # -- remotes (gitstate.remote) ---------------------------------------------------
    def remotes(self) -> list[Remote]:
        """The configured remotes, sorted by name (URLs redacted)."""
        return transfers.remotes(self._core)

    def remote_add(self, name: str, url: str) -> Remote:
        """Add a remote: a URL (``http(s)://``, ``git://``, ``ssh://``, ``file://``) or a path."""
        return transfers.remote_add(self._core, name, url)

    def remote_remove(self, name: str) -> None:
        """Remove a remote and its tracking refs (the remote itself is not touched)."""
        transfers.remote_remove(self._core, name)

    def remote_rename(self, old: str, new: str) -> Remote:
        """Rename a remote: its config and its tracking refs (see :func:`gitstate.remote.remote_rename`)."""
        return transfers.remote_rename(self._core, old, new)

    def remote_set_url(self, name: str, url: str) -> Remote:
        """Point a remote at another URL (checked as by :meth:`remote_add`)."""
        return transfers.remote_set_url(self._core, name, url)

    def push(self, remote: str, agents: Sequence[str] | None = None, *, tags: bool = True,
             force: bool = False, progress: Progress | None = None) -> list[TransferResult]:
        """Push agents (default: all) and, with ``tags``, their names, in one connection."""
        return transfers.push(self._core, remote, agents, tags=tags, force=force,
                                        progress=progress)

    def fetch(self, remote: str, agents: Sequence[str] | None = None, *,
              progress: Progress | None = None) -> list[TransferResult]:
        """Download agents (default: all) into ``refs/remotes/<remote>/agents/*``."""
        return transfers.fetch(self._core, remote, agents, progress=progress)

    def pull(self, remote: str, agents: Sequence[str] | None = None, *, into: str | None = None,
             rebase: bool = False, merge: bool = False, strategy: Strategy = None,
             progress: Progress | None = None) -> list[TransferResult]:
        """Fetch agents (default: all), then fast-forward the local ones, in one connection;
        ``rebase``/``merge`` join diverged ones (see :func:`gitstate.remote.pull`)."""
        return self._maintenance.after(transfers.pull(
            self._core, remote, agents, into=into, rebase=rebase, merge=merge,
            strategy=strategy, progress=progress))

    # -- maintenance (gitstate.maintenance, gitstate.verify) -------------------------
    @property
    def maintenance_settings(self) -> MaintenanceSettings:
        """The maintenance settings of this repository (read once, from its git config)."""
        return self._maintenance.settings

    def configure_maintenance(self, **changes: Any) -> MaintenanceSettings:
        """Change maintenance settings (fields of :class:`MaintenanceSettings`) and store them."""
        return self._maintenance.configure(**changes)

    def gc(self, *, prune: bool = False, grace_seconds: int | None = None,
           progress: ProgressCount | None = None) -> GcResult:
        """Pack loose objects with deltas and merge small packs; with ``prune``, also delete
        what is proven unreachable (see :meth:`Maintenance.gc`)."""
        return self._maintenance.gc(prune=prune, grace_seconds=grace_seconds, progress=progress)

    def wait_for_maintenance(self) -> None:
        """Wait until the automatic maintenance this object started (if any) has finished."""
        self._maintenance.wait()

    def verify(self) -> VerifyResult:
        """Check every object, ref, checkpoint trailer and state (see :mod:`gitstate.verify`)."""
        return verify.verify(self._core)
