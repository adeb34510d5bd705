"""The compact object tables of maintenance: SHA lookup and the streaming pack index writer."""

from __future__ import annotations

import hashlib
import io
import os
import random
from array import array

import pytest
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.pack import load_pack_index_file

from gitstate.git import objectset
from gitstate.git.objectset import Scratch, ShaTable, _by_offset
from gitstate.git.packing import write_index


def test_sha_table_finds_every_member_and_nothing_else() -> None:
    rnd = random.Random(3)
    shas = sorted({rnd.randbytes(20) for _ in range(5000)})
    shas.append(shas[-1][:8] + b"\xff" * 12)  # shares its first 8 bytes with another member
    shas.sort()
    table = ShaTable.merged([shas[::2], shas[1::2], shas[:10]])  # sorted sources, duplicates
    assert len(table) == len(shas)
    assert [table.find(sha) for sha in shas] == list(range(len(shas)))
    assert table.hex(7) == shas[7].hex().encode() and table.find_hex(shas[7].hex().encode()) == 7
    members = set(shas)
    strangers = [sha[:8] + bytes(12) for sha in shas[:50]] + [rnd.randbytes(20) for _ in range(50)]
    assert all(table.find(sha) == -1 for sha in strangers if sha not in members)


def test_pack_index_written_from_arrays_reads_back_with_large_offsets() -> None:
    rnd = random.Random(5)
    shas = sorted({rnd.randbytes(20) for _ in range(3000)})
    table = ShaTable(b"".join(shas))
    offsets, crcs = array("Q", [0]) * len(shas), array("I", [0]) * len(shas)
    expected = []
    for i, sha in enumerate(shas):
        if i % 3:  # a third of the table is not in this pack
            offset = 12 + i * 100 + (1 << 32 if i % 5 == 0 else 0)  # some need 64-bit offsets
            offsets[i], crcs[i] = offset + 1, rnd.getrandbits(32)
            expected.append((sha, offset, crcs[i]))
    checksum = hashlib.sha1(b"pack").digest()
    out = io.BytesIO()
    write_index(out, table, offsets, crcs, checksum)
    data = out.getvalue()
    assert data[-20:] == hashlib.sha1(data[:-20]).digest()
    index = load_pack_index_file("test.idx", io.BytesIO(data), DEFAULT_OBJECT_FORMAT)
    assert index.version == 2 and index.get_pack_checksum() == checksum
    assert list(index.iterentries()) == expected
    index.check()


def test_scratch_tables_in_a_file_keep_their_values_when_their_pages_are_given_back(tmp_path) -> None:
    scratch = Scratch(str(tmp_path))
    assert scratch.mapped
    links, kinds = scratch.table("i", 5000, -1), scratch.table("B", 5000)
    assert list(links[:3]) == [-1, -1, -1] and len(links) == 5000 and not any(kinds)
    for i in range(0, 5000, 7):
        links[i], kinds[i] = i * 3, i % 4
    rnd = random.Random(9)
    shas = sorted({rnd.randbytes(20) for _ in range(3000)})
    table = ShaTable.merged([shas[::2], shas[1::2]], scratch)
    scratch.trim()  # every mapped page given back: the data stays in the file
    assert [links[i] for i in range(0, 5000, 7)] == [i * 3 for i in range(0, 5000, 7)]
    assert links[1] == -1 and kinds[7] == 3 and kinds[8] == 0
    assert [table.find(sha) for sha in shas] == list(range(len(shas)))
    assert table.find(rnd.randbytes(20)) == -1
    assert list(os.listdir(tmp_path)) == []  # the scratch file has no name
    scratch.close()


def test_offsets_sorted_in_buckets_in_memory_and_in_a_scratch_file(tmp_path) -> None:
    rnd = random.Random(11)
    size = 1 << 33  # offsets past 4 GB too
    offsets = rnd.sample(range(size), 20_000)
    expected = sorted((offset, -i) for i, offset in enumerate(offsets))
    for scratch in (Scratch(), Scratch(str(tmp_path))):
        table, numbers = scratch.table("Q", len(offsets)), scratch.table("i", len(offsets))
        for i, offset in enumerate(offsets):
            table[i], numbers[i] = offset, -i
        if scratch.mapped:
            scratch.trim()
        sorted_offsets, order = _by_offset(table, numbers, size, scratch)
        assert list(zip(sorted_offsets, order, strict=True)) == expected
        scratch.close()


def test_resident_pages_of_a_scratch_stay_near_their_budget_under_random_lookups(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first touch of a mapped page maps more than the page (64 KB of neighbours, or the
    whole large folio it is in: 1 MB on kernel 6.18), so random lookups grow the resident
    set fast: it is looked at often enough that it never passes the budget by more than
    ``CHECK_EVERY`` touches (with a look every 128 steps, the whole table stayed mapped)."""
    monkeypatch.setattr(objectset, "RESIDENT_BUDGET", 2 << 20)
    scratch = Scratch(str(tmp_path))
    table = scratch.table("Q", 8 << 20, 7)  # 64 MB, written through the file: in the page cache
    rnd = random.Random(13)
    per_touch = 0  # what one touch maps here
    for _ in range(32):
        scratch.trim()
        before = scratch._resident()
        assert table[rnd.randrange(len(table))] == 7
        per_touch = max(per_touch, scratch._resident() - before)
    scratch.trim()
    most = 0
    for _step in range(4_000):
        assert table[rnd.randrange(len(table))] == 7
        scratch.step()
        most = max(most, scratch._resident() - scratch._base)
    assert most > 2 << 20  # the budget was reached (so pages were given back)
    assert most <= (2 << 20) + objectset.CHECK_EVERY * per_touch + (4 << 20), (most, per_touch)
    scratch.close()
