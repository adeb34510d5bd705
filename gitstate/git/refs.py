"""Refs: parsed with git's rules (one parser for every reader), read, and moved by
compare-and-swap with their reflogs.

The parsers follow git (``refs/files-backend.c``, ``refs/packed-backend.c``, the
reflog reader), checked against the git binary in ``tests/test_reachability.py``
and ``tests/test_refs.py``; :class:`Refs` reads the refs of a repository with
them, and maintenance (:mod:`gitstate.git.reclaim`) its roots:

- a loose ref, once trailing whitespace is removed, is ``ref:``, optional
  whitespace and a ref name (a symbolic ref), or 40 hex digits of either case
  followed by the end or by whitespace (what follows is ignored: FETCH_HEAD
  keeps data there);
- ``packed-refs`` is an optional header line ``# pack-refs with: ...``, then
  lines ``<40 hex> <refname>``, each optionally followed by ``^<40 hex>`` (what
  the tag before peels to); every line ends with a newline (git: "unterminated
  line in packed-refs"), and git refuses any other line;
- a reflog line starts with ``<old> <new> `` (40 hex digits each; forty zeros
  name no object: a ref created or deleted);
- a journal line (gitstate's record of an unfinished multi-ref update,
  :mod:`gitstate.git.journal`) is ``<refname> <old> <new>``, old and new 40
  lower-case hex digits or ``-``.

Whitespace is git's: space, tab, newline, carriage return (not ``\\v``, ``\\f``).
SHAs come back in lower case. What does not parse raises
:class:`CorruptObjectError` naming the file (and line) and what it holds; the
caller adds what to do.

A ref moves (:meth:`Refs.update`) with git's protocol, under ``<ref>.lock``
(:meth:`~gitstate.git.locks.Locks.replacing`): the ref is compared with the
expected value while the lock is held, its reflog entry is appended, then the
lock file is renamed over the ref. Deleting a ref also removes it from
``packed-refs`` (rewritten under git's ``packed-refs.lock``) and deletes its
reflog, as git does.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from ..errors import CorruptObjectError, GitstateError, InvalidArgumentError
from ..ids import is_sha
from .locks import Locks, RefLock, fsync_path, make_folders

ZERO = b"0" * 40  # "no object" in reflogs and ref updates
SPACE = b" \t\n\r"  # git's isspace()
_HEX = re.compile(rb"[0-9a-fA-F]{40}")
_REFNAME = re.compile(rb"refs(?:/(?!\.)[^/\x00-\x20\x7f~^:?*\[\\]+)+")  # components not starting with '.'
_HEADER = b"# pack-refs with:"
# a packed-refs file as git and gitstate write it (lower-case SHAs, one space), whose names
# pass is_refname if none holds what _WELL_FORMED_NOT leaves out: parse_packed's fast path
_WELL_FORMED = re.compile(rb"(?:# pack-refs with:[^\n]*\n)?"
                          rb"(?:[0-9a-f]{40} refs(?:/[^/\x00-\x20\x7f~^:?*\[\\]+)+\n(?:\^[0-9a-f]{40}\n)?)*")
_WELL_FORMED_NOT = (b"/.", b"..", b"@{", b".\n", b".lock/")  # (and so no name ends in .lock)
_ENTRY = re.compile(rb"^([0-9a-f]{40}) ([^\n]+)\n(?:\^([0-9a-f]{40})\n)?", re.MULTILINE)
SYMREF_DEPTH = 5  # symbolic refs followed in a row at most, as git does


class RefValue(NamedTuple):
    """What a loose ref holds: a SHA (lower-case hex), or the name of the ref it points to."""

    sha: bytes | None
    target: bytes | None = None


class PackedRef(NamedTuple):
    """One ref of ``packed-refs``: its SHA and, for an annotated tag, what it peels to."""

    sha: bytes
    peeled: bytes | None = None


class PackedRefs(dict[bytes, PackedRef]):
    """The refs of a ``packed-refs`` file by name, in the file's order, and its header line
    (with its newline; empty if it has none)."""

    header: bytes = b""


def is_refname(name: bytes) -> bool:
    """Whether ``name`` is a ref name under ``refs/`` that ``git check-ref-format`` accepts."""
    return (_REFNAME.fullmatch(name) is not None and b".." not in name and b"@{" not in name
            and not name.endswith((b".", b".lock")) and b".lock/" not in name)


def _sha_at_start(text: bytes) -> bytes | None:
    """The SHA ``text`` starts with, if followed by its end or whitespace (git's parse_oid_hex)."""
    if _HEX.fullmatch(text[:40]) and (len(text) == 40 or text[40:41] in (b" ", b"\t", b"\n", b"\r")):
        return text[:40].lower()
    return None


def parse_loose(content: bytes, where: str) -> RefValue:
    """The value of a loose ref file (``where`` names it in the error)."""
    text = content.rstrip(SPACE)
    if text.startswith(b"ref:"):
        target = text[4:].lstrip(SPACE)
        if is_refname(target):
            return RefValue(None, target)
    else:
        sha = _sha_at_start(text)
        if sha is not None:
            return RefValue(sha)
    raise CorruptObjectError(f"{where} holds {content[:80]!r}, neither a SHA nor a symbolic ref")


def parse_head_file(name: str, content: bytes) -> list[bytes]:
    """The SHAs a ``*HEAD`` file of the repository root names (none for a symbolic ref).

    A loose ref, or several lines each starting with a SHA (FETCH_HEAD,
    MERGE_HEAD); only FETCH_HEAD may be empty (a fetch that brought nothing).
    """
    text = content.rstrip(SPACE)
    if text.startswith(b"ref:") or (not text and name != "FETCH_HEAD"):
        parse_loose(content, name)  # a symbolic ref, else the error
        return []
    shas = []
    for number, line in enumerate(text.split(b"\n") if text else [], 1):
        sha = _sha_at_start(line)
        if sha is None:
            raise CorruptObjectError(f"{name} line {number} is {line[:80]!r}, which does not start "
                                     "with a SHA")
        shas.append(sha)
    return shas


def parse_packed(data: bytes) -> PackedRefs:
    """The refs of a ``packed-refs`` file; any line git would refuse raises."""
    if _WELL_FORMED.fullmatch(data) and not any(bad in data for bad in _WELL_FORMED_NOT):
        refs = PackedRefs()  # checked as a whole, in C (100,000 refs: ~0.1 s instead of ~0.6 s)
        entries = _ENTRY.findall(data)
        refs.update((name, PackedRef(sha, peeled or None)) for sha, name, peeled in entries)
        if len(refs) == len(entries):  # (else a name comes twice: the line-by-line parse says where)
            refs.header = data[:data.index(b"\n") + 1] if data.startswith(b"#") else b""
            return refs
    refs = PackedRefs()
    lines = data.split(b"\n")
    if lines.pop():
        raise CorruptObjectError(f"packed-refs: the last line {data[-80:]!r} is unterminated "
                                 "(git: unterminated line in packed-refs)")
    last = None  # the ref a peeled line may follow
    for number, line in enumerate(lines, 1):
        problem = None
        if number == 1 and line.startswith(b"#"):
            if not line.startswith(_HEADER):
                problem = f"is not a '{_HEADER.decode()}' header (git: unexpected line)"
            refs.header = line + b"\n"
        elif line.startswith(b"^"):
            if last is None or not _HEX.fullmatch(line[1:]):
                problem = "is not a peeled line following a ref (git: unexpected line)"
            else:
                refs[last] = PackedRef(refs[last].sha, line[1:].lower())
                last = None
        else:
            sha, name = _sha_at_start(line), line[41:]
            if sha is None:
                problem = "is not '<sha> <refname>' (git: unexpected line)"
            elif not is_refname(name):
                problem = "names an invalid ref (git ignores it, or stops)"
            elif name in refs:
                problem = "names a ref listed before (git reads one of the two)"
            else:
                refs[name] = PackedRef(sha)
                last = name
        if problem:
            raise CorruptObjectError(f"packed-refs line {number}: {line[:100]!r} {problem}")
    return refs


def format_packed(refs: PackedRefs) -> bytes:
    """A ``packed-refs`` file of ``refs``, as git writes it (what :func:`parse_packed` reads)."""
    return refs.header + b"".join(
        b"%s %s\n" % (entry.sha, name) + (b"^%s\n" % entry.peeled if entry.peeled else b"")
        for name, entry in refs.items())


def parse_reflog(lines: Iterator[bytes], where: str) -> Iterator[tuple[int, bytes, bytes]]:
    """(line number, old, new) of each line of a reflog (``lines`` keep their newline)."""
    for number, line in enumerate(lines, 1):
        old, new = line[:40], line[41:81]
        if not (line.endswith(b"\n") and line[40:41] == line[81:82] == b" "
                and _HEX.fullmatch(old) and _HEX.fullmatch(new)):
            raise CorruptObjectError(f"{where} line {number} is {line[:100]!r}, not "
                                     "'<old sha> <new sha> <who> <when>\\t<message>\\n'")
        yield number, old.lower(), new.lower()


def parse_journal(data: bytes, where: str) -> list[tuple[int, bytes, bytes, bytes]]:
    """(line number, refname, old, new) of each line of a journal; old and new are a SHA or ``-``."""
    lines = data.split(b"\n")
    if not lines[-1]:  # after the final newline (or an empty journal)
        lines.pop()
    updates = []
    for number, line in enumerate(lines, 1):
        fields = line.split(b" ")
        if not (len(fields) == 3 and is_refname(fields[0])
                and all(value == b"-" or is_sha(value) for value in fields[1:])):
            raise CorruptObjectError(f"{where} line {number} is {line[:100]!r}, not "
                                     "'<refname> <old sha or -> <new sha or ->'")
        updates.append((number, fields[0], fields[1], fields[2]))
    return updates


def read_file(path: str) -> bytes:
    """The whole content of a small file (a ref)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 4096)
        if len(data) == 4096:  # rare: a ref file of 4 kB or more
            data += b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
        return data
    finally:
        os.close(fd)


class Refs:
    """The refs of the repository at ``path``: read with the parsers above, moved by
    compare-and-swap under ``locks``."""

    def __init__(self, path: str, locks: Locks):
        self.path, self.locks = path, locks
        self._packed: tuple[tuple[int, int, int], dict[bytes, bytes]] | None = None

    # -- reading ---------------------------------------------------------------------
    def packed(self) -> dict[bytes, bytes]:
        """The refs of ``packed-refs`` with their SHAs (cached while the file is unchanged);
        ``CorruptObjectError`` for a file git would refuse."""
        path = os.path.join(self.path, "packed-refs")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._packed is None or self._packed[0] != key:
            with open(path, "rb") as f:
                packed = parse_packed(f.read())
            self._packed = (key, {name: entry.sha for name, entry in packed.items()})
        return self._packed[1]

    def _value(self, ref: bytes) -> RefValue | None:
        """What a ref holds (loose, else packed); None if it does not exist."""
        try:
            content = read_file(os.path.join(self.path, os.fsdecode(ref)))
        except (FileNotFoundError, NotADirectoryError):
            sha = self.packed().get(ref)
            return None if sha is None else RefValue(sha)
        except IsADirectoryError:
            return None
        return parse_loose(content, f"ref {ref.decode(errors='replace')}")

    def _follow(self, ref: bytes, value: RefValue | None) -> bytes | None:
        """The SHA that ``value`` (what ``ref`` holds) leads to through symbolic refs.

        None if it ends at a ref that does not exist, as git does;
        ``CorruptObjectError`` naming ``ref`` for too many symbolic refs in a
        row (a loop).
        """
        for _ in range(SYMREF_DEPTH + 1):
            if value is None or value.target is None:
                return None if value is None else value.sha
            value = self._value(value.target)
        raise CorruptObjectError(f"ref {ref.decode(errors='replace')}: more than {SYMREF_DEPTH} "
                                 "symbolic refs in a row (a loop?)")

    def read(self, ref: bytes) -> bytes | None:
        """The SHA (hex bytes) a ref points to, through symbolic refs; None if it does not exist.

        ``CorruptObjectError`` if the ref holds neither a SHA nor a symbolic ref.
        """
        return self._follow(ref, self._value(ref))

    def writable(self, ref: bytes) -> bytes | None:
        """:meth:`read` of a ref gitstate is about to move: ``InvalidArgumentError`` if it
        is symbolic (gitstate moves only the ref a symbolic one names)."""
        value = self._value(ref)
        if value is not None and value.target is not None:
            raise InvalidArgumentError(
                f"{ref.decode()} is a symbolic ref (ref: {value.target.decode()}); gitstate "
                "writes only real refs: use the agent it names")
        return self._follow(ref, value)

    def read_all(self, prefix: bytes,
                 errors: dict[bytes, GitstateError] | None = None) -> dict[bytes, bytes]:
        """Every ref under ``prefix`` (ending in ``/``) with its SHA; loose refs win.

        A damaged ref raises ``CorruptObjectError``, or, given ``errors``, is
        left out and put there with its error (a damaged ``packed-refs`` file
        under ``b"packed-refs"``: the refs only it holds are then left out).
        """
        packed: dict[bytes, bytes] = {}
        try:
            packed = {name: sha for name, sha in self.packed().items() if name.startswith(prefix)}
        except CorruptObjectError as exc:
            if errors is None:
                raise
            errors[b"packed-refs"] = exc
        found: dict[bytes, RefValue | CorruptObjectError] = {}  # the loose refs
        folders = [(os.path.join(self.path, os.fsdecode(prefix)), prefix)]
        while folders:
            folder, ref_prefix = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                ref = ref_prefix + os.fsencode(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, ref + b"/"))
                elif not entry.name.endswith(".lock"):
                    try:
                        content = read_file(entry.path)
                    except FileNotFoundError:  # deleted since the listing
                        continue
                    try:
                        found[ref] = parse_loose(content, f"ref {ref.decode(errors='replace')}")
                    except CorruptObjectError as exc:
                        found[ref] = exc
        refs = {name: sha for name, sha in packed.items() if name not in found}  # (never symbolic)
        for ref, value in found.items():
            try:
                if isinstance(value, CorruptObjectError):
                    raise value
                sha = self._follow(ref, value)
            except CorruptObjectError as exc:
                if errors is None:
                    raise
                errors[ref] = exc
                continue
            if sha is not None:
                refs[ref] = sha
        return refs

    # -- writing ---------------------------------------------------------------------
    def update(self, lock: RefLock, ref: bytes, old: bytes | None, new: bytes | None, *,
               log: str | None = None, before_move: Callable[[], None] | None = None) -> bool:
        """Move ``ref`` from ``old`` to ``new`` atomically; False if it was not at ``old``.

        ``old=None`` means the ref must not exist; ``new=None`` deletes it and its
        reflog (as git does). ``log`` appends an entry with that message to the
        ref's reflog while ``<ref>.lock`` is held, before the ref moves;
        ``before_move`` is called then too, last. A ``<ref>.lock`` held by
        another process is waited for, with backoff.
        """
        path = os.path.join(self.path, os.fsdecode(ref))
        with self.locks.replacing(lock, path, "another git process is updating this ref") as file:
            if self.writable(ref) != old:
                return False
            if log is not None:
                self._append_reflog(ref, old, new, log)
            if before_move is not None:
                before_move()
            if new is None:
                self._delete(ref, path)
            else:
                file.write(new + b"\n")
                file.commit()
            return True

    def _delete(self, ref: bytes, path: str) -> None:
        """Delete ``ref`` (its ``<ref>.lock`` held): from ``packed-refs`` first, then its loose
        file, as git does, so that a failure in between never brings back an older packed value."""
        if ref in self.packed():  # (a damaged packed-refs raises before anything is changed)
            self._rewrite_packed(ref)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            os.unlink(self.reflog_path(ref))
        except FileNotFoundError:
            pass

    def _rewrite_packed(self, drop: bytes) -> None:
        """Rewrite packed-refs without ``drop`` (under git's ``packed-refs.lock``), keeping its
        header and the peeled lines of the refs it keeps."""
        path = os.path.join(self.path, "packed-refs")
        with self.locks.flock("packed-refs") as lock:
            assert lock is not None  # waited for
            with self.locks.replacing(lock, path, "a git process is rewriting packed-refs") as file:
                with open(path, "rb") as f:
                    refs = parse_packed(f.read())
                refs.pop(drop, None)
                file.write(format_packed(refs))
                file.commit()
        self._packed = None

    # -- reflogs ---------------------------------------------------------------------
    def reflog_path(self, ref: bytes) -> str:
        return os.path.join(self.path, "logs", os.fsdecode(ref))

    def _append_reflog(self, ref: bytes, old: bytes | None, new: bytes | None, message: str) -> None:
        """Append one entry to ``ref``'s reflog in git's format (the caller holds ``<ref>.lock``)."""
        path = self.reflog_path(ref)
        make_folders(os.path.dirname(path), self.locks.durable)
        new_file = not os.path.exists(path)
        line = (f"{(old or ZERO).decode()} {(new or ZERO).decode()} gitstate <gitstate@localhost> "
                f"{int(time.time())} +0000\t{' '.join(message.split())}\n")
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _drop_torn_entry(fd)
            data = line.encode()
            while data:
                data = data[os.write(fd, data):]
            if self.locks.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if new_file and self.locks.durable:
            fsync_path(os.path.dirname(path))


def _drop_torn_entry(fd: int) -> None:
    """Cut a reflog back to its last complete line: an entry without its newline is one a
    writer began and never finished (it died, or the disk was full), whose ref never moved
    (reflog entries are written before the ref, under its lock, by git and gitstate alike)."""
    size = os.fstat(fd).st_size
    if not size or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 4096)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        end = start
    os.ftruncate(fd, 0)

