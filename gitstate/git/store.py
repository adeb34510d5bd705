"""One repository's git engine, tied together: what the core reads and writes git with.

:class:`Store` holds, for one bare repository, the object reader
(:mod:`~gitstate.git.reader`), the loose-object writer
(:mod:`~gitstate.git.loose`), the refs (:mod:`~gitstate.git.refs`) and the
locks (:mod:`~gitstate.git.locks`), and a dulwich ``Repo`` per thread for what
dulwich does for gitstate (objects behind alternates, a fetch's pack).

Every ref update of an agent happens under that agent's lock
(:meth:`Store.agent_lock`: an ``flock`` on ``<repo>/gitstate/locks/agents/<agent_id>``,
released by the kernel when the holder dies). Taking it first completes what a
killed holder left: a stale ``<ref>.lock`` is removed (:mod:`~gitstate.git.locks`),
an operation's journal rolled forward (:mod:`~gitstate.git.journal`).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from dulwich.repo import Repo

from .. import codec
from ..errors import GitstateError
from ..ids import is_valid_agent_id
from . import journal
from .dulwich_types import object_id
from .journal import JOURNAL_DIR, RefUpdate
from .layout import commit_links, state_tree
from .locks import Locks, RefLock
from .loose import LooseWriter, remove_temporaries
from .objects import GitObject
from .reader import BLOB, CACHE_BYTES, ObjectReader, loose_path
from .refs import Refs
from .smallpack import write_pack
from .spares import Spares


class _ThreadRepo:
    """One thread's dulwich ``Repo``, closed when the thread ends (dulwich's objects hold
    reference cycles: left to the garbage collector, their files would stay open)."""

    def __init__(self, repo: Repo, generation: int):
        self.repo: Repo | None = repo
        self.generation = generation

    def close(self) -> None:
        repo, self.repo = self.repo, None
        if repo is not None:
            repo.close()

    __del__ = close


def _close_repos(repos: weakref.WeakSet[_ThreadRepo]) -> None:
    """Close the Repos still open (at exit: before the interpreter tears dulwich down)."""
    for own in list(repos):
        own.close()


class Store:
    """The objects, refs and locks of one bare repository."""

    def __init__(self, path: str, *, durable: bool = False, lock_timeout: float = 60.0,
                 cache_bytes: int = CACHE_BYTES):
        self.path = path
        self.durable = durable
        self.lock_timeout = lock_timeout
        self.objects_dir = os.path.join(path, "objects")
        self._local = threading.local()
        self._repos: weakref.WeakSet[_ThreadRepo] = weakref.WeakSet()  # each thread's, while it lives
        self._generation = 0  # bumped by close(): each thread then closes and reopens its own
        weakref.finalize(self, _close_repos, self._repos)  # also runs at exit
        self.reader = ObjectReader(self.objects_dir, self._read_with_dulwich, cache_bytes)
        self.spares = Spares(path)
        self.locks = Locks(path, lock_timeout, durable, self.spares)
        self.loose = LooseWriter(self.objects_dir, durable, self.spares)
        self.refs = Refs(path, self.locks)

    # -- dulwich ---------------------------------------------------------------------
    @property
    def repo(self) -> Repo:
        """This thread's dulwich ``Repo`` (dulwich repos must not be shared by threads)."""
        own = getattr(self._local, "own", None)
        if own is not None and own.generation != self._generation:  # close() was called
            self.forget_repo()
            own = None
        if own is None:
            own = self._local.own = _ThreadRepo(Repo(self.path, bare=True), self._generation)
            self._repos.add(own)
        assert own.repo is not None  # closed holders are never kept
        return own.repo

    def forget_repo(self) -> None:
        """Close this thread's ``Repo``; the next use reopens it (rescanning packs)."""
        own = getattr(self._local, "own", None)
        if own is not None:
            self._local.own = None
            own.close()

    def close(self) -> None:
        """Close this thread's dulwich ``Repo`` (other threads close theirs on their next
        use, or when they end) and release the reader's packs and cache."""
        self._generation += 1
        self.forget_repo()
        self.reader.close()

    def _read_with_dulwich(self, sha: bytes) -> tuple[int, bytes]:
        """An object the reader did not find (alternates, or a pack that just appeared)."""
        try:
            return self.repo.object_store.get_raw(object_id(sha))
        except KeyError:  # maintenance may just have moved it: rescan the packs once
            self.forget_repo()
            return self.repo.object_store.get_raw(object_id(sha))

    # -- objects ---------------------------------------------------------------------
    def contains(self, sha: bytes) -> bool:
        """Whether object ``sha`` (hex) is in the repository (loose, packed or behind alternates)."""
        return (os.path.exists(loose_path(self.objects_dir, sha))
                or object_id(sha) in self.repo.object_store)

    def write(self, obj: GitObject, *, new: bool = False) -> None:
        """Write ``obj`` as a loose object unless it is already there (:mod:`~gitstate.git.loose`);
        ``new``: the caller knows it is not (a commit naming a new checkpoint id)."""
        self.loose.write(obj, new=new)

    def write_state(self, data: Any) -> bytes:
        """Write ``data``'s canonical JSON as a blob and the tree naming it ``state.json``
        (:func:`~gitstate.git.layout.state_tree`); return the tree's hex SHA."""
        blob = self.loose.add(BLOB, codec.encode(data))
        tree = state_tree(blob)
        self.loose.write(tree)
        return tree.id

    def write_pack(self, objects: Sequence[GitObject]) -> None:
        """Write several new objects as one small pack (:mod:`~gitstate.git.smallpack`);
        for automatic maintenance it counts as the two files it adds, as two loose objects."""
        self.loose.count(2, write_pack(self.objects_dir, objects, self.durable, self.spares))

    def written(self) -> tuple[int, int]:
        """How many loose objects (a small pack: two) and bytes this store wrote since
        :meth:`take_written` (what automatic maintenance counts)."""
        return self.loose.written()

    def take_written(self) -> tuple[int, int]:
        """:meth:`written`, and start counting again from zero."""
        return self.loose.take_written()

    def remove_temporaries(self, cutoff: float) -> int:
        """Delete killed writers' temporary files older than ``cutoff`` (the caller holds the
        maintenance lock); return how many (:func:`~gitstate.git.loose.remove_temporaries`)."""
        return remove_temporaries(self.objects_dir, cutoff)

    # -- refs ------------------------------------------------------------------------
    def read_ref(self, ref: bytes) -> bytes | None:
        """The SHA a ref points to, through symbolic refs; None if it does not exist
        (:meth:`Refs.read <gitstate.git.refs.Refs.read>`)."""
        return self.refs.read(ref)

    def writable_ref(self, ref: bytes) -> bytes | None:
        """:meth:`read_ref` of a ref gitstate is about to move: ``InvalidArgumentError`` if it
        is symbolic."""
        return self.refs.writable(ref)

    def read_refs(self, prefix: bytes,
                  errors: dict[bytes, GitstateError] | None = None) -> dict[bytes, bytes]:
        """Every ref under ``prefix`` with its SHA (:meth:`Refs.read_all
        <gitstate.git.refs.Refs.read_all>`: a damaged one raises, or goes into ``errors``)."""
        return self.refs.read_all(prefix, errors)

    def update_ref(self, lock: RefLock, ref: bytes, old: bytes | None, new: bytes | None, *,
                   log: str | None = None) -> bool:
        """Move ``ref`` from ``old`` to ``new`` by compare-and-swap, appending a reflog entry
        with message ``log`` (:meth:`Refs.update <gitstate.git.refs.Refs.update>`); False if
        it was not at ``old``."""
        return self.refs.update(lock, ref, old, new, log=log)

    def update_refs(self, lock: RefLock, agent_id: str, updates: Sequence[RefUpdate], *,
                    log: str | None = None) -> bool:
        """Move the agent's branch (``updates[0]``), then its names, as one operation
        (journaled if there are names: :func:`~gitstate.git.journal.update_refs`); False,
        with nothing changed, if the branch was not at its ``old``. ``log`` is the
        message of the branch's reflog entry."""
        if len(updates) == 1:
            return self.update_ref(lock, updates[0].ref, updates[0].old, updates[0].new, log=log)
        return journal.update_refs(self.refs, lock, agent_id, updates, log=log)

    # -- locks -----------------------------------------------------------------------
    @contextmanager
    def _flock(self, name: str, wait: bool = True,
               journal_of: str | None = None) -> Iterator[RefLock | None]:
        """:meth:`Locks.flock <gitstate.git.locks.Locks.flock>`; with ``journal_of`` (an agent
        id), that agent's interrupted operation is completed once the lock is held."""
        with self.locks.flock(name, wait) as lock:
            if lock is not None and journal_of is not None:
                journal.roll_forward(self.refs, self._parents, lock, journal_of)
            yield lock

    def _parents(self, sha: bytes) -> list[bytes]:
        return commit_links(self.reader.read(sha)[1])[1:]

    @contextmanager
    def agent_lock(self, agent_id: str) -> Iterator[RefLock]:
        """Hold the write lock of one agent (serializes gitstate writers of that agent).

        Taking it completes first what a killed holder left half done: a stale
        ``<ref>.lock`` is removed, an operation's journal is rolled forward.
        """
        with self._flock(os.path.join("agents", agent_id), journal_of=agent_id) as lock:
            assert lock is not None  # waited for
            yield lock

    def maintenance_lock(self, wait: bool = True) -> AbstractContextManager[RefLock | None]:
        """Held by code that deletes objects (reclaim, maintenance), one at a time per
        repository, and by a fetch until refs name what it downloaded. With
        ``wait=False`` it yields None at once if it is held elsewhere."""
        return self._flock("maintenance", wait)

    def complete_journals(self, errors: dict[str, GitstateError] | None = None) -> None:
        """Complete the journals that killed processes left (maintenance and verify call this).

        An agent whose lock is held is left alone: its operation is still running.
        A journal that cannot be completed raises, or, given ``errors``, is put
        there under its agent id.
        """
        try:
            agents = sorted(os.listdir(os.path.join(self.path, JOURNAL_DIR)))
        except FileNotFoundError:
            return
        for agent_id in agents:
            if not is_valid_agent_id(agent_id):
                continue  # not a journal gitstate writes
            try:  # taking the lock completes the journal; if it is held, its operation runs
                with self._flock(os.path.join("agents", agent_id), wait=False, journal_of=agent_id):
                    pass
            except GitstateError as exc:
                if errors is None:
                    raise
                errors[agent_id] = exc
