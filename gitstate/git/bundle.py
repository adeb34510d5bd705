"""Files gitstate writes for people: a git bundle of some refs, or any file, written whole.

A bundle (git's v2 format: ``# v2 git bundle``, one ``<sha> <ref>`` line per ref, an
empty line, then a pack of whole objects, no deltas) holds every object the refs reach, so ``git clone FILE``,
``git fetch FILE`` and ``gitstate clone FILE`` accept it with no repository beside it.
Both are written to a temporary file beside the target and renamed onto it, so a
reader never sees half a file and a failure leaves the target as it was.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import zlib
from collections.abc import Iterable, Mapping

from .packing import pack_to_send
from .store import Store


def write_file(path: str, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to ``path`` whole (temporary file, then rename); return the size."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return size


def write_bundle(store: Store, path: str, refs: Mapping[bytes, bytes]) -> int:
    """Write a bundle of ``refs`` (ref name -> hex commit SHA) and everything they reach to
    ``path``; return its size in bytes. A missing object raises ``CorruptObjectError``
    before anything is renamed onto ``path``."""
    header = b"# v2 git bundle\n" + b"".join(sha + b" " + ref + b"\n" for ref, sha in refs.items())
    # no deltas: dulwich's bundle reader (gitstate clone FILE) cannot resolve them
    count, entries = pack_to_send(store.reader.read, store.contains, set(refs.values()), (), 0)
    return write_file(path, _bundle_chunks(header + b"\n", count, entries))


def _bundle_chunks(header: bytes, count: int,
                   entries: Iterable[tuple[bytes, int, bytes | None, bytes]]) -> Iterable[bytes]:
    yield header
    digest = hashlib.sha1()
    for chunk in _pack(count, entries):
        digest.update(chunk)
        yield chunk
    yield digest.digest()


def _pack(count: int, entries: Iterable[tuple[bytes, int, bytes | None, bytes]]) -> Iterable[bytes]:
    """A pack's header and entries (git's pack format 2; the caller appends the checksum)."""
    yield b"PACK" + struct.pack(">II", 2, count)
    for _sha, kind, _base, body in entries:  # _base is None: planned with no deltas
        yield _entry_header(kind, len(body))
        yield zlib.compress(body)


def _entry_header(kind: int, size: int) -> bytes:
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)

