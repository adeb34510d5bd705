"""Compact tables of the objects of a repository, for maintenance (a few dozen bytes per object).

Maintenance handles every object of a history at once (which are reachable,
their types, the write order of a pack), so per-object Python objects (a
``bytes`` key and a dict slot cost ~150 bytes each) would make its memory grow
with the history. Here the objects are numbered: :class:`ShaTable` holds their
binary SHA-1s sorted in one buffer, and everything else about object ``i`` lives
at index ``i`` of a ``bytearray`` or an ``array``.
"""

from __future__ import annotations

import heapq
import os
import struct
import sys
import zlib
from array import array
from binascii import hexlify, unhexlify
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import closing
from typing import ContextManager, Optional

from dulwich.object_store import DiskObjectStore
from dulwich.pack import Pack, apply_delta

DELTA_BASE_CACHE = 8 << 20  # dulwich caches 96 MB of delta bases per pack by default
SHA_SIZE = 20
_ENTRY_OVERHEAD = 256  # bytes of Python objects per cached delta base, besides its content
_HEX = frozenset("0123456789abcdef")
_IDX_MAGIC = b"\377tOc"
_OFS_DELTA, _REF_DELTA = 6, 7


class ShaTable:
    """Sorted, distinct binary SHA-1s numbered 0..n-1, with lookup by SHA."""

    def __init__(self, shas: bytes | bytearray):
        self.shas = shas
        self.keys = array("Q", (k for (k,) in struct.iter_unpack(">Q12x", shas)))

    @classmethod
    def merged(cls, sources: Iterable[Iterable[bytes]]) -> "ShaTable":
        """The union of sorted sources of binary SHAs."""
        buf, last = bytearray(), b""
        for sha in heapq.merge(*sources):
            if sha != last:
                buf += sha
                last = sha
        return cls(buf)

    def __len__(self) -> int:
        return len(self.keys)

    def hex(self, i: int) -> bytes:
        return hexlify(self.shas[i * SHA_SIZE:(i + 1) * SHA_SIZE])

    def find(self, sha: bytes) -> int:
        """The number of binary ``sha``, or -1."""
        key = int.from_bytes(sha[:8], "big")
        i = bisect_left(self.keys, key)
        while i < len(self.keys) and self.keys[i] == key:
            if self.shas[i * SHA_SIZE:(i + 1) * SHA_SIZE] == sha:
                return i
            i += 1
        return -1

    def find_hex(self, hexsha: bytes) -> int:
        return self.find(unhexlify(hexsha))


# -- where objects are -----------------------------------------------------------------------

def loose_shas(objects_dir: str) -> Iterator[bytes]:
    """Binary SHAs of the loose objects, sorted (temporary files skipped)."""
    for prefix in sorted(os.listdir(objects_dir)):
        if len(prefix) != 2 or not set(prefix) <= _HEX:
            continue
        try:
            names = sorted(os.listdir(os.path.join(objects_dir, prefix)))
        except NotADirectoryError:
            continue
        for name in names:
            if len(name) == 38 and set(name) <= _HEX:
                yield unhexlify(prefix + name)


def open_objects(objects_dir: str) -> "ContextManager[DiskObjectStore]":
    """A private object store with a small delta base cache, closed after use."""
    return closing(DiskObjectStore(objects_dir, delta_base_cache_limit=DELTA_BASE_CACHE))


class RawReader:
    """Reads raw objects: from packs with plain reads, otherwise through dulwich.

    dulwich maps whole pack files into memory: reading every object of a large
    history through it leaves the whole old pack resident in the process (the
    kernel maps 64 KB around each page touched). Here packed objects are read
    with ``pread`` and their delta bases kept in a small LRU cache; only the
    pack indexes (~28 bytes per object) are used through dulwich.
    """

    def __init__(self, store: DiskObjectStore, cache_bytes: int = DELTA_BASE_CACHE):
        self.store = store
        self.packs: Optional[list[Pack]] = None  # the packs as last seen
        self.files: dict[str, int] = {}  # pack path -> open descriptor
        self.cache: OrderedDict[tuple[int, int], tuple[int, bytes]] = OrderedDict()
        self.cache_bytes, self.cached = cache_bytes, 0

    def __call__(self, hexsha: bytes) -> tuple[int, bytes]:
        found = self.locate(hexsha)
        if found is None:
            return self.store.get_raw(hexsha)  # loose, or in a pack that appeared meanwhile
        path, offset = found
        if path not in self.files:
            self.files[path] = os.open(path, os.O_RDONLY)
        return self._at(self.files[path], offset)

    def locate(self, hexsha: bytes) -> Optional[tuple[str, int]]:
        """(pack path, offset) of an object in the packs as last seen, or None."""
        if self.packs is None:
            self.packs = self.store.packs
        sha = unhexlify(hexsha)
        for pack in self.packs:
            try:
                return pack._basename + ".pack", pack.index.object_offset(sha)
            except KeyError:
                continue
        return None

    def refresh(self) -> None:
        """See the packs as they are now (after packs were written or removed)."""
        self.store._update_pack_cache()
        self.packs = None

    def close(self) -> None:
        for fd in self.files.values():
            os.close(fd)
        self.files.clear()
        self.cache.clear()
        self.cached = 0

    def _at(self, fd: int, offset: int) -> tuple[int, bytes]:
        """The object at ``offset`` of the pack open as ``fd``, its delta chain applied.

        The objects of the chain below it are cached: the next older state is
        usually a delta on the same base or on this one.
        """
        chain: list[tuple[int, bytes]] = []  # (offset, delta), from the object down
        while True:
            hit = self.cache.get((fd, offset))
            if hit is not None:
                self.cache.move_to_end((fd, offset))
                kind, data = hit
                break
            kind, size, base_offset, base_sha, start = _object_header(fd, offset)
            data = _inflate(fd, start, size)
            if kind == _OFS_DELTA:
                if not 0 < base_offset < offset:
                    raise ValueError(f"pack entry at {offset} is a delta on a later entry")
                chain.append((offset, data))
                offset = base_offset
                continue
            if kind == _REF_DELTA:
                chain.append((offset, data))
                kind, data = self(hexlify(base_sha))  # type: ignore[arg-type]
            elif chain:
                self._remember(fd, offset, kind, data)
            break
        for depth, (at, delta) in enumerate(reversed(chain), 1):
            data = b"".join(apply_delta(data, delta))
            if depth < len(chain):
                self._remember(fd, at, kind, data)
        return kind, data

    def _remember(self, fd: int, offset: int, kind: int, data: bytes) -> None:
        if len(data) > self.cache_bytes // 4:
            return
        self.cache[(fd, offset)] = (kind, data)
        self.cached += len(data) + _ENTRY_OVERHEAD
        while self.cached > self.cache_bytes:
            self.cached -= len(self.cache.popitem(last=False)[1][1]) + _ENTRY_OVERHEAD


def _inflate(fd: int, start: int, size: int) -> bytes:
    """Inflate the zlib stream at ``start`` that gives ``size`` bytes."""
    inflater = zlib.decompressobj()
    out, pos = [], start
    while not inflater.eof:
        chunk = os.pread(fd, max(size + 64, 4096), pos)
        if not chunk:
            raise ValueError(f"truncated pack entry at offset {start}")
        pos += len(chunk)
        out.append(inflater.decompress(chunk))
    return b"".join(out)


def loose_path(objects_dir: str, hexsha: bytes) -> str:
    text = hexsha.decode()
    return os.path.join(objects_dir, text[:2], text[2:])


class PackIndex:
    """The tables of a version 2 pack index (``.idx``), read with plain reads."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8 + 256 * 4)
            if head[:4] != _IDX_MAGIC or int.from_bytes(head[4:8], "big") != 2:
                raise ValueError(f"{path}: not a version 2 pack index")
            self.count = int.from_bytes(head[-4:], "big")
            self.shas = f.read(self.count * SHA_SIZE)

    def offsets(self) -> array:
        """Offset in the pack of each object, in index (SHA) order."""
        n = self.count
        with open(self.path, "rb") as f:
            f.seek(8 + 256 * 4 + n * 24)
            tables = f.read()[:-40]  # 32-bit offsets, then 64-bit ones, then two checksums
        small, large = array("I", tables[:n * 4]), array("Q", tables[n * 4:])
        if sys.byteorder == "little":
            small.byteswap()
            large.byteswap()
        return array("Q", (o if o < 0x80000000 else large[o & 0x7FFFFFFF] for o in small))

    def iter_shas(self) -> Iterator[bytes]:
        shas = self.shas
        return (shas[i:i + SHA_SIZE] for i in range(0, len(shas), SHA_SIZE))


def pack_layout(base: str, table: ShaTable, kinds: bytearray) -> tuple[array, array]:
    """The objects of pack ``base`` (path without extension) in pack order, and their delta bases.

    Returns (object numbers in pack order, the number of each one's delta base
    or -1), and sets ``kinds[i]`` to the type of each object. Reads only entry
    headers: a delta has the type of its base.
    """
    index = PackIndex(base + ".idx")
    numbers = array("i", (table.find(sha) for sha in index.iter_shas()))
    offsets = index.offsets()
    by_offset = _by_offset(offsets)
    sorted_offsets = array("Q", (offsets[p] for p in by_offset))
    order = array("i", (numbers[p] for p in by_offset))
    del by_offset, numbers
    bases = array("i", [-1]) * len(order)
    pending = []  # positions of deltas on bases that come later in the pack (git never does this)
    with open(base + ".pack", "rb") as f:
        for pos, offset in enumerate(sorted_offsets):
            kind, _size, base_offset, base_sha, _start = _object_header(f.fileno(), offset)
            if kind in (_OFS_DELTA, _REF_DELTA):
                at = bisect_left(sorted_offsets, base_offset)
                bases[pos] = (table.find(base_sha) if kind == _REF_DELTA  # type: ignore[arg-type]
                              else order[at] if sorted_offsets[at:at + 1] == array("Q", [base_offset])
                              else -1)
                if bases[pos] < 0:
                    raise ValueError(f"pack {base}.pack: the delta at offset {offset} has no base")
            if bases[pos] < 0:
                kinds[order[pos]] = kind
            elif kinds[bases[pos]]:
                kinds[order[pos]] = kinds[bases[pos]]
            else:
                pending.append(pos)
    while pending:
        left = [pos for pos in pending if not kinds[bases[pos]]]
        if len(left) == len(pending):
            raise ValueError(f"pack {base}.pack has deltas on missing bases")
        for pos in pending:
            kinds[order[pos]] = kinds[bases[pos]]
        pending = left
    return order, bases


def _by_offset(offsets: array) -> array:
    """Positions 0..n-1 ordered by their offset, sorted in buckets (no list of n Python ints)."""
    if not offsets:
        return array("I")
    count = max(1, len(offsets) >> 8)
    span = max(offsets) // count + 1
    buckets = [array("I") for _ in range(count)]
    for pos, offset in enumerate(offsets):
        buckets[offset // span].append(pos)
    ordered = array("I")
    for bucket in buckets:
        ordered.extend(sorted(bucket, key=offsets.__getitem__))
    return ordered


def _object_header(fd: int, offset: int) -> tuple[int, int, int, Optional[bytes], int]:
    """(type, size, base offset, base sha, where the data starts) of the pack entry at ``offset``."""
    head = os.pread(fd, 64, offset)
    byte = head[0]
    kind, size, shift, pos = (byte >> 4) & 7, byte & 0x0F, 4, 1
    while byte & 0x80:
        byte = head[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    if kind == _OFS_DELTA:
        byte = head[pos]
        value = byte & 0x7F
        while byte & 0x80:
            pos += 1
            byte = head[pos]
            value = ((value + 1) << 7) | (byte & 0x7F)
        return kind, size, offset - value, None, offset + pos + 1
    if kind == _REF_DELTA:
        return kind, size, 0, head[pos:pos + SHA_SIZE], offset + pos + SHA_SIZE
    return kind, size, 0, None, offset + pos
