"""The one writer of objects: loose objects, written the way git writes them.

An object goes into a temporary ``tmp_obj_*`` file of its fan-out folder
(which ``git fsck`` ignores if a crash leaves it behind), then is renamed into
place; with ``durable``, the file and its folder are fsynced. Objects are
stored uncompressed: the zlib stream git reads is made of stored deflate
blocks written straight from the object's bytes (:func:`stored_zlib`), so a
save neither deflates nor copies a state; maintenance packs them. The
temporary files killed writers leave are removed by maintenance
(:func:`remove_temporaries`); readers never see them.
"""

from __future__ import annotations

import os
import random
import stat
import threading
from collections.abc import Callable

from isal import isal_zlib

from ..errors import CorruptObjectError
from .locks import fsync_path, make_folders
from .objects import GitObject, header
from .reader import loose_path

_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KB window, "fastest" level: what zlib writes at level 0
_BLOCK = 0xFFFF  # the most a stored deflate block holds
_IOV_MAX = 1024  # buffers per writev (Linux's IOV_MAX)


def stored_zlib(head: bytes, body: bytes) -> list[bytes | memoryview]:
    """A zlib stream of ``head + body`` in stored (uncompressed) deflate blocks, as the
    buffers to write: ``body`` is not copied (RFC 1950/1951; zlib's level 0 writes the
    same format, through a copy, at ~3x the cost; ISA-L's adler32 is ~5x zlib's)."""
    view = memoryview(body)
    chunks: list[bytes | memoryview] = [_ZLIB_HEADER, _stored_block(head, not body), head]
    for start in range(0, len(body), _BLOCK):
        part = view[start:start + _BLOCK]
        chunks += (_stored_block(part, start + _BLOCK >= len(body)), part)
    chunks.append(isal_zlib.adler32(body, isal_zlib.adler32(head)).to_bytes(4, "big"))
    return chunks


def _stored_block(data: bytes | memoryview, final: bool) -> bytes:
    """The header of a stored deflate block holding ``data`` (at most 65,535 bytes)."""
    return bytes((final,)) + len(data).to_bytes(2, "little") + (len(data) ^ 0xFFFF).to_bytes(2, "little")


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


class LooseWriter:
    """Writes loose objects into ``objects_dir``, counting them; safe to share between threads."""

    def __init__(self, objects_dir: str, durable: bool):
        self.objects_dir, self.durable = objects_dir, durable
        self._written = [0, 0]  # objects and bytes written since take_written()
        self._lock = threading.Lock()

    def write(self, obj: GitObject) -> None:
        """Write ``obj`` as a loose object unless it is already there (then freshen it)."""
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
        raw = obj.as_raw_string()
        chunks = stored_zlib(header(obj.type_num, len(raw)), raw)
        tmp = os.path.join(folder, f"tmp_obj_{os.getpid()}_{random.getrandbits(48):012x}")
        while True:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                break
            except FileNotFoundError:  # no fan-out folder (maintenance removes empty ones)
                make_folders(folder, self.durable)
            except NotADirectoryError:
                raise CorruptObjectError(f"{folder} is a file where git keeps a folder of loose "
                                         "objects: move it out of the repository") from None
        try:
            size = _write_all(fd, chunks)
            if self.durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        with self._lock:
            self._written[0] += 1
            self._written[1] += size
        if self.durable:
            fsync_path(folder)

    def written(self) -> tuple[int, int]:
        """How many loose objects (and bytes) were written since :meth:`take_written`."""
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
