"""Maintenance settings (in the repository's git config) and the grace period rule.

One rule for the grace period of ``prune``, ``reclaim`` and ``gc(prune=True)``: the
one given, else the repository's ``gitstate.graceseconds`` setting (one hour by
default). An unreachable object younger than the grace period is kept: it may be
part of a save in progress (docs/guarantees.md, "What maintenance deletes").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from .errors import InvalidArgumentError
from .git.config import Config, read_config

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
    def read(cls, path: str) -> MaintenanceSettings:
        """The settings stored in the config of the repository at ``path``."""
        return cls.from_config(read_config(path), path)

    @classmethod
    def from_config(cls, config: Config, path: str) -> MaintenanceSettings:
        """The settings stored in ``config`` (of the repository at ``path``)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            try:
                raw = config.get((b"gitstate",), cls._key(f.name))
            except KeyError:
                continue
            text = raw.decode("utf-8", "replace").strip().lower()
            if f.type == "bool":
                values[f.name] = text in ("true", "yes", "on", "1")
            elif text.isascii() and text.isdigit():
                values[f.name] = int(text)
            else:  # a hand-edited config: keep the default rather than fail a save
                log.warning("ignoring gitstate.%s = %r in %s", cls._key(f.name).decode(), text, path)
        return cls(**values)

    def write(self, config: Config) -> None:
        """Set these settings in ``config`` (see :func:`gitstate.git.config.update_config`)."""
        for f in fields(self):
            value = getattr(self, f.name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            config.set((b"gitstate",), self._key(f.name), text.encode())


def grace_period(path: str, grace: timedelta | None) -> timedelta:
    """``grace`` if given (a non-negative ``timedelta``), else the repository's setting."""
    if grace is None:
        return timedelta(seconds=MaintenanceSettings.read(path).grace_seconds)
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise InvalidArgumentError(f"grace must be a non-negative timedelta, got {grace!r}")
    return grace
