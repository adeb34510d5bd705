"""The repository's git config: one reader, one writer, and what gitstate refuses to open.

Every change is a read-modify-write (:func:`update_config`) under two locks:
gitstate's ``flock`` ``gitstate/locks/config``, so gitstate writers wait for
each other, and git's own protocol, so ``git config`` and gitstate never lose
each other's changes: ``config.lock`` created with O_EXCL, the new content
written into it (fsynced when durable), then renamed over ``config``. A
``config.lock`` held by a live process (``git config``) is waited for, with
backoff, up to the lock timeout (then :class:`ConcurrentUpdateError`); one left
by a killed gitstate writer is recognised and removed by the next writer (its
path is recorded in the ``flock``'s file: :mod:`gitstate.git.locks`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

from dulwich.config import ConfigFile

from ..errors import RepositoryFormatError
from .store import Store

T = TypeVar("T")
Config = ConfigFile  # what read_config returns and update_config's change receives

# the extensions gitstate (and the dulwich it uses) can open, with the repository format
# version git requires for each; git's others, and unknown ones, are refused
_EXTENSIONS = {b"objectformat": 1, b"relativeworktrees": 1, b"worktreeconfig": 0}


class _Lines:
    """A file whose lines dulwich's parser reads one by one, counting them."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.number = 0

    def readlines(self) -> Iterator[bytes]:
        for number, line in enumerate(self.f, 1):
            self.number = number
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

    Its config must parse; ``core.repositoryformatversion`` must be 0 or 1 (as
    git requires); the objects must be SHA-1 (``extensions.objectFormat``); any
    other extension must be one gitstate can honour (``worktreeConfig``,
    ``relativeWorktrees``), in a version git accepts it in.
    """
    config_path = os.path.join(path, "config")
    config = read_config(path)
    raw = _get(config, b"core", b"repositoryformatversion") or b"0"
    version = int(raw) if raw.strip().isdigit() else -1
    if version not in (0, 1):
        raise RepositoryFormatError(f"{config_path}: core.repositoryformatversion is "
                                    f"{raw.decode(errors='replace')!r}; gitstate (like git) "
                                    "reads versions 0 and 1 only")
    for section in config.sections():
        if len(section) != 1 or section[0].lower() != b"extensions":
            continue
        for name, value in config.items(section):
            setting = f"{config_path}: extensions.{name.decode(errors='replace')}"
            needs = _EXTENSIONS.get(name.lower())
            if needs is None:
                raise RepositoryFormatError(
                    f"{setting} is an extension gitstate cannot honour (it knows objectFormat "
                    "= sha1, worktreeConfig and relativeWorktrees)")
            if needs > version:
                raise RepositoryFormatError(f"{setting} needs repository format version {needs}, "
                                            f"the config says {version} (git refuses it too)")
            if name.lower() == b"objectformat" and value.lower() != b"sha1":
                raise RepositoryFormatError(
                    f"{setting} = {value.decode(errors='replace')}: gitstate writes SHA-1 objects "
                    "only; use a repository made by git init --bare without --object-format")


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
    with store.locks.flock("config") as lock:
        assert lock is not None  # waited for
        with store.locks.replacing(lock, path, "git config is writing it?") as file:
            config = read_config(store.path)
            result = change(config)
            content = io.BytesIO()
            config.write_to_file(content)
            file.write(content.getvalue())
            file.commit()
            return result
