"""Spare files: files made ahead of time for writers, and replaced files freed later.

A small write costs more in creating its file than in writing its bytes on many file
systems (an inode to allocate: on this project's test machine 0.02 ms to 0.6 ms, with
what was deleted nearby in the last minutes), and, on ext4 without a journal mounted with
``discard``, in freeing a file's block (the discard waits for the disk). A save creates
four files (three loose objects and its ref's ``<ref>.lock``) and frees one (the ref the
lock replaces); a LangGraph step creates three. So writers take files made ahead of time
and free nothing, and maintenance (in its background process) does both:

- ``<repo>/gitstate/spares/spare-*`` are empty files, :data:`INITIAL` in a new
  repository, topped up by each maintenance run at its start and at its end
  (:func:`target`), which a writer starts once :data:`LOW` are left; each is
  made in ``gitstate/spares-new/`` and renamed in (:meth:`Spares.fill`), so that a writer
  never waits for a creation. :meth:`Spares.create` takes one with ``renameat2``
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

import functools
import os
import random
import shutil
import stat
import threading
from collections.abc import Callable

INITIAL = 256  # empty spares in a new repository (each costs its creation when it is made)
MOST = 4096  # empty spares kept at most (see target())
FOLDERS = 64  # spare folders kept at most (as many as fan-out folders are missing)
LOW = 192  # this many left: maintenance runs to make more (its first comes ~0.1 s later)
MISSED = 32  # names tried in vain since the last listing: other writers take too, list again
_EMPTY = "spare-"  # how a spare's name starts
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def target(auto_objects: int) -> int:
    """The empty spares a maintenance run leaves, for the writes until automatic maintenance
    runs again (after ``auto_objects`` loose objects: a save writes three, and a lock) and
    while that run packs (none starts while one runs; a LangGraph writer takes one every
    ~0.8 ms), at least :data:`INITIAL` and at most :data:`MOST`."""
    return min(MOST, max(INITIAL, 4 * auto_objects))


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


@functools.cache
def _umask() -> int:
    """This process's umask, read once (from /proc: setting it to read it back would race
    with other threads creating files)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _discard(path: str) -> None:
    """Remove what is at ``path`` in a spares folder (something that is not a usable spare)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _remove_ours(path: str, ours: os.stat_result) -> None:
    """Remove ``path`` if it is the file ``ours`` (a spare renamed there, then interrupted)."""
    try:
        st = os.lstat(path)
        if (st.st_ino, st.st_dev) == (ours.st_ino, ours.st_dev):
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(path)
            else:
                os.unlink(path)
    except OSError:
        pass


def _new_file(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


class Spares:
    """The spare and replaced files of the repository at ``path``; safe to share between threads."""

    def __init__(self, path: str):
        self.path = path
        self.folder = os.path.join(path, "gitstate", "spares")
        self.folders = os.path.join(path, "gitstate", "spare-folders")
        self.replaced = os.path.join(path, "gitstate", "replaced")
        self.new = os.path.join(path, "gitstate", "spares-new")  # where fill() makes them
        self.running_low = False  # the last listing found LOW or fewer: maintenance makes more
        self.keep_replaced = False  # whether keep() keeps: set where maintenance runs by itself
        self._names: list[str] = []  # spares not yet tried, from the last listing
        self._listed = -1  # the folder's mtime_ns when it was last listed
        self._found = False  # whether that listing found any
        self._low = False  # whether it found LOW or fewer (then listed again once all are tried)
        self._missed = 0  # names tried since, gone (other writers took them) or not spares
        self._rename: Callable[[str, str], None] | None = None  # set at first use
        self._usable = True  # until renameat2 is found missing or refused
        self._lock = threading.Lock()

    def create(self, path: str, mode: int) -> int:
        """``os.open(path, O_WRONLY | O_CREAT | O_EXCL, mode)``: a new empty file at ``path``,
        open for writing, a renamed spare if one is left; the same errors (``FileExistsError``
        if ``path`` exists, ``FileNotFoundError`` if its folder does not)."""
        while (name := self._next()) is not None:
            fd = self._take(os.path.join(self.folder, name), path, mode)
            if fd is not None:
                return fd
            self._missed += 1  # (a lost count between threads is harmless)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def make_folder(self, path: str) -> bool:
        """Rename a spare folder to ``path`` (whose parent exists): True if done, False if
        there is none left (``FileExistsError`` if ``path`` exists)."""
        if not self.usable() or not os.path.isdir(os.path.dirname(path)):
            return False
        try:
            names = os.listdir(self.folders)
        except OSError:
            return False
        random.shuffle(names)
        for name in names:
            spare = os.path.join(self.folders, name)
            try:
                st = os.lstat(spare)
                if not (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not os.listdir(spare)):
                    _discard(spare)
                    continue
            except FileNotFoundError:
                continue  # another writer took it
            if not self._renamed(spare, path, st):
                if not self._usable:
                    return False
                continue
            try:
                wanted = 0o777 & ~_umask()
                if stat.S_IMODE(st.st_mode) != wanted:
                    os.chmod(path, wanted)
            except BaseException:
                _remove_ours(path, st)
                raise
            return True
        return False

    def keep(self, path: str) -> None:
        """Link the file at ``path``, about to be replaced by a rename, into ``replaced/``, so
        that the rename frees nothing (only where maintenance runs by itself, to free them:
        :attr:`keep_replaced`); nothing if it cannot be (no such file, an error)."""
        if not self.keep_replaced or not self.usable():
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

    def fill(self, files: int, folders: int) -> int:
        """Make spares until there are ``files`` spare files and ``folders`` spare folders
        (at most :data:`FOLDERS`, and spare folders beyond it removed), where spares can be
        used and this user owns the repository; return how many were made. The caller holds
        the maintenance lock (or owns the repository alone).

        Each is made in ``gitstate/spares-new/``, then renamed into its folder: a file
        system holds a folder's lock while it finds an inode for a new entry (up to ~1 ms
        here), and writers taking spares from that folder would wait for it. Where that
        rename is refused, or ``spares-new`` cannot be made, it stops (writers create their
        files); an error making a spare is raised.
        """
        try:
            if not self.usable() or os.stat(self.path).st_uid != os.geteuid():
                return 0  # (another user's spares: its writers could not take them)
        except OSError:
            return 0
        assert self._rename is not None  # usable() found it
        made = 0
        for where, count, make in ((self.folder, files, _new_file),
                                   (self.folders, min(folders, FOLDERS), os.mkdir)):
            try:
                names = os.listdir(where)
            except FileNotFoundError:
                names = []
            except OSError:  # not a folder: left as it is (files are then created)
                continue
            for extra in names[max(count, 0):] if make is os.mkdir else ():
                _discard(os.path.join(where, extra))
            if count <= len(names):
                continue
            os.makedirs(where, exist_ok=True)
            try:
                _discard(self.new)  # what a killed run left (or something that is not a folder)
                os.makedirs(self.new, exist_ok=True)
            except OSError:  # (gitstate/ read-only, say): none made, writers create their files
                return made
            for _ in range(count - len(names)):
                name = f"{_EMPTY}{random.getrandbits(48):012x}"
                spare = os.path.join(self.new, name)
                try:
                    make(spare)
                except FileExistsError:
                    continue  # (a name taken: a 48-bit random collision)
                try:
                    self._rename(spare, os.path.join(where, name))
                except FileExistsError:
                    _discard(spare)
                    continue
                except OSError:  # refused (EINVAL on NFS, EXDEV behind a link to another file
                    _discard(spare)  # system): writers could not take spares either
                    return made
                made += 1
        return made

    def free_replaced(self) -> int:
        """Delete the files :meth:`keep` kept (and anything else in ``replaced/``); return how
        many. The caller holds the maintenance lock."""
        try:
            names = os.listdir(self.replaced)
        except OSError:
            return 0
        for name in names:
            _discard(os.path.join(self.replaced, name))
        return len(names)

    def usable(self) -> bool:
        """Whether spares are used here (``renameat2`` exists, and no rename was refused)."""
        if self._usable and self._rename is None:
            self._rename = _rename_noreplace()
            self._usable = self._rename is not None
        return self._usable

    def _take(self, spare: str, path: str, mode: int) -> int | None:
        """The spare file ``spare`` renamed to ``path``, open for writing with the permissions
        ``os.open`` would give and the time of now (maintenance removes temporary files by
        their age); None if another writer took it, or if it is not an empty
        regular file of this user with one link (then it is removed), or if the rename is
        refused here (then spares are no longer used)."""
        try:
            fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # another writer took it
        except OSError:  # a link, a folder, a file this user cannot write
            self._drop(spare)
            return None
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_nlink == 1
                    and st.st_uid == os.geteuid()):
                os.close(fd)
                self._drop(spare)
                return None
            if not self._renamed(spare, path, st):
                os.close(fd)
                return None
        except BaseException:
            os.close(fd)
            raise
        try:
            wanted = mode & ~_umask()
            if stat.S_IMODE(st.st_mode) != wanted:
                os.fchmod(fd, wanted)
            os.utime(fd)  # its time is now: not a killed writer's old file to maintenance
        except BaseException:  # (an I/O error): nothing left at path, as os.open would
            os.close(fd)
            _remove_ours(path, st)
            raise
        return fd

    def _drop(self, spare: str) -> None:
        """Remove ``spare``, which cannot be taken; if it cannot be removed either, this user
        cannot change the folder (another user's repository): spares are not used here."""
        _discard(spare)
        if os.path.lexists(spare):
            self._usable = False

    def _renamed(self, spare: str, path: str, st: os.stat_result) -> bool:
        """Rename ``spare`` (which is ``st``) to ``path``: False if it was gone, or if the
        file system refuses the rename (then spares are no longer used); ``FileExistsError``
        if ``path`` exists, ``FileNotFoundError`` if its folder does not. Interrupted, it
        leaves nothing at ``path``."""
        assert self._rename is not None  # usable() found it
        try:
            self._rename(spare, path)
        except FileNotFoundError:
            if not os.path.isdir(os.path.dirname(path)):
                raise
            return False  # another writer took it
        except FileExistsError:
            raise
        except OSError:  # EINVAL, EXDEV, EACCES, EROFS...: create files instead
            self._usable = False
            return False
        except BaseException:  # interrupted: the rename may have been made
            _remove_ours(path, st)
            raise
        return True

    def _next(self) -> str | None:
        """The name of a spare to try, or None if none is left. The folder is listed again
        (if it has changed since) when the names listed fall to :data:`LOW`, then once they
        are all tried, and after :data:`MISSED` names tried in vain (other writers took
        them): not at each take, which changes it."""
        if not self.usable():
            return None
        with self._lock:
            if (not self._names or (len(self._names) <= LOW and not self._low)
                    or self._missed >= MISSED):
                try:
                    changed = os.stat(self.folder).st_mtime_ns
                    # (an mtime can stay the same over changes a few ms apart: once all
                    # listed names were tried, the folder is listed again all the same)
                    if changed != self._listed or (not self._names and self._found):
                        self._listed = changed
                        self._names = os.listdir(self.folder)
                        self._found = bool(self._names)
                        random.shuffle(self._names)  # so that writers in other processes try others
                except OSError:  # no such folder (or not one): files are created
                    return None
                self._missed = 0
                self._low = self.running_low = len(self._names) <= LOW  # (none: maintenance makes more)
            if not self._names:
                return None
            return self._names.pop()
