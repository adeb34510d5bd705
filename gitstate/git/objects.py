"""Git objects built from raw bytes: their ids, trees of many entries, the objects to write,
and the stored (uncompressed) zlib stream loose objects and small packs hold them in.

Hashing the raw bytes directly is ~5x cheaper than building a dulwich object per
entry (writers of many small objects: one blob per list element, a tree of
hundreds of entries), and a large blob is hashed once and never copied:
:class:`RawObject` is what ``Store.write`` takes, as it takes dulwich's objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

from isal import isal_zlib

from .reader import TYPE_NAMES

FILE_MODE = 0o100644
TREE_MODE = 0o40000
_HEADERS = {number: name for name, number in TYPE_NAMES.items()}
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KB window, "fastest" level: what zlib writes at level 0
_BLOCK = 0xFFFF  # the most a stored deflate block holds


def header(type_num: int, size: int) -> bytes:
    """The header git hashes and stores before an object's content: ``<type> <size>\0``."""
    return b"%s %d\0" % (_HEADERS[type_num], size)


def stored_zlib(head: bytes, body: bytes) -> list[bytes | memoryview]:
    """A zlib stream of ``head + body`` in stored (uncompressed) deflate blocks, as the
    buffers to write: ``body`` is not copied (RFC 1950/1951; zlib's level 0 writes the
    same format, through a copy, at ~3x the cost; ISA-L's adler32 is ~5x zlib's). A loose
    object's stream starts with its header (``head``); an object in a pack has none."""
    view = memoryview(body)
    chunks: list[bytes | memoryview] = [_ZLIB_HEADER]
    if head or not body:  # (an empty stream still needs its one final block)
        chunks += (_stored_block(head, not body), head)
    for start in range(0, len(body), _BLOCK):
        part = view[start:start + _BLOCK]
        chunks += (_stored_block(part, start + _BLOCK >= len(body)), part)
    chunks.append(isal_zlib.adler32(body, isal_zlib.adler32(head)).to_bytes(4, "big"))
    return chunks


def _stored_block(data: bytes | memoryview, final: bool) -> bytes:
    """The header of a stored deflate block holding ``data`` (at most 65,535 bytes)."""
    return bytes((final,)) + len(data).to_bytes(2, "little") + (len(data) ^ 0xFFFF).to_bytes(2, "little")


def object_id(type_num: int, raw: bytes) -> bytes:
    """The hex SHA-1 git names an object of type ``type_num`` with content ``raw`` by."""
    digest = hashlib.sha1(header(type_num, len(raw)))
    digest.update(raw)
    return digest.hexdigest().encode()


def tree_raw(entries: Iterable[tuple[bytes, int, bytes]]) -> bytes:
    """The content of a tree of ``(name, mode, hex SHA)`` entries, in git's order.

    git sorts entries by name, a folder's name compared as if it ended in ``/``;
    names must be unique, non-empty, without ``/`` or NUL, and not ``.`` or ``..``.
    """
    def key(entry: tuple[bytes, int, bytes]) -> bytes:
        return entry[0] + b"/" if entry[1] == TREE_MODE else entry[0]

    return b"".join(b"%o %s\0%s" % (mode, name, bytes.fromhex(sha.decode()))
                    for name, mode, sha in sorted(entries, key=key))


class GitObject(Protocol):
    """What the loose writer needs of an object: a :class:`RawObject` or a dulwich ``ShaFile``."""

    @property
    def type_num(self) -> int: ...

    @property
    def id(self) -> bytes: ...  # hex SHA

    def as_raw_string(self) -> bytes: ...


class RawObject:
    """An object to write: type number, content, hex SHA (hashed here unless given)."""

    __slots__ = ("type_num", "raw", "id")

    def __init__(self, type_num: int, raw: bytes, sha: bytes | None = None):
        self.type_num, self.raw = type_num, raw
        self.id = sha if sha is not None else object_id(type_num, raw)

    def as_raw_string(self) -> bytes:
        return self.raw
