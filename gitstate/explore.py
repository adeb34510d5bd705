"""Exploring histories over a :class:`Core`: read-only questions about how agents evolved.

- :func:`log_all` lists the checkpoints of every agent, newest first (a commit before its
  parents), each commit once, with the agents whose branch points at it and its names;
  :func:`graph` draws their lines like ``git log --graph``, :func:`forks` lists which
  agent started from which checkpoint.
- Field paths (:func:`parse_path`, :func:`value_at`): ``total_tokens``,
  ``messages[-1].role``, ``a.b.2.c``, ``$.a["key.with.dots"]``; negative indexes count
  from the end of a list.
- :func:`fields` reads field values along an agent's history; :func:`find` finds the
  checkpoints where a field changed or where a condition ``PATH OP VALUE`` holds;
  :func:`timeline` gives the numbers the web view plots.
- :func:`export_state` and :func:`export_bundle` write a state, or an agent as a git bundle.

Values are computed once per ``state.json`` blob (a :class:`StateCache`): a checkpoint
whose blob another one already had (a rollback, a save of an unchanged state) is not
read again, and a blob's state is read at most once per question.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .core import Core
from .errors import CorruptObjectError, EncodingError, InvalidArgumentError
from .git.bundle import write_bundle, write_file
from .git.layout import CommitInfo
from .ids import BRANCH_PREFIX, TAG_PREFIX, branch_ref, tag_prefix
from .models import Checkpoint

# -- field paths ------------------------------------------------------------------------
_STEP = re.compile(r'\.?([^.\[\]"]+)|\[(-?\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
Path = tuple[str | int, ...]
_ABSENT: Any = object()  # no such field in a state
_MISSING: Any = object()  # not in the cache


def parse_path(path: str) -> Path:
    """The steps of a field path: keys (str) and list indexes (int, negative from the end).

    ``a.b[2].c``, ``a.b.2.c`` (a number after a dot indexes a list, or is a key of an
    object), ``$.a[-1]``, ``a["key.with.dots"]``. ``InvalidArgumentError`` names the part
    that does not parse.
    """
    if not isinstance(path, str):
        raise InvalidArgumentError(f"a field path must be a string, got {path!r}")
    text = path[1:] if path.startswith("$") else path
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        step = _STEP.match(text, position)
        if step is None or step.end() == position:
            raise InvalidArgumentError(f"cannot read the field path {path!r} at {text[position:]!r} "
                                       "(write a.b[2].c, messages[-1].role or a[\"key\"])")
        position = step.end()
        if step[2] is not None:
            steps.append(int(step[2]))
        elif step[3] is not None:
            steps.append(json.loads(f'"{step[3]}"'))
        else:
            steps.append(step[1])
    if not steps:
        raise InvalidArgumentError(f"the field path {path!r} names no field")
    return tuple(steps)


def _lookup(value: Any, steps: Path) -> tuple[Any, str, int]:
    """The value at ``steps`` (or ``_ABSENT``), the path where it was found (or where the
    search stopped) and how many steps were taken."""
    where = "$"
    for depth, step in enumerate(steps):
        if isinstance(value, list):
            index = step if isinstance(step, int) else int(step) if re.fullmatch(r"-?\d+", step) else None
            if index is None or not -len(value) <= index < len(value):
                return _ABSENT, where, depth
            value, where = value[index], f"{where}[{index}]"
        elif isinstance(value, dict) and str(step) in value:
            value, where = value[str(step)], f"{where}.{step}"
        else:
            return _ABSENT, where, depth
    return value, where, len(steps)


def value_at(state: Any, path: str) -> Any:
    """The value at ``path`` in a state; ``InvalidArgumentError`` naming where it stops."""
    steps = parse_path(path)
    value, where, depth = _lookup(state, steps)
    if value is _ABSENT:
        raise InvalidArgumentError(f"the state has no field {str(steps[depth])!r} at {where}")
    return value


# -- values cached per blob ---------------------------------------------------------------
class StateCache:
    """Values computed from ``state.json`` blobs, by blob SHA and question (bounded, LRU).

    A blob never changes, so an entry never goes stale; one cache may serve many
    threads and many questions (the web view keeps one for its lifetime).
    """

    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[bytes, Any], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.states_read = 0

    def get(self, blob: bytes, key: Any) -> Any:
        """The cached value, or ``StateCache.MISSING`` if there is none."""
        with self._lock:
            value = self._entries.get((blob, key), _MISSING)
            if value is not _MISSING:
                self._entries.move_to_end((blob, key))
            return value

    def put(self, blob: bytes, key: Any, value: Any) -> None:
        with self._lock:
            self._entries[(blob, key)] = value
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    MISSING = _MISSING


_SIZE: Path = ()  # the key of a state's size in bytes (no field path is empty)


def _values(core: Core, cache: StateCache, commit: CommitInfo, blob: bytes,
            keys: Sequence[Path]) -> dict[Path, Any]:
    """``{path: value}`` for one commit (``_ABSENT`` where there is no such field; the key
    ``_SIZE`` gives the bytes of ``state.json``), from ``cache`` or one read of the state."""
    found = {key: cache.get(blob, key) for key in keys}
    if any(value is _MISSING for value in found.values()):
        raw = core.state_json(commit)
        cache.states_read += 1
        try:
            state = codec.decode(raw)
        except EncodingError as exc:
            raise CorruptObjectError(f"the state.json of commit {commit.id.decode()} "
                                     f"is not valid JSON: {exc}") from exc
        for key, value in found.items():
            if value is _MISSING:
                value = len(raw) if key == _SIZE else _lookup(state, key)[0]
                cache.put(blob, key, value)
                found[key] = value
    return found


@dataclass(frozen=True)
class FieldRow:
    """One checkpoint and the values of the paths asked for (a missing field is absent)."""

    checkpoint: Checkpoint
    values: dict[str, Any]


def fields(core: Core, agent_id: str, paths: Sequence[str], *, limit: int | None = None,
           cache: StateCache | None = None) -> list[FieldRow]:
    """The values of ``paths`` at each checkpoint of the agent, newest first."""
    parsed = {path: parse_path(path) for path in paths}
    if not parsed:
        raise InvalidArgumentError("give at least one field path")
    _check_limit(limit)
    cache = cache if cache is not None else StateCache()
    names = core.names(agent_id)
    rows: list[FieldRow] = []
    for commit in core.walk(core.head(agent_id)):
        if limit is not None and len(rows) >= limit:
            break
        got = _values(core, cache, commit, core.blob_id(commit), list(parsed.values()))
        rows.append(FieldRow(core.checkpoint(commit, agent_id, names.get(commit.id, ())),
                             {p: got[s] for p, s in parsed.items() if got[s] is not _ABSENT}))
    return rows


# -- find ---------------------------------------------------------------------------------
_CONDITION = re.compile(r"\s*(?P<path>.+?)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.*?)\s*")
_OPS = {"==", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Condition:
    """``PATH OP VALUE``: OP one of ``== != < <= > >=``; VALUE is JSON (``3``, ``"done"``,
    ``null``) or else a plain string. ``<``/``>`` compare two numbers or two strings."""

    path: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidArgumentError(f"{text!r} is not a condition PATH OP VALUE "
                                       "(OP one of == != < <= > >=), e.g. 'total_tokens > 1000'")
        parse_path(match["path"])
        try:
            value = json.loads(match["value"])
        except ValueError:
            value = match["value"]
        return cls(match["path"], match["op"], value)

    def holds(self, value: Any) -> bool:
        if value is _ABSENT:
            return self.op == "!="
        if self.op in ("==", "!="):
            return _same(value, self.value) == (self.op == "==")
        both_numbers = all(_is_number(v) for v in (value, self.value))
        if not both_numbers and not (isinstance(value, str) and isinstance(self.value, str)):
            return False
        return {"<": value < self.value, "<=": value <= self.value,
                ">": value > self.value, ">=": value >= self.value}[self.op]


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``1``, ``1.0`` and ``true`` differ), as canonical JSON tells it."""
    if a is _ABSENT or b is _ABSENT:
        return a is b
    try:
        return codec.encode(a) == codec.encode(b)
    except EncodingError:
        return False


@dataclass(frozen=True)
class FindResult:
    """The checkpoints found, newest first, the field's value at each (None where the
    state has no such field) and how many states were read to find them."""

    checkpoints: list[Checkpoint]
    values: list[Any]
    states_read: int


def find(core: Core, agent_id: str, *, changed: str | None = None, where: str | None = None,
         cache: StateCache | None = None) -> FindResult:
    """The agent's checkpoints, newest first, where the field ``changed`` differs from the
    checkpoint before (its first appearance included), or where the condition ``where``
    (``'PATH OP VALUE'``, see :class:`Condition`) holds. Give exactly one of the two.

    A checkpoint whose ``state.json`` blob equals the one before it is skipped unread
    (it cannot have changed), and each distinct blob is read at most once.
    """
    if (changed is None) == (where is None):
        raise InvalidArgumentError("give exactly one of changed=PATH or where='PATH OP VALUE'")
    condition = Condition.parse(where) if where is not None else None
    steps = parse_path(changed if changed is not None else condition.path)  # type: ignore[union-attr]
    cache = cache if cache is not None else StateCache()
    before = cache.states_read
    names = core.names(agent_id)
    history = [(commit, core.blob_id(commit)) for commit in core.walk(core.head(agent_id))]
    found: list[tuple[Checkpoint, Any]] = []
    previous_blob: bytes | None = None
    previous: Any = _ABSENT
    for commit, blob in reversed(history):  # oldest first
        if condition is None and blob == previous_blob:
            continue
        value = _values(core, cache, commit, blob, [steps])[steps]
        if condition is None:
            hit = not _same(value, previous)
            previous, previous_blob = value, blob
        else:
            hit = condition.holds(value)
        if hit:
            found.append((core.checkpoint(commit, agent_id, names.get(commit.id, ())),
                          None if value is _ABSENT else value))
    found.reverse()
    return FindResult([c for c, _v in found], [v for _c, v in found], cache.states_read - before)


# -- every agent at once --------------------------------------------------------------------
@dataclass(frozen=True)
class GraphEntry:
    """A checkpoint in the history of every agent: its parents (SHAs), the agents whose
    branch points at it (``heads``) and its names as ``agent/name``."""

    checkpoint: Checkpoint
    parents: tuple[str, ...]
    heads: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


def log_all(core: Core, *, limit: int | None = None) -> list[GraphEntry]:
    """The checkpoints of every agent, newest first, each commit once; a commit always
    comes before its parents (like ``git log --all --topo-order``, by author time, then
    checkpoint id)."""
    _check_limit(limit)
    heads: dict[bytes, list[str]] = {}
    for ref, sha in core.store.read_refs(BRANCH_PREFIX.encode()).items():
        heads.setdefault(sha, []).append(ref[len(BRANCH_PREFIX):].decode(errors="replace"))
    names: dict[bytes, list[str]] = {}
    for ref, sha in core.store.read_refs(TAG_PREFIX.encode()).items():
        names.setdefault(sha, []).append(ref[len(TAG_PREFIX):].decode(errors="replace"))
    commits: dict[bytes, CommitInfo] = {}
    children: dict[bytes, int] = {}
    todo = list(heads)
    while todo:
        sha = todo.pop()
        if sha in commits:
            continue
        commit = commits[sha] = core.commit(sha)
        for parent in commit.parents:
            children[parent] = children.get(parent, 0) + 1
            todo.append(parent)
    ready = [_newest_first(c) for c in commits.values() if c.id not in children]
    heapq.heapify(ready)
    entries: list[GraphEntry] = []
    while ready and (limit is None or len(entries) < limit):
        commit = commits[heapq.heappop(ready)[2]]
        agents = sorted(heads.get(commit.id, ()))
        named = sorted(names.get(commit.id, ()))
        checkpoint = core.checkpoint(commit, agents[0] if agents else "")
        own = [n.partition("/")[2] for n in named if n.partition("/")[0] == checkpoint.agent_id]
        entries.append(GraphEntry(checkpoint.model_copy(update={"names": tuple(own)}),
                                  tuple(p.decode() for p in commit.parents), tuple(agents), tuple(named)))
        for parent in commit.parents:
            children[parent] -= 1
            if children[parent] == 0:
                heapq.heappush(ready, _newest_first(commits[parent]))
    return entries


def _newest_first(commit: CommitInfo) -> tuple[int, int, bytes]:
    """A heap key putting newer commits first: by author time, then by checkpoint id (time
    ordered to the millisecond, so checkpoints saved within one second keep their order)."""
    found = re.search(rb"\nCheckpoint-Id: ([0-9a-f-]{36})\n", commit.message)
    number = int(found[1].replace(b"-", b""), 16) if found else 0
    return -commit.author_time, -number, commit.id


@dataclass(frozen=True)
class Fork:
    """Agent ``agent_id`` started from checkpoint ``from_commit`` (id ``from_checkpoint_id``)
    of agent ``from_agent``; ``commit`` is its first own checkpoint (``gitstate fork``'s)."""

    agent_id: str
    from_agent: str
    from_checkpoint_id: str
    from_commit: str
    commit: str


def forks(entries: Sequence[GraphEntry]) -> list[Fork]:
    """The forks among ``entries`` (:func:`log_all`'s), newest first: the commits with the
    ``Forked-From-Agent`` trailer :func:`gitstate.history.fork` writes."""
    found = []
    for entry in entries:
        c = entry.checkpoint
        if "Forked-From-Agent" in c.trailers and entry.parents:
            found.append(Fork(c.agent_id, c.trailers["Forked-From-Agent"], c.trailers.get("Forked-From", ""),
                              entry.parents[0], c.commit))
    return found


def graph(entries: Sequence[GraphEntry]) -> Iterator[tuple[str, GraphEntry | None]]:
    """The lines of ``git log --graph`` for ``entries`` (in :func:`log_all`'s order): each
    ``(prefix, entry)``, ``entry`` None for a line that only joins or splits branches."""
    columns: list[str] = []  # the commit each column waits for
    for entry in entries:
        sha = entry.checkpoint.commit
        if sha not in columns:
            columns.append(sha)
        at = columns.index(sha)
        for other in [i for i, c in enumerate(columns) if c == sha and i != at][::-1]:
            yield _join(len(columns), at, other), None  # branches that meet at this commit
            del columns[other]
        yield " ".join("*" if i == at else "|" for i in range(len(columns))), entry
        parents = list(entry.parents)
        if not parents:
            if at < len(columns) - 1:
                yield _shift(len(columns), at), None
            del columns[at]
            continue
        columns[at] = parents[0]
        for n, parent in enumerate(parents[1:], start=1):  # a merge: one new column per parent
            yield _split(len(columns), at + n - 1), None
            columns.insert(at + n, parent)


def _join(width: int, into: int, column: int) -> str:
    """Column ``column`` joins column ``into``; those right of it move one left."""
    cells = [("|" if i <= column - 1 else " ") for i in range(width - 1)]
    gaps = [" "] * (width - 1)
    for i in range(into, column - 1):
        gaps[i] = "_"
    for i in range(column - 1, width - 1):
        gaps[i] = "/"
        cells[i] = "|" if i < column else " "
    return "".join(c + g for c, g in zip(cells, gaps, strict=True)).rstrip()


def _shift(width: int, gone: int) -> str:
    """Column ``gone`` ended (a first checkpoint); those right of it move one left."""
    return "".join(("|" if i < gone else " ") + ("/" if i >= gone else " ")
                   for i in range(width - 1)).rstrip()


def _split(width: int, column: int) -> str:
    """A new column opens right of ``column`` (a merge's second parent)."""
    return " ".join("|" for _ in range(column + 1)) + "\\" + "".join(
        " \\" for _ in range(column + 1, width))


# -- the web view's numbers -------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One checkpoint of a timeline: its record, the bytes of its state and the values of
    the paths asked for that are numbers (others are absent)."""

    checkpoint: Checkpoint
    size: int
    values: dict[str, float | int] = field(default_factory=dict)


def timeline(core: Core, agent_id: str, paths: Sequence[str] = (), *,
             cache: StateCache | None = None) -> list[Point]:
    """Every checkpoint of the agent, oldest first, with its state's size and the numeric
    values at ``paths`` (a list's value is its length), read once per blob via ``cache``."""
    parsed = {path: parse_path(path) for path in paths}
    cache = cache if cache is not None else StateCache()
    names = core.names(agent_id)
    points = []
    for commit in core.walk(core.head(agent_id)):
        got = _values(core, cache, commit, core.blob_id(commit), [_SIZE, *parsed.values()])
        values: dict[str, float | int] = {}
        for path, steps in parsed.items():
            value = got[steps]
            if isinstance(value, list | dict):
                value = len(value)
            if _is_number(value) and math.isfinite(value):
                values[path] = value
        points.append(Point(core.checkpoint(commit, agent_id, names.get(commit.id, ())),
                            got[_SIZE], values))
    points.reverse()
    return points


# -- export ------------------------------------------------------------------------------------
def export_state(core: Core, agent_id: str, rev: str | None, path: str | os.PathLike[str]) -> Checkpoint:
    """Write the ``state.json`` saved at ``rev`` (default: latest), byte for byte, to ``path``."""
    commit = core.find(agent_id, rev)
    write_file(os.fspath(path), [core.state_json(commit)])
    return core.checkpoint(commit, agent_id, core.names(agent_id).get(commit.id, ()))


def export_bundle(core: Core, agent_id: str, rev: str | None,
                  path: str | os.PathLike[str]) -> Checkpoint:
    """Write the agent's history up to ``rev`` (default: latest) and its names there as a git
    bundle to ``path``: ``git clone FILE`` and ``gitstate clone FILE`` accept it.

    The bundle's ``HEAD`` and branch ``agents/<id>`` name ``rev``; each name of a
    checkpoint in that history is a tag ``agents/<id>/<name>``.
    """
    commit = core.find(agent_id, rev)
    history = {c.id for c in core.walk(commit.id)}
    refs = {b"HEAD": commit.id, branch_ref(agent_id): commit.id}
    prefix = tag_prefix(agent_id)
    for ref, sha in sorted(core.store.read_refs(prefix).items()):
        if sha in history:
            refs[ref] = sha
    write_bundle(core.store, os.fspath(path), refs)
    return core.checkpoint(commit, agent_id, core.names(agent_id).get(commit.id, ()))


def _check_limit(limit: int | None) -> None:
    if limit is not None and (type(limit) is not int or limit < 0):
        raise InvalidArgumentError(f"limit must be an integer >= 0, got {limit!r}")
