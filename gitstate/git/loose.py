"""The one writer of objects: loose objects, written the way git writes them.

An object goes into a temporary ``tmp_obj_*`` file (a spare file renamed there,
:mod:`~gitstate.git.spares`; ``git fsck`` ignores it if a crash leaves it behind),
then is renamed into place; with
``durable``, the file and its folder are fsynced. Objects are stored
uncompressed: the zlib stream git reads is made of stored deflate blocks
written straight from the object's bytes
(:func:`~gitstate.git.objects.stored_zlib`), so a save
neither deflates nor copies a state; maintenance packs them. A large object
given by its content (:meth:`LooseWriter.add`) is hashed by a worker thread
while this one writes it into ``objects/`` (both release the GIL; the worker
makes no file-system call), then renamed into its fan-out folder once its
name is known. The temporary files killed writers leave are removed by
maintenance (:func:`remove_temporaries`); readers never see them.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import stat
import threading
from collections.abc import Callable
from typing import Any

from ..errors import CorruptObjectError
from .locks import fsync_path, make_folders
from .objects import GitObject, RawObject, header, stored_zlib
from .reader import loose_path
from .spares import Spares

_IOV_MAX = 1024  # buffers per writev (Linux's IOV_MAX)
_OVERLAP = 128 << 10  # from this size, add() hashes and writes at once (a hand-off costs ~30 us)


def _write_all(fd: int, chunks: list[bytes | memoryview]) -> int:
    """Write ``chunks`` in order (``writev``, short writes continued); return the bytes written."""
    total, at = 0, 0
    while at < len(chunks):
        done = os.writev(fd, chunks[at:at + _IOV_MAX])
        total += done
        while at < len(chunks) and done >= len(chunks[at]):
            done -= len(chunks[at])
            at += 1
        if done:  # a short write ended inside a chunk
            chunks[at] = memoryview(chunks[at])[done:]
    return total


def _remove(tmp: str) -> None:
    """Remove a temporary file of this writer (``git prune`` may have removed it already)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def _sha1(head: bytes, raw: bytes) -> bytes:
    digest = hashlib.sha1(head)
    digest.update(raw)
    return digest.hexdigest().encode()


_Result = queue.SimpleQueue[tuple[Any, BaseException | None]]


class _Worker:
    """One thread of this process running the functions given to :meth:`run` in turn
    (made again in a child after ``fork``, which keeps no thread)."""

    _lock = threading.Lock()
    _queue: queue.SimpleQueue[tuple[Callable[[], Any], _Result]]
    _pid = -1

    @classmethod
    def run(cls, job: Callable[[], Any]) -> _Result:
        """Start ``job``; ``get()`` on what this returns gives ``(result, exception)``. Where
        no thread can be started (at interpreter shutdown, out of memory), ``job`` runs here."""
        done: _Result = queue.SimpleQueue()
        with cls._lock:
            if cls._pid != os.getpid():
                jobs: queue.SimpleQueue[tuple[Callable[[], Any], _Result]] = queue.SimpleQueue()
                try:
                    threading.Thread(target=cls._serve, args=(jobs,), daemon=True,
                                     name="gitstate-loose-writer").start()
                except RuntimeError:
                    _serve_one(job, done)
                    return done
                cls._queue, cls._pid = jobs, os.getpid()
        cls._queue.put((job, done))
        return done

    @classmethod
    def _forget(cls) -> None:
        """In a child after ``fork``: no worker, and a lock no other thread can hold."""
        cls._lock, cls._pid = threading.Lock(), -1

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], Any], _Result]]) -> None:
        while True:
            _serve_one(*jobs.get())


def _serve_one(job: Callable[[], Any], done: _Result) -> None:
    try:
        done.put((job(), None))
    except BaseException as exc:  # handed to the waiting thread, which raises it
        done.put((None, exc))


os.register_at_fork(after_in_child=_Worker._forget)


class LooseWriter:
    """Writes loose objects into ``objects_dir``, counting them; safe to share between threads."""

    def __init__(self, objects_dir: str, durable: bool, spares: Spares):
        self.objects_dir, self.durable, self.spares = objects_dir, durable, spares
        self._written = [0, 0]  # objects and bytes written since take_written()
        self._lock = threading.Lock()

    def write(self, obj: GitObject, *, new: bool = False) -> None:
        """Write ``obj`` as a loose object unless it is already there (then freshen it).
        ``new``: the caller knows it is not there (a commit naming a new checkpoint id), so
        it is not looked for (were it there, it would be replaced by the same bytes)."""
        path = loose_path(self.objects_dir, obj.id)
        if not new and self._freshened(path):
            return
        raw = obj.as_raw_string()
        folder = os.path.dirname(path)
        tmp = self._temporary(folder)
        while True:
            try:
                size = self._write_file(tmp, header(obj.type_num, len(raw)), raw)
                break
            except FileNotFoundError:  # no fan-out folder (git's gc removes empty ones)
                self._make_folder(folder)
            except NotADirectoryError:
                raise self._not_a_folder(folder) from None
        self._move(tmp, path, size)

    def add(self, type_num: int, raw: bytes) -> bytes:
        """Write an object given by its type and content unless it is already there;
        return its hex SHA. A large one is hashed by a worker thread while this one
        writes it into a temporary file of ``objects/``, renamed into place after."""
        if len(raw) < _OVERLAP:
            obj = RawObject(type_num, raw)
            self.write(obj)
            return obj.id
        head = header(type_num, len(raw))
        hashing = _Worker.run(lambda: _sha1(head, raw))
        tmp = self._temporary(self.objects_dir)
        size = self._write_file(tmp, head, raw)
        try:
            sha, failed = hashing.get()
            if failed is not None:
                raise failed
            path = loose_path(self.objects_dir, sha)
            there = self._freshened(path)
        except BaseException:
            _remove(tmp)
            raise
        if there:
            _remove(tmp)
            return sha
        self._move(tmp, path, size)
        return sha

    def _freshened(self, path: str) -> bool:
        """Whether the object at ``path`` is there; if so its time is refreshed, as git does
        (reclaim spares unreachable objects younger than its grace period)."""
        if not os.path.exists(path):
            return False
        try:
            os.utime(path)
        except FileNotFoundError:
            return False  # reclaimed meanwhile: write it again
        except PermissionError:  # another user's object: cannot freshen, still there
            pass
        return True

    @staticmethod
    def _temporary(folder: str) -> str:
        return os.path.join(folder, f"tmp_obj_{os.getpid()}_{random.getrandbits(48):012x}")

    @staticmethod
    def _not_a_folder(folder: str) -> CorruptObjectError:
        return CorruptObjectError(f"{folder} is not a folder (a file or a broken link) where git "
                                  "keeps a folder of loose objects: move it out of the repository")

    def missing_folders(self) -> int:
        """How many of the 256 fan-out folders do not exist."""
        return sum(not os.path.isdir(os.path.join(self.objects_dir, f"{first:02x}"))
                   for first in range(256))

    def _make_folder(self, folder: str) -> None:
        """Make the fan-out folder ``folder``: a spare folder renamed there if one is left."""
        try:
            if not self.spares.make_folder(folder):
                make_folders(folder, self.durable)
            elif self.durable:
                fsync_path(os.path.dirname(folder))
        except FileExistsError:  # made meanwhile by another writer, or not a folder
            if not os.path.isdir(folder):
                raise self._not_a_folder(folder) from None
        except NotADirectoryError:
            raise self._not_a_folder(folder) from None

    def _write_file(self, tmp: str, head: bytes, raw: bytes) -> int:
        """Create ``tmp`` holding the loose object ``head + raw``; return its size. A failed
        call leaves nothing behind (a signal may: maintenance removes such files)."""
        fd = self.spares.create(tmp, 0o444)
        try:
            size = _write_all(fd, stored_zlib(head, raw))
            if self.durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return size

    def _move(self, tmp: str, path: str, size: int) -> None:
        """Rename the written ``tmp`` to ``path`` (making its fan-out folder if needed), and
        count it; ``tmp`` is removed if this fails."""
        folder = os.path.dirname(path)
        try:
            while True:
                try:
                    os.replace(tmp, path)
                    break
                except FileNotFoundError:
                    if os.path.dirname(tmp) == folder or not os.path.exists(tmp):
                        raise  # (the temporary file itself is gone: not a missing folder)
                    self._make_folder(folder)
                except NotADirectoryError:
                    raise self._not_a_folder(folder) from None
        except BaseException:
            _remove(tmp)
            raise
        self.count(1, size)
        if self.durable:
            fsync_path(folder)

    def count(self, objects: int, nbytes: int) -> None:
        """Count ``objects`` files of ``nbytes`` bytes written (here, or as a small pack)."""
        with self._lock:
            self._written[0] += objects
            self._written[1] += nbytes

    def written(self) -> tuple[int, int]:
        """How many files (and bytes) of objects were written since :meth:`take_written`."""
        with self._lock:
            return self._written[0], self._written[1]

    def take_written(self) -> tuple[int, int]:
        """:meth:`written`, and start counting again from zero."""
        with self._lock:
            counts = self._written[0], self._written[1]
            self._written = [0, 0]
            return counts


def remove_temporaries(objects_dir: str, cutoff: float) -> int:
    """Delete the temporary files that killed writers left in ``objects_dir`` and that
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

    collect(objects_dir, lambda name, _: name.startswith("tmp_"))
    for first in range(256):
        collect(os.path.join(objects_dir, f"{first:02x}"),
                lambda name, _: name.startswith("tmp_obj_"))
    collect(os.path.join(objects_dir, "pack"), lambda name, names: (
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
