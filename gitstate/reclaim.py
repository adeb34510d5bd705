"""Deleting the objects that nothing reaches any more: one marking, one set of grace rules.

Two callers, one lock (``Store.maintenance_lock``, also held by a fetch until its
objects are named by refs); saves never wait for it:
``reclaim`` (retention's ``repo.reclaim()``, after delete, prune, rollback) deletes
without repacking; ``gc(prune=True)`` (:mod:`gitstate.maintenance`) writes what
is kept into one delta-compressed pack. Both take a :class:`Census`:

- kept is everything reachable from a ref (any ``refs/...``, loose or packed, and
  the ``*HEAD`` files), from an entry of a reflog (old and new SHA, as git counts
  them), or from a loose object younger than the grace period (a save in
  progress: its ref is not moved yet; :meth:`Store.write` freshens the time of an
  object it reuses, as git does). Refs are read before and after the walk;
- a reachable object that is missing stops the run before anything is deleted;
- an unreachable loose object is unlinked only if still older than the grace
  period just before (:func:`remove_loose`).

``gc(prune=True)`` replaces every pack (a packed object has no age of its own).
``reclaim`` rewrites each pack older than the grace that holds unreachable
objects without them, streaming, in the same order and keeping deltas whose base
stays (a delta whose base goes is stored whole); packs with a ``.keep`` file are
left alone. The git binary is never used.
"""

from __future__ import annotations

import os
import time
from binascii import hexlify
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Optional

from dulwich.objects import parse_tree  # dulwich's compiled parser when built

from .ids import is_sha
from .objectset import ShaTable, loose_shas, maintenance_reader, pack_layout, read_or_stop
from .packing import Objects, Plan, commit_links, write_pack
from .reader import BLOB, COMMIT, SHA_SIZE, TAG, TREE, ObjectReader, PackIndex, loose_path
from .store import Store

_TREE_MODE, _GITLINK_MODE = 0o040000, 0o160000
_ZERO = b"0" * 40
LOOSE, YOUNG, REACHED, LEFT_LOOSE = 1, 2, 4, 8  # Census.flags bits


@dataclass(frozen=True)
class ReclaimResult:
    """How many unreachable objects were removed and the change in bytes on disk.

    ``bytes`` can be negative: a kept object stored as a delta on a removed base is
    stored whole in the rewritten pack (repacking with deltas is maintenance's job).
    """

    objects: int = 0
    bytes: int = 0


def pack_bases(objects_dir: str) -> list[str]:
    """Paths (without extension) of the packs that have an index, sorted."""
    pack_dir = os.path.join(objects_dir, "pack")
    names = sorted(os.listdir(pack_dir)) if os.path.isdir(pack_dir) else []
    return [os.path.join(pack_dir, n[:-4]) for n in names
            if n.endswith(".idx") and n[:-4] + ".pack" in names]


class Census:
    """Every object of the repository, numbered, with what the grace rules need to know.

    ``flags[i]`` holds ``LOOSE`` and ``YOUNG`` (a loose object younger than the
    grace) after construction, ``REACHED`` after :meth:`mark`, and
    ``LEFT_LOOSE`` for young loose objects no ref reaches. Objects written
    after the census are not in it and never deleted.
    """

    def __init__(self, reader: ObjectReader, path: str, cutoff: float):
        self.reader, self.path, self.cutoff = reader, path, cutoff
        self.objects_dir = reader.objects_dir
        self.packs = pack_bases(self.objects_dir)
        self.table = ShaTable.merged([loose_shas(self.objects_dir)]
                                     + [PackIndex(base + ".idx").shas() for base in self.packs])
        self.objects = Objects(self.table)
        self.flags = bytearray(len(self.table))
        for sha in loose_shas(self.objects_dir):
            i = self.table.find(sha)
            if i >= 0:
                self.flags[i] |= LOOSE | (0 if _older_than(loose_path(
                    self.objects_dir, hexlify(sha)), cutoff) else YOUNG)
        self.newer: set[bytes] = set()  # hex SHAs reached that the census does not hold

    def mark(self) -> None:
        """Flag everything reachable (see the module docstring); raises on a missing object."""
        flags = self.flags
        self._walk(_roots(self.path))
        for i, f in enumerate(flags):
            if f & YOUNG and not f & REACHED:
                flags[i] |= LEFT_LOOSE
        self._walk(self.table.hex(i) for i, f in enumerate(flags) if f & LEFT_LOOSE)
        self._walk(_roots(self.path))  # refs moved during the walk

    def _walk(self, roots: Iterable[bytes]) -> None:
        table, flags, kinds = self.table, self.flags, self.objects.kinds
        for root in roots:
            stack = [root]
            while stack:
                sha = stack.pop()
                i = table.find_hex(sha)
                if i >= 0:
                    if flags[i] & REACHED:
                        continue
                    flags[i] |= REACHED
                elif sha in self.newer:
                    continue
                else:
                    self.newer.add(sha)
                kind, raw = read_or_stop(self.reader, sha)
                if i >= 0:
                    kinds[i] = kind
                if kind == COMMIT:
                    links = self.objects.link(i, raw) if i >= 0 else commit_links(raw)
                    stack.extend(links[1:])
                    stack.append(links[0])  # the tree first: the stack stays short
                elif kind == TREE:
                    for _name, mode, entry in parse_tree(raw, SHA_SIZE):
                        if mode == _TREE_MODE:
                            stack.append(entry)
                        elif mode != _GITLINK_MODE:
                            self._reach_blob(entry)
                elif kind == TAG:
                    stack.append(raw[7:47])

    def _reach_blob(self, sha: bytes) -> None:
        """Flag a blob (hex SHA) reached without reading it (a tree entry's mode gives its type)."""
        i = self.table.find_hex(sha)
        if i >= 0:
            self.flags[i] |= REACHED
            self.objects.kinds[i] = BLOB
        elif sha not in self.newer:  # written after the census: it must exist
            self.newer.add(sha)
            read_or_stop(self.reader, sha)

    def raw(self, i: int) -> tuple[int, bytes]:
        """(type, content) of object number ``i``."""
        return read_or_stop(self.reader, self.table.hex(i))

    def unreached(self) -> int:
        return sum(1 for f in self.flags if not f & REACHED)

    def remove_unreached_loose(self) -> tuple[int, int]:
        """Unlink the unreachable loose objects still older than the grace: (count, bytes)."""
        return remove_loose(self.objects_dir, (self.table.hex(i) for i, f in enumerate(self.flags)
                                               if f & LOOSE and not f & REACHED), self.cutoff)


def remove_loose(objects_dir: str, shas: Iterable[bytes],
                 cutoff: Optional[float] = None) -> tuple[int, int]:
    """Unlink loose objects (only those older than ``cutoff`` if given), then the
    fan-out folders left empty; return (count, bytes) removed."""
    count = freed = 0
    folders = set()
    for sha in shas:
        path = loose_path(objects_dir, sha)
        try:
            st = os.stat(path)
            if cutoff is None or st.st_mtime < cutoff:  # a save may have reused it since
                os.unlink(path)
                count, freed = count + 1, freed + st.st_size
                folders.add(os.path.dirname(path))
        except FileNotFoundError:
            continue
    for folder in folders:
        try:
            os.rmdir(folder)  # fails if a save wrote into it meanwhile: fine
        except OSError:
            pass
    return count, freed


def _older_than(path: str, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime < cutoff
    except FileNotFoundError:
        return False


def _roots(path: str) -> Iterator[bytes]:
    """Every SHA a ref (a loose ref hides its packed entry), a ``*HEAD`` file or a reflog entry names."""
    refs: dict[bytes, list[bytes]] = {}  # ref -> its SHA (and the peeled one)
    name = b""
    for line in _lines(os.path.join(path, "packed-refs")):
        if line.startswith(b"^") and name in refs:
            refs[name].append(line[1:])
        elif not line.startswith(b"#"):
            sha, _, name = line.partition(b" ")
            refs[name] = [sha]
    for root, _dirs, names in os.walk(os.path.join(path, "refs")):
        for file in names:
            if not file.endswith(".lock"):
                full = os.path.join(root, file)
                refs[os.fsencode(os.path.relpath(full, path))] = _lines(full)[:1]
    files = [os.path.join(root, file) for root, _dirs, names in os.walk(os.path.join(path, "logs"))
             for file in names]
    files += [os.path.join(path, file) for file in os.listdir(path) if file.endswith("HEAD")]
    words = chain((sha for shas in refs.values() for sha in shas),
                  (word for file in files for line in _lines(file)  # reflog lines hold two SHAs,
                   for word in line.split(None, 2)[:2]))  # FETCH_HEAD lines a SHA and a tab
    for word in words:
        if word != _ZERO and is_sha(word):
            yield word


def _lines(path: str) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read().splitlines()
    except (FileNotFoundError, IsADirectoryError):
        return []


def reclaim(store: Store, grace: float) -> ReclaimResult:
    """Delete the unreachable objects older than ``grace`` seconds; see the module docstring.

    Operations a killed process left half done are completed first, and killed
    writers' temporary files older than ``grace`` deleted (see :class:`Store`)."""
    with store.maintenance_lock(), maintenance_reader(store.objects_dir) as reader:
        store.complete_journals()  # interrupted operations: their refs final first
        store.remove_temporaries(time.time() - grace)
        census = Census(reader, store.path, time.time() - grace)
        census.mark()
        removed, freed = census.remove_unreached_loose()
        for base in census.packs:
            if (not os.path.exists(base + ".keep")
                    and os.stat(base + ".pack").st_mtime < census.cutoff):
                dropped, size = _rewrite_pack(base, census)
                removed, freed = removed + dropped, freed + size
    store.forget_repo()  # drop the cached packs that were replaced
    if removed:
        drop_caches(store.objects_dir)
    return ReclaimResult(removed, freed)


def drop_caches(objects_dir: str) -> None:
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


def remove_pack(base: str) -> None:
    """Delete a pack: index first, so no reader starts using it, then its data."""
    for ext in (".idx", ".rev", ".bitmap", ".mtimes", ".pack"):
        try:
            os.unlink(base + ext)
        except FileNotFoundError:
            pass


def _pack_size(base: str) -> int:
    return sum(os.path.getsize(base + ext) for ext in (".pack", ".idx") if os.path.exists(base + ext))


def _rewrite_pack(base: str, census: Census) -> tuple[int, int]:
    """Replace pack ``base`` by one without its unreachable objects; (objects, bytes) freed.

    The kept objects stay in their order, as deltas on the same base when it stays.
    """
    order, bases = pack_layout(base, census.table, census.objects.kinds)
    flags, plan, written = census.flags, Plan(), bytearray(len(census.table))
    for i, delta_base in zip(order, bases):
        if flags[i] & REACHED:
            plan.order.append(i)
            plan.bases.append(delta_base if delta_base >= 0 and written[delta_base] else -1)
            written[i] = 1
    if len(plan.order) == len(order):
        return 0, 0
    old_size = _pack_size(base)
    new = (write_pack(os.path.dirname(base), census.table, plan, census.raw)[:-len(".pack")]
           if plan.order else None)
    remove_pack(base)
    census.reader.refresh()
    return len(order) - len(plan.order), old_size - (_pack_size(new) if new else 0)
