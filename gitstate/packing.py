"""Writing delta-compressed pack files, streaming, with capped delta chains.

A pack is planned first (which objects, in which order, each blob against
which base), then written object by object: only the blobs still needed as
delta bases are kept in memory, so the peak is a few states whatever the
history size.

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
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Optional

from dulwich.objects import hex_to_sha, sha_to_hex
from dulwich.pack import OFS_DELTA, REF_DELTA, pack_object_header, write_pack_index
from dulwich.object_format import SHA1

from .delta import create_delta
from .store import fsync_path

COMMIT, TREE, BLOB, TAG = 1, 2, 3, 4
MAX_DELTA_RATIO = 0.5  # a delta larger than half its target is not worth its read cost

ReadRaw = Callable[[bytes], tuple[int, bytes]]  # hex sha -> (type number, raw content)


@dataclass(slots=True)
class _Entry:
    sha: bytes  # hex
    base: Optional[bytes] = None  # hex sha of the delta base (written before this entry)


@dataclass
class Plan:
    """Objects of one pack in write order; ``uses`` counts how often each is a delta base."""

    entries: list[_Entry] = field(default_factory=list)
    uses: dict[bytes, int] = field(default_factory=dict)


def commit_links(raw: bytes) -> tuple[bytes, Optional[bytes]]:
    """(tree, first parent) of a raw commit."""
    tree, parent = b"", None
    for line in raw.split(b"\n"):
        if not line:
            break
        if line.startswith(b"tree "):
            tree = line[5:45]
        elif line.startswith(b"parent ") and parent is None:
            parent = line[7:47]
    return tree, parent


def tree_entries(raw: bytes) -> Iterable[tuple[bytes, int, bytes]]:
    """(name, mode, hex sha) of each entry of a raw tree."""
    pos = 0
    while pos < len(raw):
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        yield raw[space + 1:nul], int(raw[pos:space], 8), sha_to_hex(raw[nul + 1:nul + 21])
        pos = nul + 21


class _Chain:
    """Delta base choice along one path (e.g. ``state.json``) of one line of history."""

    def __init__(self, max_depth: int):
        self.max_depth = max_depth
        self.prev: Optional[tuple[bytes, int]] = None  # (sha, depth) of the last blob
        self.spine: Optional[tuple[bytes, int]] = None  # where the current chain started

    def base_for(self, sha: bytes) -> Optional[bytes]:
        """The delta base for the next (older) blob ``sha``, and record it."""
        if self.prev is None or self.max_depth == 0:
            base, depth = None, 0
        elif self.prev[1] < self.max_depth:
            base, depth = self.prev[0], self.prev[1] + 1
        elif self.spine is not None and self.spine[1] + 1 < self.max_depth:
            base, depth = self.spine[0], self.spine[1] + 1
        else:
            base, depth = None, 0
        if base is None or base != self.prev[0]:  # type: ignore[index]
            self.spine = (sha, depth)
        self.prev = (sha, depth)
        return base


def plan_pack(types: dict[bytes, int], raws: dict[bytes, bytes], max_depth: int) -> Plan:
    """Order the objects of ``types`` (hex sha -> type) for writing and choose delta bases.

    ``raws`` holds the raw content of the commits and trees (blobs are read
    only when written).
    """
    wanted = types
    plan, done = Plan(), set()

    def emit(sha: bytes, base: Optional[bytes] = None) -> None:
        done.add(sha)
        plan.entries.append(_Entry(sha, base))
        if base is not None:
            plan.uses[base] = plan.uses.get(base, 0) + 1

    commits = {sha: commit_links(raws[sha]) for sha in wanted if types[sha] == COMMIT}
    parents = {parent for _tree, parent in commits.values()}
    for head in sorted(sha for sha in commits if sha not in parents):
        chains: dict[bytes, _Chain] = {}
        sha: Optional[bytes] = head
        while sha in commits and sha not in done:
            emit(sha)
            tree, sha = commits[sha]
            if tree in wanted and tree not in done:
                emit(tree)
                for name, mode, entry in tree_entries(raws[tree]):
                    if entry not in wanted or entry in done or types.get(entry) != BLOB:
                        continue
                    chain = chains.setdefault(name, _Chain(max_depth))
                    base = chain.base_for(entry)
                    emit(entry, base if base in done else None)
    for sha in sorted(sha for sha in wanted if sha not in done):
        emit(sha)
    return plan


def write_pack(pack_dir: str, plan: Plan, read: ReadRaw, *, compression: int = -1,
               written: Optional[Callable[[int], None]] = None) -> str:
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
        index, checksum = _write_pack_data(tmp_pack, plan, read, compression, written)
        with open(tmp_idx, "wb") as f:
            write_pack_index(f, sorted(index), checksum, version=2)
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


def _write_pack_data(path: str, plan: Plan, read: ReadRaw, compression: int,
                     written: Optional[Callable[[int], None]]) -> tuple[list[tuple[bytes, int, int]], bytes]:
    hasher = hashlib.sha1()
    offsets: dict[bytes, int] = {}
    index: list[tuple[bytes, int, int]] = []
    live: dict[bytes, bytes] = {}  # raw content of blobs still needed as delta bases
    uses = dict(plan.uses)
    with open(path, "wb") as f:
        offset = 0

        def put(chunk: bytes) -> None:
            nonlocal offset
            f.write(chunk)
            hasher.update(chunk)
            offset += len(chunk)

        put(b"PACK" + (2).to_bytes(4, "big") + len(plan.entries).to_bytes(4, "big"))
        for entry in plan.entries:
            type_num, raw = read(entry.sha)
            body: bytes = raw
            header: bytes
            start = offset
            if entry.base is not None:
                base_raw = live[entry.base]
                delta = create_delta(base_raw, raw)
                if len(delta) < len(raw) * MAX_DELTA_RATIO:
                    body = delta
                uses[entry.base] -= 1
                if not uses[entry.base]:
                    del live[entry.base]
            if body is raw:
                header = bytes(pack_object_header(type_num, None, len(raw), SHA1))
            else:
                header = bytes(pack_object_header(OFS_DELTA, start - offsets[entry.base],  # type: ignore[index]
                                                  len(body), SHA1))
            data = zlib.compress(body, compression)
            put(header)
            put(data)
            index.append((hex_to_sha(entry.sha), start, zlib.crc32(data, zlib.crc32(header))))
            if uses.get(entry.sha):  # a delta base: keep its offset and content until used
                offsets[entry.sha] = start
                live[entry.sha] = raw
            if written is not None:
                written(len(index))
        checksum = hasher.digest()
        f.write(checksum)
        f.flush()
        os.fsync(f.fileno())
    return index, checksum


def pack_object_types(pack) -> dict[bytes, int]:  # pack: dulwich.pack.Pack
    """Hex sha -> type number of every object in a pack, without resolving deltas."""
    by_offset: dict[int, int] = {}
    by_sha: dict[bytes, int] = {}
    pending: list[tuple[bytes, bytes]] = []
    for unpacked in pack.iter_unpacked():
        sha = sha_to_hex(unpacked.sha()) if len(unpacked.sha()) == 20 else unpacked.sha()
        kind = unpacked.pack_type_num
        if kind == OFS_DELTA:
            kind = by_offset[unpacked.offset - unpacked.delta_base]
        elif kind == REF_DELTA:
            base = sha_to_hex(unpacked.delta_base)
            if base not in by_sha:
                pending.append((sha, base))
                continue
            kind = by_sha[base]
        by_offset[unpacked.offset] = kind
        by_sha[sha] = kind
    while pending:  # REF_DELTA bases written after their deltas (rare; git does not)
        left = [(sha, base) for sha, base in pending if base not in by_sha]
        if len(left) == len(pending):
            raise ValueError(f"pack {pack.data.filename} has deltas on missing bases")
        for sha, base in pending:
            if base in by_sha:
                by_sha[sha] = by_sha[base]
        pending = left
    return by_sha
