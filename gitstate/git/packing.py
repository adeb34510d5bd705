"""Delta-compressed packs with capped delta chains: planned, then written to a file
(maintenance) or streamed to a server (a push: :func:`pack_to_send`).

A pack is planned first (which objects, in which order, each blob against
which base), then written object by object: only the blobs still needed as
delta bases are kept in memory, so the peak is a few states whatever the
history size. Bookkeeping is per object number of a :class:`ShaTable` (tables
of its :class:`~gitstate.git.objectset.Scratch`, no Python object per object):
about 60 bytes per object, in a scratch file past a few hundred thousand
objects. (A push finds the objects the server lacks with sets of SHAs first,
about 150 bytes per object it sends or walks.)

Delta bases follow the history: walking each chain of checkpoints from the
newest commit back along first parents, the newest ``state.json`` is stored
whole and each older one as a delta against a newer one (as git does: the
state read most often costs no delta). Chains are capped at ``max_depth``
with a "spine": a chain runs until the cap, then the next blob deltas
against the chain's start (the spine), one level deeper, and a new, shorter
chain starts there. One whole blob thus covers about ``max_depth**2 / 2``
checkpoints, and no object needs more than ``max_depth`` deltas to read.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import zlib
from array import array
from binascii import unhexlify
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from dulwich.object_format import SHA1
from dulwich.objects import parse_tree  # dulwich's compiled parser when built
from dulwich.pack import OFS_DELTA, pack_object_header

from ..errors import CorruptObjectError
from .delta import create_delta
from .layout import GITLINK_MODE, TREE_MODE, commit_links, tag_target, tree_entries
from .locks import fsync_path
from .objectset import Scratch, ShaTable
from .reader import BLOB, COMMIT, SHA_SIZE, TAG, TREE, Raw

MAX_DELTA_RATIO = 0.5  # a delta larger than half its target is not worth its read cost
_BATCH = 8192  # objects per write of the index tables
_MANY = 255  # deltas on one base beyond which pack_entries stops counting them

ReadRaw = Callable[[int], tuple[int, bytes]]  # object number -> (type number, raw content)


class Objects:
    """What maintenance knows of the objects of a table: types and commit links."""

    def __init__(self, table: ShaTable):
        n, scratch = len(table), table.scratch
        self.table = table
        self.kinds = scratch.table("B", n)  # type number, 0 = unknown
        self.tree_of = scratch.table("i", n, -1)  # commit -> its tree (-1: not read or absent)
        self.parent_of = scratch.table("i", n, -1)  # commit -> its first parent

    def link(self, i: int, raw: bytes) -> list[bytes]:
        """Record commit ``i``'s tree and first parent; return (tree, *parents) as hex."""
        links = commit_links(raw)
        self.tree_of[i] = self.table.find_hex(links[0]) if links[0] else -1
        self.parent_of[i] = self.table.find_hex(links[1]) if len(links) > 1 else -1
        return links


class Plan:
    """Object numbers of one pack in write order, each with its delta base (-1: whole);
    at most ``capacity`` of them (tables of ``scratch``)."""

    def __init__(self, scratch: Scratch, capacity: int):
        self.order = scratch.table("I", capacity)
        self.bases = scratch.table("i", capacity)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, i: int, base: int = -1) -> None:
        self.order[self.size] = i
        self.bases[self.size] = base
        self.size += 1

    def entries(self) -> Iterator[tuple[int, int]]:
        """(object, delta base) in write order."""
        return islice(zip(self.order, self.bases, strict=True), self.size)


class _Chain:
    """Delta base choice along one path (e.g. ``state.json``) of one line of history."""

    def __init__(self, max_depth: int):
        self.max_depth = max_depth
        self.prev: tuple[int, int] | None = None  # (object, depth) of the last blob
        self.spine: tuple[int, int] | None = None  # where the current chain started

    def base_for(self, obj: int) -> int:
        """The delta base (-1: none) for the next (older) blob ``obj``, and record it."""
        if self.prev is None or self.max_depth == 0:
            base, depth = -1, 0
        elif self.prev[1] < self.max_depth:
            base, depth = self.prev[0], self.prev[1] + 1
        elif self.spine is not None and self.spine[1] + 1 < self.max_depth:
            base, depth = self.spine[0], self.spine[1] + 1
        else:
            base, depth = -1, 0
        if base < 0 or base != self.prev[0]:  # type: ignore[index]
            self.spine = (obj, depth)
        self.prev = (obj, depth)
        return base


def plan_pack(objects: Objects, wanted: bytearray, read: ReadRaw, max_depth: int) -> Plan:
    """Order the objects ``i`` with ``wanted[i]`` for writing and choose delta bases.

    Commits are read (unless already linked) and the trees of each history
    once more as it is planned; blobs are read only when written.
    """
    table, kinds, scratch = objects.table, objects.kinds, objects.table.scratch
    tree_of, parent_of = objects.tree_of, objects.parent_of
    n = len(table)
    is_parent = scratch.table("B", n)
    for i in range(n):
        scratch.step()
        if wanted[i] and kinds[i] == COMMIT:
            if tree_of[i] < 0:
                objects.link(i, read(i)[1])
            if parent_of[i] >= 0:
                is_parent[parent_of[i]] = 1
    plan, done = Plan(scratch, n), scratch.table("B", n)

    def emit(i: int, base: int = -1) -> None:
        done[i] = 1
        plan.add(i, base)
        scratch.step()

    for head in range(n):
        if not wanted[head] or kinds[head] != COMMIT or is_parent[head]:
            continue
        chains: dict[bytes, _Chain] = {}
        i = head
        while i >= 0 and wanted[i] and kinds[i] == COMMIT and not done[i]:
            emit(i)
            tree, i = tree_of[i], parent_of[i]
            if tree >= 0 and wanted[tree] and not done[tree]:
                emit(tree)
                for name, _mode, sha in parse_tree(read(tree)[1], SHA_SIZE):
                    entry = table.find_hex(sha)
                    if entry < 0 or not wanted[entry] or done[entry] or kinds[entry] != BLOB:
                        continue
                    base = chains.setdefault(name, _Chain(max_depth)).base_for(entry)
                    emit(entry, base if base >= 0 and done[base] else -1)
    for i in range(n):
        if wanted[i] and not done[i]:
            emit(i)
    return plan


def pack_to_send(read: Callable[[bytes], Raw], has: Callable[[bytes], bool], want: Iterable[bytes],
                 have: Iterable[bytes], max_depth: int
                 ) -> tuple[int, Iterator[tuple[bytes, int, bytes | None, bytes]]]:
    """The objects a server holding ``have`` lacks to hold ``want`` (hex SHAs), as a pack:
    how many, and ``(binary SHA, type, binary SHA of the delta base or None, body)`` of each
    in order (:func:`pack_entries`: each history with deltas, bases first).

    ``read(sha)`` is the object reader's, ``has(sha)`` whether the repository holds an
    object (a cheaper question for a miss). What is sent is what the wants reach
    minus what the haves reach, as git and dulwich count it: every commit the
    haves reach, and the trees and blobs of those commits where the history sent
    meets them (an older tree or blob the server has that a commit sent names
    again is sent again). A have this repository lacks (the server has more) or
    cannot follow (a shallow history) is skipped; an object the wants reach that
    is missing raises ``CorruptObjectError``, while planning or while streaming.
    """
    def needed(sha: bytes) -> Raw:
        try:
            return read(sha)
        except KeyError:
            raise CorruptObjectError(f"object {sha.decode()} is missing, yet a ref being pushed "
                                     "reaches it: nothing was pushed (git fsck names the damage)") from None

    known: set[bytes] = set()  # what the server has, as far as this push needs to know
    todo = list(have)
    while todo:
        sha = todo.pop()
        if sha in known or not has(sha):
            continue
        try:
            kind, raw = read(sha)
        except KeyError:  # removed meanwhile
            continue
        known.add(sha)
        if kind == COMMIT:
            todo.extend(commit_links(raw)[1:])
        elif kind == TAG:
            todo.append(tag_target(raw)[0])
    kinds: dict[bytes, int] = {}  # what is sent
    trees: list[bytes] = []  # the trees (or blobs) that commits, tags and refs sent name
    met: set[bytes] = set()  # what the server has that the wants reach without a step between
    stack = list(want)
    while stack:
        sha = stack.pop()
        if sha in kinds or sha in met:
            continue
        if sha in known:
            met.add(sha)
            continue
        kind, raw = needed(sha)
        if kind == COMMIT:
            kinds[sha] = kind
            links = commit_links(raw)
            trees.append(links[0])
            stack.extend(links[1:])
        elif kind == TAG:
            kinds[sha] = kind
            stack.append(tag_target(raw)[0])
        else:
            trees.append(sha)
    for sha in met:  # where the two histories meet, the server has what the trees hold
        kind, raw = read(sha)
        top = commit_links(raw)[0] if kind == COMMIT else sha
        known.update(sha for sha, _kind in _under(needed, top, known.__contains__))
    for tree in trees:
        for sha, kind in _under(needed, tree, lambda sha: sha in known or sha in kinds):
            kinds[sha] = kind
    table = ShaTable(b"".join(sorted(map(unhexlify, kinds))))
    objects = Objects(table)
    for sha, kind in kinds.items():
        objects.kinds[table.find_hex(sha)] = kind

    def read_number(i: int) -> Raw:
        return needed(table.hex(i))

    plan = plan_pack(objects, bytearray(b"\1") * len(table), read_number, max_depth)
    entries = ((table.sha(i), kind, None if base < 0 else table.sha(base), body)
               for i, kind, base, body in pack_entries(table, plan, read_number))
    return len(plan), entries


def _under(read: Callable[[bytes], Raw], top: bytes, skip: Callable[[bytes], bool]
           ) -> Iterator[tuple[bytes, int]]:
    """``(hex SHA, type)`` of ``top`` (a tree, or a blob) and the trees and blobs under it,
    but those ``skip`` names and what is under them. Trees are read, blobs not. The
    caller makes ``skip`` name each object as it comes, so that each comes once."""
    stack = [(top, 0)]  # 0: a tree, or a blob named by a ref (read to know which)
    while stack:
        sha, kind = stack.pop()
        if skip(sha):
            continue
        if kind != BLOB:
            kind, raw = read(sha)
        yield sha, kind
        if kind == TREE:
            stack.extend((entry, TREE if mode == TREE_MODE else BLOB)
                         for _name, mode, entry in tree_entries(raw) if mode != GITLINK_MODE)


def write_pack(pack_dir: str, table: ShaTable, plan: Plan, read: ReadRaw, *,
               compression: int = -1, written: Callable[[int], None] | None = None) -> str:
    """Write the planned objects as a pack + index in ``pack_dir``; return the pack's path.

    The pack and its index are written to temporary files, fsynced, and renamed
    into place pack first, index last (readers only use a pack once its index
    exists). Returns the path of the ``.pack``. ``written(n)``, if given, is
    called after each object with the number written so far.
    """
    os.makedirs(pack_dir, exist_ok=True)
    tag = f"{os.getpid()}_{random.getrandbits(48):012x}"
    tmp_pack = os.path.join(pack_dir, f"tmp_pack_{tag}")
    tmp_idx = os.path.join(pack_dir, f"tmp_idx_{tag}")
    try:
        offsets, crcs, checksum = _write_pack_data(tmp_pack, table, plan, read, compression,
                                                   written)
        with open(tmp_idx, "wb") as f:
            write_index(f, table, offsets, crcs, checksum)
            f.flush()
            os.fsync(f.fileno())
        name = os.path.join(pack_dir, f"pack-{checksum.hex()}")
        os.rename(tmp_pack, name + ".pack")
        os.rename(tmp_idx, name + ".idx")
        fsync_path(pack_dir)
        return name + ".pack"
    finally:
        for tmp in (tmp_pack, tmp_idx):
            if os.path.exists(tmp):
                os.unlink(tmp)


def _write_pack_data(path: str, table: ShaTable, plan: Plan, read: ReadRaw, compression: int,
                     written: Callable[[int], None] | None) -> tuple[Any, Any, bytes]:
    """Write the pack; return (offset + 1, crc32) of each object number (0: not in it), checksum."""
    hasher = hashlib.sha1()
    offsets, crcs = table.scratch.table("Q", len(table)), table.scratch.table("I", len(table))
    with open(path, "wb") as f:
        offset = 0

        def put(chunk: bytes) -> None:
            nonlocal offset
            f.write(chunk)
            hasher.update(chunk)
            offset += len(chunk)

        put(b"PACK" + (2).to_bytes(4, "big") + len(plan).to_bytes(4, "big"))
        for count, (i, type_num, base, body) in enumerate(pack_entries(table, plan, read), 1):
            start = offset
            if base < 0:
                header = bytes(pack_object_header(type_num, None, len(body), SHA1))
            else:
                header = bytes(pack_object_header(OFS_DELTA, start - offsets[base] + 1, len(body), SHA1))
            data = zlib.compress(body, compression)
            put(header)
            put(data)
            offsets[i], crcs[i] = start + 1, zlib.crc32(data, zlib.crc32(header))
            if written is not None:
                written(count)
        checksum = hasher.digest()
        f.write(checksum)
        f.flush()
        os.fsync(f.fileno())
    return offsets, crcs, checksum


def pack_entries(table: ShaTable, plan: Plan, read: ReadRaw) -> Iterator[tuple[int, int, int, bytes]]:
    """``(object, type, base, body)`` of each planned object (of ``n``), in the plan's order.

    ``body`` is the object's content (``base`` -1), or a git delta against object
    ``base`` (which comes earlier) if that is smaller than ``MAX_DELTA_RATIO`` of
    it. A base's content is kept only until its last delta is made (a base of
    more than 254 deltas, as git may write, until the end).
    """
    scratch = table.scratch
    uses = scratch.table("B", len(table))  # deltas still to make on each object (_MANY: too many to count)
    for _i, base in plan.entries():
        scratch.step()
        if base >= 0 and uses[base] < _MANY:
            uses[base] += 1
    live: dict[int, bytes] = {}  # content of the objects still needed as delta bases
    for i, base in plan.entries():
        scratch.step()
        type_num, raw = read(i)
        body = raw
        if base >= 0:
            delta = create_delta(live[base], raw)
            if len(delta) < len(raw) * MAX_DELTA_RATIO:
                body = delta
            if uses[base] < _MANY:
                uses[base] -= 1
                if not uses[base]:
                    del live[base]
        if uses[i]:
            live[i] = raw
        yield i, type_num, -1 if body is raw else base, body


def write_index(f, table: ShaTable, offsets: Any, crcs: Any, checksum: bytes) -> None:
    """Write a version 2 pack index of the objects ``i`` with ``offsets[i]`` (offset + 1) set.

    Streams the tables in batches; no Python object per object.
    """
    hasher = hashlib.sha1()

    def put(chunk: bytes) -> None:
        f.write(chunk)
        hasher.update(chunk)

    def batches() -> Iterator[list[int]]:
        members = (i for i, offset in enumerate(offsets) if offset)
        while batch := list(islice(members, _BATCH)):
            table.scratch.step(len(batch))
            yield batch

    def big_endian(values: array) -> bytes:
        if sys.byteorder == "little":
            values.byteswap()
        return values.tobytes()

    fanout = array("I", [0]) * 256
    for batch in batches():
        for i in batch:
            fanout[table.shas[i * SHA_SIZE]] += 1
    for byte in range(1, 256):
        fanout[byte] += fanout[byte - 1]
    put(b"\377tOc" + (2).to_bytes(4, "big") + big_endian(fanout))
    shas = table.shas
    for batch in batches():
        put(b"".join(shas[i * SHA_SIZE:(i + 1) * SHA_SIZE] for i in batch))
    for batch in batches():
        put(big_endian(array("I", (crcs[i] for i in batch))))
    large = array("Q")
    for batch in batches():
        small = array("I")
        for i in batch:
            offset = offsets[i] - 1
            if offset < 0x80000000:
                small.append(offset)
            else:
                small.append(0x80000000 | len(large))
                large.append(offset)
        put(big_endian(small))
    put(big_endian(large))
    put(checksum)
    f.write(hasher.digest())
