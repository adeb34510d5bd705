"""Spare files: files made ahead of time, which a writer renames to the file it needs.

A small write costs more in creating its file than in writing its bytes on many file
systems (an inode to allocate: on this project's test machine 0.02 ms to 0.6 ms, with
what was deleted nearby in the last minutes), and, on ext4 without a journal mounted with
``discard``, in freeing a file's block (the discard waits for the disk). A save creates
four files (three loose objects and its ref's ``<ref>.lock``) and frees one (the ref the
lock replaces); a LangGraph step creates three. So ``<repo>/gitstate/spares/`` holds:

- ``spare-*``: empty files, :data:`INITIAL` in a new repository, topped up to
  :data:`TARGET` by each maintenance run (in its background process), which a writer
  starts once fewer than :data:`LOW` are left;
- ``old-*``: files that ref updates replaced, kept by a second link made just before
  the rename over them (:meth:`Spares.keep`) instead of being freed, and overwritten by a
  later ``<file>.lock`` (:meth:`Spares.replacement`).

A spare is taken with ``renameat2`` and ``RENAME_NOREPLACE`` (Linux): atomic, so two
writers never take the same one, and failing if the path exists, as ``O_CREAT | O_EXCL``
does, so git's ``<file>.lock`` protocol holds. It is written into only if it is a regular
file of this user with no other link (a ref still naming it, or a hard-linked copy of the
repository, keeps its content); else it is removed and the file created as usual. Without
spares left, or without ``renameat2`` (another system, or a file system that refuses it),
files are created as usual. Spares are not part of git's format: git ignores
``gitstate/``, and a repository without them works the same.
"""

from __future__ import annotations

import errno
import functools
import os
import random
import stat
import threading
from collections.abc import Callable

INITIAL = 128  # empty spares in a new repository (each costs its creation when it is made)
TARGET = 1024  # after each maintenance run: ~250 saves (85 between automatic runs by default)
LOW = 64  # fewer left (that this process knows of): maintenance runs to make more
_EMPTY, _OLD = "spare-", "old-"  # the two kinds of spares, by the start of their names
_BLOCK = 4096  # an old file reused only up to this size
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP}


@functools.cache
def _rename_noreplace() -> Callable[[str, str], None] | None:
    """A function renaming a file unless the new name exists (``FileExistsError``), with
    the C library's ``renameat2``; None where there is none. ctypes is imported only here,
    so that a reader of refs alone (shell completion) never loads it."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a C library without it
        return None
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    renameat2.restype = ctypes.c_int

    def rename_noreplace(source: str, target: str) -> None:
        if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), source, None, target)

    return rename_noreplace


class Spares:
    """The spare files of the repository at ``path``; safe to share between threads."""

    def __init__(self, path: str):
        self.folder = os.path.join(path, "gitstate", "spares")
        self.running_low = False  # fewer than LOW empty spares left: maintenance makes more
        self._names: dict[str, list[str]] = {_EMPTY: [], _OLD: []}  # not yet tried, by kind
        self._listed = -1  # the folder's mtime_ns when it was last listed
        self._rename: Callable[[str, str], None] | None = None  # set at first use
        self._usable = True  # until renameat2 is found missing or refused
        self._lock = threading.Lock()

    def create(self, path: str, mode: int) -> int:
        """``os.open(path, O_WRONLY | O_CREAT | O_EXCL, mode)``: a new empty file at ``path``,
        open for writing, a renamed spare if one is left; the same errors (``FileExistsError``
        if ``path`` exists, ``FileNotFoundError`` if its folder does not)."""
        return self._take(path, mode, (_EMPTY,))[0]

    def replacement(self, path: str) -> tuple[int, int]:
        """:meth:`create` of a ``<file>.lock`` (mode 0o644), from an ``old-*`` spare if there is
        one: (descriptor, size of the old bytes it holds, to be written over and truncated)."""
        return self._take(path, 0o644, (_OLD, _EMPTY))

    def keep(self, path: str) -> None:
        """Keep the file at ``path``, about to be replaced by a rename, as an ``old-*`` spare;
        nothing if it cannot be (no such file, no spares here, an error)."""
        if not self.usable():
            return
        name = f"{_OLD}{random.getrandbits(48):012x}"
        try:
            os.link(path, os.path.join(self.folder, name))
        except OSError:
            return
        with self._lock:
            self._names[_OLD].append(name)

    def fill(self, count: int) -> int:
        """Make empty spares until there are ``count``, where spares can be used; return how
        many were made. The caller holds the maintenance lock (or owns the repository alone)."""
        if not self.usable():
            return 0
        os.makedirs(self.folder, exist_ok=True)
        made = 0
        for _ in range(count - sum(name.startswith(_EMPTY) for name in os.listdir(self.folder))):
            try:
                os.close(os.open(os.path.join(self.folder, f"{_EMPTY}{random.getrandbits(48):012x}"),
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            made += 1
        return made

    def usable(self) -> bool:
        """Whether spares are used here (``renameat2`` exists, and no rename was refused)."""
        if self._usable and self._rename is None:
            self._rename = _rename_noreplace()
            self._usable = self._rename is not None
        return self._usable

    def _take(self, path: str, mode: int, kinds: tuple[str, ...]) -> tuple[int, int]:
        for kind in kinds:
            while (name := self._next(kind)) is not None:
                spare = os.path.join(self.folder, name)
                assert self._rename is not None  # _next() found spares usable
                try:
                    self._rename(spare, path)
                except FileNotFoundError:
                    if not os.path.isdir(os.path.dirname(path)):
                        self._give_back(kind, name)
                        raise
                    continue  # another writer took it
                except FileExistsError:
                    self._give_back(kind, name)
                    raise
                except OSError as exc:
                    if exc.errno not in _UNSUPPORTED:
                        self._give_back(kind, name)
                        raise
                    self._usable = False  # this file system refuses the rename: create files
                    break
                opened = self._opened(path, mode, kind == _EMPTY)
                if opened is not None:
                    return opened
        self.running_low = self._usable
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), 0

    def _next(self, kind: str) -> str | None:
        """The name of a spare of ``kind`` to try, or None if none is left. The folder is
        listed again when fewer than :data:`LOW` empty ones are left and it has changed since."""
        if not self.usable():
            return None
        with self._lock:
            names = self._names[kind]
            if len(names) <= LOW and kind == _EMPTY:  # what is left may be more than was listed
                try:
                    changed = os.stat(self.folder).st_mtime_ns
                except FileNotFoundError:
                    return None
                if changed != self._listed:
                    self._listed = changed
                    listing = os.listdir(self.folder)
                    random.shuffle(listing)  # so that writers in other processes try others
                    for which, found in self._names.items():
                        found[:] = [name for name in listing if name.startswith(which)]
            if not names:
                return None
            if kind == _EMPTY:
                self.running_low = len(names) <= LOW
            return names.pop()

    def _give_back(self, kind: str, name: str) -> None:
        with self._lock:
            self._names[kind].append(name)

    @staticmethod
    def _opened(path: str, mode: int, empty: bool) -> tuple[int, int] | None:
        """The spare just renamed to ``path``, open for writing with ``mode``'s permissions
        (within those the umask gave it), and its size; None, the file removed, unless it is
        a regular file of this user with one link, empty if ``empty``, else of one block at
        most (so that truncating it frees nothing)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:  # a link, a folder, or a file this user cannot write
            pass
        else:
            try:
                st = os.fstat(fd)
                if (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid()
                        and st.st_size <= (0 if empty else _BLOCK)):
                    wanted = stat.S_IMODE(st.st_mode) & mode
                    if wanted != stat.S_IMODE(st.st_mode):
                        os.fchmod(fd, wanted)
                    return fd, st.st_size
            except BaseException:
                os.close(fd)
                os.unlink(path)
                raise
            os.close(fd)
        for remove in (os.unlink, os.rmdir):
            try:
                remove(path)
                break
            except OSError:
                continue
        return None
