"""History operations of ``StateRepository``: rollback, fork, delete one checkpoint or an agent.

Each maps onto a git history operation (see README, "History operations") and
runs under the agent's lock, so gitstate writers of that agent wait for it;
branch moves are compare-and-swap from the head read under the lock.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from dulwich.objects import Blob, ShaFile, Tree

from .errors import (
    AgentExistsError,
    ConcurrentUpdateError,
    InvalidArgumentError,
    RevisionNotFoundError,
)
from .ids import branch_ref, new_checkpoint_id, tag_prefix, tag_ref, validate_agent_id
from .git.journal import RefUpdate
from .git.layout import CommitInfo, checkpoint_commit, state_objects
from .message import build as build_message
from .models import Checkpoint
from .rewrite import rewrite
from .git.store import RefLock

if TYPE_CHECKING:
    from .repository import StateRepository


# trailers that describe one commit, not its state: never copied to a derived checkpoint
_OWN_TRAILERS = ("Checkpoint-Id", "Agent-Id", "Rollback-Of", "Forked-From", "Forked-From-Agent")


def _derived_trailers(source: Checkpoint, agent_id: str, extra: dict[str, str]) -> dict[str, str]:
    """Trailers of a new checkpoint holding ``source``'s state (its Iteration, Status, Task-Id...)."""
    kept = {k: v for k, v in source.trailers.items() if k not in _OWN_TRAILERS}
    return {"Checkpoint-Id": new_checkpoint_id(), "Agent-Id": agent_id, **kept, **extra}


@dataclass(frozen=True)
class RollbackResult:
    """The agent's new head after a rollback, and the checkpoints a hard rollback dropped."""

    checkpoint: Checkpoint
    hard: bool
    dropped: tuple[Checkpoint, ...] = ()


class HistoryMixin:
    """rollback, fork, delete and delete_agent (mixed into ``StateRepository``)."""

    def _history(self: "StateRepository", agent_id: str) -> list[CommitInfo]:
        """The agent's commits, newest first (read it under the agent lock before rewriting)."""
        return list(self._walk(self._head(agent_id)))

    def _position(self: "StateRepository", agent_id: str, history: list[CommitInfo],
                  target: Checkpoint) -> int:
        for i, commit in enumerate(history):
            if commit.id.decode() == target.commit:
                return i
        raise RevisionNotFoundError(f"checkpoint {target.checkpoint_id} left the history of "
                                    f"agent {agent_id!r} while this operation was waiting")

    # -- rollback --------------------------------------------------------------------
    def rollback(self: "StateRepository", agent_id: str, rev: str, *,
                 hard: bool = False) -> RollbackResult:
        """Return the agent to the state saved at ``rev``.

        By default a new checkpoint is saved on top whose state equals ``rev``'s
        (history kept, trailer ``Rollback-Of: <checkpoint id>``), like
        ``git revert``; a state inherited through a fork gets this agent's
        ``agent_id``, so loading and saving it stays on this branch. With
        ``hard=True`` the branch moves back to ``rev`` like ``git reset --hard``:
        the newer checkpoints leave the history (their names are deleted) but
        stay reachable from the branch's reflog until maintenance expires it;
        ``dropped`` lists them.
        """
        target = self.resolve(agent_id, rev)
        if target.commit == self._head(agent_id).decode():
            raise InvalidArgumentError(f"{rev!r} is already the latest checkpoint of {agent_id!r}")
        if hard:
            return self._reset(agent_id, target)
        self._store.writable_ref(branch_ref(agent_id))  # symbolic: refused before any write
        trailers = _derived_trailers(target, agent_id, {"Rollback-Of": target.checkpoint_id})
        commit = self._commit(target.commit.encode())
        data = self._state_of(commit)
        objects: tuple[ShaFile, ...]
        if isinstance(data, dict) and data.get("agent_id") != agent_id:
            objects = state_objects({**data, "agent_id": agent_id})  # inherited: as fork does
        else:  # the same tree, its objects freshened: a reclaim running now spares them
            tree = self._object(commit.tree, Tree)
            objects = (*(self._object(sha, Blob) for _name, _mode, sha in tree.iteritems()), tree)
        for obj in objects:
            self._store.write(obj)
        tree_id = objects[-1].id  # (the tree comes last)
        summary = f"{agent_id} rollback to {target.checkpoint_id}"
        message = build_message(summary, trailers)
        new = self._commit_on_branch(agent_id, tree_id, message, None, None)
        return RollbackResult(checkpoint=self._checkpoint(new, agent_id), hard=False)

    def _reset(self: "StateRepository", agent_id: str, target: Checkpoint) -> RollbackResult:
        store, ref = self._store, branch_ref(agent_id)
        with store.agent_lock(agent_id) as lock:
            history = self._history(agent_id)
            position = self._position(agent_id, history, target)
            if position == 0:
                raise InvalidArgumentError(
                    f"{target.checkpoint_id} became the latest checkpoint of {agent_id!r}")
            names = self._names(agent_id)
            dropped = tuple(self._checkpoint(c, agent_id, tuple(names.get(c.id, ())))
                            for c in history[:position])
            updates = [RefUpdate(ref, history[0].id, history[position].id)]
            updates += [RefUpdate(tag_ref(agent_id, name), checkpoint.commit.encode(), None)
                        for checkpoint in dropped for name in checkpoint.names]
            if not store.update_refs(lock, agent_id, updates,
                                     log=f"gitstate: rollback to {target.checkpoint_id}"):
                raise ConcurrentUpdateError(
                    f"the branch of agent {agent_id!r} moved during the rollback (a writer "
                    "outside gitstate); nothing was changed, try again")
        return RollbackResult(checkpoint=self.resolve(agent_id, target.commit), hard=True,
                              dropped=dropped)

    # -- fork ------------------------------------------------------------------------
    def fork(self: "StateRepository", agent_id: str, rev: Optional[str],
             new_agent_id: str) -> Checkpoint:
        """Start agent ``new_agent_id`` from ``agent_id``'s checkpoint ``rev`` (``git branch``).

        The new branch shares the history up to ``rev`` and adds one checkpoint
        holding ``rev``'s state with ``agent_id`` set to the new id (trailers
        ``Forked-From``/``Forked-From-Agent``), so loading the new agent and
        saving again stays on the new branch.
        """
        validate_agent_id(new_agent_id)
        if new_agent_id == agent_id:
            raise AgentExistsError(f"cannot fork agent {agent_id!r} onto itself")
        target = self.resolve(agent_id, rev)
        new_ref = branch_ref(new_agent_id)
        if self._store.read_ref(new_ref) is not None:
            raise AgentExistsError(f"agent {new_agent_id!r} already exists")
        data = self.read_state(target.commit)
        if isinstance(data, dict):
            data["agent_id"] = new_agent_id
        blob, tree = state_objects(data)
        trailers = _derived_trailers(target, new_agent_id, {"Forked-From": target.checkpoint_id,
                                                             "Forked-From-Agent": agent_id})
        message = build_message(f"{new_agent_id} fork of {agent_id} at {target.checkpoint_id}",
                                trailers)
        commit = checkpoint_commit(tree.id, target.commit.encode(), new_agent_id, message)
        with ExitStack() as stack:  # both agents, in id order (no lock-order deadlock)
            locks = {a: stack.enter_context(self._store.agent_lock(a))
                     for a in sorted((agent_id, new_agent_id))}
            self._position(agent_id, self._history(agent_id), target)  # still in the history
            for obj in (blob, tree, commit):
                self._store.write(obj)
            if not self._store.update_ref(locks[new_agent_id], new_ref, None, commit.id):
                raise AgentExistsError(f"agent {new_agent_id!r} already exists")
        return self._checkpoint(commit, new_agent_id)

    # -- delete ----------------------------------------------------------------------
    def delete(self: "StateRepository", agent_id: str, rev: str) -> Checkpoint:
        """Remove one checkpoint from the agent's history and return it.

        The newer checkpoints are re-created onto its parent (``git rebase``-like:
        new commit SHAs, same checkpoint ids, tags follow); the removed one's
        names are deleted. Deleting an agent's only checkpoint deletes the agent
        (like :meth:`delete_agent`). The objects are reclaimed by :meth:`reclaim`
        or :meth:`prune`.
        """
        target = self.resolve(agent_id, rev)
        with self._store.agent_lock(agent_id) as lock:
            history = self._history(agent_id)
            position = self._position(agent_id, history, target)
            if len(history) == 1:
                self._remove_agent(lock, agent_id, history[0].id)
            else:
                rewrite(self._store, lock, agent_id, history, {history[position].id})
        return target

    def delete_agent(self: "StateRepository", agent_id: str) -> None:
        """Delete an agent: its branch, its names and its reflog (``git branch -D`` + ``git tag -d``).

        Its objects are reclaimed by :meth:`reclaim`/:meth:`prune`, unless other
        refs (a fork) still reach them.
        """
        self._head(agent_id)
        with self._store.agent_lock(agent_id) as lock:
            self._remove_agent(lock, agent_id, self._head(agent_id))

    def _remove_agent(self: "StateRepository", lock: RefLock, agent_id: str, head: bytes) -> None:
        """Delete the branch (and its reflog), then the names, as one journaled operation."""
        store = self._store
        names = sorted(store.read_refs(tag_prefix(agent_id)).items())
        updates = [RefUpdate(branch_ref(agent_id), head, None)]
        updates += [RefUpdate(tag, sha, None) for tag, sha in names]
        if not store.update_refs(lock, agent_id, updates):
            raise ConcurrentUpdateError(f"the branch of agent {agent_id!r} moved while it was "
                                        "being deleted (a writer outside gitstate); nothing "
                                        "was changed, try again")
