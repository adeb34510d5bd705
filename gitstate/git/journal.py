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

from ..errors import CorruptObjectError
from . import refs

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
    """The updates a journal holds (parsed by :func:`gitstate.refs.parse_journal`, the parser
    maintenance reads it with); ``CorruptObjectError`` naming ``path`` and the line."""
    try:
        lines = refs.parse_journal(data, path)
    except CorruptObjectError as exc:
        raise CorruptObjectError(f"{exc} (an interrupted operation's journal); "
                                 "repair or remove it") from None
    return [RefUpdate(ref, *(None if value == _ABSENT else value for value in (old, new)))
            for _number, ref, old, new in lines]
