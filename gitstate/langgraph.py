"""A LangGraph checkpointer on gitstate: :class:`GitstateSaver` (``pip install gitstate[langgraph]``).

A thread (with its checkpoint namespace) is an agent branch, a LangGraph checkpoint a
commit, a channel value a blob (canonical JSON when JSON holds it exactly, else the
saver's ``serde`` encoding; a list of such values one blob per element). The first
parent of a commit is its LangGraph parent; the branch head is the newest commit and
reaches every other one; pending writes are recorded in the newest commit when they
arrive. docs/langgraph.md describes the layout, the rules and why.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import islice, repeat
from operator import itemgetter
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_to_bytes

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from . import codec
from .core import Core
from .errors import CorruptObjectError, EncodingError, GitstateError, InvalidArgumentError
from .git.journal import RefUpdate
from .git.layout import STATE_FILE, CommitInfo, tree_entries
from .git.objects import FILE_MODE, TREE_MODE, RawObject, object_id, tree_raw
from .git.reader import BLOB, TREE
from .git.store import RefLock
from .ids import BRANCH_PREFIX, branch_ref, new_checkpoint_id, tag_prefix, tag_ref
from .maintenance import Maintenance
from .message import build as build_message
from .message import integer
from .message import parse as parse_message

__all__ = ["GitstateSaver", "agent_id"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
Entry = tuple[bytes, int, bytes]  # (name, mode, hex SHA) of a tree entry
Entries = dict[bytes, tuple[int, bytes]]  # a tree's entries by name: (mode, hex SHA)
_Write = tuple[dict[str, Any], bool, tuple[tuple[bytes, bytes], ...]]  # fields, is a list, blobs

AGENT_PREFIX = "lg"
VIEW_BYTES = 4096  # JSON channel values up to this size are also shown in state.json
LIST_BATCH = 32  # tuples alist fetches per trip to the executor
WRITES_LINGER = 0.01  # seconds put_writes waits for the thread's next put to record its writes
WRITES_POLL = 0.25  # longest pause between put_writes' tries while its checkpoint is not stored
CACHE_ENTRIES = 4096  # parsed trees and decoded state.json kept per saver
ENCODED_BYTES = 64 << 20  # the lists' last encodings kept per saver (see _Encoded)
JOINED_BYTES = 32 << 20  # msgpack lists kept in one piece per saver, by folder (see _list)
RECORD_ENTRIES = 200_000  # parsed commits kept per saver

_SLUG = re.compile(r"[^A-Za-z0-9_-]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")  # not in a commit's summary line
_TOKEN = re.compile(r"[a-z0-9][a-z0-9+_-]{0,63}")
_NAME_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:,=@+-"
_TRAILER_SAFE = bytes(sorted(set(range(0x21, 0x7F)) - set(b"%,=~")))
_CHANNELS, _WRITES = b"channels", b"writes"
_THREAD, _NS, _CHECKPOINT, _PARENT = ("LangGraph-Thread", "LangGraph-Namespace",
                                      "LangGraph-Checkpoint", "LangGraph-Parent")
_RUN, _REVISION, _WRITTEN, _LATEST = ("LangGraph-Run", "LangGraph-Revision", "LangGraph-Writes",
                                      "LangGraph-Latest")
_LEAF = "leaf-"
_SUFFIXES: dict[str, bytes] = {}  # serde type -> b".<extension>"


# -- names ---------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return _SLUG.sub("_", text[:40]) or "_"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _thread_agent(thread_id: str) -> str:
    return f"{AGENT_PREFIX}.{_slug(thread_id)}.{_digest(thread_id)}"


def agent_id(thread_id: object, checkpoint_ns: str = "") -> str:
    """The gitstate agent (branch ``refs/heads/agents/<id>``) holding a thread's namespace.

    ``lg.<slug>.<hash>`` for the root namespace, ``lg.<slug>.<hash>.<slug>.<hash>`` for
    another: slugs keep ``[A-Za-z0-9_-]`` of the first 40 characters, hashes are 16 hex
    digits of SHA-256 (docs/langgraph.md, "Agent ids").
    """
    thread = str(thread_id)
    base = _thread_agent(thread)
    return f"{base}.{_slug(checkpoint_ns)}.{_digest(checkpoint_ns)}" if checkpoint_ns else base


def _quote(text: str, safe: bytes) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if type(text) is str and not data.translate(None, safe):  # all safe (the usual case)
        return text
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in data)


def _unquote(text: str) -> str:
    return unquote_to_bytes(text).decode("utf-8", "surrogatepass")


def _trailer(text: str) -> str:
    """A string as a trailer value: percent-encoded, ``~`` for the empty string."""
    return _quote(text, _TRAILER_SAFE) or "~"


def _untrailer(value: str) -> str:
    return "" if value == "~" else _unquote(value)


def _name(text: str) -> bytes:
    """A channel name or checkpoint id as the name of a tree entry (or its stem): percent-
    encoded, so without ``.``, ``/``, NUL or anything else git refuses; ``~`` for the empty
    string."""
    return (_quote(text, _NAME_SAFE) or "~").encode()


def _unname(stem: str) -> str:
    return "" if stem in ("~", "") else _unquote(stem)


def _extension(serde_type: str) -> str:
    """The file extension of a serde type (``msgpack``), ``hex-<hex>`` unless a plain token."""
    if _TOKEN.fullmatch(serde_type) and serde_type != "json" and not serde_type.startswith("hex-"):
        return serde_type
    return "hex-" + serde_type.encode("utf-8", "surrogatepass").hex()


def _serde_type(extension: str) -> str:
    if extension.startswith("hex-"):
        return bytes.fromhex(extension[4:]).decode("utf-8", "surrogatepass")
    return extension


# -- values --------------------------------------------------------------------------------

def _is_json(value: Any, ordered: bool, depth: int = 1) -> bool:
    """Whether ``value`` is JSON that reads back as itself: exact types; with ``ordered``,
    dicts with their keys already in sorted order (canonical JSON sorts them)."""
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if kind is int:
        return -(2**63) <= value < 2**64
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if value is None or kind is bool:
        return True
    if depth > codec.MAX_DEPTH:
        return False
    if kind is list:
        return all(_is_json(item, ordered, depth + 1) for item in value)
    if kind is dict:
        keys = list(value)
        if not all(type(key) is str for key in keys) or (ordered and keys != sorted(keys)):
            return False
        return all(_is_json(key, ordered, depth) and _is_json(item, ordered, depth + 1)
                   for key, item in value.items())
    return False


# msgpack formats 0xc4-0xdf: (bytes of their length or count field, what follows): "data"
# (that many bytes), "items" (that many values), "pairs" (twice that many), "ext" (a type
# byte, then that many bytes), "fixed" (the field is the value itself)
_MSGPACK: dict[int, tuple[int, str]] = {
    0xc4: (1, "data"), 0xc5: (2, "data"), 0xc6: (4, "data"),
    0xc7: (1, "ext"), 0xc8: (2, "ext"), 0xc9: (4, "ext"),
    0xca: (4, "fixed"), 0xcb: (8, "fixed"), 0xcc: (1, "fixed"), 0xcd: (2, "fixed"),
    0xce: (4, "fixed"), 0xcf: (8, "fixed"), 0xd0: (1, "fixed"), 0xd1: (2, "fixed"),
    0xd2: (4, "fixed"), 0xd3: (8, "fixed"), 0xd4: (2, "fixed"), 0xd5: (3, "fixed"),
    0xd6: (5, "fixed"), 0xd7: (9, "fixed"), 0xd8: (17, "fixed"),
    0xd9: (1, "data"), 0xda: (2, "data"), 0xdb: (4, "data"),
    0xdc: (2, "items"), 0xdd: (4, "items"), 0xde: (2, "pairs"), 0xdf: (4, "pairs"),
}


def _msgpack_items(data: bytes) -> tuple[int, int]:
    """(number of items, where the first starts) of a msgpack array; ValueError if not one."""
    first = data[0]
    if 0x90 <= first <= 0x9f:
        return first & 0x0f, 1
    if first in (0xdc, 0xdd):
        size = 2 if first == 0xdc else 4
        return int.from_bytes(data[1:1 + size], "big"), 1 + size
    raise ValueError("not a msgpack array")


def _msgpack_end(data: bytes, pos: int) -> int:
    """Where the msgpack value starting at ``pos`` ends; ValueError if it is cut short."""
    pending = 1
    while pending:
        pending -= 1
        first = data[pos]
        pos += 1
        if first <= 0x7f or first >= 0xe0 or first in (0xc0, 0xc2, 0xc3):
            continue  # fixint, nil, false, true
        if first <= 0x8f:
            pending += 2 * (first & 0x0f)  # fixmap
        elif first <= 0x9f:
            pending += first & 0x0f  # fixarray
        elif first <= 0xbf:
            pos += first & 0x1f  # fixstr
        else:
            size, kind = _MSGPACK[first]  # KeyError: 0xc1, never used
            field = int.from_bytes(data[pos:pos + size], "big")
            pos += size
            if kind == "data":
                pos += field
            elif kind == "ext":
                pos += 1 + field
            elif kind == "items":
                pending += field
            elif kind == "pairs":
                pending += 2 * field
    if pos > len(data):
        raise ValueError("msgpack value cut short")
    return pos


@dataclass
class _Encoded:
    """A list channel's last encoding by the default serializer: its elements' msgpack bytes
    one after the other, and for each element its end there, its tree entry as a line of
    the raw tree, and for a JSON element its canonical JSON (its blob); and the tree's
    entries by name, in the elements' order, as the saver caches the tree (the next
    encoding copies them: no new tuple per element and step for the cyclic garbage
    collector to go through)."""

    body: bytes
    ends: list[int]
    lines: list[bytes]
    texts: list[bytes | None]
    names: Entries

    def blob(self, i: int) -> bytes:
        """The content of element ``i``'s blob."""
        text = self.texts[i]
        return text if text is not None else self.body[self.ends[i - 1] if i else 0:self.ends[i]]


class _Kept(Generic[K, V]):
    """The values last put, by key, the least recently put dropped past ``limit`` bytes
    (``size(value)``); safe to share between threads."""

    def __init__(self, limit: int, size: Callable[[V], int]) -> None:
        self.limit, self.size = limit, size
        self._lock = threading.Lock()
        self._kept: OrderedDict[K, V] = OrderedDict()
        self._bytes = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._kept.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            old = self._kept.pop(key, None)
            self._bytes += self.size(value) - (self.size(old) if old is not None else 0)
            self._kept[key] = value
            while self._bytes > self.limit:
                _key, dropped = self._kept.popitem(last=False)
                self._bytes -= self.size(dropped)


# The last encoding of each list channel ((agent, channel) -> _Encoded). Only bytes are
# compared with it, so an entry from any put (one that failed, another thread's) is as
# good as any other.
_Encodings = _Kept[tuple[str, str], _Encoded]


class _Objects:
    """The new objects of one write, and how values become tree entries."""

    def __init__(self, serde: SerializerProtocol, encodings: _Encodings | None = None):
        self.serde = serde
        self.encodings = encodings
        self.new: dict[bytes, tuple[int, bytes]] = {}
        self.trees: dict[bytes, Entries] = {}  # the entries of each tree made
        self.json_bytes: dict[bytes, int] = {}  # size of each canonical JSON blob made
        self.lists: list[_Encoded] = []  # lists encoded in one piece: their blobs are new objects too

    def blob(self, data: bytes) -> bytes:
        sha = object_id(BLOB, data)
        self.new[sha] = (BLOB, data)
        return sha

    def tree(self, entries: Sequence[Entry]) -> bytes:
        raw = tree_raw(entries)
        sha = object_id(TREE, raw)
        self.new[sha] = (TREE, raw)
        self.trees[sha] = {name: (mode, entry) for name, mode, entry in entries}
        return sha

    def leaf(self, value: Any) -> tuple[bytes, bytes]:
        """(name suffix, blob SHA) of one value: ``.json`` or ``.<serde type>``."""
        if _is_json(value, ordered=True):
            data = codec.encode(value)
            sha = self.blob(data)
            self.json_bytes[sha] = len(data)
            return b".json", sha
        kind, data = self.serde.dumps_typed(value)
        if type(data) is not bytes:  # a bytearray value comes back as its bytearray
            data = bytes(data)
        suffix = _SUFFIXES.get(kind)
        if suffix is None:
            suffix = _SUFFIXES.setdefault(kind, f".{_extension(kind)}".encode())
        return suffix, self.blob(data)

    def value(self, value: Any, key: tuple[str, str] | None = None) -> tuple[bytes, int, bytes]:
        """(name suffix, mode, SHA) of a channel value: a blob, or a folder of one blob per
        element for a list JSON cannot hold (``key``: its (agent, channel), under which
        ``encodings`` keeps its encoding for the next step: see :meth:`elements`)."""
        if type(value) is list and not _is_json(value, ordered=True):
            last = self.encodings.get(key) if self.encodings is not None and key else None
            encoded = self.elements(value, last)
            if encoded is None:
                entries = [(b"%d%s" % (i, suffix), FILE_MODE, sha)
                           for i, (suffix, sha) in enumerate(map(self.leaf, value))]
                return b"", TREE_MODE, self.tree(entries)
            if self.encodings is not None and key:
                self.encodings.put(key, encoded)
            self.lists.append(encoded)
            raw = b"".join(sorted(encoded.lines))  # files only, no name a prefix of another: git's order
            sha = object_id(TREE, raw)
            self.new[sha] = (TREE, raw)
            self.trees[sha] = encoded.names
            return b"", TREE_MODE, sha
        suffix, sha = self.leaf(value)
        return suffix, FILE_MODE, sha

    def elements(self, value: list[Any], last: _Encoded | None) -> _Encoded | None:
        """The list encoded in one piece, with its elements' tree entries as :meth:`leaf`
        gives them (None: encode it element by element).

        With the default serializer, the list is encoded in one call (as SQLite's saver
        does) and cut into its elements' encodings, which are what encoding each alone
        gives (msgpack writes a list as its items one after the other). The elements
        whose bytes equal those at the same place in ``last`` take their entry from it:
        equal bytes, same blob, not hashed again (identity would not do: a value may be
        changed in place). Their blobs are new objects all the same (a put writes those
        its parent does not hold: :meth:`unknown`).
        """
        if (type(self.serde) is not JsonPlusSerializer
                or any(map(isinstance, value, repeat((bytes, bytearray))))):
            return None  # (bytes: their own serde types)
        try:
            kind, data = self.serde.dumps_typed(value)
            count, start = _msgpack_items(data) if kind == "msgpack" else (-1, 0)
        except Exception:  # encoding each element raises what is wrong with which
            count = -1
        if count != len(value):
            return None
        body = data[start:]
        kept = 0
        if last is not None:
            if body.startswith(last.body):  # the usual case: elements appended
                kept = len(last.ends)
            else:
                pos = 0
                for end in last.ends:
                    if end > len(body) or not body.startswith(last.body[pos:end], pos):
                        break
                    kept, pos = kept + 1, end
        if kept and last is not None:
            names = (last.names.copy() if kept == len(last.ends)
                     else dict(islice(last.names.items(), kept)))
            found = _Encoded(body, last.ends[:kept], last.lines[:kept], last.texts[:kept], names)
        else:
            found = _Encoded(body, [], [], [], {})
        pos = found.ends[-1] if found.ends else 0
        try:
            for i, element in enumerate(value[kept:], kept):
                end = _msgpack_end(body, pos)
                if _is_json(element, ordered=True):
                    suffix, sha = self.leaf(element)
                    found.texts.append(self.new[sha][1])
                else:
                    suffix, sha = b".msgpack", self.blob(body[pos:end])
                    found.texts.append(None)
                name = b"%d%s" % (i, suffix)
                found.ends.append(end)
                found.names[name] = (FILE_MODE, sha)
                found.lines.append(b"%o %s\0%s" % (FILE_MODE, name, bytes.fromhex(sha.decode())))
                pos = end
        except (ValueError, IndexError, KeyError):  # not cut as expected: element by element
            pos = -1
        return found if pos == len(body) else None

    def parts(self, value: Any) -> tuple[bool, tuple[tuple[bytes, bytes], ...]]:
        """A pending write's value as blobs: (is a list, ((suffix, SHA), ...)): one blob, or
        one per element for a list JSON cannot hold (``<n>.<i><suffix>`` in its folder)."""
        if type(value) is list and not _is_json(value, ordered=True):
            return True, tuple((b".%d%s" % (i, suffix), sha)
                               for i, (suffix, sha) in enumerate(map(self.leaf, value)))
        return False, (self.leaf(value),)

    def unknown(self, known: frozenset[bytes] = frozenset()) -> list[RawObject]:
        """The new objects but the ``known`` ones (reachable from the head read under the
        agent's lock, so in the repository)."""
        found = {sha: RawObject(kind, raw, sha) for sha, (kind, raw) in self.new.items() if sha not in known}
        for encoded in self.lists:
            for i, (_mode, sha) in enumerate(encoded.names.values()):
                if sha not in known and sha not in found:
                    found[sha] = RawObject(BLOB, encoded.blob(i), sha)
        return list(found.values())


def _channel(name: bytes, mode: int) -> tuple[str, bytes]:
    """The channel an entry of ``channels/`` holds and the entry's suffix (``.json``,
    ``.<serde type>``, or none for a folder)."""
    text = name.decode()
    stem, dot, extension = text.rpartition(".") if mode != TREE_MODE else (text, "", "")
    return _unname(stem), (dot + extension).encode()


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Reading ``what`` (a commit, its tree): anything not as the saver writes it (a tree
    written by another tool) raises ``CorruptObjectError`` naming it."""
    try:
        yield
    except CorruptObjectError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptObjectError(f"{what} is not a checkpoint as GitstateSaver writes it "
                                 f"({type(exc).__name__}: {exc})") from exc


# -- commits -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Record:
    """What the saver reads of one commit: git fields and the LangGraph trailers."""

    sha: bytes
    tree: bytes
    parents: tuple[bytes, ...]
    author_time: int
    summary: str
    trailers: dict[str, str]
    thread: str | None  # None: not a commit of this saver
    ns: str
    checkpoint_id: str
    parent_id: str | None
    run_id: str | None
    revision: int
    writes: dict[str, int]  # checkpoint id -> put_writes calls merged, for the lists held
    latest: str | None

    @property
    def newest(self) -> str:
        """The greatest checkpoint id of the thread when this commit was written."""
        return self.latest if self.latest is not None else self.checkpoint_id


def _parse_writes(value: str | None) -> dict[str, int]:
    if not value:
        return {}
    found = {}
    for item in value.split(","):
        key, _, count = item.partition("=")
        found[_untrailer(key)] = int(count)
    return found


def _format_writes(writes: Mapping[str, int]) -> str:
    return ",".join(f"{_trailer(key)}={count}" for key, count in sorted(writes.items()))


@dataclass
class _Index:
    """The commits of one agent reachable from its branch and names, and what they hold."""

    head: bytes
    tags: dict[bytes, bytes]
    order: list[_Record]  # oldest first: parents before children, each head after the previous
    carriers: dict[str, _Record]  # checkpoint id -> its newest commit
    holders: dict[str, _Record]  # checkpoint id -> the commit holding its newest writes


@dataclass(eq=False)
class _Queued:
    """The writes of one ``put_writes`` call, waiting to be recorded in a commit.

    It is in its agent's queue until a writer takes it; the writer records it (``finish()``)
    or puts it back. Only its caller gives up on it (``finish(error)``), and only while it
    is in the queue, so what the caller is told is what was stored."""

    agent: str
    thread: str
    ns: str
    checkpoint_id: str
    items: list[_Write]
    objects: _Objects  # the blobs of their values, written with the commit
    deadline: float  # time.monotonic() past which the caller stops waiting for the checkpoint
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None  # why they were not recorded
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def finish(self, error: BaseException | None = None) -> None:
        """Recorded (``error`` None) or given up: wake the caller, in a thread or on a loop."""
        with self._guard:
            if self.done.is_set():
                return
            self.error = error
            self.done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def future(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future of ``loop`` resolved when the writes are finished."""
        future = loop.create_future()
        with self._guard:
            if not self.done.is_set():
                self._waiters.append((loop, future))
                return future
        future.set_result(None)
        return future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class _Built:
    """A commit to write: its new objects (but the ``known`` ones, already stored), tree,
    parents, message and the names to set."""

    objects: _Objects
    tree: bytes
    parents: list[bytes]
    message: bytes
    tags: dict[str, bytes | None]
    known: frozenset[bytes] = frozenset()


@dataclass(frozen=True)
class _Step:
    """One commit of a rebuild: a record to write again, its first parent's checkpoint
    and the writes lists it keeps ({checkpoint id: count}, taken from ``holder``)."""

    record: _Record
    first: str | None
    writes: dict[str, int]
    holder: _Record


def _without_runs(runs: set[str], index: _Index) -> list[_Step]:
    """The steps of a thread without the checkpoints (and their writes) of ``runs``; a kept
    child of a removed checkpoint hangs from its nearest kept ancestor."""
    removed = {checkpoint for checkpoint, record in index.carriers.items() if record.run_id in runs}
    parent_of = {checkpoint: record.parent_id for checkpoint, record in index.carriers.items()}
    steps = []
    for record in index.order:
        if record.thread is None or record.checkpoint_id in removed:
            continue
        first = record.parent_id
        while first in removed:
            first = parent_of.get(first)
        writes = {c: n for c, n in record.writes.items() if c not in removed}
        steps.append(_Step(record, first, writes, record))
    return steps


def _only_latest(index: _Index) -> list[_Step]:
    """The latest checkpoint alone, as a root commit holding its own writes."""
    latest = index.carriers[max(index.carriers)]
    holder = index.holders.get(latest.checkpoint_id)
    if holder is None:
        return [_Step(latest, None, {}, latest)]
    return [_Step(latest, None, {latest.checkpoint_id: holder.writes[latest.checkpoint_id]}, holder)]


# type names for the signatures of GitstateSaver, whose ``list`` method hides the builtin there
_Queue = list[_Queued]
_Records = list[_Record]
_Steps = list[_Step]
_Values = list[Any]
_Candidates = list[tuple[str, str, _Record, "_Record | None"]]
_Lists = dict[str, tuple[list[dict[str, Any]], bytes, int]]  # checkpoint id -> (writes, folder, count)


class GitstateSaver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer, storing threads in a gitstate repository.

    ``path_or_repo`` is a path (the repository is created there if missing), a
    ``StateRepository`` or a :class:`~gitstate.core.Core`. ``serde`` encodes what JSON
    cannot hold (default: LangGraph's ``JsonPlusSerializer``, which never pickles).
    ``writes_timeout`` is how long ``put_writes`` waits for the checkpoint it names to be
    stored (LangGraph may send a step's writes before that step's ``put`` has finished).
    Safe to share between threads; any number of processes may use one repository.
    Use it as a context manager (sync or async) to close what it opened.
    """

    def __init__(self, path_or_repo: Any, *, serde: SerializerProtocol | None = None,
                 writes_timeout: float = 60.0) -> None:
        super().__init__(serde=serde)
        if type(writes_timeout) not in (int, float) or not writes_timeout >= 0:
            raise InvalidArgumentError(f"writes_timeout must be a number of seconds >= 0, got "
                                       f"{writes_timeout!r}")
        if isinstance(path_or_repo, Core):
            self.core, self._owned = path_or_repo, False
        elif isinstance(path_or_repo, (str, os.PathLike)):
            self.core, self._owned = Core.init(path_or_repo), True
        elif isinstance(getattr(path_or_repo, "core", None), Core):
            self.core, self._owned = path_or_repo.core, False
        else:
            raise InvalidArgumentError("GitstateSaver needs a repository path, a StateRepository or "
                                       f"a Core, not {type(path_or_repo).__name__}")
        self.writes_timeout = writes_timeout
        self._maintenance = Maintenance(self.core)
        self._lock = threading.Lock()
        self._queued: dict[str, _Queue] = {}  # per agent: writes waiting for a commit
        self._putting: Counter[tuple[str, str]] = Counter()  # (agent, checkpoint id) being put
        self._writers: dict[str, threading.Lock] = {}  # per agent: this saver's writers queue here
        self._records: dict[bytes, _Record] = {}
        self._indexes: dict[str, _Index] = {}
        self._states: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self._trees: OrderedDict[bytes, Entries] = OrderedDict()
        self._encodings: _Encodings = _Kept(ENCODED_BYTES, lambda encoded: len(encoded.body))
        self._joined: _Kept[bytes, bytes] = _Kept(JOINED_BYTES, len)  # folder SHA -> msgpack list

    # -- context manager ---------------------------------------------------------------
    def close(self) -> None:
        """Release the repository's open files if this saver opened it (it stays usable)."""
        if self._owned:
            self.core.close()

    def __enter__(self) -> GitstateSaver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> GitstateSaver:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    # -- reading objects ---------------------------------------------------------------
    def _record(self, sha: bytes, commit: CommitInfo | None = None) -> _Record:
        """A commit's record (cached: commits never change); ``commit``: it, parsed already."""
        record = self._records.get(sha)
        if record is not None:
            return record
        if commit is None:
            commit = self.core.commit(sha)
        summary, trailers = parse_message(commit.message)
        checkpoint = trailers.get(_CHECKPOINT)
        thread = trailers.get(_THREAD)
        try:
            record = _Record(
                sha, commit.tree, commit.parents, commit.author_time, summary, trailers,
                thread=None if thread is None or checkpoint is None else _untrailer(thread),
                ns=_untrailer(trailers.get(_NS, "~")),
                checkpoint_id=_untrailer(checkpoint) if checkpoint is not None else "",
                parent_id=_untrailer(trailers[_PARENT]) if _PARENT in trailers else None,
                run_id=_untrailer(trailers[_RUN]) if _RUN in trailers else None,
                revision=integer(trailers.get(_REVISION)) or 0,
                writes=_parse_writes(trailers.get(_WRITTEN)),
                latest=_untrailer(trailers[_LATEST]) if _LATEST in trailers else None)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptObjectError(f"commit {sha.decode()}: LangGraph trailers do not parse: "
                                     f"{exc}") from exc
        with self._lock:
            if len(self._records) >= RECORD_ENTRIES:
                self._records.clear()
            self._records[sha] = record
        return record

    def _entries(self, tree: bytes) -> Entries:
        """A tree's entries by name: (mode, hex SHA); cached (trees never change)."""
        found = self._trees.get(tree)
        if found is None:
            try:
                found = {name: (mode, sha) for name, mode, sha in tree_entries(self.core.raw(tree, TREE))}
            except ValueError as exc:
                raise CorruptObjectError(f"tree {tree.decode()}: {exc}") from exc
            self._remember(self._trees, tree, found)
        return found

    def _state(self, record: _Record, fresh: bool = False) -> dict[str, Any]:
        """The decoded ``state.json`` of a commit: shared, never to be modified, unless
        ``fresh`` (what is handed to LangGraph, which modifies what it loads)."""
        entry = self._entries(record.tree).get(STATE_FILE)
        if entry is None:
            raise CorruptObjectError(f"commit {record.sha.decode()} has no state.json")
        found = None if fresh else self._states.get(entry[1])
        if found is None:
            try:
                found = codec.decode(self.core.raw(entry[1], BLOB))
            except EncodingError as exc:
                raise CorruptObjectError(f"the state.json of commit {record.sha.decode()} is not "
                                         f"JSON: {exc}") from exc
            if not isinstance(found, dict):
                raise CorruptObjectError(f"the state.json of commit {record.sha.decode()} is not an object")
            if not fresh:
                self._remember(self._states, entry[1], found)
        return found

    def _remember(self, cache: OrderedDict[bytes, Any], key: bytes, value: Any) -> None:
        with self._lock:
            cache[key] = value
            if len(cache) > CACHE_ENTRIES:
                cache.popitem(last=False)

    # -- agents and their indexes ------------------------------------------------------
    def _agents(self, thread_id: str | None) -> dict[str, bytes]:
        """The saver's agents (of one thread, or all) with their heads."""
        prefix = (BRANCH_PREFIX + (AGENT_PREFIX + "." if thread_id is None
                                   else _thread_agent(thread_id))).encode()
        found = {}
        for ref, sha in self.core.store.read_refs(BRANCH_PREFIX.encode()).items():
            name = ref[len(BRANCH_PREFIX):].decode()
            if ref.startswith(prefix) and (thread_id is None or ref == prefix
                                           or ref[len(prefix):].startswith(b".")):
                found[name] = sha
        return found

    def _head(self, agent: str) -> bytes | None:
        return self.core.store.read_ref(branch_ref(agent))

    def _index(self, agent: str, head: bytes) -> _Index:
        """The index of ``agent`` at ``head`` (cached while the head and names stay)."""
        tags = self.core.store.read_refs(tag_prefix(agent))
        index = self._indexes.get(agent)
        if index is not None and index.head == head and index.tags == tags:
            return index
        roots = sorted(tags.values(), key=lambda sha: self._record(sha).author_time) + [head]
        order: list[_Record] = []
        seen: set[bytes] = set()
        for root in roots:
            stack: list[tuple[bytes, bool]] = [(root, False)]
            while stack:
                sha, done = stack.pop()
                if done:
                    order.append(self._record(sha))
                elif sha not in seen:
                    seen.add(sha)
                    stack.append((sha, True))
                    stack.extend((parent, False) for parent in self._record(sha).parents
                                 if parent not in seen)
        carriers: dict[str, _Record] = {}
        holders: dict[str, _Record] = {}
        for record in order:
            if record.thread is None:
                continue
            known = carriers.get(record.checkpoint_id)
            if known is None or record.revision >= known.revision:
                carriers[record.checkpoint_id] = record
            for checkpoint, count in record.writes.items():
                held = holders.get(checkpoint)
                if held is None or count >= held.writes[checkpoint]:
                    holders[checkpoint] = record
        index = _Index(head, tags, order, carriers, holders)
        with self._lock:
            self._indexes[agent] = index
        return index

    def _latest(self, agent: str, head: bytes) -> tuple[_Record, _Record | None] | None:
        """The commit of the greatest checkpoint id and the one holding its writes."""
        record = self._record(head)
        if record.thread is None:
            return None
        if record.latest is None:
            return record, record if record.checkpoint_id in record.writes else None
        index = self._index(agent, head)
        newest = index.carriers.get(record.latest) or index.carriers[max(index.carriers)]
        return newest, index.holders.get(newest.checkpoint_id)

    # -- building tuples ---------------------------------------------------------------
    def _tuple(self, record: _Record, holder: _Record | None, shared: dict[bytes, Any] | None,
               thread_id: Any = None) -> CheckpointTuple:
        """The CheckpointTuple of a commit, with the writes ``holder`` holds for it."""
        what = f"commit {record.sha.decode()}" + ("" if holder in (None, record) else
                                                  f" (its writes: commit {holder.sha.decode()})")
        with _reading(what):
            state = self._state(record, fresh=True)
            entries = self._entries(record.tree)
            fields = state.get("checkpoint")
            if fields is None:
                fields = self._load(entries, b"checkpoint", shared)
            metadata = state.get("metadata")
            if metadata is None:
                metadata = self._load(entries, b"metadata", shared)
            values = {}
            channels = entries.get(_CHANNELS)
            if channels is not None:
                for name, (mode, sha) in self._entries(channels[1]).items():
                    values[_channel(name, mode)[0]] = self._value(name, mode, sha, shared)
            writes: list[PendingWrite] = []
            if holder is not None:
                held = self._state(holder)["writes"][record.checkpoint_id]
                folder = self._entries(self._entries(holder.tree)[_WRITES][1])
                files = self._entries(folder[_name(record.checkpoint_id)][1])
                for item in held:
                    if "items" in item:
                        value: Any = self._list([(name.encode(), files[name.encode()][1])
                                                 for name in item["items"]], shared)
                    else:
                        value = self._leaf(item["value"].encode(), files[item["value"].encode()][1])
                    writes.append((item["task_id"], item["channel"], value))
        thread = record.thread if thread_id is None else thread_id
        config: RunnableConfig = {"configurable": {
            "thread_id": thread, "checkpoint_ns": record.ns, "checkpoint_id": record.checkpoint_id}}
        parent: RunnableConfig | None = None
        if record.parent_id is not None:
            parent = {"configurable": {"thread_id": thread, "checkpoint_ns": record.ns,
                                       "checkpoint_id": record.parent_id}}
        checkpoint: Checkpoint = {**fields, "channel_values": values}  # type: ignore[typeddict-item]
        return CheckpointTuple(config, checkpoint, metadata, parent, writes)

    def _load(self, entries: Mapping[bytes, tuple[int, bytes]], stem: bytes,
              shared: dict[bytes, Any] | None) -> Any:
        for name, (mode, sha) in entries.items():
            if name.startswith(stem + b"."):
                return self._value(name, mode, sha, shared)
        raise CorruptObjectError(f"a checkpoint tree has neither state.json's {stem.decode()!r} "
                                 f"nor a {stem.decode()}.<type> file")

    def _value(self, name: bytes, mode: int, sha: bytes, shared: dict[bytes, Any] | None) -> Any:
        """The value an entry holds (a folder: a list of its entries, by position)."""
        if mode != TREE_MODE:
            return self._leaf(name, sha)
        joined = self._joined.get(sha) if shared is None else None
        if joined is not None:
            return self.serde.loads_typed(("msgpack", joined))
        items = sorted((int(item.partition(b".")[0]), item, entry_sha)
                       for item, (_mode, entry_sha) in self._entries(sha).items())
        return self._list([(item, entry_sha) for _position, item, entry_sha in items], shared, sha)

    def _list(self, items: Sequence[tuple[bytes, bytes]], shared: dict[bytes, Any] | None,
              folder: bytes | None = None) -> _Values:
        """The list of these blobs' values; in a ``list`` call (``shared``), a blob is decoded
        once for all tuples, but never twice in one list (a value never aliases itself).
        Else, with the default serializer and msgpack elements only, the blobs are decoded
        as one msgpack list (their bytes one after the other), as they were encoded; those
        bytes are kept by ``folder`` (the list's tree) for the next read of it."""
        if (shared is None and type(self.serde) is JsonPlusSerializer
                and all(name.endswith(b".msgpack") for name, _sha in items)):
            count = len(items)
            head = (bytes((0x90 | count,)) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
                    if count < 1 << 16 else b"\xdd" + count.to_bytes(4, "big"))
            data = b"".join([head, *(self.core.raw(sha, BLOB) for _name, sha in items)])
            if folder is not None:
                self._joined.put(folder, data)
            values: _Values = self.serde.loads_typed(("msgpack", data))
            return values
        result, used = [], set()
        for item, sha in items:
            if shared is None or sha in used:
                result.append(self._leaf(item, sha))
                continue
            used.add(sha)
            if sha not in shared:
                shared[sha] = self._leaf(item, sha)
            result.append(shared[sha])
        return result

    def _leaf(self, name: bytes, sha: bytes) -> Any:
        extension = name.decode().rpartition(".")[2]
        data = self.core.raw(sha, BLOB)
        if extension == "json":
            return codec.decode(data)
        return self.serde.loads_typed((_serde_type(extension), data))

    # -- the read API ------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, else the latest), or None."""
        thread, ns = _thread_and_ns(config)
        agent = agent_id(thread, ns)
        head = self._head(agent)
        if head is None:
            return None
        wanted = get_checkpoint_id(config)
        if wanted:
            head_record = self._record(head)
            if head_record.checkpoint_id == wanted and head_record.thread is not None:
                record: _Record | None = head_record  # its writes, if any, are in the head
                holder = head_record if wanted in head_record.writes else None
            else:
                index = self._index(agent, head)
                record, holder = index.carriers.get(wanted), index.holders.get(wanted)
            if record is None:
                return None
        else:
            found = self._latest(agent, head)
            if found is None:
                return None
            record, holder = found
        if record.thread != thread or record.ns != ns:
            return None  # another thread's agent with the same id: a 64-bit hash collision
        return self._tuple(record, holder, None, config["configurable"]["thread_id"])

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (by id): of a thread (one namespace if ``checkpoint_ns``
        is given) or of every thread (``config=None``); ``before`` keeps smaller ids,
        ``filter`` metadata equal on every key, ``limit`` applies last."""
        if config is None:
            agents = self._agents(None)
            wanted_ns, wanted_id = None, None
        else:
            thread = _thread_and_ns(config)[0]
            wanted_ns = config["configurable"].get("checkpoint_ns")
            wanted_id = get_checkpoint_id(config)
            if wanted_ns is None:
                agents = self._agents(thread)
            else:
                agent = agent_id(thread, wanted_ns)
                head = self._head(agent)
                agents = {} if head is None else {agent: head}
        bound = get_checkpoint_id(before) if before else None
        candidates = []
        for agent, head in agents.items():
            index = self._index(agent, head)
            for checkpoint, record in index.carriers.items():
                if config is not None and (record.thread != thread
                                           or (wanted_ns is not None and record.ns != wanted_ns)):
                    continue
                if (wanted_id and checkpoint != wanted_id) or (bound and checkpoint >= bound):
                    continue
                candidates.append((checkpoint, record.ns, record, index.holders.get(checkpoint)))
        candidates.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return self._tuples(candidates, filter, limit)

    def _tuples(self, candidates: _Candidates,
                filter: dict[str, Any] | None, limit: int | None) -> Iterator[CheckpointTuple]:
        shared: dict[bytes, Any] = {}
        count = 0
        for _checkpoint, _ns, record, holder in candidates:
            if limit is not None and count >= limit:
                return
            if filter:
                with _reading(f"commit {record.sha.decode()}"):
                    metadata = self._state(record).get("metadata")
                    if metadata is None:
                        metadata = self._load(self._entries(record.tree), b"metadata", None)
                    if not all(metadata.get(key) == value for key, value in filter.items()):
                        continue
            count += 1
            yield self._tuple(record, holder, shared)

    # -- writing -----------------------------------------------------------------------
    @contextmanager
    def _locked(self, agent: str) -> Iterator[RefLock]:
        """The agent's lock: first among this saver's threads (a plain lock, which wakes the
        next waiter at once), then the repository-wide one (``Store.agent_lock``, which
        waits with backoff for other processes)."""
        with self._lock:
            writer = self._writers.setdefault(agent, threading.Lock())
        with writer, self.core.store.agent_lock(agent) as lock:
            yield lock

    def _write(self, agent: str, build: Callable[[bytes | None, _Queue], tuple[_Built | None, _Queue]]
               ) -> None:
        """Under the agent's lock, with the writes queued for the agent: ``build(head,
        queued)`` gives the commit to write (None: nothing to write) and the queued writes
        it records (or finds recorded already); write it and move the branch, and the names
        it sets, by compare-and-swap from ``head``. Those writes are then finished, the
        others go back to the queue, also when this fails (unless the branch moved: then
        they are recorded); recording a write again later changes nothing."""
        store = self.core.store
        with self._locked(agent) as lock:
            with self._lock:
                queued = self._queued.pop(agent, [])
            recorded: _Queue = []
            held: _Queue = []
            commit = None
            try:
                while True:
                    head = store.writable_ref(branch_ref(agent))
                    built, recorded = build(head, queued)
                    if built is None:
                        held = recorded
                        break
                    commit = self.core.write_commit(agent, built.tree, built.parents, built.message,
                                                    objects=built.objects.unknown(built.known))
                    if self._move(lock, agent, head, commit.id, built.tags):
                        held = recorded
                        self._seed(built, CommitInfo.parse(commit.id, commit.as_raw_string()))
                        break
            except BaseException:
                if commit is not None and self._landed(agent, commit.id):
                    held = recorded
                raise
            finally:
                rest = [item for item in queued if item not in held]
                if rest:
                    with self._lock:
                        self._queued[agent] = rest + self._queued.get(agent, [])
                for item in held:
                    item.finish()
        self._maintenance.after(None)

    def _seed(self, built: _Built, commit: CommitInfo) -> None:
        """Cache the record, trees and state.json of a commit just written: the thread's
        next write reads them."""
        for sha, entries in built.objects.trees.items():
            if sha not in self._trees:
                self._remember(self._trees, sha, entries)
        state = self._trees[built.tree][STATE_FILE][1]
        if state not in self._states:
            self._remember(self._states, state, codec.decode(built.objects.new[state][1]))
        self._record(commit.id, commit)

    def _landed(self, agent: str, commit: bytes) -> bool:
        """Whether the agent's branch points at ``commit`` (a write that raised moved it)."""
        try:
            return self._head(agent) == commit
        except GitstateError:
            return False

    def _move(self, lock: RefLock, agent: str, head: bytes | None, new: bytes | None,
              tags: Mapping[str, bytes | None]) -> bool:
        """Move the branch from ``head`` to ``new`` (None: delete it) and set ``tags``
        ({name: SHA, None to delete}), as one journaled operation."""
        store = self.core.store
        updates = [RefUpdate(branch_ref(agent), head, new)]
        old_tags = store.read_refs(tag_prefix(agent)) if tags else {}
        for name, sha in sorted(tags.items()):
            ref = tag_ref(agent, name)
            if old_tags.get(ref) != sha:
                updates.append(RefUpdate(ref, old_tags.get(ref), sha))
        return store.update_refs(lock, agent, updates)

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Store a checkpoint as a commit on its thread's branch (its parent: the config's
        ``checkpoint_id``); only channels in ``new_versions`` are encoded again. Writes
        queued for the thread are recorded in the same commit."""
        thread, ns = _thread_and_ns(config)
        agent = agent_id(thread, ns)
        parent_id = config["configurable"].get("checkpoint_id") or None
        checkpoint_id = checkpoint["id"]
        metadata = get_checkpoint_metadata(config, metadata)
        fields = {key: value for key, value in checkpoint.items() if key != "channel_values"}
        values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
        objects = _Objects(self.serde, self._encodings)
        changed, view = {}, {}
        for channel in new_versions:
            if channel in versions and channel in values:
                changed[channel] = suffix, _mode, sha = objects.value(values[channel], (agent, channel))
                if suffix == b".json" and objects.json_bytes[sha] <= VIEW_BYTES:
                    view[channel] = values[channel]
        tops: list[Entry] = []
        state: dict[str, Any] = {"changed": sorted(new_versions)}
        for key, data in (("checkpoint", fields), ("metadata", metadata)):
            if _is_json(data, ordered=False):
                state[key] = data
            else:
                suffix, sha = objects.leaf(data)
                tops.append((key.encode() + suffix, FILE_MODE, sha))
        state.update(step=metadata.get("step"), source=metadata.get("source"),
                     parent_checkpoint_id=parent_id)

        def build(head: bytes | None, queued: _Queue) -> tuple[_Built, _Queue]:
            head_record = self._own(agent, head, thread, ns)
            first = self._carrier(agent, head, head_record, parent_id)
            inherited, inherited_view = self._channels(first)
            entries: list[Entry] = []
            shown = {}
            for channel in versions:
                if channel in changed:
                    suffix, mode, sha = changed[channel]
                    if channel in view:
                        shown[channel] = view[channel]
                elif channel in inherited and inherited[channel][3] == versions[channel]:
                    suffix, mode, sha, _version = inherited[channel]
                    if channel in inherited_view:
                        shown[channel] = inherited_view[channel]
                elif channel in values:  # not new, yet not in the parent: encode it after all
                    suffix, mode, sha = objects.value(values[channel], (agent, channel))
                else:
                    continue  # a channel with a version but no value ("empty")
                entries.append((_name(channel) + suffix, mode, sha))
            lists, recorded = self._merge_queued(agent, head, head_record, queued, objects, checkpoint_id)
            top = [*tops]
            if entries:
                top.append((_CHANNELS, TREE_MODE, objects.tree(entries)))
            if lists:
                folders = [(_name(checkpoint), TREE_MODE, tree)
                           for checkpoint, (_listed, tree, _count) in lists.items()]
                top.append((_WRITES, TREE_MODE, objects.tree(folders)))
            written = {c: listed for c, (listed, _folder, _n) in lists.items()}
            top.append((STATE_FILE, FILE_MODE, objects.blob(codec.encode(
                {**state, "values": shown, "writes": written}))))
            parents = [first.sha] if first is not None else []
            tags: dict[str, bytes | None] = {}
            if head is not None and head not in parents:
                parents.append(head)
                if parents[0] != head and head_record is not None:  # the old head leaves the line
                    tags[_LEAF + head_record.trailers.get("Checkpoint-Id", head.decode())] = head
            revision = (head_record.revision + 1 if head_record is not None
                        and head_record.checkpoint_id == checkpoint_id else 0)
            newest = max(head_record.newest, checkpoint_id) if head_record is not None else checkpoint_id
            trailers = self._trailers(agent, thread, ns, checkpoint_id, parent_id, metadata, revision,
                                      {c: n for c, (_l, _f, n) in lists.items()}, newest)
            message = build_message(_summary(metadata, state["changed"], written), trailers)
            built = _Built(objects, objects.tree(top), parents, message, tags, self._known(first))
            return built, recorded

        putting = (agent, checkpoint_id)  # writes for it wait for this put to record them
        with self._lock:
            self._putting[putting] += 1
        try:
            self._write(agent, build)
        finally:
            with self._lock:
                self._putting[putting] -= 1
                if not self._putting[putting]:
                    del self._putting[putting]
        return {"configurable": {"thread_id": config["configurable"]["thread_id"],
                                 "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}

    def _known(self, record: _Record | None) -> frozenset[bytes]:
        """The objects of a commit down to its list elements: its trees, state.json, channel
        values and their elements (a child commit shares most of them)."""
        if record is None:
            return frozenset()
        top = self._entries(record.tree)
        known = {record.tree, *(sha for _mode, sha in top.values())}
        if _CHANNELS in top:
            for mode, sha in self._entries(top[_CHANNELS][1]).values():
                known.add(sha)
                if mode == TREE_MODE:
                    known.update(map(itemgetter(1), self._entries(sha).values()))
        return frozenset(known)

    def _own(self, agent: str, head: bytes | None, thread: str, ns: str) -> _Record | None:
        """The head's record; InvalidArgumentError if the branch holds another thread's commits."""
        if head is None:
            return None
        record = self._record(head)
        if record.thread != thread or record.ns != ns:
            raise InvalidArgumentError(
                f"agent {agent!r} holds commits of thread {record.thread!r}, namespace "
                f"{record.ns!r} (or not written by GitstateSaver), not thread {thread!r}, "
                f"namespace {ns!r}: delete that agent or use another repository")
        return record

    def _carrier(self, agent: str, head: bytes | None, head_record: _Record | None,
                 checkpoint_id: str | None) -> _Record | None:
        """The newest commit of a checkpoint (None if the thread has no such checkpoint)."""
        if checkpoint_id is None or head is None or head_record is None:
            return None
        if head_record.checkpoint_id == checkpoint_id:
            return head_record
        if head_record.parent_id == checkpoint_id and head_record.parents:
            first = self._record(head_record.parents[0])
            if first.checkpoint_id == checkpoint_id and first.thread is not None:
                return first  # newest: a newer one would have been written after the head
        return self._index(agent, head).carriers.get(checkpoint_id)

    def _channels(self, record: _Record | None) -> tuple[dict[str, tuple[bytes, int, bytes, Any]],
                                                          dict[str, Any]]:
        """A commit's channel entries {channel: (suffix, mode, SHA, version)} and its view."""
        if record is None:
            return {}, {}
        with _reading(f"commit {record.sha.decode()}"):
            state = self._state(record)
            fields = state.get("checkpoint")
            if fields is None:
                fields = self._load(self._entries(record.tree), b"checkpoint", None)
            versions = fields.get("channel_versions", {})
            channels = self._entries(record.tree).get(_CHANNELS)
            found = {}
            if channels is not None:
                for name, (mode, sha) in self._entries(channels[1]).items():
                    channel, suffix = _channel(name, mode)
                    found[channel] = (suffix, mode, sha, versions.get(channel))
            return found, state.get("values", {})

    def _trailers(self, agent: str, thread: str, ns: str, checkpoint_id: str,
                  parent_id: str | None, metadata: Mapping[str, Any], revision: int,
                  writes: Mapping[str, int], newest: str, gid: str | None = None) -> dict[str, str]:
        step, source, run = metadata.get("step"), metadata.get("source"), metadata.get("run_id")
        trailers = {"Checkpoint-Id": gid or new_checkpoint_id(), "Agent-Id": agent}
        if type(step) is int:
            trailers["Iteration"] = str(step)
        if isinstance(source, str) and source.strip():
            trailers["Status"] = " ".join(source.split())
        trailers["Schema-Version"] = "1"
        trailers[_THREAD] = _trailer(thread)
        if ns:
            trailers[_NS] = _trailer(ns)
        trailers[_CHECKPOINT] = _trailer(checkpoint_id)
        if parent_id is not None:
            trailers[_PARENT] = _trailer(parent_id)
        if isinstance(run, str):
            trailers[_RUN] = _trailer(run)
        trailers[_REVISION] = str(revision)
        if writes:
            trailers[_WRITTEN] = _format_writes(writes)
        if newest != checkpoint_id:
            trailers[_LATEST] = _trailer(newest)
        return trailers

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Record pending writes of the checkpoint ``config`` names (docs/langgraph.md,
        "Pending writes"): queued for the next ``put`` of the thread, which records them in
        its own commit; if none comes within ``WRITES_LINGER`` seconds, recorded in a commit
        of their own. Writes for a checkpoint not stored yet wait for its ``put``
        (``writes_timeout`` at most). Returns once they are in a commit on the branch;
        raises if they are not (and then they never will be)."""
        queued = self._enqueue(config, writes, task_id, task_path)
        delay = WRITES_LINGER
        while not queued.done.wait(delay):
            delay = self._retry(queued, delay)
        if queued.error is not None:
            raise queued.error

    def _enqueue(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                 task_path: str) -> _Queued:
        """The writes of one ``put_writes`` call, encoded, in their agent's queue."""
        thread, ns = _thread_and_ns(config)
        checkpoint_id = config["configurable"].get("checkpoint_id")
        if not isinstance(checkpoint_id, str):
            raise InvalidArgumentError(f"put_writes needs the config's configurable.checkpoint_id "
                                       f"(the checkpoint the writes belong to), got {checkpoint_id!r}")
        objects = _Objects(self.serde)
        items = []
        for idx, (channel, value) in enumerate(writes):
            fields = {"task_id": task_id, "task_path": task_path,
                      "idx": WRITES_IDX_MAP.get(channel, idx), "channel": channel}
            items.append((fields, *objects.parts(value)))
        queued = _Queued(agent_id(thread, ns), thread, ns, checkpoint_id, items, objects,
                         time.monotonic() + self.writes_timeout)
        with self._lock:
            self._queued.setdefault(queued.agent, []).append(queued)
        return queued

    def _retry(self, queued: _Queued, waited: float) -> float:
        """After a ``put_writes`` call waited ``waited`` seconds in vain: record the queued
        writes in a commit of their own, unless a put of this saver is about to; give the
        call up (the error of that commit, or past its deadline) if its writes are still
        queued. Return how long to wait next. Never waits for another call."""
        with self._lock:
            waiting = queued in self._queued.get(queued.agent, ())
            putting = (queued.agent, queued.checkpoint_id) in self._putting
        if not waiting or putting:
            return WRITES_LINGER  # a writer holds them, or that put records them: soon done
        if time.monotonic() >= queued.deadline:
            self._withdraw(queued, InvalidArgumentError(
                f"thread {queued.thread!r} (namespace {queued.ns!r}) has no checkpoint "
                f"{queued.checkpoint_id!r}: its writes were not recorded (waited "
                f"{self.writes_timeout:g}s for it to be stored)"))
            return WRITES_LINGER
        try:
            self._write(queued.agent, partial(self._writes_commit, queued.agent, queued.thread, queued.ns))
        except Exception as exc:
            self._withdraw(queued, exc)
        return min(waited * 2, WRITES_POLL)

    def _withdraw(self, queued: _Queued, error: BaseException) -> None:
        """Give up writes still in the queue (no writer holds them): finished with ``error``."""
        with self._lock:
            waiting = self._queued.get(queued.agent, [])
            if queued not in waiting:
                return
            waiting.remove(queued)
            if not waiting:
                del self._queued[queued.agent]
        queued.finish(error)

    def _writes_commit(self, agent: str, thread: str, ns: str, head: bytes | None,
                       queued: _Queue) -> tuple[_Built | None, _Queue]:
        """The head's checkpoint recorded again, with the queued writes added to the writes
        lists it holds; parents: the head's first parent and the head (a fast-forward)."""
        head_record = self._own(agent, head, thread, ns)
        objects = _Objects(self.serde)
        lists, recorded = self._merge_queued(agent, head, head_record, queued, objects)
        if not lists or head is None or head_record is None:
            return None, recorded  # nothing to add
        with _reading(f"commit {head.decode()}"):
            state = self._state(head_record)
            top = dict(self._entries(head_record.tree))
            folder = dict(self._entries(top[_WRITES][1])) if _WRITES in top else {}
            written = {**state.get("writes", {}), **{c: listed for c, (listed, _t, _n) in lists.items()}}
        for checkpoint, (_listed, tree, _count) in lists.items():
            folder[_name(checkpoint)] = (TREE_MODE, tree)
        top[_WRITES] = (TREE_MODE, objects.tree([(n, m, s) for n, (m, s) in folder.items()]))
        state = {**state, "writes": written}
        top[STATE_FILE] = (FILE_MODE, objects.blob(codec.encode(state)))
        counts = {**head_record.writes, **{c: n for c, (_l, _t, n) in lists.items()}}
        trailers = {**head_record.trailers, "Checkpoint-Id": new_checkpoint_id(),
                    _REVISION: str(head_record.revision + 1), _WRITTEN: _format_writes(counts)}
        parents = [head_record.parents[0], head] if head_record.parents else [head]
        message = build_message(_summary(state.get("metadata") or {}, state.get("changed", []), written),
                                trailers)
        tree = objects.tree([(n, m, s) for n, (m, s) in top.items()])
        return _Built(objects, tree, parents, message, {}), recorded

    def _merge_queued(self, agent: str, head: bytes | None, head_record: _Record | None,
                      queued: _Queue, objects: _Objects, own: str | None = None
                      ) -> tuple[_Lists, _Queue]:
        """The writes lists the queued writes change, merged into the lists already recorded
        ({checkpoint id: (list, folder SHA, count)}; their blobs join ``objects``), and the
        queued writes recorded so (or found recorded already): those of the checkpoints on
        the thread and of ``own`` (the checkpoint being put). The others wait for their
        checkpoint."""
        lists: _Lists = {}
        recorded: _Queue = []
        with self._lock:
            putting = {checkpoint for each, checkpoint in self._putting if each == agent}
        for checkpoint in dict.fromkeys(item.checkpoint_id for item in queued):
            if checkpoint == own:
                holder = (self._holder(agent, head, head_record, checkpoint) if head is not None
                          and head_record is not None and head_record.checkpoint_id == own else None)
            elif (head is None or head_record is None or checkpoint in putting
                  or self._carrier(agent, head, head_record, checkpoint) is None):
                continue  # not on the thread (yet): they wait for its put
            else:
                holder = self._holder(agent, head, head_record, checkpoint)
            calls = [item for item in queued if item.checkpoint_id == checkpoint]
            recorded += calls
            merged: dict[tuple[str, int], _Write] = {}
            if holder is not None:
                with _reading(f"commit {holder.sha.decode()}"):
                    files = self._entries(self._entries(self._entries(holder.tree)[_WRITES][1])[
                        _name(checkpoint)][1])
                    for item in self._state(holder)["writes"][checkpoint]:
                        names = item["items"] if "items" in item else [item["value"]]
                        parts = tuple((b"." + name.split(".", 1)[1].encode(), files[name.encode()][1])
                                      for name in names)
                        fields = {key: item[key] for key in ("channel", "idx", "task_id", "task_path")}
                        merged[(item["task_id"], item["idx"])] = (fields, "items" in item, parts)
            changed = False
            for call in calls:
                added = False
                for write in call.items:
                    key = (write[0]["task_id"], write[0]["idx"])
                    if key in merged and (key[1] >= 0 or merged[key] == write):
                        continue  # an ordinary write is recorded once; special ones overwrite
                    merged[key] = write
                    added = True
                if added:
                    objects.new.update(call.objects.new)
                    changed = True
            if not changed:
                continue
            listed, files_out = [], []
            ordered = sorted(merged.values(), key=lambda w: (w[0]["task_path"], w[0]["task_id"], w[0]["idx"]))
            for position, (fields, is_list, parts) in enumerate(ordered):
                names = [b"%d%s" % (position, suffix) for suffix, _sha in parts]
                files_out += [(name, FILE_MODE, sha)
                              for name, (_suffix, sha) in zip(names, parts, strict=True)]
                shown = [name.decode() for name in names]
                listed.append({**fields, "items": shown} if is_list else {**fields, "value": shown[0]})
            count = (holder.writes[checkpoint] if holder is not None else 0) + len(calls)
            lists[checkpoint] = (listed, objects.tree(files_out), count)
        return lists, recorded

    def _holder(self, agent: str, head: bytes, head_record: _Record,
                checkpoint_id: str) -> _Record | None:
        """The commit holding the newest writes of a checkpoint (None: it has none).

        The head holds the writes of its own checkpoint once there are any, so does every
        head; the head's last parent is the previous head. So the head and the previous
        head decide the usual cases; others are looked up in the index.
        """
        if checkpoint_id in head_record.writes:
            return head_record
        if head_record.checkpoint_id == checkpoint_id:
            return None
        if head_record.parents:
            previous = self._record(head_record.parents[-1])
            if checkpoint_id in previous.writes:
                return previous
            if previous.checkpoint_id == checkpoint_id:
                return None
        return self._index(agent, head).holders.get(checkpoint_id)


    # -- deleting, pruning, copying ----------------------------------------------------
    def delete_thread(self, thread_id: str) -> None:
        """Delete every namespace of a thread: its branches and names (no error if absent)."""
        for agent in self._agents(str(thread_id)):
            self._rebuild(agent, lambda index: [])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is listed, and their writes, in
        every thread and namespace; the rest is rebuilt around them."""
        runs = set(run_ids)
        if not runs:
            return
        for agent, head in self._agents(None).items():
            if any(record.run_id in runs for record in self._index(agent, head).carriers.values()):
                self._rebuild(agent, partial(_without_runs, runs))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep only the latest checkpoint of each namespace, with its writes;
        ``delete``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidArgumentError(f"strategy must be 'keep_latest' or 'delete', got {strategy!r}")
        for thread_id in thread_ids:
            for agent in self._agents(str(thread_id)):
                self._rebuild(agent, _only_latest if strategy == "keep_latest" else lambda index: [])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every namespace of a thread to another thread id: same checkpoints, ids,
        order, metadata and writes (trees are shared); checkpoints the target already has
        stay as they are. A missing source copies nothing."""
        source, target = str(source_thread_id), str(target_thread_id)
        for agent, head in self._agents(source).items():
            records = [r for r in self._index(agent, head).order if r.thread == source]
            if records:
                self._copy(records, target, records[-1].ns)

    def _copy(self, records: _Records, thread: str, ns: str) -> None:
        agent = agent_id(thread, ns)
        store = self.core.store
        with self._locked(agent) as lock:
            while True:
                head = store.writable_ref(branch_ref(agent))
                head_record = self._own(agent, head, thread, ns)
                index = self._index(agent, head) if head is not None else None
                present = index.carriers if index is not None else {}
                steps = [_Step(r, r.parent_id, r.writes, r) for r in records
                         if r.checkpoint_id not in present]
                if not steps:
                    return
                new_head, tags, _mapping = self._replay(agent, thread, ns, steps, head_record, present)
                if self._move(lock, agent, head, new_head, tags):
                    break
        self._maintenance.after(None)

    def _rebuild(self, agent: str, select: Callable[[_Index], _Steps]) -> None:
        """Under the agent's lock, write again the steps ``select(index)`` gives (none: delete
        the agent) and move the branch and its names by compare-and-swap."""
        store = self.core.store
        prefix = tag_prefix(agent)
        with self._locked(agent) as lock:
            while True:
                head = store.writable_ref(branch_ref(agent))
                if head is None:
                    return
                index = self._index(agent, head)
                if not index.carriers:
                    return  # no commit of this saver: not a thread's branch
                steps = select(index)
                old = {ref[len(prefix):].decode(): sha for ref, sha in index.tags.items()}
                if not steps:
                    if self._move(lock, agent, head, None, dict.fromkeys(old)):
                        return
                    continue
                first = steps[0].record
                new_head, tags, mapping = self._replay(agent, first.thread or "", first.ns, steps,
                                                       None, {})
                for name, sha in old.items():  # names follow their commits; leaf names are redone
                    if name not in tags:
                        tags[name] = None if name.startswith(_LEAF) else mapping.get(sha)
                if new_head == head and all(old.get(name) == sha for name, sha in tags.items()):
                    return
                if self._move(lock, agent, head, new_head, tags):
                    break
        self._maintenance.after(None)

    def _replay(self, agent: str, thread: str, ns: str, steps: _Steps, head: _Record | None,
                carriers: Mapping[str, _Record]) -> tuple[bytes, dict[str, bytes | None],
                                                          dict[bytes, bytes]]:
        """Write ``steps`` (oldest first) onto ``head`` by the rules of ``put``: the first
        parent is the newest commit of the checkpoint ``step.first``, the previous head the
        last parent, and a head that leaves the line gets a ``leaf-`` name. A commit whose
        parents, tree and trailers stay is kept. Return the new head, the names to set and
        {old SHA: new SHA}."""
        newest_commit = {checkpoint: record.sha for checkpoint, record in carriers.items()}
        revisions = {checkpoint: record.revision for checkpoint, record in carriers.items()}
        current = None if head is None else (head.sha, head.checkpoint_id, head.trailers)
        newest = None if head is None else head.newest
        tags: dict[str, bytes | None] = {}
        mapping: dict[bytes, bytes] = {}
        for step in steps:
            record = step.record
            first = newest_commit.get(step.first) if step.first is not None else None
            parents = [first] if first is not None else []
            if current is not None and current[0] not in parents:
                parents.append(current[0])
                if parents[0] != current[0] and current[1] != record.checkpoint_id:
                    tags[_LEAF + current[2].get("Checkpoint-Id", current[0].decode())] = current[0]
            newest = record.checkpoint_id if newest is None else max(newest, record.checkpoint_id)
            trailers = dict(record.trailers)
            trailers.update({"Agent-Id": agent, _THREAD: _trailer(thread)})
            for key, value in ((_NS, ns and _trailer(ns)), (_WRITTEN, _format_writes(step.writes)),
                               (_LATEST, newest != record.checkpoint_id and _trailer(newest))):
                if value:
                    trailers[key] = value
                else:
                    trailers.pop(key, None)
            objects = _Objects(self.serde)
            tree = self._replay_tree(step, objects)
            if tuple(parents) == record.parents and tree == record.tree and trailers == record.trailers:
                sha = record.sha
            else:
                for obj in objects.unknown():
                    self.core.store.write(obj)
                sha = self.core.write_commit(agent, tree, parents, build_message(record.summary, trailers),
                                             record.author_time).id
            mapping[record.sha] = sha
            current = (sha, record.checkpoint_id, trailers)
            if record.revision >= revisions.get(record.checkpoint_id, -1):
                newest_commit[record.checkpoint_id] = sha
                revisions[record.checkpoint_id] = record.revision
        assert current is not None, "a replay writes at least one commit"
        return current[0], tags, mapping

    def _replay_tree(self, step: _Step, objects: _Objects) -> bytes:
        """A step's tree: its record's, holding only the writes lists ``step.writes`` names
        (taken from ``step.holder``)."""
        record, holder = step.record, step.holder
        with _reading(f"commit {record.sha.decode()} or {holder.sha.decode()}"):
            state = self._state(record)
            held = self._state(holder).get("writes", {})
            keep = {checkpoint: held[checkpoint] for checkpoint in step.writes if checkpoint in held}
            if holder is record and keep == state.get("writes", {}):
                return record.tree
            top = dict(self._entries(record.tree))
            top.pop(_WRITES, None)
            if keep:
                folder = self._entries(self._entries(holder.tree)[_WRITES][1])
                top[_WRITES] = (TREE_MODE, objects.tree([(name, mode, sha) for name, (mode, sha)
                                                         in folder.items()
                                                         if _unname(name.decode()) in keep]))
        top[STATE_FILE] = (FILE_MODE, objects.blob(codec.encode({**state, "writes": keep})))
        return objects.tree([(name, mode, sha) for name, (mode, sha) in top.items()])

    # -- versions ----------------------------------------------------------------------
    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<32-digit counter>.<random>``, as InMemorySaver (accepts an int ``current``)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- async -------------------------------------------------------------------------
    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args, **kwargs))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._run(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        tuples = await self._run(self.list, config, filter=filter, before=before, limit=limit)
        while True:
            batch = await self._run(lambda: list(islice(tuples, LIST_BATCH)))
            if not batch:
                return
            for item in batch:
                yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await self._run(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """``put_writes``, waiting on the event loop, not in a thread: writes sent before
        their checkpoint's ``aput`` never keep that put from a thread of the executor."""
        queued = await self._run(self._enqueue, config, writes, task_id, task_path)
        finished = queued.future(asyncio.get_running_loop())
        delay = WRITES_LINGER
        try:
            while not (await asyncio.wait([finished], timeout=delay))[0]:
                delay = await self._run(self._retry, queued, delay)
        except asyncio.CancelledError as exc:
            self._withdraw(queued, exc)
            raise
        if queued.error is not None:
            raise queued.error

    async def adelete_thread(self, thread_id: str) -> None:
        await self._run(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._run(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._run(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._run(self.prune, thread_ids, strategy=strategy)


def _thread_and_ns(config: RunnableConfig) -> tuple[str, str]:
    configurable = config.get("configurable") or {}
    if configurable.get("thread_id") is None:
        raise InvalidArgumentError("the config has no configurable.thread_id: LangGraph needs one "
                                   "to keep a thread's checkpoints")
    return str(configurable["thread_id"]), configurable.get("checkpoint_ns") or ""


def _summary(metadata: Mapping[str, Any], changed: Sequence[str], writes: Mapping[str, Any]) -> str:
    """``step 3 loop: messages | 2 writes: messages, branch:to:tool`` (control characters
    of channel names as ``?``)."""
    step, source = metadata.get("step"), metadata.get("source")
    text = " ".join(str(part) for part in ("step", step, source) if part is not None)
    text += ": " + (", ".join(changed) if changed else "no channel changed")
    channels = sorted({item["channel"] for listed in writes.values() for item in listed})
    if channels:
        count = sum(len(listed) for listed in writes.values())
        text += f" | {count} write{'s' if count != 1 else ''}: {', '.join(channels)}"
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= 200 else text[:197] + "..."
