"""Bringing two histories of an agent together: merge, rebase and their merge base.

- :func:`merge` makes a merge commit (two parents: the agent's head first) whose
  state is the three-way merge (:mod:`gitstate.jsonmerge`) of the merge base's,
  the agent's and the other side's states; when the agent's head is in the other
  history and the other head is this agent's, the branch fast-forwards instead.
- :func:`rebase` replays the agent's checkpoints that another history lacks on
  top of it, as every rewrite does (same checkpoint ids, times, names, messages
  and trailers; new parents and SHAs), so the result is a fast-forward of it.
- :func:`merge_base` is ``git merge-base``.

The other side is named by :func:`other_head`: an agent (``a-fork``), the copy of
a remote's agent the last fetch left (``origin/a``), either followed by ``~N``.
Both operations run under the agent's lock and move the branch by
compare-and-swap from the head read there; names move with it in the same
journaled operation. This module is in the core layer: ``remote`` (``pull
--rebase``, ``pull --merge``) and the façade use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .core import Core
from .errors import (
    ConcurrentUpdateError,
    CorruptObjectError,
    InvalidArgumentError,
    MergeConflictError,
    RevisionNotFoundError,
)
from .git.layout import reaches
from .git.store import RefLock
from .ids import branch_ref, new_checkpoint_id, validate_agent_id
from .jsonmerge import Conflict, Strategy, check_strategy, three_way
from .message import build as build_message
from .message import parse as parse_message
from .models import Checkpoint
from .rewrite import rebase as replay

_OTHER = re.compile(r"(?P<name>[^~^]+)(?P<steps>(?:~\d*|\^)*)")
_LANGGRAPH_THREAD = "LangGraph-Thread"  # its trees are not one state.json (docs/langgraph.md)


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge` did.

    ``status``: ``"merged"`` (a merge commit was written), ``"fast-forward"`` or
    ``"up to date"``. ``checkpoint`` is the agent's head after it, ``base`` the
    merge base (None when up to date), ``conflicts`` those the strategy resolved,
    ``appended`` the JSON paths of lists where both sides' appends were kept.
    """

    status: str
    checkpoint: Checkpoint
    base: Checkpoint | None = None
    conflicts: tuple[Conflict, ...] = ()
    appended: tuple[str, ...] = ()


@dataclass(frozen=True)
class RebaseResult:
    """What :func:`rebase` did: ``status`` ``"rebased"``, ``"fast-forward"``, ``"up to date"``
    or ``"ahead"``; the head after it; the replayed checkpoints as written now, oldest first."""

    status: str
    checkpoint: Checkpoint
    replayed: tuple[Checkpoint, ...] = ()


def other_head(core: Core, other: str) -> bytes:
    """The commit ``other`` names: ``AGENT`` or ``REMOTE/AGENT`` (the head of an agent, or of
    a remote's agent as last fetched), optionally followed by ``~N`` or ``^`` (older
    along first parents)."""
    match = _OTHER.fullmatch(other.strip()) if isinstance(other, str) else None
    if match is None:
        raise RevisionNotFoundError(f"{other!r} is not AGENT or REMOTE/AGENT (optionally with ~N)")
    return core.find(match["name"], "latest" + match["steps"]).id


@contextmanager
def _locked_head(core: Core, agent_id: str) -> Iterator[tuple[RefLock, bytes]]:
    """The agent's lock, held, and its head read under it (merge and rebase move it by
    compare-and-swap from there)."""
    with core.store.agent_lock(agent_id) as lock:
        head = core.store.writable_ref(branch_ref(agent_id))
        if head is None:
            raise ConcurrentUpdateError(f"agent {agent_id!r} was deleted meanwhile")
        yield lock, head


def merge_base(core: Core, agent_id: str, other: str) -> Checkpoint | None:
    """The best common ancestor of the agent's head and ``other`` (see :func:`other_head`),
    None if they share no history. Of several (criss-cross merges), the newest."""
    bases = core.merge_bases(core.head(agent_id), other_head(core, other))
    return _checkpoint(core, agent_id, bases[0]) if bases else None


def merge(core: Core, agent_id: str, other: str, *, strategy: Strategy = None) -> MergeResult:
    """Merge ``other`` (see :func:`other_head`) into the agent (see the module docstring).

    The merged state keeps this agent's ``agent_id``. Conflicts the strategy does
    not resolve raise :class:`MergeConflictError` listing each, and nothing is
    written; so do histories without a common checkpoint (``InvalidArgumentError``).
    """
    validate_agent_id(agent_id)
    strategy = check_strategy(strategy)
    core.head(agent_id)
    theirs = other_head(core, other)
    store, ref = core.store, branch_ref(agent_id)
    with _locked_head(core, agent_id) as (lock, head):
        if reaches(_parents(core), head, theirs):
            return MergeResult("up to date", _checkpoint(core, agent_id, head))
        bases = core.merge_bases(head, theirs)
        if not bases:
            raise InvalidArgumentError(
                f"{other!r} shares no checkpoint with agent {agent_id!r}: there is nothing to "
                f"merge against (keep it as another agent instead)")
        base, ours_commit, theirs_commit = (core.commit(sha) for sha in (bases[0], head, theirs))
        _refuse_threads(core, agent_id, ours_commit, theirs_commit)
        ours_state, theirs_state, base_state = (core.state(c) for c in (ours_commit, theirs_commit, base))
        if base.id == head and _owned(theirs_state, agent_id):
            if not store.update_ref(lock, ref, head, theirs, log=f"gitstate: merge {other}"):
                raise _moved(agent_id)
            return MergeResult("fast-forward", _checkpoint(core, agent_id, theirs),
                               _checkpoint(core, agent_id, base.id))
        result = three_way(_own(base_state, agent_id), _own(ours_state, agent_id),
                           _own(theirs_state, agent_id), strategy)
        if result.unresolved:
            listed = "\n".join(f"  {c}" for c in result.unresolved)
            raise MergeConflictError(
                f"merging {other} into {agent_id}: {len(result.unresolved)} conflict(s), nothing "
                f"was written; choose a side with strategy 'ours' or 'theirs', for all or per "
                f"path (gitstate merge {agent_id} {other} --strategy ours, or --resolve "
                f"PATH=theirs):\n{listed}", result.conflicts)
        tree = store.write_state(result.value)
        message = _message(core, agent_id, other, ours_commit, theirs_commit, base, result.value)
        commit = core.write_commit(agent_id, tree, [head, theirs], message)
        if not store.update_ref(lock, ref, head, commit.id, log=f"gitstate: merge {other}"):
            raise _moved(agent_id)
    return MergeResult("merged", core.checkpoint(commit, agent_id), _checkpoint(core, agent_id, base.id),
                       tuple(result.conflicts), tuple(result.appended))


def rebase(core: Core, agent_id: str, other: str) -> RebaseResult:
    """Replay the agent's checkpoints that ``other``'s history lacks on top of ``other``
    (see the module docstring; an agent already in that history fast-forwards). A
    history without a common checkpoint raises ``InvalidArgumentError`` with nothing
    written.
    """
    validate_agent_id(agent_id)
    core.head(agent_id)
    onto = other_head(core, other)
    store, ref = core.store, branch_ref(agent_id)
    with _locked_head(core, agent_id) as (lock, head):
        theirs = core.ancestors(onto)
        if head in theirs:
            status, new = ("up to date" if head == onto else "fast-forward"), onto
        elif reaches(_parents(core), head, onto):
            status, new = "ahead", head
        else:
            status = "rebased"
        if status != "rebased":
            if new != head and not store.update_ref(lock, ref, head, new):
                raise _moved(agent_id)
            return RebaseResult(status, _checkpoint(core, agent_id, new))
        local = []
        for commit in core.walk(head):
            if commit.id in theirs:
                break
            local.append(commit)
        else:
            raise InvalidArgumentError(
                f"{other!r} shares no checkpoint with agent {agent_id!r}: there is nothing to "
                "rebase onto (keep it as another agent instead)")
        _refuse_threads(core, agent_id, local[0], core.commit(onto))
        done = replay(store, lock, agent_id, head, local, onto)
    names = core.names(agent_id)
    replayed = tuple(core.checkpoint(core.commit(new), agent_id, names.get(new, ()))
                     for new in done.mapping.values())
    return RebaseResult("rebased", _checkpoint(core, agent_id, done.new_head), replayed)


def _parents(core: Core) -> Any:
    return lambda sha: core.commit(sha).parents


def _checkpoint(core: Core, agent_id: str, sha: bytes) -> Checkpoint:
    return core.checkpoint(core.commit(sha), agent_id, core.names(agent_id).get(sha, ()))


def _owned(state: Any, agent_id: str) -> bool:
    """Whether a state is this agent's (not a fork's, whose ``agent_id`` is the fork's)."""
    return not isinstance(state, dict) or state.get("agent_id", agent_id) == agent_id


def _own(state: Any, agent_id: str) -> Any:
    """A state as this agent holds it: a fork's states carry the fork's ``agent_id``."""
    if isinstance(state, dict) and "agent_id" in state and state["agent_id"] != agent_id:
        return {**state, "agent_id": agent_id}
    return state


def _refuse_threads(core: Core, agent_id: str, *commits: Any) -> None:
    for commit in commits:
        if _LANGGRAPH_THREAD in parse_message(commit.message)[1]:
            raise InvalidArgumentError(
                f"commit {commit.id[:7].decode()} is a LangGraph checkpoint (written by "
                "gitstate.langgraph.GitstateSaver): merging or rebasing threads would break them; "
                f"keep the other thread apart (GitstateSaver.copy_thread) instead of {agent_id!r}")


def _message(core: Core, agent_id: str, other: str, ours: Any, theirs: Any, base: Any,
             state: Any) -> bytes:
    """The merge commit's message: trailers of ours' kind, ``Merge-Of`` and ``Merge-Base``."""
    def checkpoint_id(commit: Any) -> str:
        found = parse_message(commit.message)[1].get("Checkpoint-Id")
        if found is None:
            raise CorruptObjectError(f"commit {commit.id.decode()} has no Checkpoint-Id trailer")
        return str(found)
    mine = parse_message(ours.message)[1]
    trailers = {"Checkpoint-Id": new_checkpoint_id(), "Agent-Id": agent_id}
    if isinstance(state, dict) and type(state.get("iteration")) is int:
        trailers["Iteration"] = str(state["iteration"])
    if isinstance(state, dict) and isinstance(state.get("status"), str):
        trailers["Status"] = state["status"]
    trailers["Schema-Version"] = mine.get("Schema-Version", "1")
    trailers["Merge-Of"] = checkpoint_id(theirs)
    trailers["Merge-Base"] = checkpoint_id(base)
    return build_message(f"{agent_id} merge of {other} at {trailers['Merge-Of']}", trailers)


def _moved(agent_id: str) -> ConcurrentUpdateError:
    return ConcurrentUpdateError(f"the branch of agent {agent_id!r} moved during the merge (a writer "
                                 "outside gitstate); nothing was changed, try again")
