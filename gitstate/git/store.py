"""The only code that writes git objects and refs.

Objects are written as loose objects the way git writes them: into a temporary
``tmp_obj_*`` file (which ``git fsck`` ignores if a crash leaves it behind),
then renamed into place. Refs are updated by compare-and-swap with git's own
protocol (``<ref>.lock`` created with O_EXCL, then renamed over the ref).

A reflog entry is appended while ``<ref>.lock`` is held, before the rename, as
git does, so a ref never moves without its entry.

Every ref update of an agent happens under that agent's lock: an ``flock`` on
``<repo>/gitstate/locks/agents/<agent_id>``, which the kernel releases when the
holder dies. Before creating a ``<ref>.lock``, the holder writes its path into
the lock file and clears it afterwards; so whoever takes the lock next and
finds a path there knows that its owner died mid-update and removes it. A
``<ref>.lock`` that no gitstate writer owns (a live ``git`` process) is waited
for, never removed. An operation that moves several refs of an agent (its
branch, then its names) writes a journal first (:mod:`gitstate.journal`);
whoever takes the agent's lock next completes what a killed holder left
(:meth:`Store.update_refs`).
"""

from __future__ import annotations

import fcntl
import os
import random
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from dulwich.objects import ShaFile
from dulwich.repo import Repo

from ..errors import (
    ConcurrentUpdateError,
    CorruptObjectError,
    GitstateError,
    InvalidArgumentError,
)
from ..ids import branch_ref, is_valid_agent_id, tag_prefix
from .journal import JOURNAL_DIR, RefUpdate, format_journal, parse_journal
from .layout import CommitInfo
from .reader import CACHE_BYTES, ObjectReader, loose_path
from .refs import RefValue, parse_loose, parse_packed, read_file

LOOSE_COMPRESSION = 0  # stored, not deflated: saves skip zlib (10 ms per MB); maintenance packs them
SYMREF_DEPTH = 5  # symbolic refs followed in a row at most, as git does


def fsync_path(path: str) -> None:
    """fsync a file or directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _close_repos(repos: "weakref.WeakSet[_ThreadRepo]") -> None:
    """Close the Repos still open (at exit: before the interpreter tears dulwich down)."""
    for own in list(repos):
        own.close()


class _Backoff:
    """Exponential backoff with jitter until a deadline."""

    def __init__(self, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.delay = 0.0005

    def wait(self) -> bool:
        """Sleep a little; False once the deadline has passed."""
        if time.monotonic() >= self.deadline:
            return False
        time.sleep(self.delay * (0.5 + random.random()))
        self.delay = min(self.delay * 2, 0.05)
        return True


class RefLock:
    """A held ``flock`` (of an agent, packed-refs or the config). Its file names the
    ``.lock`` file the holder is creating or holds, so that whoever takes the
    ``flock`` next removes that file if the holder died (see :meth:`Store._flock`)."""

    def __init__(self, fd: int):
        self.fd = fd

    def record(self, lock_path: str) -> None:
        os.pwrite(self.fd, lock_path.encode() + b"\n", 0)

    def forget(self) -> None:
        os.ftruncate(self.fd, 0)

    @contextmanager
    def guarding(self, lock_path: str) -> Iterator[None]:
        """Record ``lock_path`` while the block creates and holds it."""
        self.record(lock_path)
        try:
            yield
        finally:
            self.forget()


class Store:
    """Reads and writes the objects and refs of one bare repository."""

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
        self._written = [0, 0]  # loose objects and bytes written since take_written()
        self._written_lock = threading.Lock()
        self._packed: tuple[tuple[int, int, int], dict[bytes, bytes]] | None = None

    # -- reading ---------------------------------------------------------------------
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

    def written(self) -> tuple[int, int]:
        """How many loose objects (and bytes) this store wrote since :meth:`take_written`."""
        with self._written_lock:
            return self._written[0], self._written[1]

    def take_written(self) -> tuple[int, int]:
        """:meth:`written`, and start counting again from zero."""
        with self._written_lock:
            counts = self._written[0], self._written[1]
            self._written = [0, 0]
            return counts

    def contains(self, sha: bytes) -> bool:
        """Whether object ``sha`` (hex) is in the repository (loose, packed or behind alternates)."""
        return os.path.exists(loose_path(self.objects_dir, sha)) or sha in self.repo.object_store

    def _read_with_dulwich(self, sha: bytes) -> tuple[int, bytes]:
        """An object the reader did not find (alternates, or a pack that just appeared)."""
        try:
            return self.repo.object_store.get_raw(sha)
        except KeyError:  # maintenance may just have moved it: rescan the packs once
            self.forget_repo()
            return self.repo.object_store.get_raw(sha)

    def _packed_refs(self) -> dict[bytes, bytes]:
        """The refs of ``packed-refs`` with their SHAs (cached while the file is unchanged);
        ``CorruptObjectError`` for a file git would refuse."""
        path = os.path.join(self.path, "packed-refs")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._packed is None or self._packed[0] != key:
            with open(path, "rb") as f:
                packed = parse_packed(f.read())
            self._packed = (key, {name: entry.sha for name, entry in packed.items()})
        return self._packed[1]

    def _ref_value(self, ref: bytes) -> RefValue | None:
        """What a ref holds (loose, else packed); None if it does not exist."""
        try:
            content = read_file(os.path.join(self.path, os.fsdecode(ref)))
        except (FileNotFoundError, NotADirectoryError):
            sha = self._packed_refs().get(ref)
            return None if sha is None else RefValue(sha)
        except IsADirectoryError:
            return None
        return parse_loose(content, f"ref {ref.decode(errors='replace')}")

    def _follow(self, ref: bytes, value: RefValue | None) -> bytes | None:
        """The SHA that ``value`` (what ``ref`` holds) leads to through symbolic refs.

        None if it ends at a ref that does not exist, as git does;
        ``CorruptObjectError`` naming ``ref`` for too many symbolic refs in a
        row (a loop).
        """
        for _ in range(SYMREF_DEPTH + 1):
            if value is None or value.target is None:
                return None if value is None else value.sha
            value = self._ref_value(value.target)
        raise CorruptObjectError(f"ref {ref.decode(errors='replace')}: more than {SYMREF_DEPTH} "
                                 "symbolic refs in a row (a loop?)")

    def read_ref(self, ref: bytes) -> bytes | None:
        """The SHA (hex bytes) a ref points to, through symbolic refs; None if it does not exist.

        ``CorruptObjectError`` if the ref holds neither a SHA nor a symbolic ref
        (git's rules: :mod:`gitstate.refs`).
        """
        return self._follow(ref, self._ref_value(ref))

    def writable_ref(self, ref: bytes) -> bytes | None:
        """:meth:`read_ref` of a ref gitstate is about to move: ``InvalidArgumentError`` if it
        is symbolic (gitstate moves only the ref a symbolic one names)."""
        value = self._ref_value(ref)
        if value is not None and value.target is not None:
            raise InvalidArgumentError(
                f"{ref.decode()} is a symbolic ref (ref: {value.target.decode()}); gitstate "
                "writes only real refs: use the agent it names")
        return self._follow(ref, value)

    def read_refs(self, prefix: bytes,
                  errors: dict[bytes, GitstateError] | None = None) -> dict[bytes, bytes]:
        """Every ref under ``prefix`` (ending in ``/``) with its SHA; loose refs win.

        A damaged ref raises ``CorruptObjectError``, or, given ``errors``, is
        left out and put there with its error (a damaged ``packed-refs`` file
        under ``b"packed-refs"``: the refs only it holds are then left out).
        """
        found: dict[bytes, RefValue | CorruptObjectError] = {}
        try:
            found.update((name, RefValue(sha)) for name, sha in self._packed_refs().items()
                         if name.startswith(prefix))
        except CorruptObjectError as exc:
            if errors is None:
                raise
            errors[b"packed-refs"] = exc
        folders = [(os.path.join(self.path, os.fsdecode(prefix)), prefix)]
        while folders:
            folder, ref_prefix = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                ref = ref_prefix + os.fsencode(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, ref + b"/"))
                elif not entry.name.endswith(".lock"):
                    try:
                        content = read_file(entry.path)
                    except FileNotFoundError:  # deleted since the listing
                        continue
                    try:
                        found[ref] = parse_loose(content, f"ref {ref.decode(errors='replace')}")
                    except CorruptObjectError as exc:
                        found[ref] = exc
        refs = {}
        for ref, value in found.items():
            try:
                if isinstance(value, CorruptObjectError):
                    raise value
                sha = self._follow(ref, value)
            except CorruptObjectError as exc:
                if errors is None:
                    raise
                errors[ref] = exc
                continue
            if sha is not None:
                refs[ref] = sha
        return refs

    # -- writing objects -------------------------------------------------------------
    def write(self, obj: ShaFile) -> None:
        """Write ``obj`` as a loose object unless it is already there."""
        path = loose_path(self.objects_dir, obj.id)
        folder = os.path.dirname(path)
        if os.path.exists(path):
            try:  # freshen, as git does: reclaim spares unreachable objects younger than its grace
                os.utime(path)
                return
            except FileNotFoundError:
                pass  # reclaimed meanwhile: write it again
            except PermissionError:  # another user's object: cannot freshen, still there
                return
        data = obj.as_legacy_object(compression_level=LOOSE_COMPRESSION)
        tmp = os.path.join(folder, f"tmp_obj_{os.getpid()}_{random.getrandbits(48):012x}")
        new_folder = False
        while True:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                break
            except FileNotFoundError:  # no fan-out folder (maintenance removes empty ones)
                os.makedirs(folder, exist_ok=True)
                new_folder = True
            except NotADirectoryError:
                raise CorruptObjectError(f"{folder} is a file where git keeps a folder of loose "
                                         "objects: move it out of the repository") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        with self._written_lock:
            self._written[0] += 1
            self._written[1] += len(data)
        if self.durable:
            fsync_path(folder)
            if new_folder:
                fsync_path(self.objects_dir)

    def remove_temporaries(self, cutoff: float) -> int:
        """Delete the temporary files that killed writers left in ``objects/`` and that
        were last written before ``cutoff``; return how many. The caller holds the
        maintenance lock (writers never scan for them).

        They are: ``tmp_obj_*`` in the fan-out folders (loose objects being
        written, by gitstate or git), ``tmp_*`` in ``objects/`` (dulwich's thin
        packs of a fetch, git's), and in ``objects/pack/``: ``tmp*`` (gitstate's
        and git's ``tmp_pack_*``/``tmp_idx_*``, dulwich's ``tmp*.pack``), a
        ``.pack`` without its ``.idx`` and a ``.idx.lock`` (dulwich moves a
        fetched pack in, then writes its index under that lock).
        """
        stale: list[str] = []

        def collect(folder: str, wanted: Callable[[str, set[str]], bool]) -> None:
            try:
                names = set(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                return
            stale.extend(os.path.join(folder, name) for name in names if wanted(name, names))

        collect(self.objects_dir, lambda name, _: name.startswith("tmp_"))
        for first in range(256):
            collect(os.path.join(self.objects_dir, f"{first:02x}"),
                    lambda name, _: name.startswith("tmp_obj_"))
        collect(os.path.join(self.objects_dir, "pack"), lambda name, names: (
            name.startswith("tmp") or name.endswith(".idx.lock")
            or (name.endswith(".pack") and name[:-5] + ".idx" not in names)))
        removed = 0
        for path in stale:
            try:
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # -- locks -----------------------------------------------------------------------
    @contextmanager
    def _flock(self, relpath: str, wait: bool = True,
               journal: str | None = None) -> Iterator[RefLock | None]:
        """Hold the ``flock`` of ``gitstate/locks/<relpath>``; yields None if it is held
        elsewhere and ``wait`` is False, else waits up to ``lock_timeout``. With
        ``journal`` (an agent id), that agent's interrupted operation is completed
        once the lock is held."""
        path = os.path.join(self.path, "gitstate", "locks", relpath)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            backoff = _Backoff(self.lock_timeout)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait:
                        yield None
                        return
                    if not backoff.wait():
                        raise ConcurrentUpdateError(
                            f"gave up after {self.lock_timeout:g}s waiting for the lock {path}"
                        ) from None
            debris = os.pread(fd, 4096, 0)
            if debris:  # the previous holder died inside a ref update: its lock is ours to clear
                for stale in debris.decode().split("\n"):
                    if stale:
                        try:
                            os.unlink(stale)
                        except FileNotFoundError:
                            pass
                os.ftruncate(fd, 0)
            lock = RefLock(fd)
            if journal is not None:
                self._complete_journal(lock, journal)
            yield lock
        finally:
            os.close(fd)  # closing releases the flock

    def agent_lock(self, agent_id: str) -> AbstractContextManager[RefLock]:
        """Hold the write lock of one agent (serializes gitstate writers of that agent).

        Taking it completes first what a killed holder left half done: a stale
        ``<ref>.lock`` is removed, an operation's journal is rolled forward.
        """
        return self._flock(os.path.join("agents", agent_id), journal=agent_id)  # type: ignore[return-value]

    def maintenance_lock(self, wait: bool = True) -> AbstractContextManager[RefLock | None]:
        """Held by code that deletes objects (reclaim, maintenance), one at a time per
        repository, and by a fetch until refs name what it downloaded. With
        ``wait=False`` it yields None at once if it is held elsewhere."""
        return self._flock("maintenance", wait)

    def create_lock(self, guard: RefLock, lock_path: str, holder: str) -> int:
        """Create ``lock_path`` with O_EXCL (git's ``.lock`` protocol); return its descriptor.

        The caller records ``lock_path`` in ``guard`` (:meth:`RefLock.guarding`);
        while another process holds it (``holder`` says who, in the error) the
        record is cleared, so that dying while waiting never makes the next
        holder remove a live lock. Waits with backoff up to ``lock_timeout``,
        then raises ``ConcurrentUpdateError``.
        """
        backoff = _Backoff(self.lock_timeout)
        while True:
            try:
                return os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(lock_path), exist_ok=True)
            except FileExistsError:
                guard.forget()
                if not backoff.wait():
                    raise ConcurrentUpdateError(
                        f"{lock_path} stayed locked for {self.lock_timeout:g}s ({holder}); "
                        "remove it if no such process is running") from None
                guard.record(lock_path)

    # -- writing refs ----------------------------------------------------------------
    def update_ref(self, lock: RefLock, ref: bytes, old: bytes | None, new: bytes | None, *,
                   log: str | None = None) -> bool:
        """Move ``ref`` from ``old`` to ``new`` atomically; False if it was not at ``old``.

        ``old=None`` means the ref must not exist; ``new=None`` deletes it and its
        reflog (as git does). ``log`` appends an entry with that message to the
        ref's reflog while ``<ref>.lock`` is held, before the ref moves. A
        ``<ref>.lock`` held by another process is waited for, with backoff.
        """
        return self._update_ref(lock, ref, old, new, log, None)

    def _update_ref(self, lock: RefLock, ref: bytes, old: bytes | None, new: bytes | None,
                    log: str | None, journal: tuple[str, Sequence[RefUpdate]] | None) -> bool:
        """:meth:`update_ref`, writing ``journal`` (agent id, updates) just before the ref moves."""
        path = os.path.join(self.path, os.fsdecode(ref))
        lock_path = path + ".lock"
        with lock.guarding(lock_path):
            fd = self.create_lock(lock, lock_path, "another git process is updating this ref")
            try:
                if self.writable_ref(ref) != old:
                    return False
                if log is not None:
                    self._append_reflog(ref, old, new, log)
                if journal is not None:
                    self._write_journal(*journal)
                if new is None:
                    self._delete_ref(ref, path)
                    return True
                os.write(fd, new + b"\n")
                if self.durable:
                    os.fsync(fd)
                os.close(fd)
                fd = -1
                os.rename(lock_path, path)
                if self.durable:
                    fsync_path(os.path.dirname(path))
                return True
            finally:
                if fd != -1:
                    os.close(fd)
                    os.unlink(lock_path)

    def update_refs(self, lock: RefLock, agent_id: str, updates: Sequence[RefUpdate], *,
                    log: str | None = None) -> bool:
        """Move the agent's branch (``updates[0]``), then its names, as one operation.

        False, with nothing changed, if the branch was not at its ``old``. With
        more than one update, the journal ``gitstate/journal/<agent_id>`` lists
        them all: written (``<branch>.lock`` held) just before the branch moves,
        removed after the last name moved. A holder killed in between leaves it,
        and the next holder of the agent's lock completes it. A name another
        writer moved meanwhile keeps the value that writer gave it. ``log`` is
        the message of the branch's reflog entry (see :meth:`update_ref`).
        """
        first = updates[0]
        if len(updates) == 1:
            return self.update_ref(lock, first.ref, first.old, first.new, log=log)
        if not self._update_ref(lock, first.ref, first.old, first.new, log, (agent_id, updates)):
            return False
        self._finish(lock, agent_id, updates[1:])
        return True

    def _finish(self, lock: RefLock, agent_id: str, names: Sequence[RefUpdate]) -> None:
        """Move the names of a journaled operation whose branch moved; remove the journal."""
        for update in names:
            try:
                self.update_ref(lock, update.ref, update.old, update.new)  # False: moved by another writer
            except (InvalidArgumentError, CorruptObjectError):
                pass  # made symbolic or damaged by another writer: its business
        path = self._journal_path(agent_id)
        os.unlink(path)
        if self.durable:
            fsync_path(os.path.dirname(path))

    def _journal_path(self, agent_id: str) -> str:
        return os.path.join(self.path, JOURNAL_DIR, agent_id)

    def _write_journal(self, agent_id: str, updates: Sequence[RefUpdate]) -> None:
        """Write the journal of ``updates`` atomically (a temporary file renamed into place)."""
        path = self._journal_path(agent_id)
        tmp = os.path.join(self.path, "gitstate", "tmp", f"journal-{agent_id}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, format_journal(updates))
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(tmp, path)
        if self.durable:
            fsync_path(os.path.dirname(path))

    def _complete_journal(self, lock: RefLock, agent_id: str) -> None:
        """Roll forward the operation of the agent a killed process left half done.

        The branch decides: if it is still at the journal's old value it is moved;
        if it is at the new one, or another writer built on it since, the
        operation happened and each name still at its old value is moved too;
        else (another writer moved the branch first) the operation never happened
        and the rest of the journal is dropped. Either way the names stay on the
        history the branch holds.
        """
        path = self._journal_path(agent_id)
        if not os.access(path, os.F_OK):
            return  # the usual case: one system call, no exception
        with open(path, "rb") as f:  # only holders of the agent's lock write or remove it
            updates = parse_journal(f.read(), path)
        branch, names = branch_ref(agent_id), tag_prefix(agent_id)
        for i, update in enumerate(updates):
            if (update.ref != branch) if i == 0 else not update.ref.startswith(names):
                raise CorruptObjectError(f"{path} moves {update.ref.decode(errors='replace')}, "
                                         f"not agent {agent_id!r}'s branch and names; "
                                         "repair or remove it")
        if updates and not self._branch_moved(lock, updates[0]):
            updates = updates[:1]
        self._finish(lock, agent_id, updates[1:])

    def _branch_moved(self, lock: RefLock, update: RefUpdate) -> bool:
        """Whether the journaled branch move happened, making it happen if the branch is
        still at its old value.

        Another writer may have moved the branch since: it built on ours if its
        head reaches our new head, and reaches our old head only through it (a
        move back, like a hard rollback, has the old head out of the new history).
        """
        if self.update_ref(lock, update.ref, update.old, update.new):
            return True
        value, old, new = self.read_ref(update.ref), update.old, update.new
        if value == new:
            return True
        if value is None or new is None or not self._reaches(value, new):
            return False
        return old is None or self._reaches(new, old) or not self._reaches(value, old)

    def _reaches(self, head: bytes, sha: bytes) -> bool:
        """Whether commit ``sha`` is ``head`` or in its history (unreadable commits end a path)."""
        seen: set[bytes] = set()
        todo = [head]
        while todo:
            commit = todo.pop()
            if commit == sha:
                return True
            if commit in seen:
                continue
            seen.add(commit)
            try:
                todo.extend(CommitInfo.parse(commit, self.reader.read(commit)[1]).parents)
            except (KeyError, ValueError):
                continue
        return False

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
                with self._flock(os.path.join("agents", agent_id), wait=False, journal=agent_id):
                    pass
            except GitstateError as exc:
                if errors is None:
                    raise
                errors[agent_id] = exc

    def _delete_ref(self, ref: bytes, path: str) -> None:
        packed = ref in self._packed_refs()  # a damaged packed-refs raises before the unlink
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        if packed:
            self._rewrite_packed_refs(ref)
        try:
            os.unlink(self.reflog_path(ref))
        except FileNotFoundError:
            pass

    def _rewrite_packed_refs(self, drop: bytes) -> None:
        """Rewrite packed-refs without ``drop`` (under git's ``packed-refs.lock``)."""
        path = os.path.join(self.path, "packed-refs")
        with self._flock("packed-refs") as lock:
            assert lock is not None  # waited for
            with lock.guarding(path + ".lock"):
                fd = self.create_lock(lock, path + ".lock", "a git process is rewriting packed-refs")
                try:
                    with open(path, "rb") as f:
                        lines = f.read().split(b"\n")
                    kept, skip_peeled = [], False
                    for line in lines:
                        if line.startswith(b"^"):
                            if not skip_peeled:
                                kept.append(line)
                            continue
                        skip_peeled = line.endswith(b" " + drop)
                        if not skip_peeled:
                            kept.append(line)
                    os.write(fd, b"\n".join(kept))
                    if self.durable:
                        os.fsync(fd)
                    os.close(fd)
                    fd = -1
                    os.rename(path + ".lock", path)
                finally:
                    if fd != -1:
                        os.close(fd)
                        os.unlink(path + ".lock")
        self._packed = None

    # -- reflogs ---------------------------------------------------------------------
    def reflog_path(self, ref: bytes) -> str:
        return os.path.join(self.path, "logs", os.fsdecode(ref))

    def _append_reflog(self, ref: bytes, old: bytes | None, new: bytes | None, message: str) -> None:
        """Append one entry to ``ref``'s reflog in git's format (the caller holds ``<ref>.lock``)."""
        path = self.reflog_path(ref)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        zero = b"0" * 40
        line = (f"{(old or zero).decode()} {(new or zero).decode()} gitstate <gitstate@localhost> "
                f"{int(time.time())} +0000\t{' '.join(message.split())}\n")
        with open(path, "ab") as f:
            f.write(line.encode())
            if self.durable:
                os.fsync(f.fileno())
