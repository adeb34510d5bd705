"""Git delta encoding tuned for canonical JSON (one value per line).

dulwich's compiled ``create_delta`` is fast on pure appends but degrades badly
when content moves: for a 10 KB state whose oldest message dropped out of a
window it took ~25 ms and returned a delta larger than the target. This
encoder anchors on lines that occur once in the base (canonical JSON puts
every value on its own line, so most lines are distinctive), then extends
each match byte-wise in both directions with slice comparisons (C speed).
Its cost grows with the number of changed places, not with the state size.

The output is git's delta format (``git`` and dulwich apply it unchanged):
base size, target size, then copy and insert instructions.
"""

from __future__ import annotations

from itertools import accumulate

MIN_COPY = 12  # shorter matches are cheaper as literal bytes
MAX_COPY = 0x10000  # git's create_delta never emits longer copies; stay in that subset
MAX_INSERT = 0x7F


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _common_prefix(a: bytes, ai: int, b: bytes, bi: int, limit: int) -> int:
    """Length of the common prefix of ``a[ai:]`` and ``b[bi:]``, at most ``limit``."""
    lo, step = 0, 32
    while lo < limit:  # gallop, then bisect
        hi = min(lo + step, limit)
        if a[ai + lo:ai + hi] == b[bi + lo:bi + hi]:
            lo, step = hi, step * 2
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a[ai + lo:ai + mid] == b[bi + lo:bi + mid]:
                lo = mid
            else:
                hi = mid
        return lo
    return lo


def _common_suffix(a: bytes, aend: int, b: bytes, bend: int, limit: int) -> int:
    """Length of the common suffix of ``a[:aend]`` and ``b[:bend]``, at most ``limit``."""
    lo, step = 0, 32
    while lo < limit:
        hi = min(lo + step, limit)
        if a[aend - hi:aend - lo] == b[bend - hi:bend - lo]:
            lo, step = hi, step * 2
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a[aend - mid:aend - lo] == b[bend - mid:bend - lo]:
                lo = mid
            else:
                hi = mid
        return lo
    return lo


class _Ops:
    def __init__(self, base_size: int, target_size: int):
        self.out = bytearray(_varint(base_size) + _varint(target_size))

    def insert(self, data: bytes) -> None:
        for i in range(0, len(data), MAX_INSERT):
            chunk = data[i:i + MAX_INSERT]
            self.out.append(len(chunk))
            self.out += chunk

    def copy(self, offset: int, size: int) -> None:
        while size:
            n = min(size, MAX_COPY)
            op, args = 0x80, bytearray()
            for i in range(4):
                if offset >> (8 * i) & 0xFF:
                    op |= 1 << i
                    args.append(offset >> (8 * i) & 0xFF)
            for i in range(2):  # n == 0x10000 is encoded as size 0 (no size bytes)
                if n != MAX_COPY and n >> (8 * i) & 0xFF:
                    op |= 0x10 << i
                    args.append(n >> (8 * i) & 0xFF)
            self.out.append(op)
            self.out += args
            offset += n
            size -= n


def create_delta(base: bytes, target: bytes) -> bytes:
    """A git delta that rebuilds ``target`` from ``base``."""
    ops = _Ops(len(base), len(target))
    lines = base.splitlines(keepends=True)
    starts = [0, *accumulate(map(len, lines))]
    anchors: dict[bytes, int] = {}
    for line, start in zip(lines, starts[:-1], strict=True):
        anchors[line] = -1 if line in anchors else start
    literal = 0  # start of the pending literal bytes of target
    pos = 0
    n = len(target)
    while pos < n:
        if pos == 0:  # try the common prefix first (appends, edited tails)
            start = 0
        else:
            end = target.find(b"\n", pos)
            end = n if end < 0 else end + 1
            start = anchors.get(target[pos:end], -1)
            if start < 0:
                pos = end
                continue
        back = _common_suffix(base, start, target, pos, min(start, pos - literal))
        length = _common_prefix(base, start, target, pos, min(len(base) - start, n - pos))
        if back + length < MIN_COPY:
            if pos == 0:
                end = target.find(b"\n")
                pos = n if end < 0 else end + 1
            else:
                pos = end
            continue
        if pos - back > literal:
            ops.insert(target[literal:pos - back])
        ops.copy(start - back, back + length)
        pos = literal = pos + length
    if literal < n:
        ops.insert(target[literal:])
    return bytes(ops.out)
