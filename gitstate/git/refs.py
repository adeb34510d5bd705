"""Parsing the files that name objects, with git's rules: one parser for every reader.

``Store`` reads refs with it, maintenance (:mod:`gitstate.reclaim`) its roots.
The rules are git's (``refs/files-backend.c``, ``refs/packed-backend.c``, the
reflog reader), checked against the git binary in ``tests/test_reachability.py``:

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
- a journal line (gitstate's record of an unfinished multi-ref update) is
  ``<refname> <old> <new>``, old and new 40 lower-case hex digits or ``-``.

Whitespace is git's: space, tab, newline, carriage return (not ``\\v``, ``\\f``).
SHAs come back in lower case. What does not parse raises
:class:`CorruptObjectError` naming the file (and line) and what it holds; the
caller adds what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import CorruptObjectError
from ..ids import is_sha

ZERO = b"0" * 40  # "no object" in reflogs and ref updates
SPACE = b" \t\n\r"  # git's isspace()
_HEX = re.compile(rb"[0-9a-fA-F]{40}")
_REFNAME = re.compile(rb"refs(?:/(?!\.)[^/\x00-\x20\x7f~^:?*\[\\]+)+")  # components not starting with '.'
_HEADER = b"# pack-refs with:"


class RefValue(NamedTuple):
    """What a loose ref holds: a SHA (lower-case hex), or the name of the ref it points to."""

    sha: bytes | None
    target: bytes | None = None


class PackedRef(NamedTuple):
    """One ref of ``packed-refs``: its SHA and, for an annotated tag, what it peels to."""

    sha: bytes
    peeled: bytes | None = None


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


def parse_packed(data: bytes) -> dict[bytes, PackedRef]:
    """The refs of a ``packed-refs`` file, by name; any line git would refuse raises."""
    refs: dict[bytes, PackedRef] = {}
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
