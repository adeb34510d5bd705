"""Talking to git servers: URLs and their secrets, and dulwich's client, which moves the packs.

dulwich's client speaks the protocols; what it learns of the local repository
comes from gitstate: a fetch tells the server the commits that gitstate's ref
parser and object reader find (:func:`_haves`), and the bases of the thin pack it
receives are read with that reader (:class:`_ReaderObjects`), so a damaged file is
named as every other command names it (:class:`~gitstate.errors.CorruptObjectError`).
A push sends a pack gitstate makes from its own object reader
(:func:`~gitstate.git.packing.pack_to_send`).

Every URL printed, returned or put in an error goes through :func:`redact`;
every failure of the network or the server becomes a :class:`RemoteError`
whose text has the URL's secret removed (the original exception is not chained:
its text may hold the credentials).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from tempfile import SpooledTemporaryFile
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dulwich.client import get_transport_and_path
from dulwich.object_store import DiskObjectStore, ObjectStoreGraphWalker
from dulwich.objects import ZERO_SHA, ObjectID, RawObjectID
from dulwich.pack import PACK_SPOOL_FILE_MAX_SIZE, REF_DELTA, UnpackedObject
from dulwich.refs import Ref

from ..errors import CorruptObjectError, GitstateError, InvalidArgumentError, RemoteError
from .dulwich_types import object_id, plain_refs, raw_object_id, ref_map, remote_path
from .layout import commit_links
from .packing import pack_to_send
from .reader import COMMIT, Raw, type_name
from .store import Store

__all__ = ["ZERO_SHA", "check_url", "fetch", "is_local_path", "push", "reachable", "redact", "scrub"]

Progress = Callable[[str], None]
"""A transfer progress callback: receives text as git prints it (lines end in ``\\r`` or ``\\n``)."""

T = TypeVar("T")
PUSH_MAX_DEPTH = 50  # longest delta chain in a pack pushed (git's default pack.depth)


def _secret(url: str) -> str | None:
    """The secret of a URL: its password, or over HTTP(S) a lone user name (a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (an unclosed IPv6 bracket): all of its user info
        return url.partition("://")[2].rpartition("@")[0] or None
    if parts.password is not None:
        return parts.password
    if parts.scheme in ("http", "https") and parts.username:
        return parts.username
    return None


def redact(url: str) -> str:
    """``url`` with its secret (see :func:`_secret`) replaced by ``***``."""
    secret = _secret(url)
    if secret is None:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.replace(secret, "***")
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def scrub(text: str, url: str) -> str:
    """``text`` with every form of the URL's secret (and the URL itself) redacted."""
    secret = _secret(url)
    if secret is None:
        return text
    text = text.replace(url, redact(url))
    for form in {secret, unquote(secret), quote(unquote(secret), safe="")}:
        if form:
            text = text.replace(form, "***")
    return text


def _talk(url: str, action: str, call: Callable[[], T]) -> T:
    """Run ``call`` (network I/O); any failure becomes a :class:`RemoteError`, secrets redacted.

    The original exception is not chained: its text may hold the credentials.
    """
    try:
        return call()
    except GitstateError:
        raise
    except Exception as exc:
        message = scrub(f"{action} {redact(url)} failed: {_reason(exc)}", url)
    raise RemoteError(message)


def _reason(exc: BaseException) -> str:
    """Why a network call failed, in a few words: the system error at the root of the chain
    (``Connection refused (errno 111)``, not urllib3's retries around it), else the exception."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    system = next((e for e in reversed(seen) if isinstance(e, OSError) and e.errno is not None), None)
    if system is None:
        return f"{type(exc).__name__}: {exc}"
    return f"{system.strerror or system} (errno {system.errno})"


def is_local_path(url: str) -> bool:
    return "://" not in url and not re.match(r"[^/]+:", url)


def check_url(url: object) -> None:
    """A remote URL must be one line of UTF-8 text that parses as a URL (or a path)."""
    if not isinstance(url, str) or not url.strip() or any(c in url for c in "\n\r\0"):
        raise InvalidArgumentError(
            f"remote URL must be a non-empty one-line string, got {redact(str(url))!r}")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"remote URL {redact(url)!r} is not valid UTF-8 text "
                                   "(it holds a lone surrogate)") from None
    try:
        urlsplit(url)
    except ValueError as exc:
        raise InvalidArgumentError(f"remote URL {redact(url)!r} is malformed: {exc}") from None



def reachable(url: str) -> None:
    """Check that dulwich has a transport for ``url`` (nothing is sent); ``RemoteError`` if not."""
    _talk(url, "reading the URL", lambda: get_transport_and_path(url))


def push(store: Store, url: str, update_refs: Callable[[dict[bytes, bytes]], dict[bytes, bytes]],
         progress: Progress | None) -> dict[bytes, str]:
    """Send the objects the server lacks and the ref changes ``update_refs`` returns (given the
    server's refs), in one connection; return the refs the server refused, with its reasons.

    The objects are read with the store's reader and sent delta-compressed along
    each history (:func:`~gitstate.git.packing.pack_to_send`), with chains of at
    most ``PUSH_MAX_DEPTH`` deltas. Before the server is told of any change,
    every object to send is read and checked against its SHA (:func:`_checked`):
    a damaged or missing one raises :class:`CorruptObjectError` naming it, and
    nothing is sent.
    """
    client, path = _talk(url, "connecting to", lambda: get_transport_and_path(url))

    def has(sha: bytes) -> bool:
        try:
            _read(store, sha, "pushed")
        except KeyError:
            return False
        return True

    def read(sha: bytes) -> Raw:
        return _checked(store, sha)

    def refs_to_send(refs: Mapping[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        theirs = plain_refs(refs)
        changes = update_refs(theirs)
        have = {sha for sha in theirs.values() if sha != ZERO_SHA}
        want = {sha for sha in changes.values() if sha != ZERO_SHA} - have
        for _entry in pack_to_send(read, has, want, have, 0)[1]:  # every object, no deltas
            pass
        return ref_map(changes)

    def pack_data(have: AbstractSet[ObjectID], want: AbstractSet[ObjectID], *, ofs_delta: bool = False,
                  progress: Callable[[bytes], None] | None = None
                  ) -> tuple[int, Iterator[UnpackedObject]]:
        # dulwich writes a delta whose base the pack holds as an offset delta: deltas only
        # with a server that reads those (every git since 1.4.4)
        count, entries = pack_to_send(read, has, want, have, PUSH_MAX_DEPTH if ofs_delta else 0)
        if progress is not None:
            progress(f"counting objects: {count}, done.\n".encode())
        return count, (UnpackedObject(kind if base is None else REF_DELTA, delta_base=base,
                                      decomp_chunks=[body], sha=raw_object_id(sha))
                       for sha, kind, base, body in entries)

    sent = _talk(url, "pushing to", lambda: client.send_pack(
        remote_path(path), refs_to_send, pack_data, progress=_sink(progress, url)))
    return {ref: scrub(str(why), url) for ref, why in (sent.ref_status or {}).items() if why}


def _checked(store: Store, sha: bytes) -> Raw:
    """Object ``sha`` to push, read and hashed: :class:`CorruptObjectError` if its content
    is not the object its SHA names (the server would store it under another name)."""
    kind, raw = _read(store, sha, "pushed")
    actual = hashlib.sha1(b"%s %d\0" % (type_name(kind).encode(), len(raw)) + raw).hexdigest()
    if actual.encode() != sha:
        raise CorruptObjectError(f"object {sha.decode()} is damaged: its content is a "
                                 f"{type_name(kind)} whose SHA is {actual}; nothing was pushed "
                                 "(gitstate verify names every damage)")
    return kind, raw


def fetch(store: Store, url: str, determine_wants: Callable[[dict[bytes, bytes]], list[bytes]],
          prefixes: list[bytes], progress: Progress | None) -> None:
    """Download, in one connection, the objects of the SHAs ``determine_wants`` picks from the
    server's refs under ``prefixes``.

    The server is told the commits the local refs reach (:func:`_haves`); the pack
    it sends is completed with the local objects its deltas name and written into
    the repository. A damaged local ref, object or pack gitstate must read raises
    :class:`CorruptObjectError` naming it, and nothing is written.

    The caller holds the maintenance lock (until refs name what arrived), which every
    fetch takes: so the files dulwich's pack writer leaves when a fetch is killed
    (``objects/pack/*.idx.lock``, which would block the next fetch of the same pack)
    are no one's and are removed first, and those a failed fetch leaves
    (``objects/tmp_pack_*``, ``objects/pack/tmp*.pack``) are removed after it.
    """
    client, path = _talk(url, "connecting to", lambda: get_transport_and_path(url))

    def wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        return [object_id(sha) for sha in determine_wants(plain_refs(refs))]

    walker = ObjectStoreGraphWalker([object_id(sha) for sha in _haves(store)],
                                    lambda sha: [object_id(p) for p in _parents(store, sha)])
    _remove(_dulwich_temporaries(store.objects_dir, locks_only=True))
    before = _dulwich_temporaries(store.objects_dir)
    try:
        with SpooledTemporaryFile(max_size=PACK_SPOOL_FILE_MAX_SIZE, prefix="incoming-",
                                  dir=store.objects_dir) as pack:
            _talk(url, "fetching from", lambda: client.fetch_pack(
                path, wants, walker, pack.write, progress=_sink(progress, url), ref_prefix=prefixes))
            if pack.tell():
                pack.seek(0)
                objects = _ReaderObjects(store)
                _talk(url, "fetching from", lambda: objects.add_thin_pack(pack.read, None))
    except BaseException:
        _remove(_dulwich_temporaries(store.objects_dir) - before)
        raise


def _haves(store: Store) -> list[bytes]:
    """The SHAs the local refs name that the repository holds: what a fetch tells the server
    it has. A loose ref that does not parse is left out, as git leaves out a broken ref;
    a damaged ``packed-refs`` (which git refuses) raises :class:`CorruptObjectError`."""
    errors: dict[bytes, GitstateError] = {}
    refs = store.read_refs(b"refs/", errors)
    if b"packed-refs" in errors:
        raise CorruptObjectError(f"{errors[b'packed-refs']}; nothing was fetched (git refuses such a "
                                 "file too: repair or remove that line)")
    haves = []
    for sha in sorted(set(refs.values())):
        try:
            _read(store, sha)
        except KeyError:  # a ref to a missing object: nothing to tell
            continue
        haves.append(sha)
    return haves


def _parents(store: Store, sha: bytes) -> list[bytes]:
    """The parents of commit ``sha`` as gitstate's reader reads it (another object: none)."""
    try:
        kind, raw = _read(store, sha)
    except KeyError:
        raise CorruptObjectError(f"object {sha.decode()} is missing, yet a local ref reaches it; "
                                 "nothing was fetched (gitstate verify names the damage)") from None
    return commit_links(raw)[1:] if kind == COMMIT else []


def _read(store: Store, sha: bytes, action: str = "fetched") -> Raw:
    """Object ``sha`` as the reader reads it; ``KeyError`` if missing, ``CorruptObjectError`` if
    damaged (saying that nothing was ``action``)."""
    try:
        return store.reader.read(sha)
    except ValueError as exc:  # damaged: the reader's message names the object or its file
        raise CorruptObjectError(f"object {sha.decode()} cannot be read: {exc}; nothing was "
                                 f"{action} (gitstate verify names the damage)") from None


class _ReaderObjects(DiskObjectStore):
    """dulwich's object store of the repository, reading objects with gitstate's reader: a
    fetched thin pack's deltas are completed with the local bases as gitstate reads them
    (a damaged one raises :class:`CorruptObjectError` naming it)."""

    def __init__(self, store: Store):
        super().__init__(store.objects_dir, fsync_object_files=store.durable)
        self._store = store

    def get_raw(self, name: RawObjectID | ObjectID) -> Raw:
        sha = name.hex().encode() if len(name) == 20 else bytes(name)
        try:
            return self._store.reader.read(sha)
        except ValueError as exc:
            raise CorruptObjectError(f"object {sha.decode()}, a base of the fetched pack, cannot be "
                                     f"read: {exc}; nothing was fetched") from None


def _dulwich_temporaries(objects_dir: str, *, locks_only: bool = False) -> set[str]:
    """The files dulwich's pack writer makes while a fetch runs (git names its own apart:
    ``objects/pack/tmp_pack_*``, never ``.idx.lock``)."""
    pack_dir = os.path.join(objects_dir, "pack")
    found = {os.path.join(pack_dir, name) for name in _names(pack_dir)
             if name.endswith(".idx.lock") or (not locks_only and name.startswith("tmp")
                                               and name.endswith(".pack"))}
    if not locks_only:
        found |= {os.path.join(objects_dir, name) for name in _names(objects_dir)
                  if name.startswith("tmp_pack_")}
    return found


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _remove(paths: set[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _sink(progress: Progress | None, url: str) -> Callable[[Any], None] | None:
    """Adapt a text progress callback to dulwich's (bytes or str), secrets redacted."""
    if progress is None:
        return None

    def sink(chunk: bytes | str) -> None:
        text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        progress(scrub(text, url))
    return sink
