"""Compact tables of the objects of a repository, for maintenance and pushes (a few dozen bytes
per object), and maintenance's object reader.

Maintenance handles every object of a history at once (which are reachable,
their types, the write order of a pack), so per-object Python objects (a
``bytes`` key and a dict slot cost ~150 bytes each) would make its memory grow
with the history. Here the objects are numbered: :class:`ShaTable` holds their
binary SHA-1s sorted in one buffer, and everything else about object ``i`` lives
at index ``i`` of a table (:meth:`Scratch.table`): an ``array`` in memory, or,
past ``SCRATCH_OBJECTS`` objects, a scratch file mapped into memory whose pages
are given back whenever the process's resident set has grown by
``RESIDENT_BUDGET`` (with the pages of the mapped pack indexes), so that memory
stays bounded whatever the number of objects.
"""

from __future__ import annotations

import heapq
import mmap
import os
import struct
import tempfile
from array import array
from binascii import hexlify, unhexlify
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from itertools import accumulate
from typing import Any

from dulwich.object_store import DiskObjectStore
from dulwich.pack import OFS_DELTA, REF_DELTA

from ..errors import CorruptObjectError
from .dulwich_types import object_id
from .reader import SHA_SIZE, ObjectReader, PackIndex, Raw, read_entry_header

MAINTENANCE_CACHE = 8 << 20  # delta chains only: maintenance reads each object about once
SCRATCH_OBJECTS = 250_000  # past this many objects, per-object tables go to a scratch file
RESIDENT_BUDGET = 24 << 20  # mapped pages are given back when the resident set grew this much
# Steps (objects handled) between two looks at the resident set (~2 us each). A step
# touches a few table entries, and a first touch maps more than its page (64 KB of
# neighbours, or the whole large folio of the page cache: 1 MB on kernel 6.18), so the
# overshoot past the budget is bounded by what 16 steps touch, whatever the history's
# size (at 1M objects of gc: 3 MB more than a look every 2 steps, and 8% faster).
CHECK_EVERY = 16
_PAGE = mmap.PAGESIZE
_HEX = frozenset("0123456789abcdef")
STOPPED = "maintenance stopped before deleting anything, nothing was lost"


class Scratch:
    """Where the per-object tables of one maintenance run live: in memory (``folder``
    None), or in a scratch file under ``folder`` (unnamed, gone when closed or when the
    process dies), mapped into memory.

    Mapped pages count in the resident set as they are touched; :meth:`step`, called
    once per object handled, gives them back (``MADV_DONTNEED``: the data stays in the
    file and the page cache) whenever the resident set grew by ``RESIDENT_BUDGET``,
    with those of the callbacks registered by :meth:`on_trim` (mapped pack indexes).
    """

    def __init__(self, folder: str | None = None):
        self.folder = folder
        self._file: Any = None
        self._size = 0
        self._maps: list[mmap.mmap] = []
        self._trims: list[Callable[[], None]] = []
        self._steps = 0
        # kept open: a pread of it costs ~2 us, opening it each time ~13 us (closed by close())
        self._statm = None if folder is None else open("/proc/self/statm", "rb", buffering=0)  # noqa: SIM115
        self._base = self._resident()

    @classmethod
    def for_objects(cls, count: int, repo_path: str) -> Scratch:
        """A scratch for ``count`` objects: in memory up to ``SCRATCH_OBJECTS``, else in a
        file of the repository's ``gitstate/`` folder (on its disk: no RAM-backed /tmp)."""
        if count <= SCRATCH_OBJECTS:
            return cls()
        folder = os.path.join(repo_path, "gitstate")
        os.makedirs(folder, exist_ok=True)
        return cls(folder)

    @property
    def mapped(self) -> bool:
        return self.folder is not None

    def table(self, typecode: str, n: int, fill: int = 0) -> Any:
        """``n`` items of ``typecode`` (``array`` codes) all ``fill``: an ``array``, or a
        ``memoryview`` of the scratch file (indexing, slicing, ``len`` and iteration alike)."""
        item = array(typecode, [fill])
        if not self.mapped or not n:
            return item * n
        view: Any = self._map(n * item.itemsize, item.tobytes() if fill else b"")
        return view.cast(typecode)

    def buffer(self, chunks: Iterable[bytes]) -> Any:
        """The concatenation of ``chunks`` (a ``bytearray``, or mapped from the scratch file)."""
        if not self.mapped:
            return bytearray().join(chunks)
        start = self._grow_to_page()
        for chunk in chunks:
            self._file.write(chunk)
        self._file.flush()
        length = self._file.tell() - start
        self._size = start + length
        return self._mapping(start, length) if length else bytearray()

    def on_trim(self, trim: Callable[[], None]) -> None:
        """Also call ``trim`` when giving pages back."""
        self._trims.append(trim)

    def step(self, count: int = 1) -> None:
        """``count`` objects handled: give mapped pages back if the resident set grew too much."""
        if not self.mapped:
            return
        self._steps += count
        if self._steps >= CHECK_EVERY:
            self._steps = 0
            if self._resident() - self._base > RESIDENT_BUDGET:
                self.trim()

    def trim(self) -> None:
        """Give back every mapped page (they are read again from the page cache when used)."""
        for mapping in self._maps:
            mapping.madvise(mmap.MADV_DONTNEED)
        for trim in self._trims:
            trim()

    def close(self) -> None:
        """Drop the scratch file (the tables mapped from it must not be used any more)."""
        self._maps.clear()  # each mapping closes when the last view of it goes
        if self._statm is not None:
            self._statm.close()
            self._statm = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _resident(self) -> int:
        """This process's resident pages that are mapped from files, in bytes (the third
        field of ``/proc/self/statm``); 0 for a scratch in memory."""
        if self._statm is None:
            return 0
        return int(os.pread(self._statm.fileno(), 128, 0).split()[2]) * _PAGE

    def _map(self, length: int, fill: bytes) -> memoryview:
        start = self._grow_to_page()
        if fill:
            chunk = fill * max(1, (1 << 20) // len(fill))
            done = 0
            while done < length:
                done += self._file.write(chunk[:length - done])
            self._file.flush()
        else:
            self._file.truncate(start + length)
        self._size = start + length
        return self._mapping(start, length)

    def _grow_to_page(self) -> int:
        """Where the next table starts in the file (a page boundary, as mappings need)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.folder, prefix="tmp_scratch_")  # noqa: SIM115 (held for the run; close())
        start = -(-self._size // _PAGE) * _PAGE
        self._file.truncate(start)
        self._file.seek(start)
        return start

    def _mapping(self, start: int, length: int) -> memoryview:
        mapping = mmap.mmap(self._file.fileno(), length, offset=start)
        self._maps.append(mapping)
        return memoryview(mapping)


_COUNTED = 1 << 18  # below this many SHAs, the prefix table is built by counting


class ShaTable:
    """Sorted, distinct binary SHA-1s numbered 0..n-1, with lookup by SHA; the tables of
    the run (:meth:`Scratch.table`) come from its ``scratch``."""

    def __init__(self, shas: Any, scratch: Scratch | None = None):
        self.shas = shas
        self.scratch = scratch or Scratch()
        if not self.scratch.mapped:
            self.keys = array("Q", (k for (k,) in struct.iter_unpack(">Q12x", shas)))
        else:
            self.keys = self.scratch.table("Q", len(shas) // SHA_SIZE)
            for i, (key,) in enumerate(struct.iter_unpack(">Q12x", shas)):
                self.keys[i] = key
                self.scratch.step()
        # where the SHAs of each 2-byte prefix start: a lookup then touches a page or two
        if len(self.keys) < _COUNTED:  # one pass over the keys, not 65,536 searches (~60 ms)
            counts = array("I", bytes(4 * ((1 << 16) + 1)))
            for key in self.keys:
                counts[(key >> 48) + 1] += 1
            self.starts = array("I", accumulate(counts))
        else:
            self.starts = array("I", (self._start(p) for p in range(1 << 16)))
            self.starts.append(len(self.keys))

    def _start(self, prefix: int) -> int:
        self.scratch.step(16)  # a binary search touches up to ~16 pages of a mapped table
        return bisect_left(self.keys, prefix << 48)

    @classmethod
    def merged(cls, sources: Iterable[Iterable[bytes]], scratch: Scratch | None = None) -> ShaTable:
        """The union of sorted sources of binary SHAs."""
        def distinct() -> Iterator[bytes]:
            last = b""
            for sha in heapq.merge(*sources):
                if sha != last:
                    yield sha
                    last = sha

        scratch = scratch or Scratch()
        return cls(scratch.buffer(distinct()), scratch)

    def __len__(self) -> int:
        return len(self.keys)

    def sha(self, i: int) -> bytes:
        return bytes(self.shas[i * SHA_SIZE:(i + 1) * SHA_SIZE])

    def hex(self, i: int) -> bytes:
        return hexlify(self.shas[i * SHA_SIZE:(i + 1) * SHA_SIZE])

    def find(self, sha: bytes) -> int:
        """The number of binary ``sha``, or -1."""
        key = int.from_bytes(sha[:8], "big")
        i = bisect_left(self.keys, key, self.starts[key >> 48], self.starts[(key >> 48) + 1])
        while i < len(self.keys) and self.keys[i] == key:
            if self.shas[i * SHA_SIZE:(i + 1) * SHA_SIZE] == sha:
                return i
            i += 1
        return -1

    def find_hex(self, hexsha: bytes) -> int:
        return self.find(unhexlify(hexsha))


# -- where objects are -----------------------------------------------------------------------

def count_loose(objects_dir: str) -> int:
    """How many loose objects there are (names listed, nothing read)."""
    return sum(1 for _sha in loose_shas(objects_dir))


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


def pack_layout(base: str, table: ShaTable, kinds: Any) -> tuple[Any, Any]:
    """The objects of pack ``base`` (path without extension) in pack order, and their delta bases.

    Returns (object numbers in pack order, the number of each one's delta base
    or -1), and sets ``kinds[i]`` to the type of each object. Reads only entry
    headers: a delta has the type of its base.
    """
    index, scratch = PackIndex(base + ".idx"), table.scratch
    numbers = scratch.table("i", index.count)
    for p, sha in enumerate(index.shas()):
        numbers[p] = table.find(sha)
        scratch.step()
    offsets = index.offsets(scratch.table("Q", index.count))
    sorted_offsets, order = _by_offset(offsets, numbers, os.path.getsize(base + ".pack"), scratch)
    del numbers, offsets
    bases = scratch.table("i", len(order), -1)
    pending = []  # positions of deltas on bases that come later in the pack (git never does this)
    with open(base + ".pack", "rb") as f:
        for pos, offset in enumerate(sorted_offsets):
            scratch.step()
            kind, _size, delta_base, _start = read_entry_header(f.fileno(), offset)
            if isinstance(delta_base, int):  # an offset delta
                at = bisect_left(sorted_offsets, delta_base)
                bases[pos] = order[at] if at < len(order) and sorted_offsets[at] == delta_base else -1
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


def _by_offset(offsets: Any, numbers: Any, size: int, scratch: Scratch) -> tuple[Any, Any]:
    """(the ``offsets`` sorted, the ``numbers`` in the same order), offsets being below
    ``size``: a bucket sort into two tables of the scratch, with at most 65,536 buckets
    (no list of n Python ints, nothing in memory that grows with n past that)."""
    n = len(offsets)
    count = min(1 << 16, max(1, n >> 8))
    span = size // count + 1
    ends = array("I", bytes(4 * count))
    for offset in offsets:
        ends[min(offset // span, count - 1)] += 1
        scratch.step()
    ends = array("I", accumulate(ends))
    free = array("I", [0]) + ends[:-1]  # the next free slot of each bucket
    sorted_offsets, order = scratch.table("Q", n), scratch.table("i", n)
    for p, offset in enumerate(offsets):
        bucket = min(offset // span, count - 1)
        slot = free[bucket]
        free[bucket] = slot + 1
        sorted_offsets[slot], order[slot] = offset, numbers[p]
        scratch.step()
    start = 0
    for end in ends:
        if end - start > 1:
            pairs = sorted(zip(sorted_offsets[start:end], order[start:end], strict=True))
            sorted_offsets[start:end] = array("Q", [offset for offset, _number in pairs])
            order[start:end] = array("i", [number for _offset, number in pairs])
        start = end
        scratch.step()
    return sorted_offsets, order
