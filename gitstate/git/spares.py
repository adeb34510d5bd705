"""Spare files: files made ahead of time for writers, and replaced files freed later.

A small write costs more in creating its file than in writing its bytes on many file
systems (an inode to allocate: on this project's test machine 0.02 ms to 0.6 ms, with
what was deleted nearby in the last minutes), and, on ext4 without a journal mounted with
``discard``, in freeing a file's block (the discard waits for the disk). A save creates
four files (three loose objects and its ref's ``<ref>.lock``) and frees one (the ref the
lock replaces); a LangGraph step creates three. So writers take files made ahead of time
and free nothing, and maintenance (in its background process) does both:

- ``<repo>/gitstate/spares/spare-*`` are empty files, :data:`INITIAL` in a new
  repository, topped up by each maintenance run (:func:`target`), which a writer starts
  once fewer than :data:`LOW` are left. :meth:`Spares.create` takes one with ``renameat2``
  and ``RENAME_NOREPLACE`` (Linux): atomic, so two writers never take the same one, and
  failing if the path exists, as ``O_CREAT | O_EXCL`` does, so git's ``<file>.lock``
  protocol holds. It is written into only if it is still an empty regular file of this
  user with no other link (a hard-linked copy of the repository keeps its files); else
  it is removed and the file created as usual.
- ``<repo>/gitstate/replaced/`` holds a second link to each file a ``<file>.lock`` is
  renamed over (:meth:`Spares.keep`), so that the rename frees nothing; maintenance
  deletes them (:meth:`Spares.free_replaced`). They are never written again: a reader
  that opened one before the rename reads what it held.

Without spares left, or without ``renameat2`` (another system, or a file system that
refuses it), files are created as usual. None of this is part of git's format: git ignores
``gitstate/``, and a repository without these folders works the same.
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
MOST = 4096  # empty spares kept at most (see target())
FOLDERS = 64  # spare folders kept at most (as many as fan-out folders are missing)
LOW = 64  # fewer left: maintenance runs to make more
_EMPTY = "spare-"  # how a spare's name starts
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP}


def target(auto_objects: int) -> int:
    """The empty spares a maintenance run leaves, for the writes until automatic maintenance
    runs again (after ``auto_objects`` loose objects: a save writes three, and a lock), at
    least :data:`INITIAL` and at most :data:`MOST`."""
    return min(MOST, max(INITIAL, 2 * auto_objects))


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


def _new_file(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


class Spares:
    """The spare and replaced files of the repository at ``path``; safe to share between threads."""

    def __init__(self, path: str):
        self.folder = os.path.join(path, "gitstate", "spares")
        self.folders = os.path.join(path, "gitstate", "spare-folders")
        self.replaced = os.path.join(path, "gitstate", "replaced")
        self.running_low = False  # fewer than LOW spares left: maintenance makes more
        self._names: list[str] = []  # spares not yet tried, from the last listing
        self._listed = -1  # the folder's mtime_ns when it was last listed
        self._rename: Callable[[str, str], None] | None = None  # set at first use
        self._usable = True  # until renameat2 is found missing or refused
        self._lock = threading.Lock()

    def create(self, path: str, mode: int) -> int:
        """``os.open(path, O_WRONLY | O_CREAT | O_EXCL, mode)``: a new empty file at ``path``,
        open for writing, a renamed spare if one is left; the same errors (``FileExistsError``
        if ``path`` exists, ``FileNotFoundError`` if its folder does not)."""
        while (name := self._next()) is not None:
            spare = os.path.join(self.folder, name)
            assert self._rename is not None  # _next() found spares usable
            try:
                self._rename(spare, path)
            except FileNotFoundError:
                if not os.path.isdir(os.path.dirname(path)):
                    self._give_back(name)
                    raise
                continue  # another writer took it
            except FileExistsError:
                self._give_back(name)
                raise
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    self._give_back(name)
                    raise
                self._usable = False  # this file system refuses the rename: create files
                break
            fd = self._opened(path, mode)
            if fd is not None:
                return fd
        self.running_low = self._usable
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def keep(self, path: str) -> None:
        """Link the file at ``path``, about to be replaced by a rename, into ``replaced/``, so
        that the rename frees nothing; nothing if it cannot be (no such file, an error)."""
        if not self.usable():
            return
        try:
            os.link(path, os.path.join(self.replaced, f"{random.getrandbits(64):016x}"))
        except FileNotFoundError:
            if os.path.exists(path):  # no folder yet: made once, then kept
                try:
                    os.makedirs(self.replaced, exist_ok=True)
                except OSError:
                    return
                self.keep(path)
        except OSError:
            return

    def make_folder(self, path: str) -> bool:
        """Rename a spare folder to ``path`` (whose parent exists): True if done, False if
        there is none left (``FileExistsError`` if ``path`` exists)."""
        if not self.usable() or not os.path.isdir(os.path.dirname(path)):
            return False
        try:
            names = os.listdir(self.folders)
        except (FileNotFoundError, NotADirectoryError):
            return False
        random.shuffle(names)
        for name in names:
            assert self._rename is not None  # usable() found it
            try:
                self._rename(os.path.join(self.folders, name), path)
            except FileNotFoundError:
                continue  # another writer took it
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    return False
                raise
            return True
        return False

    def fill(self, files: int, folders: int) -> int:
        """Make spares until there are ``files`` spare files and ``folders`` spare folders
        (at most :data:`FOLDERS`), where spares can be used; return how many were made. The
        caller holds the maintenance lock (or owns the repository alone)."""
        if not self.usable():
            return 0
        made = 0
        for where, count, make in ((self.folder, files, _new_file),
                                   (self.folders, min(folders, FOLDERS), os.mkdir)):
            if count <= 0:
                continue
            os.makedirs(where, exist_ok=True)
            for _ in range(count - len(os.listdir(where))):
                try:
                    make(os.path.join(where, f"{_EMPTY}{random.getrandbits(48):012x}"))
                except FileExistsError:
                    continue
                made += 1
        return made

    def free_replaced(self) -> int:
        """Delete the files :meth:`keep` kept; return how many. The caller holds the
        maintenance lock."""
        try:
            names = os.listdir(self.replaced)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        freed = 0
        for name in names:
            try:
                os.unlink(os.path.join(self.replaced, name))
            except FileNotFoundError:
                continue
            freed += 1
        return freed

    def usable(self) -> bool:
        """Whether spares are used here (``renameat2`` exists, and no rename was refused)."""
        if self._usable and self._rename is None:
            self._rename = _rename_noreplace()
            self._usable = self._rename is not None
        return self._usable

    def _next(self) -> str | None:
        """The name of a spare to try, or None if none is left. The folder is listed again
        when fewer than :data:`LOW` are left and it has changed since."""
        if not self.usable():
            return None
        with self._lock:
            if len(self._names) <= LOW:  # what is left may be more than was listed
                try:
                    changed = os.stat(self.folder).st_mtime_ns
                except FileNotFoundError:
                    return None
                if changed != self._listed:
                    self._listed = changed
                    self._names = os.listdir(self.folder)
                    random.shuffle(self._names)  # so that writers in other processes try others
            if not self._names:
                return None
            self.running_low = len(self._names) <= LOW
            return self._names.pop()

    def _give_back(self, name: str) -> None:
        with self._lock:
            self._names.append(name)

    @staticmethod
    def _opened(path: str, mode: int) -> int | None:
        """The spare just renamed to ``path``, open for writing with ``mode``'s permissions
        (within those the umask gave it); None, the file removed, unless it is an empty
        regular file of this user with one link."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:  # a link, a folder, or a file this user cannot write
            pass
        else:
            try:
                st = os.fstat(fd)
                if (stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_nlink == 1
                        and st.st_uid == os.geteuid()):
                    wanted = stat.S_IMODE(st.st_mode) & mode
                    if wanted != stat.S_IMODE(st.st_mode):
                        os.fchmod(fd, wanted)
                    return fd
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
