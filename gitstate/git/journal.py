"""Operations that move several refs of one agent: their journal, and its roll-forward.

Such an operation (:func:`update_refs`) moves the agent's branch first, then its
names. Just before the branch moves (``<branch>.lock`` held), it writes
``<repo>/gitstate/journal/<agent_id>`` atomically: one line per ref update,
``<refname> <old> <new>``, where old and new are 40 lower-case hex digits or
``-`` (absent). The journal is removed after the last ref moved. A process
killed in between leaves it behind; whoever takes the agent's lock next
completes it (:func:`roll_forward`, called by ``Store.agent_lock``), and
maintenance treats every SHA named there as reachable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import CorruptObjectError, InvalidArgumentError
from ..ids import branch_ref, tag_prefix
from .layout import reaches
from .locks import RefLock, fsync_path, make_folders, write_all
from .refs import Refs
from .refs import parse_journal as parse_lines

JOURNAL_DIR = os.path.join("gitstate", "journal")
_ABSENT = b"-"

Parents = Callable[[bytes], Sequence[bytes]]
"""The parents of a commit (hex SHAs); ``KeyError`` or ``ValueError`` if it cannot be read."""


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
    """The updates a journal holds (parsed by :func:`gitstate.git.refs.parse_journal`, the parser
    maintenance reads it with); ``CorruptObjectError`` naming ``path`` and the line."""
    try:
        lines = parse_lines(data, path)
    except CorruptObjectError as exc:
        raise CorruptObjectError(f"{exc} (an interrupted operation's journal); "
                                 "repair or remove it") from None
    return [RefUpdate(ref, *(None if value == _ABSENT else value for value in (old, new)))
            for _number, ref, old, new in lines]


def update_refs(refs: Refs, lock: RefLock, agent_id: str, updates: Sequence[RefUpdate], *,
                log: str | None = None) -> bool:
    """Move the agent's branch (``updates[0]``), then its names (``updates[1:]``), as one
    operation, with a journal (see the module docstring).

    False, with nothing changed, if the branch was not at its ``old``. A name
    another writer moved meanwhile keeps the value that writer gave it. ``log``
    is the message of the branch's reflog entry.
    """
    first = updates[0]
    if not refs.update(lock, first.ref, first.old, first.new, log=log,
                        before_move=lambda: _write(refs, agent_id, updates)):
        return False
    _finish(refs, lock, agent_id, updates[1:])
    return True


def roll_forward(refs: Refs, parents: Parents, lock: RefLock, agent_id: str) -> None:
    """Complete the operation of the agent a killed process left half done (``lock`` is
    the agent's).

    The branch decides: if it is still at the journal's old value it is moved;
    if it is at the new one, or another writer built on it since, the
    operation happened and each name still at its old value is moved too;
    else (another writer moved the branch first) the operation never happened
    and the rest of the journal is dropped. Either way the names stay on the
    history the branch holds.
    """
    path = _path(refs, agent_id)
    if not os.access(path, os.F_OK):
        return  # the usual case: one system call, no exception
    with open(path, "rb") as f:  # only holders of the agent's lock write or remove it
        updates = parse_journal(f.read(), path)
    branch, names = branch_ref(agent_id), tag_prefix(agent_id)
    for i, update in enumerate(updates):
        if (update.ref != branch) if i == 0 else not update.ref.startswith(names):
            raise CorruptObjectError(f"{path} moves {update.ref.decode(errors='replace')}, "
                                     f"not agent {agent_id!r}'s branch and names; "
                                     "repair or remove it")
    if updates and not _branch_moved(refs, parents, lock, updates[0]):
        updates = updates[:1]
    _finish(refs, lock, agent_id, updates[1:])


def _path(refs: Refs, agent_id: str) -> str:
    return os.path.join(refs.path, JOURNAL_DIR, agent_id)


def _write(refs: Refs, agent_id: str, updates: Sequence[RefUpdate]) -> None:
    """Write the journal of ``updates`` atomically (a temporary file renamed into place)."""
    path = _path(refs, agent_id)
    durable = refs.locks.durable
    tmp = os.path.join(refs.path, "gitstate", "tmp", f"journal-{agent_id}")
    make_folders(os.path.dirname(tmp), durable)
    make_folders(os.path.dirname(path), durable)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, format_journal(updates))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if durable:
        fsync_path(os.path.dirname(path))


def _finish(refs: Refs, lock: RefLock, agent_id: str, names: Sequence[RefUpdate]) -> None:
    """Move the names of a journaled operation whose branch moved; remove the journal."""
    for update in names:
        try:
            refs.update(lock, update.ref, update.old, update.new)  # False: moved by another writer
        except (InvalidArgumentError, CorruptObjectError):
            pass  # made symbolic or damaged by another writer: its business
    path = _path(refs, agent_id)
    os.unlink(path)
    if refs.locks.durable:
        fsync_path(os.path.dirname(path))


def _branch_moved(refs: Refs, parents: Parents, lock: RefLock, update: RefUpdate) -> bool:
    """Whether the journaled branch move happened, making it happen if the branch is
    still at its old value.

    Another writer may have moved the branch since: it built on ours if its
    head reaches our new head, and reaches our old head only through it (a
    move back, like a hard rollback, has the old head out of the new history).
    """
    if refs.update(lock, update.ref, update.old, update.new):
        return True
    value, old, new = refs.read(update.ref), update.old, update.new
    if value == new:
        return True
    if value is None or new is None or not reaches(_lenient(parents), value, new):
        return False
    return old is None or reaches(_lenient(parents), new, old) or not reaches(_lenient(parents), value, old)


def _lenient(parents: Parents) -> Parents:
    """``parents``, with an unreadable commit ending its path (no parents) instead of raising."""
    def lenient(sha: bytes) -> Sequence[bytes]:
        try:
            return parents(sha)
        except (KeyError, ValueError):
            return ()
    return lenient

