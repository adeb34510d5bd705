"""Locks: gitstate's ``flock`` files, and git's ``<file>.lock`` protocol for replacing a file.

gitstate's writers serialize on ``flock`` s of files under ``<repo>/gitstate/locks/``
(one per agent, ``maintenance``, ``packed-refs``, ``config``), which the kernel
releases when the holder dies (:meth:`Locks.flock`).

A file git also writes (a ref, ``packed-refs``, ``config``) is replaced with
git's own protocol, so that git and gitstate never lose each other's changes
(:meth:`Locks.replacing`): ``<file>.lock`` created with O_EXCL (a spare file renamed
there without replacing, :mod:`~gitstate.git.spares`), the new content
written into it (fsynced when durable), then renamed over ``<file>``. Before
creating a ``<file>.lock``, the holder of a ``flock`` writes its path into the
``flock``'s file and clears it afterwards; so whoever takes that ``flock`` next
and finds a path there knows that its owner died mid-update and removes it. A
``<file>.lock`` that no gitstate writer owns (a live ``git`` process) is waited
for with backoff, never removed.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ConcurrentUpdateError
from .spares import Spares


def fsync_path(path: str) -> None:
    """fsync a file or directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` whole (a short write is continued)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def make_folders(path: str, durable: bool) -> None:
    """Create folder ``path`` and its missing parents; when ``durable``, fsync the parent of
    each folder created, so that a power loss cannot take back an entry written into it."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:  # made meanwhile by another writer, or not a folder
            if not os.path.isdir(folder):
                raise NotADirectoryError(f"{folder} is not a folder") from None
            continue
        if durable:
            fsync_path(os.path.dirname(folder))


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
    ``flock`` next removes that file if the holder died (see :meth:`Locks.flock`)."""

    def __init__(self, fd: int):
        self.fd = fd

    def record(self, lock_path: str) -> None:
        """Note that the holder is creating or holds ``lock_path``."""
        line = lock_path.encode() + b"\n"
        os.pwrite(self.fd, line, 0)
        os.ftruncate(self.fd, len(line))

    def forget(self) -> None:
        """The holder holds no ``.lock`` file (any more)."""
        os.ftruncate(self.fd, 0)


class LockFile:
    """A held ``<file>.lock`` (git's protocol): :meth:`write` the new content, then
    :meth:`commit` renames it over ``<file>``; left uncommitted, it is removed."""

    def __init__(self, fd: int, path: str, durable: bool, spares: Spares):
        self.fd, self.path, self.durable, self.spares = fd, path, durable, spares
        self.committed = False

    def write(self, data: bytes) -> None:
        write_all(self.fd, data)

    def commit(self) -> None:
        """Make the written content ``<file>``'s (fsynced with its folder when durable); the
        file replaced is freed later, by maintenance (:meth:`Spares.keep`)."""
        if self.durable:
            os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        self.spares.keep(self.path)
        os.rename(self.path + ".lock", self.path)
        self.committed = True
        if self.durable:
            fsync_path(os.path.dirname(self.path))


class Locks:
    """The locks of the repository at ``path``; a lock held elsewhere is waited for up to
    ``timeout`` seconds, then :class:`ConcurrentUpdateError`."""

    def __init__(self, path: str, timeout: float, durable: bool, spares: Spares):
        self.path, self.timeout, self.durable, self.spares = path, timeout, durable, spares

    @contextmanager
    def flock(self, name: str, wait: bool = True) -> Iterator[RefLock | None]:
        """Hold the ``flock`` of ``gitstate/locks/<name>``; yields None at once if it is held
        elsewhere and ``wait`` is False. A ``.lock`` file its file names (its previous
        holder died while holding it) is removed first."""
        path = os.path.join(self.path, "gitstate", "locks", name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            backoff = _Backoff(self.timeout)
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
                            f"gave up after {self.timeout:g}s waiting for the lock {path}"
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

    @contextmanager
    def replacing(self, guard: RefLock, path: str, holder: str) -> Iterator[LockFile]:
        """Hold ``<path>.lock``, recorded in ``guard`` (see the module docstring).

        While another process holds it (``holder`` says who, in the error) the
        record is cleared, so that dying while waiting never makes the next
        holder remove a live lock.
        """
        lock_path = path + ".lock"
        guard.record(lock_path)
        backoff = _Backoff(self.timeout)
        while True:
            try:
                fd = self.spares.create(lock_path, 0o644)
                break
            except FileNotFoundError:
                try:
                    make_folders(os.path.dirname(lock_path), self.durable)
                except BaseException:
                    guard.forget()
                    raise
            except FileExistsError:
                guard.forget()
                if not backoff.wait():
                    raise ConcurrentUpdateError(
                        f"{lock_path} stayed locked for {self.timeout:g}s ({holder}); "
                        "remove it if no such process is running") from None
                guard.record(lock_path)
            except BaseException:  # no lock file was made (no space, an I/O error...)
                guard.forget()
                raise
        lock = LockFile(fd, path, self.durable, self.spares)
        try:
            yield lock
        finally:
            if lock.fd != -1:
                os.close(lock.fd)
            if not lock.committed:
                try:  # if this fails, the record stays: the next holder removes it
                    os.unlink(lock_path)
                except FileNotFoundError:  # renamed into place just before an interrupt
                    pass
            guard.forget()
