"""The git objects of one checkpoint: the ``state.json`` blob, its tree and the commit."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from dulwich.objects import Blob, Commit, Tree

from . import codec

STATE_FILE = b"state.json"
COMMITTER = b"gitstate <gitstate@localhost>"


def state_objects(data: Any) -> tuple[Blob, Tree]:
    """The blob holding ``data``'s canonical JSON and the tree naming it ``state.json``."""
    blob = Blob.from_string(codec.encode(data))
    tree = Tree()
    tree.add(STATE_FILE, 0o100644, blob.id)
    return blob, tree


def checkpoint_commit(tree: bytes, parent: Optional[bytes], agent_id: str, message: bytes,
                      author_time: Optional[int] = None) -> Commit:
    """A commit of ``tree`` by ``agent_id`` on ``parent``, committed now (times in UTC)."""
    now = int(datetime.now(timezone.utc).timestamp())
    commit = Commit()
    commit.tree = tree
    commit.parents = [parent] if parent else []
    commit.author = f"{agent_id} <{agent_id}@gitstate>".encode()
    commit.committer = COMMITTER
    commit.author_time = now if author_time is None else author_time
    commit.commit_time = now
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = None
    commit.message = message
    return commit
