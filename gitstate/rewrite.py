"""Rewrite an agent's history without some of its checkpoints (used by delete and prune).

The kept commits are re-created onto their new parents with the same tree,
message (so the same ``Checkpoint-Id`` trailers), author, author time, committer
and commit time; commits older than the first removed one are left as they are.
A merge checkpoint's other parents stay its parents; those of a removed merge become parents
of the next kept checkpoint, so what it merged stays in the history. The oldest
kept checkpoint has no parent (a merge then keeps what it merged only through
other refs: the fork, a remote-tracking ref, names, the reflog), nor has a removed
newest checkpoint a next one.
Tags of the agent follow their checkpoints; tags of removed checkpoints are
deleted. The caller holds the agent lock; the branch moves by compare-and-swap
from the head the history was read from, so a foreign writer that moved it in
between makes the rewrite fail with nothing changed. Branch and tags move as
one journaled operation (:meth:`Store.update_refs`): a process killed halfway
is completed by the next holder of the agent's lock.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from .errors import ConcurrentUpdateError
from .git.journal import RefUpdate
from .git.layout import CommitInfo, recommit
from .git.store import RefLock, Store
from .ids import branch_ref, tag_prefix


@dataclass
class Rewrite:
    """What a rewrite did: old -> new SHA of every kept commit, the removed commits, moved tags."""

    new_head: bytes
    mapping: dict[bytes, bytes] = field(default_factory=dict)
    removed: list[CommitInfo] = field(default_factory=list)
    deleted_tags: list[str] = field(default_factory=list)


def rewrite(store: Store, lock: RefLock, agent_id: str, history: Sequence[CommitInfo],
            remove: Collection[bytes]) -> Rewrite:
    """Rewrite ``history`` (the branch, newest first, read under ``lock``) without ``remove``.

    At least one commit must stay. Raises :class:`ConcurrentUpdateError` if the
    branch no longer points at ``history[0]``.
    """
    ref = branch_ref(agent_id)
    store.writable_ref(ref)  # damaged or symbolic: before any commit is written
    tags = store.read_refs(tag_prefix(agent_id))
    result = Rewrite(new_head=b"")
    parent: bytes | None = None
    changed = False
    carried: list[bytes] = []  # the other parents of removed merges, for the next kept commit
    for commit in reversed(history):
        if commit.id in remove:
            result.removed.append(commit)
            changed = True
            carried += merged(commit)
            continue
        sha = commit.id
        if changed:
            # (the oldest kept checkpoint has no parent: git has no merge without a first one)
            parents = [parent, *merged(commit), *carried] if parent else []
            copy = recommit(commit, list(dict.fromkeys(parents)))
            store.write(copy)
            sha = copy.id
            carried = []
        result.mapping[commit.id] = sha
        parent = sha
    assert parent is not None, "a rewrite must keep at least one checkpoint"
    result.new_head = parent
    updates = [RefUpdate(ref, history[0].id, parent)] + _tag_updates(agent_id, tags, result)
    if not store.update_refs(lock, agent_id, updates):
        raise ConcurrentUpdateError(
            f"the branch of agent {agent_id!r} moved during the rewrite (a writer outside "
            "gitstate); nothing was changed, try again")
    return result


def rebase(store: Store, lock: RefLock, agent_id: str, head: bytes, local: Sequence[CommitInfo],
           onto: bytes) -> Rewrite:
    """Replay ``local`` (the commits of the branch at ``head`` that ``onto``'s history lacks,
    newest first, read under ``lock``) onto ``onto``.

    Each replayed commit keeps its tree, message, author, times and other parents
    (only its first parent and SHA change); names follow their checkpoints, in one
    journaled operation with the branch. :class:`ConcurrentUpdateError` if the
    branch left ``head``.
    """
    ref = branch_ref(agent_id)
    store.writable_ref(ref)  # damaged or symbolic: before any commit is written
    tags = store.read_refs(tag_prefix(agent_id))
    result = Rewrite(new_head=onto)
    for commit in reversed(local):
        copy = recommit(commit, [result.new_head, *merged(commit)])
        store.write(copy)
        result.mapping[commit.id] = result.new_head = copy.id
    updates = [RefUpdate(ref, head, result.new_head)] + _tag_updates(agent_id, tags, result)
    if not store.update_refs(lock, agent_id, updates, log=f"gitstate: rebase onto {onto.decode()}"):
        raise ConcurrentUpdateError(
            f"the branch of agent {agent_id!r} moved during the rebase (a writer outside "
            "gitstate); nothing was changed, try again")
    return result


def merged(commit: CommitInfo) -> list[bytes]:
    """The other parents of a merge checkpoint (``Merge-Of`` trailer: :mod:`gitstate.merge`);
    other commits' extra parents (``gitstate.langgraph``'s links to earlier heads) are not
    kept by a rewrite."""
    return list(commit.parents[1:]) if b"\nMerge-Of: " in commit.message else []


def _tag_updates(agent_id: str, tags: dict[bytes, bytes], result: Rewrite) -> list[RefUpdate]:
    """Point the agent's tags at the rewritten commits; delete those of removed ones."""
    removed = {commit.id for commit in result.removed}
    prefix = tag_prefix(agent_id)
    updates = []
    for ref, sha in sorted(tags.items()):
        if sha in removed:
            updates.append(RefUpdate(ref, sha, None))
            result.deleted_tags.append(ref[len(prefix):].decode())
        elif result.mapping.get(sha, sha) != sha:
            updates.append(RefUpdate(ref, sha, result.mapping[sha]))
    return updates
