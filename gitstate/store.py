"""The only code that writes git objects and refs.

Objects are written as loose objects the way git writes them: into a temporary
``tmp_obj_*`` file (which ``git fsck`` ignores if a crash leaves it behind),
then renamed into place. Refs are updated by compare-and-swap with git's own
protocol (``<ref>.lock`` created with O_EXCL, then renamed over the ref).

Every ref update of an agent happens under that agent's lock: an ``flock`` on
``<repo>/gitstate/locks/agents/<agent_id>``, which the kernel releases when the
holder dies. Before creating a ``<ref>.lock``, the holder writes its path into
the lock file and clears it afterwards; so whoever takes the lock next and
finds a path there knows that its owner died mid-update and removes it. A
``<ref>.lock`` that no gitstate writer owns (a live ``git`` process) is waited
for, never removed.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
import weakref
from contextlib import AbstractContextManager, contextmanager
from typing import Iterator

from dulwich.objects import ShaFile
from dulwich.repo import Repo

from .errors import ConcurrentUpdateError, CorruptObjectError, GitstateError, InvalidArgumentError
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
    """A held lock (agent or packed-refs); records the ``.lock`` files it may create."""

    def __init__(self, fd: int):
        self.fd = fd

    @contextmanager
    def guarding(self, lock_path: str) -> Iterator[None]:
        os.pwrite(self.fd, lock_path.encode() + b"\n", 0)
        try:
            yield
        finally:
            os.ftruncate(self.fd, 0)


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
        if self.durable:
            fsync_path(folder)
            if new_folder:
                fsync_path(self.objects_dir)

    # -- locks -----------------------------------------------------------------------
    @contextmanager
    def _flock(self, relpath: str, wait: bool = True) -> Iterator[RefLock | None]:
        """Hold the ``flock`` of ``gitstate/locks/<relpath>``; yields None if it is held
        elsewhere and ``wait`` is False, else waits up to ``lock_timeout``."""
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
            yield RefLock(fd)
        finally:
            os.close(fd)  # closing releases the flock

    def agent_lock(self, agent_id: str) -> AbstractContextManager[RefLock]:
        """Hold the write lock of one agent (serializes gitstate writers of that agent)."""
        return self._flock(os.path.join("agents", agent_id))  # type: ignore[return-value]

    def maintenance_lock(self, wait: bool = True) -> AbstractContextManager[RefLock | None]:
        """Held by code that deletes objects (reclaim, maintenance), one at a time per
        repository, and by a fetch until refs name what it downloaded. With
        ``wait=False`` it yields None at once if it is held elsewhere."""
        return self._flock("maintenance", wait)

    # -- writing refs ----------------------------------------------------------------
    def update_ref(self, lock: RefLock, ref: bytes, old: bytes | None, new: bytes | None) -> bool:
        """Move ``ref`` from ``old`` to ``new`` atomically; False if it was not at ``old``.

        ``old=None`` means the ref must not exist; ``new=None`` deletes it. A
        ``<ref>.lock`` held by another process is waited for, with backoff.
        """
        path = os.path.join(self.path, os.fsdecode(ref))
        lock_path = path + ".lock"
        backoff = _Backoff(self.lock_timeout)
        with lock.guarding(lock_path):
            while True:
                try:
                    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    break
                except FileNotFoundError:
                    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
                except FileExistsError:
                    if not backoff.wait():
                        raise ConcurrentUpdateError(
                            f"{lock_path} stayed locked for {self.lock_timeout:g}s "
                            "(another git process is updating this ref)"
                        ) from None
            try:
                if self.writable_ref(ref) != old:
                    return False
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

    def _delete_ref(self, ref: bytes, path: str) -> None:
        packed = ref in self._packed_refs()  # a damaged packed-refs raises before the unlink
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        if packed:
            self._rewrite_packed_refs(ref)

    def _rewrite_packed_refs(self, drop: bytes) -> None:
        """Rewrite packed-refs without ``drop`` (under git's ``packed-refs.lock``)."""
        path = os.path.join(self.path, "packed-refs")
        with self._flock("packed-refs") as lock, lock.guarding(path + ".lock"):
            backoff = _Backoff(self.lock_timeout)
            while True:
                try:
                    fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    break
                except FileExistsError:
                    if not backoff.wait():
                        raise ConcurrentUpdateError(f"{path}.lock stayed locked") from None
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

    def append_reflog(self, lock: RefLock, ref: bytes, old: bytes, new: bytes, message: str) -> None:
        """Append one entry to ``ref``'s reflog in git's format (caller holds the agent lock)."""
        path = self.reflog_path(ref)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        line = (f"{old.decode()} {new.decode()} gitstate <gitstate@localhost> "
                f"{int(time.time())} +0000\t{' '.join(message.split())}\n")
        with open(path, "ab") as f:
            f.write(line.encode())
            if self.durable:
                os.fsync(f.fileno())

    def delete_reflog(self, lock: RefLock, ref: bytes) -> None:
        """Remove ``ref``'s reflog, as ``git branch -D`` does (caller holds the agent lock)."""
        try:
            os.unlink(self.reflog_path(ref))
        except FileNotFoundError:
            pass
