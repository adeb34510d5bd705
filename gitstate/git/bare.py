"""Bare repositories: creating one, and checking that a folder is one gitstate can use."""

from __future__ import annotations

import os
import random
import shutil

from dulwich.config import ConfigFile
from dulwich.errors import NotGitRepository
from dulwich.repo import Repo

from ..errors import NotARepositoryError
from . import spares
from .config import check_format, update_config
from .dulwich_types import ref_name
from .locks import fsync_path
from .store import Store


def create(path: str, store: Store) -> None:
    """Create a bare repository at ``path`` (``store``'s; missing or an empty folder), its
    ``HEAD`` naming ``refs/heads/main``, with gitstate's settings in its config and its
    first spare files (:mod:`~gitstate.git.spares`).

    It is built whole in a temporary folder beside ``path`` and renamed into place, so
    a process killed meanwhile leaves no half-made repository there, and of several
    processes creating it at once one wins and the others open what it made. Into an
    existing empty folder (which may be someone's working directory) its entries are
    moved instead, ``HEAD`` last: until then git and gitstate see no repository.
    """
    check_head(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotARepositoryError(f"{path} exists and is not a directory")
    if os.path.isdir(path) and os.listdir(path):
        raise NotARepositoryError(f"{path} exists, is not empty and is not a git repository")
    into_folder = os.path.isdir(path)
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{name}.gitstate-init-{os.getpid()}-{random.getrandbits(32):08x}")
    try:
        os.mkdir(tmp)
        repo = Repo.init_bare(tmp)
        repo.refs.set_symbolic_ref(ref_name(b"HEAD"), ref_name(b"refs/heads/main"))
        repo.close()
        made = Store(tmp, durable=store.durable, lock_timeout=store.lock_timeout, cache_bytes=0)
        update_config(made, _gitstate_settings)
        made.spares.fill(spares.INITIAL, 0)
        if into_folder:
            for entry in sorted(os.listdir(tmp), key=lambda entry: entry == "HEAD"):
                os.rename(os.path.join(tmp, entry), os.path.join(path, entry))
        else:
            try:
                os.rename(tmp, path)
            except OSError:
                if not exists(path):  # not another process's repository: a real failure
                    raise
                check(path)  # another process made it first: that one is the repository
        if store.durable:
            fsync_path(path)
            fsync_path(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def discard(path: str, *, keep_folder: bool) -> None:
    """Remove a repository this process just created (a clone that failed), leaving
    ``path`` as it was: an empty folder if ``keep_folder``, else nothing."""
    shutil.rmtree(path)
    if keep_folder:
        os.mkdir(path)


def exists(path: str) -> bool:
    """Whether ``path`` looks like a repository already (``objects/`` and ``HEAD``)."""
    return os.path.exists(os.path.join(path, "objects")) and os.path.exists(os.path.join(path, "HEAD"))


def check(path: str) -> None:
    """``NotARepositoryError`` unless ``path`` is a bare repository gitstate can write
    (``RepositoryFormatError`` for a format it cannot: see :func:`config.check_format`)."""
    if not os.path.isdir(path):
        raise NotARepositoryError(f"{path} does not exist or is not a directory")
    check_format(path)
    check_head(path)
    try:
        repo = Repo(path)
    except NotGitRepository:
        raise NotARepositoryError(f"{path} is not a git repository") from None
    bare = repo.bare
    repo.close()
    if not bare:
        raise NotARepositoryError(f"{path} is a git work tree; gitstate needs a bare repository")


def check_head(path: str) -> None:
    """``NotARepositoryError`` naming the missing ``HEAD`` of what is otherwise a repository."""
    if (os.path.isdir(os.path.join(path, "objects")) and os.path.isdir(os.path.join(path, "refs"))
            and not os.path.lexists(os.path.join(path, "HEAD"))):
        raise NotARepositoryError(
            f"{path} has objects/ and refs/ but no HEAD file, which git needs to see a repository "
            f"(damaged?); restore it with: printf 'ref: refs/heads/main\\n' > {os.path.join(path, 'HEAD')}")


def _gitstate_settings(config: ConfigFile) -> None:
    config.set((b"gitstate",), b"version", b"1")
    config.set((b"gc",), b"auto", b"0")  # no automatic gc by git or dulwich: gitstate's maintenance
