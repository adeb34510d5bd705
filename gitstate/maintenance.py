"""Maintenance of one repository: ``gc`` on demand, and automatically after writes.

Saves write loose objects; :func:`gitstate.git.gc.gc` packs them with deltas and
merges packs (see there), and with ``prune`` deletes what nothing reaches.

Automatic maintenance: the engine counts the loose objects and bytes each
repository object writes; after a write operation, :meth:`Maintenance.after`
starts a ``gc`` (in a background process by default) once ``auto_objects``
objects or ``auto_bytes`` bytes were written since the last one, or the spare
files run low (:mod:`gitstate.git.spares`; at most every 30 s), and at process
exit one more if at least 30 objects or 1 MB are waiting. It never breaks the
write it follows. Settings live in the repository's git config (``gitstate.*``,
:class:`~gitstate.settings.MaintenanceSettings`) and are changed with
:meth:`Maintenance.configure`.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from .errors import GitstateError, InvalidArgumentError
from .git import bare, spares
from .git import gc as engine
from .git.config import Config, update_config
from .git.gc import GcResult
from .git.store import Store
from .settings import MaintenanceSettings, grace_period

__all__ = ["GcResult", "Maintenance", "MaintenanceSettings"]

log = logging.getLogger("gitstate.maintenance")
LOW_SPARES_RETRY = 30.0  # seconds between runs started because spares run low (one may be skipped)
T = TypeVar("T")

EXIT_MIN_OBJECTS = 30  # pack at exit only if this process wrote this many objects ...
EXIT_MIN_BYTES = 1 << 20  # ... or this many bytes since its last maintenance
_WAITING: dict[str, Maintenance] = {}  # by repository path: wrote since their last run


class Repository(Protocol):
    """What maintenance uses of a repository: a :class:`~gitstate.core.Core`, or the engine
    alone (the background worker: importing the core, and its models, doubles its start-up)."""

    @property
    def path(self) -> str: ...

    @property
    def store(self) -> Store: ...


class Maintenance:
    """Settings, ``gc`` and automatic maintenance of one repository (a :class:`Repository`)."""

    def __init__(self, core: Repository):
        self.core = core
        self._lock = threading.Lock()
        self._settings: MaintenanceSettings | None = None
        self._worker: subprocess.Popen[bytes] | None = None  # the background maintenance
        self._low_at = -LOW_SPARES_RETRY  # when a run was last started for want of spares

    @property
    def settings(self) -> MaintenanceSettings:
        """The maintenance settings of this repository (read once, from its git config)."""
        if self._settings is None:
            self._settings = MaintenanceSettings.read(self.core.path)
        return self._settings

    def configure(self, **changes: Any) -> MaintenanceSettings:
        """Change settings (fields of :class:`MaintenanceSettings`) and store them."""
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

        def change(config: Config) -> MaintenanceSettings:
            settings = replace(MaintenanceSettings.from_config(config, self.core.path), **changes)
            settings.write(config)
            return settings

        self._settings = update_config(self.core.store, change)
        return self._settings

    def gc(self, *, prune: bool = False, grace_seconds: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> GcResult:
        """Pack loose objects with deltas and merge small packs; never blocks writers.

        ``prune=True`` also rewrites all packs into one and deletes the objects
        proven unreachable and older than the grace period (``grace_seconds``,
        else the ``grace_seconds`` setting: :func:`gitstate.settings.grace_period`),
        as docs/guarantees.md says: a damaged repository raises
        ``CorruptObjectError``, one that is not bare ``NotARepositoryError``,
        before anything is touched. Returns at once, with ``skipped=True``, if
        another maintenance is running on this repository. ``progress(done,
        total)`` is called as objects are written into packs (a few hundred times
        at most; ``total`` grows if packs are then merged).
        """
        if grace_seconds is not None and (type(grace_seconds) is not int or grace_seconds < 0):
            raise InvalidArgumentError(f"grace_seconds must be an integer >= 0, got {grace_seconds!r}")
        grace = grace_period(self.core.path, None if grace_seconds is None
                             else timedelta(seconds=grace_seconds))
        settings = self.settings
        self.core.store.take_written()  # what is written from now on counts towards the next run
        return engine.gc(self.core.store, prune=prune, grace=grace.total_seconds(),
                         max_depth=settings.max_depth, pack_factor=settings.pack_factor,
                         spare_files=spares.target(settings.auto_objects), progress=progress)

    def after(self, result: T) -> T:
        """Return ``result`` (of a write operation), starting automatic maintenance first if
        enough was written since the last run."""
        try:
            settings = self.settings
        except GitstateError as exc:  # the config was damaged since open: the write stands
            log.warning("no automatic maintenance of %s: %s", self.core.path, exc)
            return result
        spares = self.core.store.spares
        spares.keep_replaced = settings.auto_objects > 0  # runs will free what is kept
        if not settings.auto_objects:
            return result
        objects, nbytes = self.core.store.written()
        if not objects:
            return result
        _WAITING[self.core.path] = self
        low = spares.running_low and time.monotonic() - self._low_at >= LOW_SPARES_RETRY
        if objects < settings.auto_objects and nbytes < settings.auto_bytes and not low:
            return result
        if spares.running_low:
            spares.running_low, self._low_at = False, time.monotonic()
        with self._lock:
            if self._worker is not None and self._worker.poll() is None:
                return result  # the last run is still going
            if settings.background:
                try:
                    self._worker = _start_worker(self.core.path)
                    self.core.store.take_written()
                    return result
                except OSError as exc:  # no way to start a process here: run it inline
                    log.warning("cannot start background maintenance: %s", exc)
        self.run_quietly()
        return result

    def wait(self) -> None:
        """Wait until the automatic maintenance this object started (if any) has finished."""
        worker = self._worker
        if worker is not None:
            worker.wait()

    def run_quietly(self) -> None:
        """``gc()``, logging a failure instead of raising it (maintenance never breaks a write)."""
        try:
            self.gc()
        except Exception as exc:  # verify() says more
            log.warning("automatic maintenance of %s failed: %s", self.core.path, exc)


@atexit.register
def _flush_at_exit() -> None:
    """At process exit, pack what this process wrote since its last maintenance.

    Only if it wrote at least ``EXIT_MIN_OBJECTS`` objects or ``EXIT_MIN_BYTES``,
    or ``auto_objects`` loose objects are waiting (estimated from 16 fan-out
    folders, as git does), so that one-off small saves do not each write a pack.
    """
    while _WAITING:
        _path, maintenance = _WAITING.popitem()
        maintenance.wait()
        objects, nbytes = maintenance.core.store.written()
        if not os.path.isdir(maintenance.core.path) or not objects:
            continue
        if (objects >= EXIT_MIN_OBJECTS or nbytes >= EXIT_MIN_BYTES
                or _loose_estimate(maintenance.core.path) >= maintenance.settings.auto_objects):
            maintenance.run_quietly()


def _loose_estimate(path: str) -> int:
    """Loose objects in the repository, estimated from 16 of its 256 fan-out folders."""
    count = 0
    for first in range(0, 256, 16):
        try:
            count += len(os.listdir(os.path.join(path, "objects", f"{first:02x}")))
        except FileNotFoundError:
            continue
    return 16 * count


def _start_worker(path: str) -> subprocess.Popen[bytes]:
    """Run ``gc()`` on the repository at ``path`` in a new Python process (no GIL shared)."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "gitstate.maintenance", path], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class _Engine:
    """The repository at ``path`` as the background worker sees it: its engine alone."""

    def __init__(self, path: str):
        bare.check(path)
        self.path = os.path.abspath(path)
        self.store = Store(self.path)


if __name__ == "__main__":  # the background worker: python -m gitstate.maintenance <repo>
    Maintenance(_Engine(sys.argv[1])).run_quietly()
