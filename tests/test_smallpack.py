"""Small packs: several new objects in one pack and its index, as git reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitstate import StateRepository
from gitstate.git.layout import checkpoint_commit
from gitstate.git.objects import FILE_MODE, RawObject, tree_raw
from gitstate.git.reader import BLOB, TREE, ObjectReader
from gitstate.git.smallpack import write_pack
from gitstate.git.spares import Spares
from gitstate.git.store import Store

from conftest import fsck, git


def _objects(text: str) -> list:
    """Blobs (one empty, one of several deflate blocks), a tree holding them and a commit of
    that tree: what a step writes, in small."""
    blob = RawObject(BLOB, text.encode() * 40)
    other = RawObject(BLOB, b"")
    large = RawObject(BLOB, os.urandom(150_000))
    tree = RawObject(TREE, tree_raw([(b"a.txt", FILE_MODE, blob.id), (b"empty", FILE_MODE, other.id),
                                     (b"large", FILE_MODE, large.id)]))
    commit = checkpoint_commit(tree.id, None, "a", b"step\n")
    return [blob, other, large, tree, commit]


def _no_fallback(sha: bytes):
    raise KeyError(sha)


@pytest.mark.parametrize("durable", [False, True])
def test_git_and_the_reader_read_a_small_pack(repo: StateRepository, durable: bool) -> None:
    objects = _objects("hello ")
    size = write_pack(os.path.join(repo.path, "objects"), [*objects, objects[0]], durable,
                      Spares(repo.path))  # a duplicate
    packs = sorted(Path(repo.path, "objects", "pack").iterdir())
    assert [p.suffix for p in packs] == [".idx", ".pack"]  # no temporary file left
    assert size == sum(p.stat().st_size for p in packs)
    git(repo, "verify-pack", str(packs[0]))
    reader = ObjectReader(os.path.join(repo.path, "objects"), fallback=_no_fallback)
    for obj in objects:
        kind = {1: "commit", 2: "tree", 3: "blob"}[obj.type_num]
        assert git(repo, "cat-file", "-t", obj.id.decode()).strip() == kind
        assert reader.read(obj.id) == (obj.type_num, obj.as_raw_string())
    git(repo, "update-ref", "refs/heads/agents/a", objects[-1].id.decode())
    fsck(repo)


def test_a_small_pack_counts_as_its_two_files_for_automatic_maintenance(repo: StateRepository) -> None:
    store = Store(repo.path)
    store.take_written()
    store.write_pack(_objects("one "))  # five objects, two files
    store.write(RawObject(BLOB, b"loose"))
    objects, nbytes = store.written()
    assert objects == 3 and nbytes > 150_000
    assert store.take_written() == (objects, nbytes)
    assert store.written() == (0, 0)
