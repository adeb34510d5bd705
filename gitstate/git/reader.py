"""Reads of raw git objects: loose files and packs, inflated with ISA-L, cached by SHA.

The one object reader of gitstate: loads, history walks and pushes use it
through ``Store.reader``; maintenance, reclaim and verify's check of every
object open their own with a small cache
(:func:`~gitstate.git.objectset.maintenance_reader`).

Loading a checkpoint reads three objects (commit, tree, ``state.json``), and for
a large state inflating the blob is most of the time. :class:`ObjectReader`
inflates with ISA-L (``isal``, about 2.5 times zlib's speed, same format),
reads pack data with ``pread`` (one open file per pack, nothing of the pack kept
in memory), finds objects in (version 2) pack indexes held in memory (~28 bytes
per object), resolves delta chains itself, and keeps recently read objects in a
byte-bounded LRU cache. Objects are named by their content, so a cached object
can never be stale; refs are always read from disk, so a moved branch is seen
at once.

The pack list follows the pack folder (its mtime is checked on every read that
reaches the packs, and a miss rescans it), so packs written or deleted by
maintenance are picked up and released. Objects this reader cannot find (behind
``objects/info/alternates``, or in a pack with a version 1 index) are asked of
a fallback.

Damage (a loose object, pack or pack index that git would not read) raises
``DamagedObjectError`` naming the file; so does a miss while a pack index of the
folder is damaged, as that index may hold the object.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, cast

from dulwich.errors import ApplyDeltaError
from dulwich.pack import (  # the compiled one when built
    OFS_DELTA,
    REF_DELTA,
    apply_delta,
)
from isal import isal_zlib

from ..errors import DamagedObjectError
from ..ids import is_sha

COMMIT, TREE, BLOB, TAG = 1, 2, 3, 4
TYPE_NAMES = {b"commit": COMMIT, b"tree": TREE, b"blob": BLOB, b"tag": TAG}
_TYPE_BYTES = {number: name for name, number in TYPE_NAMES.items()}
CACHE_BYTES = 64 << 20  # default size of the cache of inflated objects
MAP_INDEX_BYTES = 8 << 20  # pack indexes larger than this (~290,000 objects) are mapped, not read
MAX_CHAIN = 10_000  # git never writes deltas deeper than 4095; longer means a damaged pack
SHA_SIZE = 20
_CHUNK = SHA_SIZE << 16  # bytes per read of a mapped index: whole SHAs, 4- and 8-byte entries
_IDX_HEADER = b"\377tOc\0\0\0\2"
_FANOUT_END = 8 + 256 * 4

Raw = tuple[int, bytes]  # (git type number, object content)
Base = int | bytes | None  # a pack entry's delta base: an offset, a binary SHA, or none
InflateError = cast("type[Exception]", isal_zlib.error)  # (isal's stub calls it an instance)


def type_name(type_num: int) -> str:
    """``commit``, ``tree``, ``blob`` or ``tag`` (what git calls a type number)."""
    return _TYPE_BYTES[type_num].decode() if type_num in _TYPE_BYTES else f"type {type_num}"


def loose_path(objects_dir: str, hexsha: bytes) -> str:
    """Where git keeps loose object ``hexsha``: ``objects/<2 hex digits>/<38 hex digits>``."""
    text = hexsha.decode()
    return os.path.join(objects_dir, text[:2], text[2:])


class PackIndex:
    """A version 2 pack index (``.idx``), checked against git's layout: read into memory,
    or mapped if larger than ``MAP_INDEX_BYTES`` (:meth:`trim` then gives its pages back)."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data: bytes | mmap.mmap = (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                                       if size > MAP_INDEX_BYTES else f.read())
        if data[:8] != _IDX_HEADER or len(data) < _FANOUT_END:
            raise DamagedObjectError(f"{path} is not a version 2 pack index")
        self.fanout = (0, *struct.unpack(">256I", data[8:_FANOUT_END]))
        self.count = count = self.fanout[256]
        tables = _FANOUT_END + count * (SHA_SIZE + 8)  # names, CRCs, 32-bit offsets
        if not tables + 40 <= len(data) <= tables + 40 + 8 * max(count - 1, 0):
            raise DamagedObjectError(f"{path} has {len(data)} bytes, which does not fit "
                                     f"{count} objects")
        self.data, self.path = data, path
        self._large = (len(data) - tables - 40) // 8  # entries of the 64-bit offset table
        self._starts: array | None = None  # of each 2-byte prefix, for a mapped index
        if isinstance(data, mmap.mmap):  # a lookup then touches two pages or so
            counts = array("I", [0]) * (1 << 16)
            for sha in self.shas():
                counts[(sha[0] << 8) | sha[1]] += 1
            self._starts = array("I", [0])
            for count in counts:
                self._starts.append(self._starts[-1] + count)

    def trim(self) -> None:
        """Give back the pages of a mapped index (read again from the page cache when needed)."""
        if isinstance(self.data, mmap.mmap):
            self.data.madvise(mmap.MADV_DONTNEED)

    def checksum_matches(self) -> bool:
        """Whether the index matches its own trailing checksum."""
        digest = hashlib.sha1()
        for chunk in self._range(0, len(self.data) - SHA_SIZE):
            digest.update(chunk)
        return digest.digest() == self.data[-SHA_SIZE:]

    def _range(self, start: int, length: int) -> Iterator[bytes]:
        """The index's bytes ``start..start + length``, in chunks; read from the file when it
        is mapped (a sequential scan then leaves no page of the mapping resident)."""
        if not isinstance(self.data, mmap.mmap):
            yield self.data[start:start + length]
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            end = start + length
            while start < end:
                chunk = os.pread(fd, min(_CHUNK, end - start), start)
                if not chunk:
                    raise DamagedObjectError(f"{self.path} was cut short while being read")
                yield chunk
                start += len(chunk)
        finally:
            os.close(fd)

    def offset(self, binsha: bytes) -> int | None:
        """Where the object is in the pack (binary search of the index), or None."""
        data, first = self.data, binsha[0]
        if self._starts is not None:
            prefix = (first << 8) | binsha[1]
            lo, hi = self._starts[prefix], self._starts[prefix + 1]
        else:
            lo, hi = self.fanout[first], self.fanout[first + 1]
        while lo < hi:
            mid = (lo + hi) >> 1
            at = _FANOUT_END + mid * SHA_SIZE
            name = data[at:at + SHA_SIZE]
            if name < binsha:
                lo = mid + 1
            elif name > binsha:
                hi = mid
            else:
                return self._offset_at(mid)
        return None

    def _offset_at(self, i: int) -> int:
        at = _FANOUT_END + self.count * (SHA_SIZE + 4) + i * 4  # past the names and the CRCs
        (offset,) = struct.unpack(">I", self.data[at:at + 4])
        if offset & 0x80000000:  # an index into the table of 64-bit offsets
            if offset & 0x7FFFFFFF >= self._large:
                raise DamagedObjectError(f"{self.path}: object {i} has no 64-bit offset entry")
            at = _FANOUT_END + self.count * (SHA_SIZE + 8) + (offset & 0x7FFFFFFF) * 8
            (offset,) = struct.unpack(">Q", self.data[at:at + 8])
        return offset

    def shas(self) -> Iterator[bytes]:
        """The binary SHAs of the pack's objects, sorted."""
        for chunk in self._range(_FANOUT_END, self.count * SHA_SIZE):  # (chunks: multiples of 20)
            yield from (chunk[at:at + SHA_SIZE] for at in range(0, len(chunk), SHA_SIZE))

    def offsets(self, into: Any = None) -> Any:
        """Offset in the pack of each object, in index (SHA) order: written into ``into`` (a
        table of ``count`` 8-byte items, as :meth:`objectset.Scratch.table` gives) or a new
        ``array``."""
        out = array("Q", bytes(8 * self.count)) if into is None else into
        start, i = _FANOUT_END + self.count * (SHA_SIZE + 4), 0
        for chunk in self._range(start, self.count * 4):
            for (offset,) in struct.iter_unpack(">I", chunk):
                out[i] = offset if offset < 0x80000000 else self._offset_at(i)
                i += 1
        return out


class _Pack:
    """One pack: its index, and its data file open for ``pread``."""

    def __init__(self, idx_path: str):
        self.index = PackIndex(idx_path)
        self.path = idx_path[:-4] + ".pack"
        self.fd = os.open(self.path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)  # when the last reader drops the pack
        stat = os.fstat(self.fd)
        self.size = stat.st_size
        self.key = (idx_path, stat.st_ino, stat.st_mtime_ns)  # a pack rewritten in place differs

    def damage(self) -> list[str]:
        """What is wrong with the pack's files: checksums of the index and the pack, the
        index naming the pack, the pack's header and object count."""
        index, problems = self.index, []
        if not index.checksum_matches():
            problems.append(f"{index.path} does not match its checksum (damaged)")
        if self.size < 12 + SHA_SIZE:
            return [*problems, f"{self.path} has {self.size} bytes, too few for a pack"]
        header = os.pread(self.fd, 12, 0)
        trailer = os.pread(self.fd, SHA_SIZE, self.size - SHA_SIZE)
        if _file_sha1(self.fd, self.size - SHA_SIZE) != trailer:
            problems.append(f"{self.path} does not match its checksum (damaged)")
        elif index.data[-2 * SHA_SIZE:-SHA_SIZE] != trailer:
            problems.append(f"{index.path} is the index of another pack")
        if header[:4] != b"PACK" or header[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
            problems.append(f"{self.path} does not start with a pack header")
        elif int.from_bytes(header[8:], "big") != index.count:
            problems.append(f"{self.path} holds {int.from_bytes(header[8:], 'big')} objects, "
                            f"its index {index.count}")
        return problems

    def entry(self, offset: int) -> tuple[int, Base, bytes]:
        """``(type, base, inflated data)`` of the entry at ``offset`` (see :func:`entry_header`);
        ``DamagedObjectError`` naming the pack if it is damaged."""
        try:
            if offset >= self.size - SHA_SIZE:
                raise DamagedObjectError(f"the index puts an object at offset {offset}, "
                                         "past the pack's data")
            head = os.pread(self.fd, 512, offset)  # small objects: the whole entry in one read
            kind, size, base, start = entry_header(head, offset)
            if size > (self.size - start) * 1032:  # deflate expands at most ~1032 times
                raise DamagedObjectError(f"pack entry at {offset} claims {size} bytes, "
                                         "more than the pack holds")
            return kind, base, inflate(self.fd, start, size, head[start - offset:])
        except DamagedObjectError as exc:
            raise DamagedObjectError(f"{self.path}: {exc}") from None


def pack_file_damage(idx_path: str) -> list[str]:
    """What is wrong with the files of the pack whose index is ``idx_path``: its index's
    layout, the checksums of index and pack, the index naming the pack, the pack's header
    and object count. Maintenance checks this before rewriting a pack and deleting it."""
    try:
        return _Pack(idx_path).damage()
    except DamagedObjectError as exc:
        return [str(exc)]


def entry_header(head: bytes, offset: int) -> tuple[int, int, Base, int]:
    """``(type, size, base, data offset)`` of the pack entry at ``offset`` starting with ``head``.

    ``base`` is the base's offset for an offset delta, its binary SHA for a ref
    delta, else None. Raises ``DamagedObjectError`` for what git would not read.
    """
    try:
        byte = head[0]
        kind, size, shift, pos = (byte >> 4) & 7, byte & 15, 4, 1
        while byte & 0x80:
            byte = head[pos]
            size |= (byte & 0x7F) << shift
            shift, pos = shift + 7, pos + 1
        base: Base = None
        if kind == OFS_DELTA:
            byte = head[pos]
            distance, pos = byte & 0x7F, pos + 1
            while byte & 0x80:
                byte = head[pos]
                distance, pos = ((distance + 1) << 7) | (byte & 0x7F), pos + 1
            if not 0 < distance <= offset:
                raise DamagedObjectError(f"pack entry at {offset} is a delta against itself "
                                         f"or outside the pack (distance {distance})")
            base = offset - distance
        elif kind == REF_DELTA:
            base, pos = bytes(head[pos:pos + SHA_SIZE]), pos + SHA_SIZE
            if len(base) != SHA_SIZE:
                raise IndexError
        elif kind not in (COMMIT, TREE, BLOB, TAG):
            raise DamagedObjectError(f"pack entry at {offset} has type {kind}, "
                                     "which git does not have")
    except IndexError:
        raise DamagedObjectError(f"pack entry at {offset} is cut short") from None
    return kind, size, base, offset + pos


def read_entry_header(fd: int, offset: int) -> tuple[int, int, Base, int]:
    """:func:`entry_header` of the pack open as ``fd``."""
    return entry_header(os.pread(fd, 64, offset), offset)


def inflate(fd: int, start: int, size: int, first: bytes = b"") -> bytes:
    """The ``size`` bytes of the zlib stream at ``start`` of file ``fd`` (``first``: its start).

    Reads half of ``size`` first (JSON deflates to a third or less), then the rest of
    zlib's bound for ``size``, then 64 KB at a time (streams from other writers can
    exceed the bound).
    """
    inflater = isal_zlib.decompressobj()
    bound = size + (size >> 12) + (size >> 14) + 64  # zlib's bound for one deflate call
    chunk = first if len(first) >= bound else os.pread(fd, min(bound, max(8192, size // 2)), start)
    out, pos, total = [], start, 0
    while True:
        if not chunk:
            raise DamagedObjectError(f"the zlib stream at offset {start} is cut short")
        try:
            out.append(inflater.decompress(chunk))
        except InflateError as exc:
            raise DamagedObjectError(f"the zlib stream at offset {start} does not inflate: "
                                     f"{exc}") from None
        total += len(out[-1])
        if inflater.eof or total > size:
            break
        pos += len(chunk)
        chunk = os.pread(fd, max(start + bound - pos, 1 << 16), pos)
    data = out[0] if len(out) == 1 else b"".join(out)
    if len(data) != size:
        raise DamagedObjectError(f"the zlib stream at offset {start} holds {len(data)} bytes, "
                                 f"not {size}")
    return data


class ObjectReader:
    """Raw objects of one ``objects/`` folder by hex SHA; safe to share between threads.

    ``fallback(hexsha)`` is asked for objects that are neither loose nor in a
    pack this reader reads; it returns ``(type_num, content)`` or raises ``KeyError``.
    The cache holds the objects read (by SHA) and the objects of delta chains (by
    pack and offset); ``cache_reads=False`` keeps only the latter, for a reader
    that visits each object once (maintenance). ``watch_packs=False`` looks at the
    pack folder only on a miss or after :meth:`refresh`, for a reader whose caller
    writes and removes the packs itself (maintenance).
    """

    def __init__(self, objects_dir: str, fallback: Callable[[bytes], Raw],
                 cache_bytes: int = CACHE_BYTES, *, cache_reads: bool = True,
                 watch_packs: bool = True):
        self.objects_dir = objects_dir
        self._pack_dir = os.path.join(objects_dir, "pack")
        self._fallback = fallback
        self._lock = threading.Lock()
        self._cache: OrderedDict[object, Raw] = OrderedDict()
        self._cached = 0
        self.cache_bytes = cache_bytes
        self._cache_reads = cache_reads
        self._watch_packs = watch_packs
        self._packs: list[_Pack] = []
        self._packs_seen: int | None = None
        self._damaged: list[str] = []  # what is wrong with each pack index left unread

    def read(self, sha: bytes) -> Raw:
        """``(type_num, content)`` of object ``sha`` (40 lower-case hex digits).

        Raises ``KeyError`` if it is missing; ``DamagedObjectError`` (a ``ValueError``)
        if it is damaged or a damaged pack index may hold it, naming the file;
        ``ValueError`` if ``sha`` is not a SHA; ``OSError`` if the file system fails.
        """
        raw = self._get(sha) if self._cache_reads else None
        if raw is None:
            if not is_sha(sha):
                raise ValueError(f"{sha!r} is not a SHA-1 in hex")
            raw = self._read_packed(sha) or self._read_loose(sha)
            if raw is None:  # packed meanwhile, by a pack written after the folder was looked at
                self.refresh()
                raw = self._read_packed(sha) or self._read_fallback(sha)
            if self._cache_reads:
                self._put(sha, raw)
        return raw

    def _read_fallback(self, sha: bytes) -> Raw:
        """The fallback's read of ``sha``, its errors turned into the ones :meth:`read` raises."""
        try:
            return self._fallback(sha)
        except OSError:
            raise
        except Exception as exc:  # KeyError: missing; dulwich on a damaged pack: anything
            damaged = "; ".join(self._damaged)
            if isinstance(exc, KeyError) and not damaged:
                raise
            raise DamagedObjectError(
                f"not found, and a pack index that may hold it is damaged: {damaged}" if damaged
                else f"{type(exc).__name__}: {exc}") from None

    def check_loose(self, sha: bytes) -> str | None:
        """What is wrong with loose object ``sha`` (hex): None if it is sound, or gone meanwhile."""
        try:
            raw = self._read_loose(sha)
        except DamagedObjectError as exc:
            return str(exc)
        return None if raw is None else _misnamed(sha, raw)

    def check_pack(self, idx_path: str) -> Iterator[tuple[bytes | None, str]]:
        """What is wrong with a pack: ``(None, message)`` for its files (see
        :func:`pack_file_damage`), ``(sha, message)`` for each object (hex SHA) that does
        not read back or hash to its name, in pack order. A pack deleted meanwhile
        (maintenance) yields nothing."""
        try:
            pack = _Pack(idx_path)
        except FileNotFoundError:
            return
        except DamagedObjectError as exc:
            yield None, str(exc)
            return
        for message in pack.damage():
            yield None, message
        index = pack.index
        offsets, shas = index.offsets(), list(index.shas())
        for i in sorted(range(index.count), key=offsets.__getitem__):
            sha = shas[i].hex().encode()
            try:
                problem = _misnamed(sha, self._read_at(pack, offsets[i]))
            except DamagedObjectError as exc:
                problem = str(exc)
            if problem is not None:
                yield sha, problem

    def trim(self) -> None:
        """Give back the pages of the mapped pack indexes (:meth:`PackIndex.trim`)."""
        for pack in self._packs:
            pack.index.trim()

    def is_packed(self, sha: bytes) -> bool:
        """Whether a pack this reader knows holds object ``sha`` (hex)."""
        return self._locate(bytes.fromhex(sha.decode())) is not None

    def refresh(self) -> None:
        """Look at the pack folder again on the next read (after packs were written or removed)."""
        with self._lock:
            self._packs_seen = None

    def close(self) -> None:
        """Forget the cache and the packs (each pack file closes when no read still uses it)."""
        with self._lock:
            self._cache.clear()
            self._cached = 0
            self._packs = []
            self._packs_seen = None

    # -- cache -----------------------------------------------------------------------
    def _get(self, key: object) -> Raw | None:
        with self._lock:
            raw = self._cache.get(key)
            if raw is not None:
                self._cache.move_to_end(key)
            return raw

    def _put(self, key: object, raw: Raw) -> None:
        size = _size(raw)
        if size > self.cache_bytes // 4:
            return
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = raw
            self._cached += size
            while self._cached > self.cache_bytes:
                _key, old = self._cache.popitem(last=False)
                self._cached -= _size(old)

    # -- loose objects ---------------------------------------------------------------
    def _read_loose(self, sha: bytes) -> Raw | None:
        path = loose_path(self.objects_dir, sha)
        try:
            with open(path, "rb") as f:
                data = isal_zlib.decompress(f.read())
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise DamagedObjectError(f"{os.path.dirname(path)} is a file where git keeps a "
                                     "folder of loose objects") from None
        except IsADirectoryError:
            raise DamagedObjectError(f"loose object file {path} is a folder") from None
        except InflateError as exc:
            raise DamagedObjectError(f"loose object file {path} does not inflate: {exc}") from None
        header, _, content = data.partition(b"\0")
        kind, _, size = header.partition(b" ")
        if kind not in TYPE_NAMES or not size.isdigit() or int(size) != len(content):
            raise DamagedObjectError(f"loose object file {path} has a bad header {header[:32]!r}")
        return TYPE_NAMES[kind], content

    # -- packs -----------------------------------------------------------------------
    def _current_packs(self) -> list[_Pack]:
        if not self._watch_packs and self._packs_seen is not None:
            return self._packs
        try:
            seen = os.stat(self._pack_dir).st_mtime_ns
        except FileNotFoundError:
            return []
        with self._lock:
            if seen != self._packs_seen:
                self._rescan()
                self._packs_seen = seen
            return self._packs

    def _rescan(self) -> None:
        """Open new packs and drop deleted or replaced ones; note the damaged indexes."""
        packs, damaged = [], []
        known = {pack.key[0]: pack for pack in self._packs}
        for name in sorted(os.listdir(self._pack_dir)):
            if not (name.startswith("pack-") and name.endswith(".idx")):
                continue  # temporary files of a pack being written are not packs yet
            path = os.path.join(self._pack_dir, name)
            pack = known.get(path)
            try:
                if pack is None or _stat_key(path) != pack.key[1:]:
                    pack = _Pack(path)
            except FileNotFoundError:  # being deleted
                continue
            except DamagedObjectError as exc:  # or a version 1 index (the fallback reads it)
                damaged.append(str(exc))
                continue
            packs.append(pack)
        self._packs, self._damaged = packs, damaged

    def _read_packed(self, sha: bytes) -> Raw | None:
        found = self._locate(bytes.fromhex(sha.decode()))
        return None if found is None else self._read_at(*found)

    def _locate(self, binsha: bytes) -> tuple[_Pack, int] | None:
        for pack in self._current_packs():
            offset = pack.index.offset(binsha)
            if offset is not None:
                return pack, offset
        return None

    def _read_at(self, pack: _Pack, offset: int) -> Raw:
        """The object at ``offset`` in ``pack``, applying its delta chain."""
        chain: list[tuple[_Pack, int, bytes]] = []  # deltas, newest first
        while True:
            hit = self._get((pack.key, offset))
            if hit is not None:
                kind, content = hit
                break
            kind, base, content = pack.entry(offset)
            if kind not in (OFS_DELTA, REF_DELTA):
                if chain:  # the whole object a delta chain starts from
                    self._put((pack.key, offset), (kind, content))
                break
            chain.append((pack, offset, content))
            if len(chain) > MAX_CHAIN:
                raise DamagedObjectError(f"delta chain at offset {offset} of {pack.path} is longer "
                                         f"than {MAX_CHAIN} (a cycle?)")
            if isinstance(base, int):  # an offset delta
                offset = base
                continue
            base_sha = cast(bytes, base)  # a ref delta names its base by (binary) SHA
            found = self._locate(base_sha)
            if found is None:  # a base outside the packs (loose, or behind alternates)
                try:
                    kind, content = self.read(base_sha.hex().encode())
                except KeyError:
                    raise DamagedObjectError(f"{pack.path}: the delta at offset {offset} is on "
                                             f"object {base_sha.hex()}, which is missing") from None
                break
            pack, offset = found
        for at_pack, at, delta in reversed(chain):
            try:
                content = b"".join(apply_delta(content, delta))
            except ApplyDeltaError as exc:
                raise DamagedObjectError(f"delta at offset {at} of {at_pack.path}: {exc}") from None
            if not (self._cache_reads and at_pack is chain[0][0] and at == chain[0][1]):
                self._put((at_pack.key, at), (kind, content))  # (what read() caches by SHA: once)
        return kind, content


def _misnamed(sha: bytes, raw: Raw) -> str | None:
    """Why object ``raw`` is not object ``sha`` (hex): its hash differs; else None."""
    kind, content = raw
    actual = hashlib.sha1(b"%s %d\0" % (_TYPE_BYTES[kind], len(content)) + content).hexdigest()
    if actual == sha.decode():
        return None
    return f"holds a {_TYPE_BYTES[kind].decode()} whose SHA-1 is {actual}"


def _file_sha1(fd: int, size: int) -> bytes:
    """SHA-1 of the first ``size`` bytes of file ``fd``."""
    digest, at = hashlib.sha1(), 0
    while at < size:
        chunk = os.pread(fd, min(1 << 20, size - at), at)
        if not chunk:
            break
        digest.update(chunk)
        at += len(chunk)
    return digest.digest()


def _stat_key(path: str) -> tuple[int, int]:
    stat = os.stat(path[:-4] + ".pack")
    return stat.st_ino, stat.st_mtime_ns


def _size(raw: Raw) -> int:
    return len(raw[1]) + 240  # the bytes, the key, the tuple and the cache entry (measured)
