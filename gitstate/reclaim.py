"""Reclaim the space of objects that nothing reaches any more (after delete, prune, rollback).

An object is kept when a ref (any ``refs/...``, ``*HEAD`` files), or an entry
of a reflog (``logs/...``, old and new SHA, as git counts them) reaches it,
or when it is younger than the grace period: a writer may have written it and
not yet moved its ref (gitstate's :meth:`Store.write` freshens the time of an
object it reuses, as git does). Loose objects are deleted; a pack holding
unreachable objects is rewritten without them, streaming object by object and
keeping deltas whose base stays (a delta whose base goes is stored whole);
packs with a ``.keep`` file are left alone. One reclaim runs at a time
(``Store.maintenance_lock``); writers never wait for it. Refs are read twice, before and
after the walk, and what either reading reaches is kept. Only dulwich is used,
never the git binary.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import Commit, Tag, Tree, sha_to_hex
from dulwich.pack import OFS_DELTA, Pack, UnpackedObject, write_pack_data, write_pack_index

from .errors import CorruptObjectError
from .store import Store

_HEX = re.compile(rb"[0-9a-f]{40}")
_TREE_MODE, _GITLINK_MODE = 0o040000, 0o160000


@dataclass(frozen=True)
class ReclaimResult:
    """How many unreachable objects were removed and the change in bytes on disk.

    ``bytes`` can be negative: a kept object stored as a delta on a removed base is
    stored whole in the rewritten pack (repacking with deltas is maintenance's job).
    """

    objects: int = 0
    bytes: int = 0


def _roots(store: Store) -> set[bytes]:
    """Every SHA a ref, a ``*HEAD`` file or a reflog entry names (hex bytes)."""
    roots = set(store.read_refs(b"refs/").values())
    for name in os.listdir(store.path):  # HEAD, FETCH_HEAD, ORIG_HEAD...: first word of each line
        if name.endswith("HEAD") and os.path.isfile(os.path.join(store.path, name)):
            with open(os.path.join(store.path, name), "rb") as f:
                roots.update(line[:40] for line in f if _HEX.fullmatch(line[:40]))
    for folder, _dirs, files in os.walk(os.path.join(store.path, "logs")):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                for line in f:
                    roots.update(sha for sha in line.split(b" ", 2)[:2] if _HEX.fullmatch(sha))
    roots.discard(b"0" * 40)
    return roots


def _reach(store: Store, roots: set[bytes], seen: set[bytes]) -> None:
    """Add to ``seen`` everything reachable from ``roots`` (blobs are not read)."""
    objects = store.repo.object_store
    stack = [sha for sha in roots if sha not in seen]
    seen.update(stack)
    while stack:
        sha = stack.pop()
        try:
            obj = objects[sha]
        except KeyError:
            raise CorruptObjectError(f"object {sha.decode()} is reachable but missing; "
                                     "nothing was reclaimed") from None
        if isinstance(obj, Commit):
            children = [obj.tree, *obj.parents]
        elif isinstance(obj, Tree):
            children = []
            for entry in obj.iteritems():
                if entry.mode == _GITLINK_MODE:
                    continue
                if entry.mode == _TREE_MODE:
                    children.append(entry.sha)
                else:
                    seen.add(entry.sha)
        elif isinstance(obj, Tag):
            children = [obj.object[1]]
        else:
            children = []
        for child in children:
            if child not in seen:
                seen.add(child)
                stack.append(child)


def reachable(store: Store) -> set[bytes]:
    """Hex SHAs of every object reachable from a ref or a reflog (refs read before and after)."""
    seen: set[bytes] = set()
    before = _roots(store)
    _reach(store, before, seen)
    _reach(store, _roots(store) - before, seen)
    return seen


def reclaim(store: Store, grace: float) -> ReclaimResult:
    """Delete the unreachable objects older than ``grace`` seconds; see the module docstring."""
    with store.maintenance_lock():
        return _reclaim(store, time.time() - grace)


def _reclaim(store: Store, cutoff: float) -> ReclaimResult:
    keep = reachable(store)
    objects = freed = 0
    for folder in sorted(os.listdir(store.objects_dir)):
        path = os.path.join(store.objects_dir, folder)
        if len(folder) != 2 or not os.path.isdir(path):
            continue
        for name in os.listdir(path):
            file = os.path.join(path, name)
            if len(name) != 38 or (folder + name).encode() in keep:
                continue
            try:
                st = os.stat(file)
                if st.st_mtime < cutoff:
                    os.unlink(file)
                    objects, freed = objects + 1, freed + st.st_size
            except FileNotFoundError:
                continue  # removed by someone else (git gc)
    pack_dir = os.path.join(store.objects_dir, "pack")
    for name in sorted(os.listdir(pack_dir)) if os.path.isdir(pack_dir) else ():
        base = os.path.join(pack_dir, name[:-5])
        if (name.endswith(".pack") and os.path.exists(base + ".idx")
                and not os.path.exists(base + ".keep") and os.stat(base + ".pack").st_mtime < cutoff):
            removed, size = _rewrite_pack(pack_dir, base, keep)
            objects, freed = objects + removed, freed + size
    store.repo.object_store.close()  # drop the cached packs that were replaced
    if objects:
        _drop_caches(store.objects_dir)
    return ReclaimResult(objects, freed)


def _drop_caches(objects_dir: str) -> None:
    """Remove git's caches that may name removed objects or packs (git rebuilds them)."""
    info, pack_dir = os.path.join(objects_dir, "info"), os.path.join(objects_dir, "pack")
    for path in (os.path.join(info, "commit-graph"), os.path.join(pack_dir, "multi-pack-index")):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    chain = os.path.join(info, "commit-graphs")
    for name in os.listdir(chain) if os.path.isdir(chain) else ():
        os.unlink(os.path.join(chain, name))
    packs_file = os.path.join(info, "packs")
    if os.path.exists(packs_file):  # the list dumb-HTTP clients read: keep it current
        names = sorted(n for n in os.listdir(pack_dir) if n.endswith(".pack"))
        with open(packs_file + ".tmp", "w") as f:
            f.write("".join(f"P {n}\n" for n in names) + "\n")
        os.replace(packs_file + ".tmp", packs_file)


def _pack_size(base: str) -> int:
    return sum(os.path.getsize(base + ext) for ext in (".pack", ".idx") if os.path.exists(base + ext))


def _rewrite_pack(pack_dir: str, base: str, keep: set[bytes]) -> tuple[int, int]:
    """Replace pack ``base`` by one without the objects not in ``keep``; (objects, bytes) freed."""
    pack = Pack(base, object_format=DEFAULT_OBJECT_FORMAT)
    try:
        entries = list(pack.index.iterentries())
        kept = {sha for sha, _offset, _crc in entries if sha_to_hex(sha) in keep}
        if len(kept) == len(entries):
            return 0, 0
        old_size = _pack_size(base)
        new_base = _write_pack(pack_dir, pack, entries, kept) if kept else None
    finally:
        pack.close()
    for ext in (".idx", ".pack", ".rev", ".bitmap", ".mtimes"):  # .idx first: pack gone at once
        try:
            os.unlink(base + ext)
        except FileNotFoundError:
            pass
    return len(entries) - len(kept), old_size - (_pack_size(new_base) if new_base else 0)


def _records(pack: Pack, entries: list[tuple[bytes, int, int]],
             kept: set[bytes]) -> Iterator[UnpackedObject]:
    """The kept objects of ``pack`` in pack order; deltas on a dropped base are resolved."""
    sha_at = {offset: sha for sha, offset, _crc in entries}
    for unpacked in pack.data.iter_unpacked():
        sha = sha_at[unpacked.offset]
        if sha not in kept:
            continue
        delta_base = unpacked.delta_base
        if unpacked.pack_type_num == OFS_DELTA:
            delta_base = sha_at[unpacked.offset - delta_base]
        if delta_base is not None and delta_base not in kept:
            type_num, data = pack.get_raw(sha)
            yield UnpackedObject(type_num, sha=sha, decomp_chunks=[data])
        else:
            unpacked.delta_base = delta_base
            unpacked._sha = sha
            yield unpacked


def _write_pack(pack_dir: str, pack: Pack, entries: list[tuple[bytes, int, int]],
                kept: set[bytes]) -> str:
    """Write the kept objects as a new pack + index; return its base path."""
    tmp = os.path.join(pack_dir, f"tmp_pack_{os.getpid()}_{time.monotonic_ns()}")
    try:
        with open(tmp + ".pack", "wb") as f:
            written, checksum = write_pack_data(f.write, _records(pack, entries, kept),
                                                DEFAULT_OBJECT_FORMAT, num_records=len(kept))
            f.flush()
            os.fsync(f.fileno())
        with open(tmp + ".idx", "wb") as f:
            write_pack_index(f, sorted((sha, off, crc) for sha, (off, crc) in written.items()),
                             checksum)
            f.flush()
            os.fsync(f.fileno())
        new_base = os.path.join(pack_dir, f"pack-{checksum.hex()}")
        os.rename(tmp + ".pack", new_base + ".pack")
        os.rename(tmp + ".idx", new_base + ".idx")  # the index last: git sees a complete pack
    finally:
        for ext in (".pack", ".idx"):
            if os.path.exists(tmp + ext):
                os.unlink(tmp + ext)
    return new_base
