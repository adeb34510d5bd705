"""History operations over a :class:`Core`: rollback, fork, delete one checkpoint or an agent.

Each maps onto a git history operation (see README, "History operations") and
runs under the agent's lock, so gitstate writers of that agent wait for it;
branch moves are compare-and-swap from the head read under the lock.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from .core import Core
from .errors import (
    AgentExistsError,
    ConcurrentUpdateError,
    InvalidArgumentError,
)
from .git.journal import RefUpdate
from .git.layout import checkpoint_commit
from .git.store import RefLock
from .ids import branch_ref, new_checkpoint_id, tag_prefix, tag_ref, validate_agent_id
from .message import build as build_message
from .models import Checkpoint
from .rewrite import rewrite

# trailers that describe one commit, not its state: never copied to a derived checkpoint
_OWN_TRAILERS = ("Checkpoint-Id", "Agent-Id", "Rollback-Of", "Forked-From", "Forked-From-Agent")
# the trailer of every commit gitstate.langgraph writes: its trees, parents and trailers
# follow that module's rules (docs/langgraph.md), which rollback and fork do not know
_LANGGRAPH_THREAD = "LangGraph-Thread"


def _refuse_threads(core: Core, agent_id: str, target: Checkpoint, operation: str, instead: str) -> None:
    """``InvalidArgumentError`` if the agent's head or ``target`` is a LangGraph checkpoint."""
    head = core.checkpoint(core.commit(core.head(agent_id)), agent_id)
    if _LANGGRAPH_THREAD in head.trailers or _LANGGRAPH_THREAD in target.trailers:
        raise InvalidArgumentError(
            f"agent {agent_id!r} is a LangGraph thread (written by gitstate.langgraph."
            f"GitstateSaver): {operation} would break it; {instead}")


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


def rollback(core: Core, agent_id: str, rev: str, *, hard: bool = False) -> RollbackResult:
    """Return the agent to the state saved at ``rev``.

    By default a new checkpoint is saved on top whose state equals ``rev``'s
    (history kept, trailer ``Rollback-Of: <checkpoint id>``), like ``git revert``;
    a state inherited through a fork gets this agent's ``agent_id``, so loading
    and saving it stays on this branch. With ``hard=True`` the branch moves back
    to ``rev`` like ``git reset --hard``: the newer checkpoints leave the history
    (their names are deleted) but stay reachable from the branch's reflog (which
    gitstate never expires; ``git reflog expire`` does); ``dropped`` lists them.
    A LangGraph thread is refused (``InvalidArgumentError``: LangGraph's time
    travel does this on threads).
    """
    validate_agent_id(agent_id, existing=True)  # not REMOTE/AGENT, which is read-only
    target = core.resolve(agent_id, rev)
    _refuse_threads(core, agent_id, target, "a rollback", (
        "go back with LangGraph instead: graph.invoke(None, config) with checkpoint_id "
        f"{target.trailers.get('LangGraph-Checkpoint', '?')!r} in the config replays from that "
        "checkpoint, graph.update_state(config, values) forks from it"))
    if target.commit == core.head(agent_id).decode():
        raise InvalidArgumentError(f"{rev!r} is already the latest checkpoint of {agent_id!r}")
    if hard:
        return _reset(core, agent_id, target)
    core.store.writable_ref(branch_ref(agent_id))  # symbolic: refused before any write
    trailers = _derived_trailers(target, agent_id, {"Rollback-Of": target.checkpoint_id})
    commit = core.commit(target.commit.encode())
    data = core.state(commit)
    tree_id: bytes
    if isinstance(data, dict) and data.get("agent_id") != agent_id:
        tree_id = core.store.write_state({**data, "agent_id": agent_id})  # inherited: as fork does
    else:  # the same tree, its objects freshened: a reclaim running now spares them
        core.freshen(commit.tree)
        tree_id = commit.tree
    summary = f"{agent_id} rollback to {target.checkpoint_id}"
    new = core.append(agent_id, tree_id, build_message(summary, trailers))
    return RollbackResult(checkpoint=core.checkpoint(new, agent_id), hard=False)


def _reset(core: Core, agent_id: str, target: Checkpoint) -> RollbackResult:
    store, ref = core.store, branch_ref(agent_id)
    with store.agent_lock(agent_id) as lock:
        history = core.history(agent_id)
        position = core.position(agent_id, history, target)
        if position == 0:
            raise InvalidArgumentError(
                f"{target.checkpoint_id} became the latest checkpoint of {agent_id!r}")
        names = core.names(agent_id)
        dropped = tuple(core.checkpoint(c, agent_id, names.get(c.id, ())) for c in history[:position])
        updates = [RefUpdate(ref, history[0].id, history[position].id)]
        updates += [RefUpdate(tag_ref(agent_id, name), checkpoint.commit.encode(), None)
                    for checkpoint in dropped for name in checkpoint.names]
        if not store.update_refs(lock, agent_id, updates,
                                 log=f"gitstate: rollback to {target.checkpoint_id}"):
            raise ConcurrentUpdateError(
                f"the branch of agent {agent_id!r} moved during the rollback (a writer "
                "outside gitstate); nothing was changed, try again")
    return RollbackResult(checkpoint=core.resolve(agent_id, target.commit), hard=True,
                          dropped=dropped)


def fork(core: Core, agent_id: str, rev: str | None, new_agent_id: str) -> Checkpoint:
    """Start agent ``new_agent_id`` from ``agent_id``'s checkpoint ``rev`` (``git branch``).

    The new branch shares the history up to ``rev`` and adds one checkpoint
    holding ``rev``'s state with ``agent_id`` set to the new id (trailers
    ``Forked-From``/``Forked-From-Agent``), so loading the new agent and saving
    again stays on the new branch. A LangGraph thread is refused (``InvalidArgumentError``:
    ``GitstateSaver.copy_thread`` copies threads).
    """
    validate_agent_id(agent_id, existing=True)
    validate_agent_id(new_agent_id)
    if new_agent_id == agent_id:
        raise AgentExistsError(f"cannot fork agent {agent_id!r} onto itself")
    target = core.resolve(agent_id, rev)
    _refuse_threads(core, agent_id, target, "a fork", "copy a thread with GitstateSaver.copy_thread, "
                    "or fork it within the thread with LangGraph's graph.update_state")
    new_ref = branch_ref(new_agent_id)
    if core.store.read_ref(new_ref) is not None:
        raise AgentExistsError(f"agent {new_agent_id!r} already exists")
    data = core.state(core.commit(target.commit.encode()))
    if isinstance(data, dict):
        data["agent_id"] = new_agent_id
    trailers = _derived_trailers(target, new_agent_id, {"Forked-From": target.checkpoint_id,
                                                         "Forked-From-Agent": agent_id})
    message = build_message(f"{new_agent_id} fork of {agent_id} at {target.checkpoint_id}", trailers)
    with ExitStack() as stack:  # both agents, in id order (no lock-order deadlock)
        locks = {a: stack.enter_context(core.store.agent_lock(a))
                 for a in sorted((agent_id, new_agent_id))}
        core.position(agent_id, core.history(agent_id), target)  # still in the history
        tree = core.store.write_state(data)
        commit = checkpoint_commit(tree, target.commit.encode(), new_agent_id, message)
        core.store.write(commit, new=True)
        if not core.store.update_ref(locks[new_agent_id], new_ref, None, commit.id):
            raise AgentExistsError(f"agent {new_agent_id!r} already exists")
    return core.checkpoint(commit, new_agent_id)


def delete(core: Core, agent_id: str, rev: str) -> Checkpoint:
    """Remove one checkpoint from the agent's history and return it.

    The newer checkpoints are re-created onto its parent (``git rebase``-like:
    new commit SHAs, same checkpoint ids, tags follow); the removed one's names
    are deleted. Deleting an agent's only checkpoint deletes the agent (like
    :func:`delete_agent`). The objects are reclaimed by ``reclaim`` or ``prune``.
    """
    validate_agent_id(agent_id, existing=True)
    target = core.resolve(agent_id, rev)
    with core.store.agent_lock(agent_id) as lock:
        history = core.history(agent_id)
        position = core.position(agent_id, history, target)
        if len(history) == 1:
            _remove_agent(core, lock, agent_id, history[0].id)
        else:
            rewrite(core.store, lock, agent_id, history, {history[position].id})
    return target


def delete_agent(core: Core, agent_id: str) -> None:
    """Delete an agent: its branch, its names and its reflog (``git branch -D`` + ``git tag -d``).

    Its objects are reclaimed by ``reclaim``/``prune``, unless other refs (a fork)
    still reach them.
    """
    validate_agent_id(agent_id, existing=True)
    core.head(agent_id)
    with core.store.agent_lock(agent_id) as lock:
        _remove_agent(core, lock, agent_id, core.head(agent_id))


def _remove_agent(core: Core, lock: RefLock, agent_id: str, head: bytes) -> None:
    """Delete the branch (and its reflog), then the names, as one journaled operation."""
    store = core.store
    names = sorted(store.read_refs(tag_prefix(agent_id)).items())
    updates = [RefUpdate(branch_ref(agent_id), head, None)]
    updates += [RefUpdate(tag, sha, None) for tag, sha in names]
    if not store.update_refs(lock, agent_id, updates):
        raise ConcurrentUpdateError(f"the branch of agent {agent_id!r} moved while it was "
                                    "being deleted (a writer outside gitstate); nothing "
                                    "was changed, try again")
