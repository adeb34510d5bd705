"""Packing runs: loose objects into delta-compressed packs, geometric merging, pruning.

Saves write loose objects (fast, one file each). A run (:func:`gc`) moves them
into delta-compressed packs (:mod:`gitstate.git.packing`) and keeps the number
of packs low by merging them geometrically: after packing the loose objects,
the smallest packs are rewritten as one until every pack is at least
``pack_factor`` times the size of all smaller packs together. With ``prune``,
everything reachable is rewritten into one pack and what nothing reaches is
deleted; what is kept is decided by :mod:`gitstate.git.reclaim` (the rule is in
docs/guarantees.md, "What maintenance deletes").

Memory: objects are numbered in compact tables (:mod:`gitstate.git.objectset`),
packed objects are read with plain reads rather than mapping whole packs, and
blobs are read only while the pack is written: about 90 bytes per object plus a
few states up to 250,000 objects, and past that the tables live in a scratch
file whose pages are given back as the run goes (3,000,000 objects: ~80 MB;
``python bench/run.py --only G``).

Safety beside concurrent writers and readers:

- one run at a time per repository (``Store.maintenance_lock``, which
  ``reclaim`` and a running fetch also take; a second run returns at once,
  skipped);
- refs are never written (no ``pack-refs``), so writers' compare-and-swap is
  untouched;
- a new pack is fsynced and renamed into place (``.pack`` then ``.idx``) before
  any loose object it holds or any pack it replaces is deleted, and readers
  retry a miss after rescanning the packs; a pack is rewritten and deleted only
  if its files are sound (:func:`~gitstate.git.reclaim.check_packs`);
- a loose object is deleted only if it is in the new pack, or proven unreachable
  and older than the grace period.

A run starts by making spare files for the writes until the next one, and spare
folders for the fan-out folders missing (:mod:`gitstate.git.spares`), so that
saves create neither (writers may be waiting for them, and files are created
faster before the run deletes any),
then deletes the files (refs, mostly) that ``<file>.lock`` renames replaced
since the last run, so that saves free none. It ends by making again the spares
that writers took while it packed (a fast writer takes one a millisecond).
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DamagedObjectError
from .objects import RawObject
from .objectset import (
    Scratch,
    ShaTable,
    count_loose,
    loose_shas,
    maintenance_reader,
    pack_layout,
    read_or_stop,
)
from .packing import Objects, plan_pack, write_pack
from .reader import TYPE_NAMES, ObjectReader, PackIndex, loose_path
from .reclaim import (
    LEFT_LOOSE,
    LOOSE,
    REACHED,
    Census,
    check_packs,
    drop_caches,
    pack_bases,
    remove_loose,
    remove_pack,
)
from .store import Store

log = logging.getLogger("gitstate.maintenance")


@dataclass
class GcResult:
    """What one maintenance run did."""

    skipped: bool = False  # another maintenance held the lock
    packed_objects: int = 0  # objects written into new packs
    loose_removed: int = 0  # loose object files deleted (packed or unreachable)
    packs_merged: int = 0  # packs replaced by a merged one
    pruned_objects: int = 0  # unreachable objects dropped (prune only)
    bytes_before: int = 0  # size of objects/ before
    bytes_after: int = 0  # and after
    seconds: float = 0.0


def gc(store: Store, *, prune: bool, grace: float, max_depth: int, pack_factor: int,
       spare_files: int, progress: Callable[[int, int], None] | None = None) -> GcResult:
    """One run (see the module docstring); ``grace`` in seconds, ``spare_files`` the empty
    spares to leave (:func:`gitstate.git.spares.target`).

    Returns at once, with ``skipped=True``, if another maintenance runs on the
    repository. First, spare files are made, the replaced files deleted,
    operations a killed process left half done completed
    (``Store.complete_journals``) and the temporary files of killed writers older
    than the grace period deleted (``Store.remove_temporaries``). Last, spares are made
    again for those writers took while it packed.
    """
    result = GcResult()
    started = time.perf_counter()
    with store.maintenance_lock(wait=False) as held:
        if held is None:
            result.skipped = True
            return result
        store.spares.fill(spare_files, store.loose.missing_folders())  # first: see the docstring
        store.spares.free_replaced()
        store.complete_journals()  # interrupted operations: their refs final first
        store.remove_temporaries(time.time() - grace)
        result.bytes_before = _dir_size(store.objects_dir)
        with maintenance_reader(store.objects_dir) as reader:
            _Packer(store, reader, result, max_depth=max_depth, pack_factor=pack_factor,
                    progress=progress).run(prune, grace)
        try:
            store.spares.fill(spare_files, store.loose.missing_folders())  # those taken meanwhile
        except OSError as exc:  # (out of space, say): the run's work stands
            log.warning("gc of %s made no spares at its end: %s", store.path, exc)
        result.bytes_after = _dir_size(store.objects_dir)
    store.forget_repo()  # drop the cached packs that were replaced
    result.seconds = time.perf_counter() - started
    return result


def _loose_type(objects_dir: str, sha: bytes) -> int:
    """The type of loose object ``sha``, inflating only its header."""
    path = loose_path(objects_dir, sha)
    with open(path, "rb") as f:
        try:
            head = zlib.decompressobj().decompress(f.read(256), 32)
        except zlib.error as exc:
            raise DamagedObjectError(f"loose object {sha.decode()} ({path}) does not inflate: "
                                     f"{exc}") from None
    kind = TYPE_NAMES.get(head.split(b" ", 1)[0])
    if kind is None:
        raise DamagedObjectError(f"loose object {sha.decode()} ({path}) has a bad header "
                                 f"{head[:32]!r}")
    return kind


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:  # removed meanwhile (by git's own gc): not in the new pack's count
        return 0.0


def _date_pack(base: str, mtime: float) -> None:
    """Give a new pack the time of the newest object it took over (not now): the grace
    period counts from when an object was written, whatever maintenance did since."""
    if mtime:
        os.utime(base + ".pack", (mtime, mtime))


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


class _Throttled:
    """Calls ``progress(done, total)`` about every 1/100 of ``total``, and always at the end."""

    STEPS = 100

    def __init__(self, progress: Callable[[int, int], None] | None):
        self.progress = progress
        self.total = 0
        self.next = 0

    def __call__(self, done: int) -> None:
        if self.progress is not None and (done >= self.next or done == self.total):
            self.progress(done, self.total)
            self.next = done + max(1, self.total // self.STEPS)


class _Packer:
    """One maintenance run: pack loose objects, merge packs, optionally prune."""

    def __init__(self, store: Store, reader: ObjectReader, result: GcResult, *, max_depth: int,
                 pack_factor: int, progress: Callable[[int, int], None] | None = None):
        self.path, self.store = store.path, store
        self.progress = _Throttled(progress)
        self.max_depth, self.pack_factor = max_depth, pack_factor
        self.result = result
        self.objects_dir = store.objects_dir
        self.pack_dir = os.path.join(self.objects_dir, "pack")
        self.reader = reader

    def packs(self) -> list[str]:
        """The current packs (paths without extension), without those kept by a ``.keep`` file."""
        return [base for base in pack_bases(self.objects_dir) if not os.path.exists(base + ".keep")]

    def write(self, objects: Objects, wanted: Any) -> str | None:
        """Write the objects ``i`` with ``wanted[i]`` as one new pack; return its path without extension."""
        if not any(wanted):
            return None
        table = objects.table

        def read(i: int) -> tuple[int, bytes]:
            return read_or_stop(self.reader, table.hex(i))

        plan = plan_pack(objects, wanted, read, self.max_depth)
        done = self.result.packed_objects
        self.progress.total += len(plan)
        path = write_pack(self.pack_dir, table, plan, read, written=lambda n: self.progress(done + n))
        self.reader.refresh()
        self.result.packed_objects += len(plan)
        return path[:-len(".pack")]

    def replace(self, old: list[str], new: str | None) -> None:
        """Delete the packs ``old`` now that pack ``new`` holds their objects.

        A rewrite can produce a pack identical to an old one (same name): that
        one is the new pack and stays.
        """
        for base in old:
            if base != new:
                remove_pack(base)
        self.reader.refresh()  # closes the packs that are gone
        self.result.packs_merged += len(old)
        if old:
            drop_caches(self.objects_dir)  # commit-graph, multi-pack-index may name them

    def unpack(self, census: Census, i: int, mtime: float) -> None:
        """Write packed object ``i`` as a loose object dated ``mtime`` (its pack's time)."""
        sha = census.table.hex(i)
        path = loose_path(self.objects_dir, sha)
        census.flags[i] |= LOOSE
        if os.path.exists(path):  # written again by a save since the census: its own time
            return
        self.store.loose.write(RawObject(*census.raw(i), sha))
        os.utime(path, (mtime, mtime))

    def run(self, prune: bool, grace: float) -> None:
        if prune:
            self.prune(grace)
            return
        self.pack_loose(time.time() - grace)
        self.merge()

    def pack_loose(self, cutoff: float) -> None:
        """Pack the loose objects that no pack holds, then delete the loose copies of
        packed objects (those written before ``cutoff`` if they were packed already).

        The new pack gets the time of the newest object it holds, so the grace
        period of an object no ref reaches counts from when a save wrote it.
        """
        scratch = Scratch.for_objects(count_loose(self.objects_dir), self.path)
        try:
            table = ShaTable.merged([loose_shas(self.objects_dir)], scratch)
            objects, wanted = Objects(table), scratch.table("B", len(table))
            for i in range(len(table)):
                scratch.step()
                sha = table.hex(i)
                if not self.reader.is_packed(sha):
                    objects.kinds[i] = _loose_type(self.objects_dir, sha)
                    wanted[i] = 1
            newest = max((_mtime(loose_path(self.objects_dir, table.hex(i)))
                          for i in range(len(table)) if wanted[i]), default=0.0)
            new = self.write(objects, wanted)
            removed = remove_loose(self.objects_dir, (table.hex(i) for i in range(len(table)) if wanted[i]))
            # a copy of a packed object younger than the grace (a save wrote it again): kept, so
            # the object still counts as young if no ref reaches it
            copies = remove_loose(self.objects_dir, (table.hex(i) for i in range(len(table))
                                                     if not wanted[i]), cutoff)
            self.result.loose_removed += removed[0] + copies[0]
        finally:
            scratch.close()
        if new is not None:
            _date_pack(new, newest)

    def merge(self) -> None:
        """Merge the smallest packs until their sizes grow geometrically."""
        packs = sorted(self.packs(), key=lambda base: os.path.getsize(base + ".pack"))
        cut, total = 0, 0
        for i, base in enumerate(packs):
            size = os.path.getsize(base + ".pack")
            if i and size < self.pack_factor * total:
                cut = i + 1
            total += size
        if cut < 2:
            return
        merged = packs[:cut]
        check_packs(merged)  # each is deleted once rewritten: only if its files are sound
        indexes = [PackIndex(base + ".idx") for base in merged]
        scratch = Scratch.for_objects(sum(index.count for index in indexes), self.path)
        try:
            scratch.on_trim(self.reader.trim)
            table = ShaTable.merged((index.shas() for index in indexes), scratch)
            del indexes
            objects = Objects(table)
            for base in merged:
                pack_layout(base, table, objects.kinds)
            newest = max(os.stat(base + ".pack").st_mtime for base in merged)
            new = self.write(objects, scratch.table("B", len(table), 1))
            self.replace(merged, new)
        finally:
            scratch.close()
        if new is not None:
            _date_pack(new, newest)

    def prune(self, grace: float) -> None:
        """Rewrite everything reachable into one pack; delete what nothing reaches.

        Young objects that no ref reaches (a save in progress) are kept loose:
        loose ones untouched, packed ones written loose with their pack's time,
        as ``git repack -A`` does; what they reach is kept (docs/guarantees.md).
        """
        census = Census(self.reader, self.path, time.time() - grace)
        try:
            census.mark()
            flags = census.flags
            wanted = census.scratch.table("B", len(flags))
            for i, f in enumerate(flags):
                wanted[i] = 1 if f & REACHED and not f & LEFT_LOOSE else 0
                census.scratch.step()
            old = [base for base in census.packs if not os.path.exists(base + ".keep")]
            check_packs(old)
            for base, mtime in census.young_packs:  # newest first: an object keeps its youngest time
                for sha in PackIndex(base + ".idx").shas():
                    i = census.table.find(sha)
                    if flags[i] & LEFT_LOOSE and not flags[i] & LOOSE:
                        self.unpack(census, i, mtime)
            self.replace(old, self.write(census.objects, wanted))
            packed, _ = remove_loose(self.objects_dir, (census.table.hex(i) for i, f in enumerate(flags)
                                                        if f & LOOSE and wanted[i]))
            dropped, _ = census.remove_unreached_loose()
            self.result.loose_removed += packed + dropped
            self.result.pruned_objects = census.unreached()
        finally:
            census.scratch.close()
