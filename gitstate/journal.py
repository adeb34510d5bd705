"""The journal of an operation that moves several refs of one agent.

Before the first ref of such an operation moves (its branch, always first),
:class:`~gitstate.store.Store` writes ``<repo>/gitstate/journal/<agent_id>``:
one line per ref update, ``<refname> <old> <new>``, where old and new are 40
lower-case hex digits or ``-`` (absent). It is removed after the last ref moved.
A process killed in between leaves it behind; whoever takes the agent's lock
next completes it (see ``Store.agent_lock``), and maintenance treats every SHA
named there as reachable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import CorruptObjectError
from .ids import is_sha

JOURNAL_DIR = os.path.join("gitstate", "journal")
_ABSENT = b"-"


@dataclass(frozen=True)
class RefUpdate:
    """Move ``ref`` from ``old`` to ``new`` (None: absent)."""

    ref: bytes
    old: bytes | None
    new: bytes | None


def format_journal(updates: Sequence[RefUpdate]) -> bytes:
    """The journal's content for ``updates``."""
    return b"".join(b"%s %s %s\n" % (u.ref, u.old or _ABSENT, u.new or _ABSENT) for u in updates)


def parse_journal(data: bytes, path: str) -> list[RefUpdate]:
    """The updates a journal holds; ``CorruptObjectError`` naming ``path`` and the line
    for anything else than ``refs/... <sha|-> <sha|->``."""
    lines = data.split(b"\n")
    if not lines[-1]:  # after the final newline (or an empty journal)
        lines.pop()
    updates = []
    for number, line in enumerate(lines, 1):
        fields = line.split(b" ")
        if (len(fields) != 3 or not fields[0].startswith(b"refs/")
                or not all(f == _ABSENT or is_sha(f) for f in fields[1:])):
            raise CorruptObjectError(
                f"{path} line {number}: {line[:120]!r} is not '<refname> <old> <new>' "
                "(an interrupted operation's journal); repair or remove it")
        updates.append(RefUpdate(fields[0], *(None if f == _ABSENT else f for f in fields[1:])))
    return updates
