"""Several new objects written as one small pack: two new files instead of one per object.

A writer that adds a handful of objects at a time (a LangGraph step: a message, its
folders, ``state.json``, the tree, the commit) pays per new file on most file systems
(an inode: 0.05-0.8 ms on a loaded virtual machine), not per byte. :func:`write_pack`
puts them in one pack (whole objects in stored, uncompressed zlib streams, as loose objects
are written: maintenance deltifies and compresses them when it merges packs) and its
version 2 index, written as git does: temporary files (spare files renamed there,
:mod:`~gitstate.git.spares`) in ``objects/pack``
(``tmp_pack_*``, ``tmp_idx_*``: ``git fsck`` ignores them, maintenance removes those a
killed writer left), renamed into place pack first, index last (readers use a pack only
once its index exists), fsynced when ``durable``. Maintenance merges these packs with
the others on its next run.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import zlib
from collections.abc import Sequence
from itertools import accumulate

from dulwich.object_format import SHA1
from dulwich.pack import pack_object_header

from .locks import fsync_path, make_folders, write_all
from .objects import GitObject, stored_zlib
from .spares import Spares


def pack_bytes(objects: Sequence[GitObject]) -> tuple[bytes, bytes, bytes]:
    """(pack, index, pack checksum) of ``objects`` (each SHA once), whole objects only."""
    objects = list({obj.id: obj for obj in objects}.values())
    parts = [b"PACK" + struct.pack(">II", 2, len(objects))]
    offset = len(parts[0])
    entries = []  # (binary SHA, crc32, offset)
    for obj in objects:
        raw = obj.as_raw_string()
        head = bytes(pack_object_header(obj.type_num, None, len(raw), SHA1))
        body = b"".join(stored_zlib(b"", raw))
        entries.append((bytes.fromhex(obj.id.decode()), zlib.crc32(body, zlib.crc32(head)), offset))
        parts += (head, body)
        offset += len(head) + len(body)
    pack = b"".join(parts)
    checksum = hashlib.sha1(pack).digest()
    pack += checksum
    entries.sort()
    counts = [0] * 256
    for binsha, _crc, _offset in entries:
        counts[binsha[0]] += 1
    fanout = accumulate(counts)
    index = b"".join((b"\377tOc", struct.pack(">I", 2), struct.pack(">256I", *fanout),
                      *(binsha for binsha, _crc, _offset in entries),
                      struct.pack(f">{len(entries)}I", *(crc for _sha, crc, _offset in entries)),
                      struct.pack(f">{len(entries)}I", *(offset for _sha, _crc, offset in entries)),
                      checksum))
    index += hashlib.sha1(index).digest()
    return pack, index, checksum


def write_pack(objects_dir: str, objects: Sequence[GitObject], durable: bool, spares: Spares) -> int:
    """Write ``objects`` (at least one) as a pack in ``objects_dir/pack``; return the bytes
    written. When this returns, git and gitstate read them."""
    pack, index, checksum = pack_bytes(objects)
    folder = os.path.join(objects_dir, "pack")
    name = os.path.join(folder, f"pack-{checksum.hex()}")
    tag = f"{os.getpid()}_{random.getrandbits(48):012x}"
    temporaries = [os.path.join(folder, f"tmp_pack_{tag}"), os.path.join(folder, f"tmp_idx_{tag}")]
    make_folders(folder, durable)
    left = []  # temporary files to remove if this fails
    try:
        for tmp, data in zip(temporaries, (pack, index), strict=True):
            fd = spares.create(tmp, 0o444)
            left.append(tmp)
            try:
                write_all(fd, data)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        for tmp, final in zip(temporaries, (name + ".pack", name + ".idx"), strict=True):
            os.replace(tmp, final)
            left.remove(tmp)
    except BaseException:
        for tmp in left:
            os.unlink(tmp)
        raise
    if durable:
        fsync_path(folder)
    return len(pack) + len(index)
