"""The git objects of one checkpoint (the ``state.json`` blob, its tree and the commit), and the
light parsers of commits and tags.

:func:`commit_links` is the one commit parser: a commit's tree and parents, as
git reads them; :meth:`CommitInfo.parse` reads, after them, the author time and
the message. Both are about 4 times faster than dulwich's full parse
(:meth:`CommitInfo.full` gives that one, with every header).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from dulwich.objects import Commit, parse_tree

from ..errors import InvalidArgumentError
from ..ids import is_sha
from .dulwich_types import object_id
from .objects import FILE_MODE, RawObject
from .reader import TREE, TYPE_NAMES

STATE_FILE = b"state.json"
TREE_MODE, GITLINK_MODE = 0o040000, 0o160000  # tree entries naming a tree, a commit (submodule)
_LINKS = re.compile(rb"tree ([0-9a-f]{40})\n((?:parent [0-9a-f]{40}\n)*)")  # how a commit starts
COMMITTER = b"gitstate <gitstate@localhost>"
# the author times read: what a datetime can hold (years 1 to 9999, UTC)
MIN_TIME = int(datetime(1, 1, 1, tzinfo=timezone.utc).timestamp())
MAX_TIME = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
# the checkpoint times written: git fsck refuses dates before 1970 (badDateOverflow)
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)


def aware(when: object, what: str) -> datetime:
    """``when`` if it is a timezone-aware datetime, else :class:`InvalidArgumentError`."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise InvalidArgumentError(f"{what} must be a timezone-aware datetime, got {when!r}")
    try:
        when.utcoffset()
    except ValueError as exc:  # a tzinfo whose offset is a day or more
        raise InvalidArgumentError(f"{what} {when!r} has an unusable time zone: {exc}") from None
    return when


def checkpoint_time(when: object, what: str = "time") -> int:
    """The author time (Unix seconds) of a checkpoint saved at ``when``.

    ``when`` must be timezone-aware and within 1970-01-01..9999-12-31 UTC, else
    :class:`InvalidArgumentError` names it.
    """
    when = aware(when, what)
    if not EARLIEST <= when <= LATEST:
        raise InvalidArgumentError(f"{what} {when.isoformat()} is outside 1970-01-01..9999-12-31 "
                                   "(UTC): git refuses commit dates before 1970")
    return int(when.timestamp())


def state_tree(blob: bytes) -> RawObject:
    """The tree of a checkpoint: ``state.json``, the blob ``blob`` (hex SHA)."""
    return RawObject(TREE, b"%o %s\0%s" % (FILE_MODE, STATE_FILE, bytes.fromhex(blob.decode())))


def checkpoint_commit(tree: bytes, parent: bytes | None, agent_id: str, message: bytes,
                      author_time: int | None = None) -> Commit:
    """A commit of ``tree`` by ``agent_id`` on ``parent``, committed now (times in UTC)."""
    now = int(datetime.now(timezone.utc).timestamp())
    commit = Commit()
    commit.tree = object_id(tree)
    commit.parents = [object_id(parent)] if parent else []
    commit.author = f"{agent_id} <{agent_id}@gitstate>".encode()
    commit.committer = COMMITTER
    commit.author_time = now if author_time is None else author_time
    commit.commit_time = now
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = None
    commit.message = message
    return commit


def tree_entries(raw: bytes) -> list[tuple[bytes, int, bytes]]:
    """``(name, mode, hex SHA)`` of each entry of a raw tree; ``ValueError`` if it does not parse."""
    try:
        return list(parse_tree(raw, 20))  # (dulwich's Python parser is a generator)
    except Exception as exc:  # dulwich's compiled and Python parsers raise different types
        raise ValueError(f"the tree does not parse: {exc}") from None


def state_blob(tree: bytes) -> bytes | None:
    """The SHA of ``state.json`` in a raw tree, None if it has none."""
    for name, _mode, sha in tree_entries(tree):
        if name == STATE_FILE:
            return sha
    return None


def recommit(info: CommitInfo, parents: Sequence[bytes]) -> Commit:
    """A copy of the commit with ``parents`` (the first parent first; a signature is dropped)."""
    original = info.full()
    commit = Commit()
    commit.tree = original.tree
    commit.parents = [object_id(parent) for parent in parents]
    commit.author, commit.committer = original.author, original.committer
    commit.author_time, commit.commit_time = original.author_time, original.commit_time
    commit.author_timezone = original.author_timezone
    commit.commit_timezone = original.commit_timezone
    commit.encoding = original.encoding
    commit.message = original.message
    return commit


@dataclass(slots=True)
class CommitInfo:
    """What gitstate reads of a commit, parsed without dulwich (4x faster); read-only."""

    id: bytes
    tree: bytes
    parents: tuple[bytes, ...]
    author_time: int
    message: bytes
    raw: bytes

    @classmethod
    def parse(cls, sha: bytes, raw: bytes) -> CommitInfo:
        """Parse a raw commit; ``ValueError`` if its links do not parse (:func:`commit_links`)
        or it has no author line with a usable time."""
        links, at = _links(raw)
        end = raw.find(b"\n\n", at - 1)  # the header ends at the first empty line
        header_end, message = (len(raw), b"") if end < 0 else (end, raw[end + 2:])
        author = raw.find(b"\nauthor ", at - 1, header_end)  # (continuation lines start with a space)
        if author < 0:
            raise ValueError("commit without an author")
        line_end = raw.find(b"\n", author + 1, header_end)
        fields = raw[author + 8:header_end if line_end < 0 else line_end].rsplit(b" ", 2)
        try:
            author_time = int(fields[-2])
        except (IndexError, ValueError):
            raise ValueError(f"author line {raw[author + 1:author + 100]!r} has no time") from None
        if not MIN_TIME <= author_time <= MAX_TIME:
            raise ValueError(f"author time {author_time} is outside the years 1 to 9999")
        return cls(sha, links[0], tuple(links[1:]), author_time, message, raw)

    def full(self) -> Commit:
        """The whole commit as a dulwich object (every header)."""
        commit = Commit()
        commit.set_raw_string(self.raw, object_id(self.id))
        return commit


def commit_links(raw: bytes) -> list[bytes]:
    """[tree, *parents] (hex SHAs) of a raw commit: the lines it starts with, as git
    requires (``parse_commit_buffer``); ``ValueError`` if they do not parse. The one
    commit parser: :meth:`CommitInfo.parse` reads the rest of the header after them,
    history walks and maintenance read only them (a commit without an author still
    links its history)."""
    return _links(raw)[0]


def _links(raw: bytes) -> tuple[list[bytes], int]:
    """:func:`commit_links`, and where the line after them starts."""
    match = _LINKS.match(raw)
    if match is None:
        raise ValueError(f"the commit starts with {raw[:60]!r}, not 'tree <sha>'")
    at = match.end()
    if raw.startswith(b"parent ", at):
        raise ValueError(f"the commit has a line {raw[at:at + 60]!r}, not 'parent <sha>'")
    tree, parents = match.group(1, 2)  # parents: b"parent <sha>\n" lines
    return [tree, *parents[7:-1].split(b"\nparent ")] if parents else [tree], at


def tag_target(raw: bytes) -> tuple[bytes, int]:
    """(hex SHA, type number) of what a raw annotated tag names (its ``object`` and ``type``
    lines); ``ValueError`` if it does not start with them."""
    lines = raw.split(b"\n", 2)[:2]
    target = lines[0][7:]
    kind = TYPE_NAMES.get(lines[1][5:]) if len(lines) == 2 and lines[1].startswith(b"type ") else None
    if not (lines[0].startswith(b"object ") and is_sha(target) and kind):
        raise ValueError("no 'object' and 'type' lines")
    return target, kind


def reaches(parents: Callable[[bytes], Sequence[bytes]], head: bytes, sha: bytes) -> bool:
    """Whether commit ``sha`` is ``head`` or in its history (every parent followed);
    ``parents(commit)`` gives a commit's parents (and raises what reading it raises)."""
    seen: set[bytes] = set()
    todo = [head]
    while todo:
        commit = todo.pop()
        if commit == sha:
            return True
        if commit not in seen:
            seen.add(commit)
            todo.extend(parents(commit))
    return False

