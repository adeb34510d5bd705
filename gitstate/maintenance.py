"""Maintenance: delta packing (automatic and on demand), reclaiming space, verification.

Saves write loose objects (fast, one file each). Maintenance moves them into
delta-compressed packs (:mod:`gitstate.packing`) and keeps the number of packs
low by merging them geometrically: after packing the loose objects, the
smallest packs are rewritten as one until every pack is at least twice the
size of all smaller packs together. ``gc(prune=True)`` rewrites everything
reachable into one delta-compressed pack and deletes what nothing reaches any
more. What is kept is decided by :mod:`gitstate.reclaim`, shared with
retention's ``reclaim``, which prunes without repacking; the rule is written
down in docs/guarantees.md ("What maintenance deletes").

Memory: objects are numbered in compact tables (:mod:`gitstate.objectset`),
packed objects are read with plain reads rather than mapping whole packs, and
blobs are read only while the pack is written: about 90 bytes per object plus
a few states, whatever the history (``python bench/run.py --only G``).

Safety beside concurrent writers and readers:

- one maintenance at a time per repository (the ``flock`` of
  ``Store.maintenance_lock``, which ``reclaim`` and a running fetch also take; a
  second gc returns at once, skipped);
- refs are never written (no ``pack-refs``), so writers' compare-and-swap is
  untouched;
- a new pack is fsynced and renamed into place (``.pack`` then ``.idx``)
  before any loose object it holds or any pack it replaces is deleted, and
  readers retry a miss after rescanning the packs;
- a loose object is deleted only if it is in the new pack, or proven
  unreachable and older than the grace period (docs/guarantees.md).

Automatic maintenance: each :class:`StateRepository` counts the objects and
bytes its saves wrote; past ``auto_objects`` or ``auto_bytes`` it runs
:meth:`gc` (in a background process by default), and once more when the process
exits if it saved at least 30 objects or 1 MB since its last run. Settings live in the repository's git config
(``gitstate.*``) and are changed with :meth:`configure_maintenance`.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from binascii import hexlify
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

from dulwich.config import ConfigFile
from dulwich.objects import Commit

from . import codec
from .git.config import read_config, update_config
from .errors import (
    CorruptObjectError,
    DamagedObjectError,
    GitstateError,
    InvalidArgumentError,
)
from .ids import BRANCH_PREFIX, TAG_PREFIX, is_checkpoint_id, validate_agent_id
from .message import integer
from .message import parse as parse_message
from .git.objectset import (
    ShaTable,
    loose_shas,
    maintenance_reader,
    pack_layout,
    read_or_stop,
)
from .git.packing import Objects, plan_pack, write_pack
from .git.reader import TYPE_NAMES, ObjectReader, PackIndex, loose_path
from .git.reclaim import (
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
from .git.refs import parse_loose, read_file

if TYPE_CHECKING:
    from .git.layout import CommitInfo
    from .repository import StateRepository

log = logging.getLogger("gitstate.maintenance")



@dataclass(frozen=True)
class MaintenanceSettings:
    """How automatic maintenance behaves (git config ``gitstate.<name without _>``)."""

    auto_objects: int = 256  # loose objects written by a process that trigger a gc; 0 = never
    auto_bytes: int = 64 << 20  # or that many bytes of state written
    max_depth: int = 50  # longest delta chain in a pack
    background: bool = True  # automatic gc in a background process (else inside save)
    grace_seconds: int = 3600  # unreachable objects younger than this are kept
    pack_factor: int = 2  # geometric merging: each pack >= factor x all smaller ones

    @staticmethod
    def _key(name: str) -> bytes:
        return name.replace("_", "").lower().encode()

    @classmethod
    def read(cls, path: str) -> "MaintenanceSettings":
        """The settings stored in the config of the repository at ``path``."""
        return cls.from_config(read_config(path), path)

    @classmethod
    def from_config(cls, config: ConfigFile, path: str) -> MaintenanceSettings:
        """The settings stored in ``config`` (of the repository at ``path``)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            try:
                raw = config.get((b"gitstate",), cls._key(f.name))
            except KeyError:
                continue
            text = raw.decode().strip().lower()
            if f.type == "bool":
                values[f.name] = text in ("true", "yes", "on", "1")
            elif text.isdigit():
                values[f.name] = int(text)
            else:  # a hand-edited config: keep the default rather than fail a save
                log.warning("ignoring gitstate.%s = %r in %s", cls._key(f.name).decode(), text, path)
        return cls(**values)

    def write(self, config: ConfigFile) -> None:
        """Set these settings in ``config`` (see :func:`gitstate.config.update_config`)."""
        for f in fields(self):
            value = getattr(self, f.name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            config.set((b"gitstate",), self._key(f.name), text.encode())


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


@dataclass(frozen=True)
class Problem:
    """One thing :meth:`verify` found wrong; ``subject`` names the object or ref."""

    kind: str  # "object", "pack", "ref", "history", "trailer", "state"
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.message}"


@dataclass
class VerifyResult:
    """The outcome of :meth:`verify`: counts and the list of problems (empty if sound)."""

    objects: int = 0
    agents: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# -- object store helpers ---------------------------------------------------------------

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


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


# -- the mixin ----------------------------------------------------------------------------

class MaintenanceMixin:
    """``gc``, ``verify`` and automatic maintenance of a :class:`StateRepository`."""

    _maintenance: "_AutoState"

    # settings ---------------------------------------------------------------------------
    @property
    def maintenance_settings(self: "StateRepository") -> MaintenanceSettings:
        """The maintenance settings of this repository (read once, from its git config)."""
        auto = _auto_state(self)
        if auto.settings is None:
            auto.settings = MaintenanceSettings.read(self.path)
        return auto.settings

    def configure_maintenance(self: "StateRepository", **changes: Any) -> MaintenanceSettings:
        """Change maintenance settings (fields of :class:`MaintenanceSettings`) and store them."""
        valid = {f.name for f in fields(MaintenanceSettings)}
        for name, value in changes.items():
            if name not in valid:
                raise InvalidArgumentError(f"unknown maintenance setting {name!r}; "
                                           f"known: {', '.join(sorted(valid))}")
            if name == "background":
                if not isinstance(value, bool):
                    raise InvalidArgumentError(f"background must be a bool, got {value!r}")
            elif type(value) is not int or value < 0 or (name == "pack_factor" and value < 2):
                raise InvalidArgumentError(f"{name} must be an integer >= "
                                           f"{2 if name == 'pack_factor' else 0}, got {value!r}")

        def change(config: ConfigFile) -> MaintenanceSettings:
            settings = replace(MaintenanceSettings.from_config(config, self.path), **changes)
            settings.write(config)
            return settings

        settings = update_config(self._store, change)
        _auto_state(self).settings = settings
        return settings

    # gc ---------------------------------------------------------------------------------
    def gc(self: "StateRepository", *, prune: bool = False, grace_seconds: Optional[int] = None,
           progress: Optional[Callable[[int, int], None]] = None) -> GcResult:
        """Pack loose objects with deltas and merge small packs; never blocks writers.

        ``prune=True`` also rewrites all packs into one and deletes the objects
        proven unreachable and older than ``grace_seconds`` (default: the
        ``grace_seconds`` setting), as docs/guarantees.md says: a damaged
        repository raises ``CorruptObjectError``, one that is not bare
        ``NotARepositoryError``, before anything is touched. Returns at once, with
        ``skipped=True``, if another maintenance is running on this repository.
        ``progress(done, total)`` is called as objects are written into packs
        (a few hundred times at most; ``total`` grows if packs are then merged).
        First, operations a killed process left half done are completed
        (``Store.complete_journals``) and the temporary files of killed writers
        older than the grace period are deleted (``Store.remove_temporaries``).
        """
        settings = self.maintenance_settings
        grace = settings.grace_seconds if grace_seconds is None else grace_seconds
        if grace < 0:
            raise InvalidArgumentError(f"grace_seconds must be >= 0, got {grace}")
        result = GcResult()
        started = time.perf_counter()
        auto = _auto_state(self)
        with auto.lock:  # what saves write from now on counts towards the next run
            auto.pending_objects = auto.pending_bytes = 0
        with self._store.maintenance_lock(wait=False) as held:
            if held is None:
                result.skipped = True
                return result
            self._store.complete_journals()  # interrupted operations: their refs final first
            self._store.remove_temporaries(time.time() - grace)
            result.bytes_before = _dir_size(self._store.objects_dir)
            with maintenance_reader(self._store.objects_dir) as reader:
                _Packer(self, reader, settings, result, progress).run(prune, grace)
            result.bytes_after = _dir_size(self._store.objects_dir)
        result.seconds = time.perf_counter() - started
        return result

    def _after_save(self: "StateRepository", objects: int, nbytes: int) -> None:
        """Count what a save wrote; start automatic maintenance past the thresholds."""
        try:
            settings = self.maintenance_settings
        except GitstateError as exc:  # the config was damaged since open: the save stands
            log.warning("no automatic maintenance of %s: %s", self.path, exc)
            return
        if not settings.auto_objects:
            return
        auto = _auto_state(self)
        with auto.lock:
            auto.pending_objects += objects
            auto.pending_bytes += nbytes
            _PENDING[self.path] = self
            due = (auto.pending_objects >= settings.auto_objects
                   or auto.pending_bytes >= settings.auto_bytes)
            if not due or (auto.worker is not None and auto.worker.poll() is None):
                return
            if settings.background:
                try:
                    auto.worker = _start_worker(self.path)
                    auto.pending_objects = auto.pending_bytes = 0
                    return
                except OSError as exc:  # no way to start a process here: run it inline
                    log.warning("cannot start background maintenance: %s", exc)
        self._auto_gc()

    def wait_for_maintenance(self: "StateRepository") -> None:
        """Wait until the automatic maintenance this object started (if any) has finished."""
        worker = _auto_state(self).worker
        if worker is not None:
            worker.wait()

    def _auto_gc(self: "StateRepository") -> None:
        try:
            self.gc()
        except Exception as exc:  # maintenance must never break a save; verify() says more
            log.warning("automatic maintenance of %s failed: %s", self.path, exc)

    # verify -----------------------------------------------------------------------------
    def verify(self: "StateRepository") -> VerifyResult:
        """Check every object, ref, checkpoint trailer and state; return what is wrong.

        Objects: each reads back and hashes to its name; packs and their indexes:
        checksums. Refs: agent branches and tags name valid agents and point to
        commits. Checkpoints: the trailers gitstate writes are present and
        consistent (``Agent-Id`` a valid id, equal to the state's ``agent_id``), ids
        unique per agent, and each ``state.json`` is canonical (re-encoding it gives
        the same bytes). Every problem is listed: an unreadable commit ends the walk
        of that agent's history only. Objects and packs that maintenance removes
        meanwhile are no problem. Operations a killed process left half done are
        completed first (a journal that cannot be is a problem).
        """
        result = VerifyResult()
        unfinished: dict[str, GitstateError] = {}
        self._store.complete_journals(unfinished)  # interrupted operations are completed first
        for agent_id, error in sorted(unfinished.items()):
            result.problems.append(Problem("ref", f"journal of agent {agent_id}", str(error)))
        _verify_objects(self._store.objects_dir, result)
        _verify_refs(self, result)
        return result


# -- automatic maintenance state ------------------------------------------------------------

@dataclass
class _AutoState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    settings: Optional[MaintenanceSettings] = None
    pending_objects: int = 0
    pending_bytes: int = 0
    worker: Optional[subprocess.Popen] = None  # the background maintenance process


_STATE_LOCK = threading.Lock()
_PENDING: "dict[str, StateRepository]" = {}  # repositories this process saved into
EXIT_MIN_OBJECTS = 30  # pack at exit only if this process wrote this many objects ...
EXIT_MIN_BYTES = 1 << 20  # ... or this many bytes of state since its last maintenance


def _auto_state(repo: "StateRepository") -> _AutoState:
    state = repo.__dict__.get("_maintenance")
    if state is None:
        with _STATE_LOCK:
            state = repo.__dict__.setdefault("_maintenance", _AutoState())
    return state


@atexit.register
def _flush_at_exit() -> None:
    """At process exit, pack what this process saved since its last maintenance.

    Only if it wrote at least ``EXIT_MIN_OBJECTS`` objects or ``EXIT_MIN_BYTES``,
    or ``auto_objects`` loose objects are waiting (estimated from one fan-out
    folder, as git does), so that one-off small saves do not each write a pack.
    """
    while _PENDING:
        path, repo = _PENDING.popitem()
        repo.wait_for_maintenance()
        auto = _auto_state(repo)
        if not os.path.isdir(path) or not auto.pending_objects:
            continue
        if (auto.pending_objects >= EXIT_MIN_OBJECTS or auto.pending_bytes >= EXIT_MIN_BYTES
                or _loose_estimate(path) >= repo.maintenance_settings.auto_objects):
            repo._auto_gc()


def _loose_estimate(path: str) -> int:
    """Loose objects in the repository, estimated from 16 of its 256 fan-out folders."""
    count = 0
    for first in range(0, 256, 16):
        try:
            count += len(os.listdir(os.path.join(path, "objects", f"{first:02x}")))
        except FileNotFoundError:
            continue
    return 16 * count


def _start_worker(path: str) -> subprocess.Popen:
    """Run ``gc()`` on the repository at ``path`` in a new Python process (no GIL shared)."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "gitstate.maintenance", path], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# -- packing runs -----------------------------------------------------------------------------

class _Throttled:
    """Calls ``progress(done, total)`` about every 1/100 of ``total``, and always at the end."""

    STEPS = 100

    def __init__(self, progress: Optional[Callable[[int, int], None]]):
        self.progress = progress
        self.total = 0
        self.next = 0

    def __call__(self, done: int) -> None:
        if self.progress is not None and (done >= self.next or done == self.total):
            self.progress(done, self.total)
            self.next = done + max(1, self.total // self.STEPS)


class _Packer:
    """One maintenance run: pack loose objects, merge packs, optionally prune."""

    def __init__(self, repo: "StateRepository", reader: ObjectReader, settings: MaintenanceSettings,
                 result: GcResult, progress: Optional[Callable[[int, int], None]] = None):
        self.repo = repo
        self.progress = _Throttled(progress)
        self.settings = settings
        self.result = result
        self.objects_dir = repo._store.objects_dir
        self.pack_dir = os.path.join(self.objects_dir, "pack")
        self.reader = reader

    def packs(self) -> list[str]:
        """The current packs (paths without extension), without those kept by a ``.keep`` file."""
        return [base for base in pack_bases(self.objects_dir) if not os.path.exists(base + ".keep")]

    def write(self, objects: Objects, wanted: bytearray) -> Optional[str]:
        """Write the objects ``i`` with ``wanted[i]`` as one new pack; return its path without extension."""
        if not any(wanted):
            return None
        table = objects.table

        def read(i: int) -> tuple[int, bytes]:
            return read_or_stop(self.reader, table.hex(i))

        plan = plan_pack(objects, wanted, read, self.settings.max_depth)
        done = self.result.packed_objects
        self.progress.total += len(plan.order)
        path = write_pack(self.pack_dir, table, plan, read, written=lambda n: self.progress(done + n))
        self.reader.refresh()
        self.result.packed_objects += len(plan.order)
        return path[:-len(".pack")]

    def replace(self, old: list[str], new: Optional[str]) -> None:
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

    def run(self, prune: bool, grace: int) -> None:
        if prune:
            self.prune(grace)
            return
        self.pack_loose()
        self.merge()

    def pack_loose(self) -> None:
        """Pack the loose objects that no pack holds, then delete every loose object seen."""
        table = ShaTable(b"".join(loose_shas(self.objects_dir)))
        objects, wanted = Objects(table), bytearray(len(table))
        for i in range(len(table)):
            sha = table.hex(i)
            if not self.reader.is_packed(sha):
                objects.kinds[i] = _loose_type(self.objects_dir, sha)
                wanted[i] = 1
        self.write(objects, wanted)
        self.result.loose_removed += remove_loose(self.objects_dir, map(table.hex, range(len(table))))[0]

    def merge(self) -> None:
        """Merge the smallest packs until their sizes grow geometrically."""
        packs = sorted(self.packs(), key=lambda base: os.path.getsize(base + ".pack"))
        cut, total = 0, 0
        for i, base in enumerate(packs):
            size = os.path.getsize(base + ".pack")
            if i and size < self.settings.pack_factor * total:
                cut = i + 1
            total += size
        if cut < 2:
            return
        merged = packs[:cut]
        check_packs(merged)  # each is deleted once rewritten: only if its files are sound
        table = ShaTable.merged(PackIndex(base + ".idx").shas() for base in merged)
        objects = Objects(table)
        for base in merged:
            pack_layout(base, table, objects.kinds)
        self.replace(merged, self.write(objects, bytearray(b"\1") * len(table)))

    def prune(self, grace: int) -> None:
        """Rewrite everything reachable into one pack; delete what nothing reaches.

        Young loose objects that no ref reaches (a save in progress) stay loose
        and untouched; what they reach is kept (docs/guarantees.md).
        """
        census = Census(self.reader, self.repo.path, time.time() - grace)
        census.mark()
        flags = census.flags
        wanted = bytearray(f & REACHED and not f & LEFT_LOOSE for f in flags)
        old = [base for base in census.packs if not os.path.exists(base + ".keep")]
        check_packs(old)
        self.replace(old, self.write(census.objects, wanted))
        packed, _ = remove_loose(self.objects_dir, (census.table.hex(i) for i, f in enumerate(flags)
                                                    if f & LOOSE and wanted[i]))
        dropped, _ = census.remove_unreached_loose()
        self.result.loose_removed += packed + dropped
        self.result.pruned_objects = census.unreached()


def _verify_objects(objects_dir: str, result: VerifyResult) -> None:
    """Packs, their indexes and objects, and loose objects (see ``verify``)."""
    problems = result.problems
    seen: set[bytes] = set()
    with maintenance_reader(objects_dir) as reader:
        for base in pack_bases(objects_dir):
            name = os.path.basename(base)
            for sha, message in reader.check_pack(base + ".idx"):
                problems.append(Problem("pack", name, message) if sha is None
                                else Problem("object", sha.decode(), message))
            try:
                seen.update(PackIndex(base + ".idx").shas())
            except (FileNotFoundError, DamagedObjectError):  # gone, or listed above
                continue
        for folder in sorted(os.listdir(objects_dir)):
            path = os.path.join(objects_dir, folder)
            if re.fullmatch("[0-9a-f]{2}", folder) and os.path.isfile(path):
                problems.append(Problem("object", path, "a file where git keeps a folder of "
                                                         "loose objects"))
        for binsha in loose_shas(objects_dir):
            sha = hexlify(binsha)
            message = reader.check_loose(sha)
            if message is not None:
                problems.append(Problem("object", sha.decode(), message))
            seen.add(binsha)
    result.objects = len(seen)


def _verify_refs(repo: "StateRepository", result: VerifyResult) -> None:
    """Refs, trailers and canonical states of every agent (see ``verify``)."""
    store = repo._store
    problems = result.problems
    bad: dict[bytes, CorruptObjectError] = {}
    branches = store.read_refs(BRANCH_PREFIX.encode(), bad)
    tags = store.read_refs(TAG_PREFIX.encode(), bad)
    for ref, error in sorted(bad.items()):
        problems.append(Problem("ref", ref.decode(errors="replace"), str(error)))
    _check_head(repo, problems)
    for ref, sha in sorted(tags.items()):
        agent = ref[len(TAG_PREFIX):].decode(errors="replace").partition("/")[0]
        _check_ref(repo, ref, sha, agent, problems)
    for ref, sha in sorted(branches.items()):
        agent = ref[len(BRANCH_PREFIX):].decode(errors="replace")
        if not _check_ref(repo, ref, sha, agent, problems):
            continue
        result.agents += 1
        ids: set[str] = set()
        try:
            for commit in repo._walk(sha):
                result.checkpoints += 1
                _check_checkpoint(repo, commit, ids, f"{agent}@{commit.id.decode()[:12]}", problems)
        except CorruptObjectError as exc:  # a parent that cannot be read: the walk ends there
            problems.append(Problem("history", agent, f"{exc}; older checkpoints are not checked"))


def _check_head(repo: "StateRepository", problems: list[Problem]) -> None:
    """``HEAD``, without which git does not take the folder for a repository (gitstate does)."""
    if not os.path.isfile(os.path.join(repo.path, "HEAD")):
        problems.append(Problem("ref", "HEAD", "is missing: git does not see a repository here"))
        return
    try:  # the file itself; what it names is checked with the ref it names
        parse_loose(read_file(os.path.join(repo.path, "HEAD")), "HEAD")
    except CorruptObjectError as exc:
        problems.append(Problem("ref", "HEAD", f"{exc}: git does not see a repository here"))


def _check_ref(repo: "StateRepository", ref: bytes, sha: bytes, agent: str,
               problems: list[Problem]) -> bool:
    name = ref.decode(errors="replace")
    try:
        validate_agent_id(agent)
    except GitstateError as exc:
        problems.append(Problem("ref", name, str(exc)))
        return False
    try:
        repo._raw(sha, Commit)
    except GitstateError as exc:  # missing, unreadable, or not a commit
        problems.append(Problem("ref", name, f"does not point to a commit: {exc}"))
        return False
    return True


def _check_checkpoint(repo: "StateRepository", commit: "CommitInfo", ids: set[str], subject: str,
                      problems: list[Problem]) -> None:
    """The trailers of one checkpoint, and its state: canonical, of the agent Agent-Id names."""
    _summary, trailers = parse_message(commit.message)
    checkpoint_id = trailers.get("Checkpoint-Id")
    if checkpoint_id is None or not is_checkpoint_id(checkpoint_id):
        problems.append(Problem("trailer", subject, f"Checkpoint-Id missing or invalid: {checkpoint_id!r}"))
    elif checkpoint_id in ids:
        problems.append(Problem("trailer", subject, f"Checkpoint-Id {checkpoint_id} used twice"))
    else:
        ids.add(checkpoint_id)
    writer: str | None = trailers.get("Agent-Id")  # who wrote it (a fork holds others')
    try:
        validate_agent_id(writer)
    except GitstateError as exc:
        problems.append(Problem("trailer", subject, f"Agent-Id missing or invalid: {exc}"))
        writer = None
    version = trailers.get("Schema-Version")
    number = integer(version)
    if number is None or number < 0:
        problems.append(Problem("trailer", subject, f"Schema-Version missing or invalid: {version!r}"))
    iteration = trailers.get("Iteration")
    if iteration is not None and integer(iteration) is None:
        problems.append(Problem("trailer", subject, f"Iteration is not an integer: {iteration!r}"))
    try:
        data = repo._state_json(commit)
    except GitstateError as exc:
        problems.append(Problem("state", subject, f"state.json unreadable: {exc}"))
        return
    try:
        state = codec.decode(data)
        canonical = codec.encode(state)
    except GitstateError as exc:
        problems.append(Problem("state", subject, f"state.json is not valid JSON: {exc}"))
        return
    if canonical != data:
        problems.append(Problem("state", subject, "state.json is not in canonical form"))
    owner = state.get("agent_id") if isinstance(state, dict) else None
    if writer is not None and isinstance(owner, str) and owner != writer:
        problems.append(Problem("state", subject, f"the state's agent_id is {owner!r}, "
                                                  f"its Agent-Id trailer {writer!r}"))


if __name__ == "__main__":  # the background worker: python -m gitstate.maintenance <repo>
    from .repository import StateRepository

    StateRepository.open(sys.argv[1])._auto_gc()
