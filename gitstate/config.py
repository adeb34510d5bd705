"""The repository's git config: one reader, one writer, and what gitstate refuses to open.

Every change is a read-modify-write (:func:`update_config`) under two locks:
gitstate's ``flock`` ``gitstate/locks/config``, so gitstate writers wait for
each other, and git's own protocol, so ``git config`` and gitstate never lose
each other's changes: ``config.lock`` created with O_EXCL, the new content
written into it (fsynced when durable), then renamed over ``config``. A
``config.lock`` held by a live process (``git config``) is waited for, with
backoff, up to the lock timeout (then :class:`ConcurrentUpdateError`); one left
by a killed gitstate writer is recognised and removed by the next writer (its
path is recorded in the ``flock``'s file, see ``Store.create_lock``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

from dulwich.config import ConfigFile

from .errors import RepositoryFormatError
from .store import Store, fsync_path

T = TypeVar("T")

# extensions git 2.39+ knows (setup.c); those of version 1 only are refused in version 0
_EXTENSIONS_V0 = {b"noop", b"preciousobjects", b"partialclone", b"worktreeconfig"}
_EXTENSIONS_V1 = {b"noop-v1", b"objectformat", b"compatobjectformat", b"refstorage",
                  b"relativeworktrees"}


class _Lines:
    """A file whose lines dulwich's parser reads one by one, counting them."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.number = 0

    def readlines(self) -> Iterator[bytes]:
        for self.number, line in enumerate(self.f, 1):
            yield line


def _parse(path: str) -> ConfigFile:
    """The config file at ``path``; ``RepositoryFormatError`` naming the line that does not parse."""
    with open(path, "rb") as f:
        lines = _Lines(f)
        try:
            config = ConfigFile.from_file(lines, expand_includes=False)  # type: ignore[arg-type]
        except ValueError as exc:
            raise RepositoryFormatError(f"{path} line {lines.number}: {exc}; fix it (git config "
                                        "reads the same file) before using gitstate") from None
    config.path = path
    return config


def read_config(path: str) -> ConfigFile:
    """The config of the repository at ``path`` (empty if it has none)."""
    try:
        return _parse(os.path.join(path, "config"))
    except FileNotFoundError:
        return ConfigFile()


def check_format(path: str) -> None:
    """Refuse, with ``RepositoryFormatError``, a repository gitstate cannot write correctly.

    Its config must parse; ``core.repositoryformatversion`` must be 0 or 1; the
    objects must be SHA-1 (``extensions.objectFormat``), with no second object
    format and refs stored as files; in version 1 every extension must be one
    git knows, in version 0 none of those reserved to version 1 (git's rules).
    """
    config_path = os.path.join(path, "config")
    config = read_config(path)
    raw = _get(config, b"core", b"repositoryformatversion") or b"0"
    try:
        version = int(raw)
    except ValueError:
        version = -1
    if version not in (0, 1):
        raise RepositoryFormatError(f"{config_path}: core.repositoryformatversion is "
                                    f"{raw.decode(errors='replace')!r}; gitstate (like git) "
                                    "reads versions 0 and 1 only")
    extensions = {}
    for section in config.sections():
        if len(section) == 1 and section[0].lower() == b"extensions":
            extensions.update({key.lower(): value for key, value in config.items(section)})
    wanted = {b"objectformat": b"sha1", b"refstorage": b"files"}
    for name, value in sorted(extensions.items()):
        setting = f"{config_path}: extensions.{name.decode(errors='replace')}"
        if name in _EXTENSIONS_V1:
            if version == 0:
                raise RepositoryFormatError(f"{setting} needs repository format version 1, the "
                                            "config says 0 (git refuses it too)")
        elif name not in _EXTENSIONS_V0:
            if version == 1:
                raise RepositoryFormatError(f"{setting} is an extension git does not know "
                                            "(git refuses the repository too)")
            continue  # version 0 ignores unknown extensions
        if name == b"compatobjectformat" or value.lower() != wanted.get(name, value.lower()):
            raise RepositoryFormatError(
                f"{setting} = {value.decode(errors='replace')}: gitstate writes SHA-1 objects "
                "and loose refs only; use a repository made by git init --bare without "
                "--object-format or --ref-format")


def _get(config: ConfigFile, section: bytes, name: bytes) -> bytes | None:
    try:
        return config.get((section,), name)
    except KeyError:
        return None


def update_config(store: Store, change: Callable[[ConfigFile], T]) -> T:
    """Apply ``change`` to the repository's config and write it back; return what it returned.

    See the module docstring for the locks. ``change`` may raise (nothing is then
    written). ``ConcurrentUpdateError`` if a lock stays held past the lock timeout.
    """
    path = os.path.join(store.path, "config")
    lock_path = path + ".lock"
    with store._flock("config") as lock:
        assert lock is not None  # waited for
        with lock.guarding(lock_path):
            fd = store.create_lock(lock, lock_path, "git config is writing it?")
            try:
                config = read_config(store.path)
                result = change(config)
                with os.fdopen(fd, "wb", closefd=False) as f:
                    config.write_to_file(f)
                if store.durable:
                    os.fsync(fd)
                os.close(fd)
                fd = -1
                os.rename(lock_path, path)
                if store.durable:
                    fsync_path(store.path)
                return result
            finally:
                if fd != -1:
                    os.close(fd)
                    os.unlink(lock_path)
