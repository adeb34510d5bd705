"""Deleting the objects that nothing reaches any more: one marking, one set of grace rules.

What is kept, when a run stops and the grace period are written down once, in
docs/guarantees.md ("What maintenance deletes"); this module implements it.

Two callers, one lock (``Store.maintenance_lock``, also held by a fetch until its
objects are named by refs); saves never wait for it:
``reclaim`` (retention's ``repo.reclaim()``, after delete, prune, rollback) deletes
without repacking; ``gc(prune=True)`` (:mod:`gitstate.maintenance`) writes what
is kept into one delta-compressed pack. Both take a :class:`Census`: every object
numbered, then marked from the roots (:func:`scan_roots`, read with
:mod:`gitstate.git.refs`), type-checked as it is walked; a problem raises before
anything is deleted. ``prune`` calls :func:`check_roots` before rewriting.

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

from dulwich.errors import ObjectFormatException
from dulwich.objects import parse_tree  # dulwich's compiled parser when built

from ..errors import (
    CorruptObjectError,
    DamagedObjectError,
    NotARepositoryError,
)
from .config import read_config
from .layout import GITLINK_MODE, TREE_MODE, commit_links, tag_target
from .objectset import (
    STOPPED,
    Scratch,
    ShaTable,
    count_loose,
    loose_shas,
    maintenance_reader,
    pack_layout,
    read_or_stop,
)
from .packing import Objects, Plan, write_pack
from .reader import (
    BLOB,
    COMMIT,
    SHA_SIZE,
    TAG,
    TREE,
    TYPE_NAMES,
    ObjectReader,
    PackIndex,
    loose_path,
    pack_file_damage,
)
from .refs import (
    ZERO,
    RefValue,
    parse_head_file,
    parse_journal,
    parse_loose,
    parse_packed,
    parse_reflog,
    read_file,
)
from .store import Store

_KIND_NAMES = {kind: name.decode() for name, kind in TYPE_NAMES.items()}
Root = tuple[bytes, int, str]  # (hex SHA, the type it must have or 0 for any, what names it)
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

    ``flags[i]`` holds ``LOOSE`` and ``YOUNG`` (a loose object, or an object of
    a pack, younger than the grace) after construction, ``REACHED`` after
    :meth:`mark`, and ``LEFT_LOOSE`` for young objects no ref reaches (kept,
    with what they reach). ``young_packs`` lists the packs younger than the
    grace with their times, newest first. Objects written after the census are
    not in it and never deleted.
    """

    def __init__(self, reader: ObjectReader, path: str, cutoff: float):
        check_bare(path)
        self.reader, self.path, self.cutoff = reader, path, cutoff
        self.objects_dir = reader.objects_dir
        self.packs = pack_bases(self.objects_dir)
        indexes = [PackIndex(base + ".idx") for base in self.packs]
        scratch = Scratch.for_objects(count_loose(self.objects_dir)
                                      + sum(index.count for index in indexes), path)
        scratch.on_trim(reader.trim)
        self.table = ShaTable.merged([loose_shas(self.objects_dir)]
                                     + [index.shas() for index in indexes], scratch)
        del indexes
        self.objects = Objects(self.table)
        self.flags = scratch.table("B", len(self.table))
        for sha in loose_shas(self.objects_dir):
            i = self.table.find(sha)
            if i >= 0:
                self.flags[i] |= LOOSE | (0 if _older_than(loose_path(
                    self.objects_dir, hexlify(sha)), cutoff) else YOUNG)
        self.young_packs = sorted(((base, mtime) for base in self.packs
                                   if (mtime := os.stat(base + ".pack").st_mtime) >= cutoff),
                                  key=lambda pack: -pack[1])
        for base, _mtime in self.young_packs:
            for sha in PackIndex(base + ".idx").shas():
                self.flags[self.table.find(sha)] |= YOUNG
                scratch.step()
        self.newer: set[bytes] = set()  # hex SHAs reached that the census does not hold

    @property
    def scratch(self) -> Scratch:
        return self.table.scratch

    def mark(self) -> None:
        """Flag everything reachable (docs/guarantees.md), the refs read before and after.

        ``CorruptObjectError`` for a root file that does not parse, or a
        reachable object that is missing or of the wrong type.
        """
        flags = self.flags
        self._walk(scan_roots(self.path))
        for i, f in enumerate(flags):
            if f & YOUNG and not f & REACHED:
                flags[i] |= LEFT_LOOSE
        self._walk((self.table.hex(i), 0, "a young loose object")
                   for i, f in enumerate(flags) if f & LEFT_LOOSE)
        self._walk(scan_roots(self.path))  # refs moved during the walk

    def _walk(self, roots: Iterable[Root]) -> None:
        table, flags, kinds, step = self.table, self.flags, self.objects.kinds, self.scratch.step
        for root, want, source in roots:
            stack = [(root, want)]
            while stack:
                step()
                sha, want = stack.pop()
                i = table.find_hex(sha)
                if i >= 0:
                    if flags[i] & REACHED:
                        if want and kinds[i] != want:
                            _wrong_type(sha, kinds[i], want, source)
                        continue
                    flags[i] |= REACHED
                elif sha in self.newer:
                    continue
                else:
                    self.newer.add(sha)
                kind, raw = read_or_stop(self.reader, sha, source)
                if want and kind != want:
                    _wrong_type(sha, kind, want, source)
                if i >= 0:
                    kinds[i] = kind
                if kind == COMMIT:
                    try:
                        links = self.objects.link(i, raw) if i >= 0 else commit_links(raw)
                    except ValueError as exc:
                        raise CorruptObjectError(f"commit {sha.decode()} is damaged ({exc}), reached "
                                                 f"from {source}; {STOPPED}") from None
                    stack.extend((parent, COMMIT) for parent in links[1:])
                    stack.append((links[0], TREE))  # the tree first: the stack stays short
                elif kind == TREE:
                    try:
                        entries = parse_tree(raw, SHA_SIZE)
                    except ObjectFormatException as exc:
                        raise CorruptObjectError(f"tree {sha.decode()} is damaged ({exc}), reached "
                                                 f"from {source}; {STOPPED}") from None
                    for _name, mode, entry in entries:
                        if mode == TREE_MODE:
                            stack.append((entry, TREE))
                        elif mode != GITLINK_MODE:
                            self._reach_blob(entry, source)
                elif kind == TAG:
                    stack.append(_tag_target(sha, raw))

    def _reach_blob(self, sha: bytes, source: str) -> None:
        """Flag a blob (hex SHA) reached without reading it (a tree entry's mode gives its type)."""
        i = self.table.find_hex(sha)
        if i >= 0:
            if self.flags[i] & REACHED and self.objects.kinds[i] != BLOB:
                _wrong_type(sha, self.objects.kinds[i], BLOB, source)
            self.flags[i] |= REACHED
            self.objects.kinds[i] = BLOB
        elif sha not in self.newer:  # written after the census: it must exist
            self.newer.add(sha)
            read_or_stop(self.reader, sha, source)

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
                 cutoff: float | None = None) -> tuple[int, int]:
    """Unlink loose objects (only those older than ``cutoff`` if given); return (count,
    bytes) removed. Fan-out folders left empty stay: the next saves write into them
    (re-creating one cost a save ~0.1-0.5 ms; there are at most 256)."""
    count = freed = 0
    for sha in shas:
        path = loose_path(objects_dir, sha)
        try:
            st = os.stat(path)
            if cutoff is None or st.st_mtime < cutoff:  # a save may have reused it since
                os.unlink(path)
                count, freed = count + 1, freed + st.st_size
        except FileNotFoundError:
            continue
    return count, freed


def _older_than(path: str, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime < cutoff
    except FileNotFoundError:
        return False


def _wrong_type(sha: bytes, kind: int, want: int, source: str) -> None:
    raise CorruptObjectError(
        f"object {sha.decode()} is a {_KIND_NAMES.get(kind, kind)} where a {_KIND_NAMES[want]} is "
        f"expected, reached from {source}; {STOPPED}")


def _tag_target(sha: bytes, raw: bytes) -> tuple[bytes, int]:
    """(hex SHA, type) of what an annotated tag names."""
    try:
        return tag_target(raw)
    except ValueError as exc:
        raise CorruptObjectError(f"tag {sha.decode()} is damaged ({exc}); {STOPPED}") from None


def check_bare(path: str) -> None:
    """``NotARepositoryError`` unless the repository at ``path`` is bare (``core.bare =
    true``, no ``index``, no linked work trees): maintenance deletes objects only there.
    A config that does not parse raises ``RepositoryFormatError`` naming its line
    (:func:`~gitstate.git.config.read_config`)."""
    try:
        bare = read_config(path).get((b"core",), b"bare")
        reason = None if bare.strip().lower() in (b"true", b"yes", b"on", b"1") else \
            f"core.bare = {bare.decode(errors='replace')}: the .git folder of a work tree"
    except KeyError:
        reason = ("its config has no core.bare = true (if it is bare: "
                  f"git --git-dir {path} config core.bare true)")
    except OSError as exc:
        reason = f"its config cannot be read ({exc})"
    worktrees = os.path.join(path, "worktrees")
    if reason is None and os.path.exists(os.path.join(path, "index")):
        reason = "it has an index, the staged files of a work tree"
    if reason is None and os.path.isdir(worktrees) and os.listdir(worktrees):
        reason = "it has linked work trees (worktrees/)"
    if reason is not None:
        raise NotARepositoryError(
            f"{path} is not a bare repository ({reason}); gitstate deletes no objects there, as "
            "objects only a work tree holds would be lost: run git gc in it instead")


def scan_roots(path: str) -> Iterator[Root]:
    """Every root of the repository at ``path``, as docs/guarantees.md ("What maintenance
    deletes") lists them; ``CorruptObjectError`` for any file naming roots that does not
    parse, or for a ref holding forty zeros."""
    try:
        yield from _scan_roots(path)
    except CorruptObjectError as exc:
        raise CorruptObjectError(f"{exc}; {STOPPED} (maintenance deletes only what no ref, "
                                 "reflog or journal can name: repair or remove that file first)") from None


def _scan_roots(path: str) -> Iterator[Root]:
    def ref_root(name: bytes, sha: bytes) -> Root:
        text = name.decode(errors="replace")
        if sha == ZERO:
            raise CorruptObjectError(f"ref {text} holds forty zeros, which name no object")
        return sha, COMMIT if name.startswith(b"refs/heads/") else 0, f"ref {text}"

    loose: dict[bytes, RefValue] = {}  # read before packed-refs: git pack-refs writes it first
    for name, full in _files(path, "refs"):
        content = _read(full)
        if content is not None:
            loose[name] = parse_loose(content, f"ref {name.decode(errors='replace')}")
    packed = parse_packed(_read(os.path.join(path, "packed-refs")) or b"")
    for name, entry in packed.items():
        if name not in loose:  # a loose ref hides its packed entry, as in git
            yield ref_root(name, entry.sha)
            if entry.peeled is not None:
                yield entry.peeled, 0, f"ref {name.decode(errors='replace')} (peeled)"
    for name, value in loose.items():
        if value.sha is not None:
            yield ref_root(name, value.sha)
    for file in sorted(os.listdir(path)):
        content = _read(os.path.join(path, file)) if file.endswith("HEAD") else None
        if content is not None:
            for sha in parse_head_file(file, content):
                yield sha, COMMIT if file == "HEAD" else 0, file
    for name, full in _files(path, "logs"):
        where = name.decode(errors="replace")
        try:
            with open(full, "rb") as f:  # streamed: a reflog may have a line per checkpoint
                for number, old, new in parse_reflog(f, where):
                    yield from ((sha, 0, f"{where} line {number}") for sha in (old, new) if sha != ZERO)
        except FileNotFoundError:  # deleted since the listing
            continue
    for name, full in _files(path, os.path.join("gitstate", "journal")):
        where = name.decode(errors="replace")
        for number, ref, old, new in parse_journal(_read(full) or b"", where):
            kind = COMMIT if ref.startswith(b"refs/heads/") else 0
            yield from ((sha, kind, f"{where} line {number}") for sha in (old, new) if sha != b"-")


def _read(path: str) -> bytes | None:
    """A file's content; None if it is not there (any more) or is a folder."""
    try:
        return read_file(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def _files(path: str, folder: str) -> Iterator[tuple[bytes, str]]:
    """(name relative to ``path`` with '/', full path) of the files under ``folder``, sorted,
    without ``*.lock`` files (updates in progress, as git skips them)."""
    for root, dirs, names in os.walk(os.path.join(path, folder)):
        dirs.sort()
        for file in sorted(names):
            if not file.endswith(".lock"):
                full = os.path.join(root, file)
                yield os.fsencode(os.path.relpath(full, path)).replace(os.sep.encode(), b"/"), full


def check_roots(store: Store) -> None:
    """What :func:`reclaim` would refuse first, checked cheaply (no walk of the history):
    the repository is bare, every file naming roots parses, every root exists, and the
    refs under ``refs/heads/`` and HEAD name commits."""
    check_bare(store.path)
    with maintenance_reader(store.objects_dir) as reader:
        for sha, want, source in scan_roots(store.path):
            if want or not (reader.is_packed(sha)
                            or os.path.exists(loose_path(store.objects_dir, sha))):
                kind, _raw = read_or_stop(reader, sha, source)
                if want and kind != want:
                    _wrong_type(sha, kind, want, source)


def reclaim(store: Store, grace: float) -> ReclaimResult:
    """Delete the unreachable objects older than ``grace`` seconds (docs/guarantees.md).

    Operations a killed process left half done are completed first, and killed
    writers' temporary files older than ``grace`` deleted (see :class:`Store`)."""
    with store.maintenance_lock(), maintenance_reader(store.objects_dir) as reader:
        store.complete_journals()  # interrupted operations: their refs final first
        store.remove_temporaries(time.time() - grace)
        census = Census(reader, store.path, time.time() - grace)
        try:
            census.mark()
            removed, freed = census.remove_unreached_loose()
            for base in census.packs:
                if (not os.path.exists(base + ".keep")
                        and os.stat(base + ".pack").st_mtime < census.cutoff):
                    dropped, size = _rewrite_pack(base, census)
                    removed, freed = removed + dropped, freed + size
        finally:
            census.scratch.close()
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


def check_packs(bases: Iterable[str]) -> None:
    """Raise ``DamagedObjectError`` if a pack about to be rewritten and deleted is damaged.

    A rewrite reads objects through the index: with a damaged index it would store one
    object's content under another's name and then delete the only good copy.
    """
    for base in bases:
        damage = pack_file_damage(base + ".idx")
        if damage:
            raise DamagedObjectError(f"{'; '.join(damage)}; maintenance stopped, nothing was lost")


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
    check_packs([base])
    order, bases = pack_layout(base, census.table, census.objects.kinds)
    flags, scratch = census.flags, census.scratch
    plan, written = Plan(scratch, len(order)), scratch.table("B", len(census.table))
    for i, delta_base in zip(order, bases, strict=True):
        if flags[i] & REACHED:
            plan.add(i, delta_base if delta_base >= 0 and written[delta_base] else -1)
            written[i] = 1
    if len(plan) == len(order):
        return 0, 0
    old_size = _pack_size(base)
    new = (write_pack(os.path.dirname(base), census.table, plan, census.raw)[:-len(".pack")]
           if len(plan) else None)
    remove_pack(base)
    census.reader.refresh()
    return len(order) - len(plan), old_size - (_pack_size(new) if new else 0)
