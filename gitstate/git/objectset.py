"""Compact tables of the objects of a repository, for maintenance and pushes (a few dozen bytes
per object), and maintenance's object reader.

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
from array import array
from binascii import hexlify, unhexlify
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager

from dulwich.object_store import DiskObjectStore
from dulwich.pack import OFS_DELTA, REF_DELTA

from ..errors import CorruptObjectError
from .dulwich_types import object_id
from .reader import SHA_SIZE, ObjectReader, PackIndex, Raw, read_entry_header

MAINTENANCE_CACHE = 8 << 20  # delta chains only: maintenance reads each object about once
_HEX = frozenset("0123456789abcdef")
STOPPED = "maintenance stopped before deleting anything, nothing was lost"


class ShaTable:
    """Sorted, distinct binary SHA-1s numbered 0..n-1, with lookup by SHA."""

    def __init__(self, shas: bytes | bytearray):
        self.shas = shas
        self.keys = array("Q", (k for (k,) in struct.iter_unpack(">Q12x", shas)))

    @classmethod
    def merged(cls, sources: Iterable[Iterable[bytes]]) -> ShaTable:
        """The union of sorted sources of binary SHAs."""
        buf, last = bytearray(), b""
        for sha in heapq.merge(*sources):
            if sha != last:
                buf += sha
                last = sha
        return cls(buf)

    def __len__(self) -> int:
        return len(self.keys)

    def sha(self, i: int) -> bytes:
        return bytes(self.shas[i * SHA_SIZE:(i + 1) * SHA_SIZE])

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
        except (NotADirectoryError, FileNotFoundError):  # (removed when empty, by maintenance)
            continue
        for name in names:
            if len(name) == 38 and set(name) <= _HEX:
                yield unhexlify(prefix + name)


def open_objects(objects_dir: str) -> AbstractContextManager[DiskObjectStore]:
    """A private dulwich object store with a small delta base cache, closed after use."""
    return closing(DiskObjectStore(objects_dir, delta_base_cache_limit=MAINTENANCE_CACHE))


def read_or_stop(reader: ObjectReader, sha: bytes, source: str = "") -> Raw:
    """Object ``sha`` (hex) for maintenance: a missing or damaged one stops the run.

    Raised before anything is deleted that is not stored elsewhere, so nothing is
    lost; ``source`` names what reaches the object (a ref, a reflog line).
    """
    reached = f", reached from {source}" if source else ""
    try:
        return reader.read(sha)
    except KeyError:
        raise CorruptObjectError(f"object {sha.decode()} is reachable but missing{reached}; "
                                 f"{STOPPED}") from None
    except ValueError as exc:
        raise CorruptObjectError(f"object {sha.decode()} is damaged ({exc}){reached}; "
                                 f"{STOPPED}") from None


@contextmanager
def maintenance_reader(objects_dir: str) -> Iterator[ObjectReader]:
    """An object reader with a small cache for one maintenance run, closed after it.

    Objects it does not find itself (behind alternates) are read through dulwich.
    """
    with open_objects(objects_dir) as store:
        reader = ObjectReader(objects_dir, lambda sha: store.get_raw(object_id(sha)),
                              MAINTENANCE_CACHE, cache_reads=False, watch_packs=False)
        try:
            yield reader
        finally:
            reader.close()


def pack_layout(base: str, table: ShaTable, kinds: bytearray) -> tuple[array, array]:
    """The objects of pack ``base`` (path without extension) in pack order, and their delta bases.

    Returns (object numbers in pack order, the number of each one's delta base
    or -1), and sets ``kinds[i]`` to the type of each object. Reads only entry
    headers: a delta has the type of its base.
    """
    index = PackIndex(base + ".idx")
    numbers = array("i", (table.find(sha) for sha in index.shas()))
    offsets = index.offsets()
    by_offset = _by_offset(offsets)
    sorted_offsets = array("Q", (offsets[p] for p in by_offset))
    order = array("i", (numbers[p] for p in by_offset))
    del by_offset, numbers
    bases = array("i", [-1]) * len(order)
    pending = []  # positions of deltas on bases that come later in the pack (git never does this)
    with open(base + ".pack", "rb") as f:
        for pos, offset in enumerate(sorted_offsets):
            kind, _size, delta_base, _start = read_entry_header(f.fileno(), offset)
            if isinstance(delta_base, int):  # an offset delta
                at = bisect_left(sorted_offsets, delta_base)
                bases[pos] = order[at] if sorted_offsets[at:at + 1] == array("Q", [delta_base]) else -1
            elif delta_base is not None:  # a ref delta
                bases[pos] = table.find(delta_base)
            if kind in (OFS_DELTA, REF_DELTA) and bases[pos] < 0:
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
