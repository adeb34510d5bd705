"""Remotes: push, fetch, pull and clone agents' checkpoints through any git server.

Only agent branches (``refs/heads/agents/*``) and their names
(``refs/tags/agents/*``) travel, in one connection per command. Remotes live
in the repository's git config (``git remote -v`` shows them) with refspecs
that make stock ``git fetch``/``git push`` move the same refs. A fetch mirrors
the remote's agents into ``refs/remotes/<remote>/agents/<id>`` and their names
into ``refs/remotes/<remote>/tags/agents/<id>/<name>``; only a pull changes
local agents, and only by fast-forward. Credentials in URLs are never shown:
every URL printed, returned or put in an error is redacted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict

from . import checkpoints
from . import merge as merging
from .core import Core
from .errors import (
    AgentNotFoundError,
    CorruptObjectError,
    DivergedError,
    InvalidArgumentError,
    MergeConflictError,
    PushRejectedError,
    RemoteError,
    RemoteExistsError,
    RemoteNotFoundError,
)
from .git import bare, transport
from .git.config import Config, read_config, update_config
from .git.layout import reaches
from .git.store import RefLock
from .git.transport import ZERO_SHA, Progress, redact
from .ids import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    branch_ref,
    is_valid_agent_id,
    is_valid_name,
    naming_problem,
    tag_prefix,
    tag_ref,
    tracking_branch,
    tracking_tag_prefix,
    validate_agent_id,
)
from .jsonmerge import Strategy, check_strategy
from .message import parse as parse_message

_WANTED_PREFIXES = [BRANCH_PREFIX.encode(), TAG_PREFIX.encode()]


class TransferStatus(str, Enum):
    """What a push, fetch or pull did to one agent."""

    NEW = "new"                # the agent did not exist on the receiving side
    UPDATED = "updated"        # fast-forwarded (or only names were added)
    FORCED = "forced"          # replaced by a history that does not contain the old head
    UP_TO_DATE = "up to date"
    AHEAD = "ahead"            # pull: the local agent already has the remote's checkpoints and more
    DELETED = "deleted"        # fetch: the agent is gone from the remote, its tracking ref too
    REJECTED = "rejected"      # push: refused (see ``reason``); nothing of this agent changed
    DIVERGED = "diverged"      # pull: both sides have checkpoints the other lacks; nothing changed
    REBASED = "rebased"        # pull --rebase: the local-only checkpoints replayed on the remote's
    MERGED = "merged"          # pull --merge: a merge checkpoint joins both histories


class TransferResult(BaseModel):
    """The outcome of a push, fetch or pull for one agent.

    ``old``/``new`` are the commit SHAs of the head on the receiving side
    before and after (the remote's for a push, the local ones otherwise).
    """

    model_config = ConfigDict(frozen=True)

    agent_id: str
    status: TransferStatus
    old: str | None = None
    new: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status not in (TransferStatus.REJECTED, TransferStatus.DIVERGED)


class Remote(BaseModel):
    """A configured remote; ``url`` has any password replaced by ``***``."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str


# -- ref layout -----------------------------------------------------------------------------
class _Agent:
    """One agent's refs on one side: its head and its names (name -> SHA)."""

    __slots__ = ("head", "tags")

    def __init__(self, head: bytes | None = None, tags: dict[str, bytes] | None = None):
        self.head = head
        self.tags = tags if tags is not None else {}


def _agents_in(refs: dict[bytes, Any]) -> dict[str, _Agent]:
    """Group advertised refs into agents; refs that are not valid agent refs are ignored."""
    agents: dict[str, _Agent] = {}
    branch, tag = _WANTED_PREFIXES
    for ref, sha in refs.items():
        if not sha or sha == ZERO_SHA or ref.endswith(b"^{}"):
            continue
        if ref.startswith(branch):
            agent_id = ref[len(branch):].decode("utf-8", "replace")
            if is_valid_agent_id(agent_id):
                agents.setdefault(agent_id, _Agent()).head = sha
        elif ref.startswith(tag):
            agent_id, _, name = ref[len(tag):].decode("utf-8", "replace").partition("/")
            if is_valid_agent_id(agent_id) and is_valid_name(name):
                agents.setdefault(agent_id, _Agent()).tags[name] = sha
    return {agent_id: a for agent_id, a in agents.items() if a.head is not None}


def _short(sha: bytes | None) -> str:
    return sha[:7].decode() if sha else "(none)"


# -- configuration --------------------------------------------------------------------
def remotes(core: Core) -> list[Remote]:
    """The configured remotes, sorted by name (URLs redacted)."""
    config = read_config(core.path)
    found = []
    for section in config.sections():
        if len(section) == 2 and section[0] == b"remote":
            try:
                url = config.get(section, b"url").decode()
            except KeyError:
                continue
            found.append(Remote(name=section[1].decode(), url=redact(url)))
    return sorted(found, key=lambda remote: remote.name)


def _remote_url(core: Core, remote: str) -> str:
    _check_remote_name(remote)
    try:
        return read_config(core.path).get((b"remote", remote.encode()), b"url").decode()
    except KeyError:
        raise RemoteNotFoundError(
            f"no remote {remote!r} in {core.path}; add one with remote_add({remote!r}, URL)"
        ) from None


def remote_add(core: Core, name: str, url: str) -> Remote:
    """Add a remote: a URL (``http(s)://``, ``git://``, ``ssh://``, ``file://``) or a path.

    It is written to the git config with refspecs for agent refs only, so
    stock ``git fetch``/``git push`` on this repository move the same refs.
    """
    _check_remote_name(name)
    url = _checked_url(url)
    section = (b"remote", name.encode())

    def add(config: Config) -> None:
        _check_free(config, name)
        config.set(section, b"url", url.encode())
        config.add(section, b"fetch", f"+{BRANCH_PREFIX}*:refs/remotes/{name}/agents/*".encode())
        config.add(section, b"fetch", f"+{TAG_PREFIX}*:refs/remotes/{name}/tags/agents/*".encode())
        config.add(section, b"push", f"{BRANCH_PREFIX}*:{BRANCH_PREFIX}*".encode())
        config.add(section, b"push", f"{TAG_PREFIX}*:{TAG_PREFIX}*".encode())
        config.set(section, b"tagOpt", b"--no-tags")

    update_config(core.store, add)
    return Remote(name=name, url=redact(url))


def remote_remove(core: Core, name: str) -> None:
    """Remove a remote and the tracking refs of its agents (the remote itself is not touched).

    The tracking refs go first: a process killed halfway leaves the remote
    configured, and removing it again finishes the job. Refs another tool wrote
    under ``refs/remotes/<name>/`` (e.g. ``main`` by a stock ``git fetch``) stay.
    """
    _remote_url(core, name)
    for prefix in (f"refs/remotes/{name}/agents/", f"refs/remotes/{name}/tags/agents/"):
        for ref in core.store.read_refs(prefix.encode()):
            agent_id = _as_agent_ref(name, ref).split(b"/")[3].decode()  # refs/{heads,tags}/agents/<id>
            with core.store.agent_lock(agent_id) as lock:
                _set_ref(core, lock, ref, None)

    def remove(config: Config) -> None:
        if config.has_section((b"remote", name.encode())):  # else removed meanwhile
            del config[(b"remote", name.encode())]

    update_config(core.store, remove)


def remote_rename(core: Core, old: str, new: str) -> Remote:
    """Rename remote ``old`` to ``new`` (``git remote rename``): its config section, its fetch
    refspecs and its tracking refs (``refs/remotes/<old>/agents/...`` and ``.../tags/agents/...``).

    The tracking refs move first, each under its agent's lock (created under ``new``,
    then deleted under ``old``), and the config last: a process killed halfway leaves
    ``old`` configured, and renaming again finishes the job.
    """
    url = _remote_url(core, old)
    _check_remote_name(new)
    _check_free(read_config(core.path), new)
    for prefix in (f"refs/remotes/{old}/agents/", f"refs/remotes/{old}/tags/agents/"):
        for ref in sorted(core.store.read_refs(prefix.encode())):
            agent_id = _as_agent_ref(old, ref).split(b"/")[3].decode()  # refs/{heads,tags}/agents/<id>
            moved = f"refs/remotes/{new}/".encode() + ref[len(f"refs/remotes/{old}/"):]
            with core.store.agent_lock(agent_id) as lock:
                sha = core.store.read_ref(ref)
                if sha is not None:  # else deleted meanwhile (a fetch, a remote_remove)
                    _set_ref(core, lock, moved, sha)
                    _set_ref(core, lock, ref, None)

    def rename(config: Config) -> None:
        section = (b"remote", old.encode())
        if not config.has_section(section):
            raise RemoteNotFoundError(f"remote {old!r} was removed while it was being renamed")
        _check_free(config, new)
        tracking = f":refs/remotes/{old}/".encode()
        for key, value in list(config.items(section)):
            if key.lower() == b"fetch":
                value = value.replace(tracking, f":refs/remotes/{new}/".encode())
            config.add((b"remote", new.encode()), key, value)
        del config[section]

    update_config(core.store, rename)
    return Remote(name=new, url=redact(url))


def remote_set_url(core: Core, name: str, url: str) -> Remote:
    """Point remote ``name`` at ``url`` (``git remote set-url``), checked as by :func:`remote_add`;
    its tracking refs stay until the next fetch."""
    _remote_url(core, name)
    url = _checked_url(url)

    def set_url(config: Config) -> None:
        section = (b"remote", name.encode())
        if not config.has_section(section):
            raise RemoteNotFoundError(f"remote {name!r} was removed while its URL was being set")
        config.set(section, b"url", url.encode())

    update_config(core.store, set_url)
    return Remote(name=name, url=redact(url))


def _check_free(config: Config, name: str) -> None:
    section = (b"remote", name.encode())
    if config.has_section(section):
        try:
            where = f" ({redact(config.get(section, b'url').decode())})"
        except KeyError:
            where = ""
        raise RemoteExistsError(f"remote {name!r} already exists{where}")


def _checked_url(url: str) -> str:
    """``url`` if a remote can have it (a local path made absolute); ``InvalidArgumentError`` or
    ``RemoteError`` if not."""
    transport.check_url(url)
    url = os.path.abspath(url) if transport.is_local_path(url) else url
    transport.reachable(url)
    return url

# -- tracking refs --------------------------------------------------------------------
def _set_ref(core: Core, lock: RefLock, ref: bytes, new: bytes | None) -> None:
    """Point ``ref`` at ``new`` (None deletes), whatever it held (caller holds the agent lock)."""
    while not core.store.update_ref(lock, ref, core.store.read_ref(ref), new):
        pass  # a non-gitstate writer moved it between our read and our write: read again


def _mirror_tracking(core: Core, lock: RefLock, remote: str, agent_id: str,
                     agent: _Agent) -> None:
    """Make the tracking refs of one agent equal ``agent`` (an empty one deletes them)."""
    if core.store.read_ref(tracking_branch(remote, agent_id)) != agent.head:
        _set_ref(core, lock, tracking_branch(remote, agent_id), agent.head)
    prefix = tracking_tag_prefix(remote, agent_id)
    old_tags = {ref[len(prefix):].decode(): sha for ref, sha in core.store.read_refs(prefix).items()}
    for name in old_tags.keys() | agent.tags.keys():
        if old_tags.get(name) != agent.tags.get(name):
            _set_ref(core, lock, prefix + name.encode(), agent.tags.get(name))


def _tracked(core: Core, remote: str) -> dict[str, _Agent]:
    refs = core.store.read_refs(f"refs/remotes/{remote}/".encode())
    return _agents_in({_as_agent_ref(remote, ref): sha for ref, sha in refs.items()})


def _local(core: Core, agent_id: str) -> _Agent:
    prefix = tag_prefix(agent_id)
    tags = {ref[len(prefix):].decode(): sha for ref, sha in core.store.read_refs(prefix).items()}
    return _Agent(core.store.read_ref(branch_ref(agent_id)), tags)


def _is_ancestor(core: Core, ancestor: bytes, head: bytes) -> bool:
    """True if ``ancestor`` is ``head`` or in its history (all parents followed)."""
    return core.store.contains(ancestor) and reaches(lambda sha: core.commit(sha).parents, head, ancestor)


# -- push -----------------------------------------------------------------------------
def push(core: Core, remote: str, agents: Sequence[str] | None = None, *,
         tags: bool = True, force: bool = False,
         progress: Progress | None = None) -> list[TransferResult]:
    """Push agents (default: all) and, with ``tags``, their names, in one connection.

    An agent whose remote head is not in its local history (someone else
    pushed, or retention rewrote the local history) is rejected unless
    ``force``; so is one whose name points elsewhere on the remote. With
    ``force`` the remote agent becomes a copy of the local one, names
    included. The server may still refuse refs (``receive.denyNonFastForwards``,
    hooks): each refusal is read from the server's per-ref report.
    Raises :class:`PushRejectedError` (``results`` lists every agent) if
    any agent was rejected; the others were pushed.
    """
    url = _remote_url(core, remote)
    if agents is None:
        selected = [validate_agent_id(info.agent_id) for info in checkpoints.agents(core)]
    else:
        selected = list(dict.fromkeys(validate_agent_id(a) for a in agents))
    local = {agent_id: _local(core, agent_id) for agent_id in selected}
    for agent_id, agent in local.items():
        if agent.head is None:
            raise AgentNotFoundError(f"no agent {agent_id!r} in {core.path}")
    plans: dict[str, _PushPlan] = {}

    def update_refs(remote_refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
        theirs = _agents_in(remote_refs)
        changes: dict[bytes, bytes] = {}
        for agent_id, ours in local.items():
            plan = plans[agent_id] = _plan_push(core, remote, agent_id, ours,
                                                theirs.get(agent_id, _Agent()), tags=tags, force=force)
            changes.update(plan.changes)
        return changes

    refused = transport.push(core.store, url, update_refs, progress)
    results = []
    for agent_id, plan in plans.items():
        failures = [f"{ref.decode()}: {refused[ref]}" for ref in plan.changes if ref in refused]
        if failures:
            plan.result = plan.result.model_copy(update={
                "status": TransferStatus.REJECTED, "new": plan.result.old,
                "reason": f"refused by {remote}: " + "; ".join(failures)
                          + _refusal_hint(core, remote, agent_id, refused, force)})
        elif plan.changes:
            with core.store.agent_lock(agent_id) as lock:
                _mirror_tracking(core, lock, remote, agent_id, plan.after)
        results.append(plan.result)
    rejected = [r for r in results if r.status is TransferStatus.REJECTED]
    if rejected:
        listed = "\n".join(f"  {r.agent_id}: {r.reason}" for r in rejected)
        raise PushRejectedError(
            f"{len(rejected)} of {len(results)} agent(s) not pushed to {remote}:\n{listed}", results)
    return results


def _refusal_hint(core: Core, remote: str, agent_id: str, refused: dict[bytes, str],
                  force: bool) -> str:
    """What a server's refusal of an agent's branch means (a hook's: nothing to add)."""
    why = refused.get(branch_ref(agent_id))
    if why is None or "hook" in why:
        return ""
    if force:
        return (f". {remote} refuses to drop checkpoints (receive.denyNonFastForwards). Keep both: "
                f"gitstate pull {remote} {agent_id} --rebase (or --merge), then push again")
    return ". " + _not_fast_forward(core, remote, agent_id, None, b"")


def _plan_push(core: Core, remote: str, agent_id: str, ours: _Agent, theirs: _Agent, *,
               tags: bool, force: bool) -> _PushPlan:
    """What to send for one agent, and what to report if that works."""
    assert ours.head is not None
    problems: list[str] = []
    if theirs.head is None or theirs.head == ours.head:
        status = TransferStatus.NEW if theirs.head is None else TransferStatus.UP_TO_DATE
    elif _is_ancestor(core, theirs.head, ours.head):
        status = TransferStatus.UPDATED
    elif force:
        status = TransferStatus.FORCED
    else:
        status = TransferStatus.REJECTED
        problems.append(_not_fast_forward(core, remote, agent_id, theirs.head, ours.head))
    after_tags = dict(theirs.tags)
    if tags:
        for name, sha in ours.tags.items():
            if theirs.tags.get(name, sha) != sha and not force:
                problems.append(f"the remote name {name!r} points to {_short(theirs.tags[name])}, "
                                f"here to {_short(sha)}; push with force to move it")
        after_tags = {**theirs.tags, **ours.tags} if not force else dict(ours.tags)
    old = theirs.head.decode() if theirs.head else None
    if problems:
        return _PushPlan({}, _Agent(theirs.head, theirs.tags),
                         TransferResult(agent_id=agent_id, status=TransferStatus.REJECTED, old=old,
                                        new=old, reason="; ".join(problems)))
    changes = {branch_ref(agent_id): ours.head} if theirs.head != ours.head else {}
    for name in theirs.tags.keys() | after_tags.keys():
        if theirs.tags.get(name) != after_tags.get(name):
            changes[tag_ref(agent_id, name)] = after_tags.get(name, ZERO_SHA)
    if status is TransferStatus.UP_TO_DATE and changes:
        status = TransferStatus.UPDATED  # only names were added or moved
    return _PushPlan(changes, _Agent(ours.head, after_tags),
                     TransferResult(agent_id=agent_id, status=status, old=old,
                                    new=ours.head.decode()))


def _not_fast_forward(core: Core, remote: str, agent_id: str, theirs: bytes | None,
                      ours: bytes) -> str:
    """Why a push would drop the remote head ``theirs`` (None: not known, the server moved
    on after it advertised its refs), and the ways out."""
    if theirs is not None and core.store.contains(theirs):
        checkpoint_id = parse_message(core.commit(theirs).message)[1].get("Checkpoint-Id")
        marker = f"\nCheckpoint-Id: {checkpoint_id}\n".encode()
        if checkpoint_id and any(marker in commit.message for commit in core.walk(ours)):
            return (f"the local history was rewritten (e.g. by retention) since the remote got its "
                    f"head {_short(theirs)}: push with force to replace the remote history")
    if theirs is None:
        what, drops = f"{remote} has checkpoints this one lacks (another push landed first)", \
            "the checkpoints pushed there meanwhile"
    else:
        what = (f"the remote head {_short(theirs)} is not in the local history ({remote} has "
                "checkpoints this one lacks)")
        drops = "the remote's checkpoints that are not here"
        if core.store.contains(theirs):
            ancestors = core.ancestors(ours)
            lost = sum(1 for commit in core.walk(theirs) if commit.id not in ancestors)
            drops = f"{lost} checkpoint(s) of {remote}"
    return (f"diverged: {what}. Keep both: gitstate pull {remote} {agent_id} --rebase (or "
            f"--merge), then push again; or replace theirs: gitstate push {remote} {agent_id} "
            f"--force, which drops {drops}")


# -- fetch and pull -------------------------------------------------------------------
def fetch(core: Core, remote: str, agents: Sequence[str] | None = None, *,
          progress: Progress | None = None) -> list[TransferResult]:
    """Download agents (default: all) into ``refs/remotes/<remote>/agents/*``, one connection.

    Local agents are not touched (see :meth:`pull`). Fetching all agents
    also drops the tracking refs of agents the remote no longer has.
    """
    return [result for result, _ in _fetch(core, remote, agents, progress)]


def _fetch(core: Core, remote: str, agents: Sequence[str] | None,
           progress: Progress | None) -> list[tuple[TransferResult, _Agent]]:
    url = _remote_url(core, remote)
    wanted = None if agents is None else list(dict.fromkeys(validate_agent_id(a) for a in agents))
    found: dict[str, _Agent] = {}

    def determine_wants(refs: dict[bytes, bytes]) -> list[bytes]:
        theirs = _agents_in(refs)
        missing = [a for a in wanted or () if a not in theirs]
        if missing:
            raise AgentNotFoundError(f"remote {remote!r} has no agent " + ", ".join(map(repr, missing)))
        found.update(theirs if wanted is None else {a: theirs[a] for a in wanted})
        shas = {sha for agent in found.values() for sha in (agent.head, *agent.tags.values())}
        return [sha for sha in shas if sha is not None and not core.store.contains(sha)]

    # until the tracking refs point at them, the fetched objects look unreachable: no
    # pruning maintenance may run in between (gc skips, reclaim waits)
    with core.store.maintenance_lock():
        transport.fetch(core.store, url, determine_wants, _WANTED_PREFIXES, progress)
        for agent_id, agent in sorted(found.items()):
            _check_received(core, remote, agent_id, agent)
        tracked = _tracked(core, remote)
        agent_ids = sorted(found.keys() | (tracked.keys() if wanted is None else set()))
        for agent_id in agent_ids:
            with core.store.agent_lock(agent_id) as lock:
                _mirror_tracking(core, lock, remote, agent_id, found.get(agent_id, _Agent()))
    outcome = []
    for agent_id in agent_ids:
        agent = found.get(agent_id, _Agent())
        old = tracked.get(agent_id, _Agent()).head
        status = (TransferStatus.DELETED if agent.head is None else
                  TransferStatus.NEW if old is None else
                  TransferStatus.UP_TO_DATE if old == agent.head else
                  TransferStatus.UPDATED if _is_ancestor(core, old, agent.head) else
                  TransferStatus.FORCED)
        result = TransferResult(agent_id=agent_id, status=status, old=_hex(old), new=_hex(agent.head))
        outcome.append((result, agent))
    return outcome


def _check_received(core: Core, remote: str, agent_id: str, agent: _Agent) -> None:
    """Refuse a fetched agent whose head or names are not commits here: a server whose own
    repository is damaged may advertise a ref to an object it cannot send, or to a blob."""
    for sha in (agent.head, *agent.tags.values()):
        assert sha is not None
        try:
            core.commit(sha)
        except CorruptObjectError as exc:
            raise RemoteError(f"{remote} sent agent {agent_id} without a readable commit {sha.decode()} "
                              f"({exc}); no ref was changed. The repository of {remote} may be "
                              "damaged: run gitstate verify there") from None


def pull(core: Core, remote: str, agents: Sequence[str] | None = None, *,
         into: str | None = None, rebase: bool = False, merge: bool = False,
         strategy: Strategy = None, progress: Progress | None = None) -> list[TransferResult]:
    """Fetch agents (default: all), then fast-forward the local ones, in one connection.

    A local agent that is missing is created; one that already has the
    remote's checkpoints (and more) is left as it is (``ahead``). One that
    diverged (both sides have checkpoints the other lacks) is not changed:
    :class:`DivergedError` names both heads and the ways out, after the other
    agents were updated; unless ``rebase`` (its local-only checkpoints are
    replayed on the remote head: :func:`gitstate.merge.rebase`) or ``merge`` (a
    merge checkpoint with ``strategy`` for conflicts: :func:`gitstate.merge.merge`;
    one that conflicts stays diverged). ``into`` pulls a single remote agent into
    another local agent id (e.g. to keep a diverged remote agent beside yours).
    """
    if into is not None:
        validate_agent_id(into)
        if agents is None or len(set(agents)) != 1:
            raise InvalidArgumentError("into= needs exactly one agent to pull")
    if rebase and merge:
        raise InvalidArgumentError("rebase and merge exclude each other: choose one")
    if into is not None and (rebase or merge):
        raise InvalidArgumentError("into= keeps the remote agent apart: it takes no rebase or merge")
    if strategy is not None and not merge:
        raise InvalidArgumentError(f"strategy={strategy!r} applies to a merge: pass merge=True")
    check_strategy(strategy)
    results = []
    for fetched, agent in _fetch(core, remote, agents, progress):
        if agent.head is not None:
            result = _fast_forward(core, remote, fetched.agent_id, into or fetched.agent_id, agent)
            if result.status is TransferStatus.DIVERGED and (rebase or merge):
                result = _join(core, remote, fetched.agent_id, agent, result, rebase, strategy)
            results.append(result)
    diverged = [r for r in results if r.status is TransferStatus.DIVERGED]
    if diverged:
        listed = "\n".join(f"  {r.agent_id}: {r.reason}" for r in diverged)
        raise DivergedError(f"{len(diverged)} agent(s) diverged from {remote}; nothing of them "
                            f"was changed:\n{listed}", results)
    return results


def _fast_forward(core: Core, remote: str, remote_id: str, agent_id: str,
                  theirs: _Agent) -> TransferResult:
    """Move one local agent to the fetched remote head if that loses nothing; add its names."""
    assert theirs.head is not None
    ref = branch_ref(agent_id)
    with core.store.agent_lock(agent_id) as lock:
        while True:
            head = core.store.read_ref(ref)
            if head is not None:
                core.commit(head)  # a damaged head is named, not fast-forwarded past
            if head is None or _is_ancestor(core, head, theirs.head):
                if head == theirs.head:
                    status = TransferStatus.UP_TO_DATE
                elif not core.store.update_ref(lock, ref, head, theirs.head):
                    continue  # a non-gitstate writer moved the branch: look again
                else:
                    status = TransferStatus.NEW if head is None else TransferStatus.UPDATED
                new = theirs.head
            elif _is_ancestor(core, theirs.head, head):
                status, new = TransferStatus.AHEAD, head
            else:
                return TransferResult(
                    agent_id=agent_id, status=TransferStatus.DIVERGED, old=_hex(head), new=_hex(head),
                    reason=_divergence(core, remote, remote_id, agent_id, head, theirs.head))
            break
        kept = _add_names(core, lock, agent_id, theirs.tags)
    reason = None
    if kept:
        reason = "kept the local name(s) " + ", ".join(map(repr, kept)) + f" (they differ on {remote})"
    return TransferResult(agent_id=agent_id, status=status, old=_hex(head), new=_hex(new), reason=reason)


def _join(core: Core, remote: str, agent_id: str, theirs: _Agent, diverged: TransferResult,
          rebase: bool, strategy: Strategy) -> TransferResult:
    """Rebase a diverged agent onto the fetched remote head, or merge that head into it,
    then add the remote's names it lacks; still ``diverged`` if the merge conflicts."""
    tracking = f"{remote}/{agent_id}"
    try:
        if rebase:
            rebased = merging.rebase(core, agent_id, tracking)
            status, new = rebased.status, rebased.checkpoint
            note = f"replayed {len(rebased.replayed)} local checkpoint(s) on {remote}'s head"
        else:
            merged = merging.merge(core, agent_id, tracking, strategy=strategy)
            status, new = merged.status, merged.checkpoint
            note = _merge_note(merged)
    except MergeConflictError as exc:
        paths = ", ".join(c.path for c in exc.conflicts if c.resolved is None)
        return diverged.model_copy(update={"reason": (
            f"conflicts at {paths}; nothing was changed. Choose a side: gitstate merge {agent_id} "
            f"{tracking} --strategy ours|theirs (or --resolve PATH=ours|theirs), or "
            f"gitstate pull {remote} {agent_id} --rebase")})
    except InvalidArgumentError as exc:  # no common checkpoint, a strategy path with no conflict
        return diverged.model_copy(update={"reason": f"{exc}; nothing was changed"})
    with core.store.agent_lock(agent_id) as lock:
        kept = _add_names(core, lock, agent_id, theirs.tags)
    if kept:
        note += (f"; kept the local name(s) {', '.join(map(repr, kept))} (they name other "
                 f"checkpoints on {remote}: push them with force, or push --no-tags)")
    result = {"rebased": TransferStatus.REBASED, "merged": TransferStatus.MERGED,
              "ahead": TransferStatus.AHEAD, "up to date": TransferStatus.UP_TO_DATE}
    return TransferResult(agent_id=agent_id, status=result.get(status, TransferStatus.UPDATED),
                          old=diverged.old, new=new.commit, reason=note)


def _merge_note(merged: merging.MergeResult) -> str:
    note = f"merge checkpoint {merged.checkpoint.checkpoint_id}"
    if merged.appended:
        note += "; both sides appended to " + ", ".join(merged.appended) + " (ours first)"
    if merged.conflicts:
        note += "; conflicts resolved: " + ", ".join(f"{c.path} ({c.resolved})" for c in merged.conflicts)
    return note


def _add_names(core: Core, lock: RefLock, agent_id: str,
               names: dict[str, bytes]) -> list[str]:
    """Create the local names that are missing; return those that differ (kept local)."""
    differing = []
    for name, sha in sorted(names.items()):
        ref = tag_ref(agent_id, name)
        current = core.store.read_ref(ref)
        if current is None:
            core.store.update_ref(lock, ref, None, sha)
        elif current != sha:
            differing.append(name)
    return differing


def _divergence(core: Core, remote: str, remote_id: str, agent_id: str,
                ours: bytes, theirs: bytes) -> str:
    def describe(sha: bytes, owner: str) -> str:
        checkpoint = core.checkpoint(core.commit(sha), owner)
        return f"{_short(sha)} (checkpoint {checkpoint.checkpoint_id})"
    return (f"local head {describe(ours, agent_id)}, {remote}'s head {describe(theirs, remote_id)}; "
            f"both are kept (yours: agents/{agent_id}, theirs: {remote}/agents/{remote_id}). "
            f"To keep both in one history: gitstate pull {remote} {remote_id} --rebase (yours "
            f"replayed on theirs) or --merge (a merge checkpoint); to keep theirs as another "
            f"agent: gitstate pull {remote} {remote_id} --into {agent_id}-{remote}; to replace "
            f"theirs with yours: gitstate push {remote} {agent_id} --force")

# -- clone ----------------------------------------------------------------------------
def clone(url: str, path: str | os.PathLike[str], *, remote: str = "origin",
          progress: Progress | None = None, **options: Any) -> Core:
    """Create a repository at ``path`` holding every agent of ``url`` (added as ``remote``).

    ``path`` must not exist or be an empty folder; if the clone fails, it is left
    as it was.
    """
    path = os.path.abspath(os.fspath(path))
    existed = os.path.exists(path)
    if existed and (not os.path.isdir(path) or os.listdir(path)):
        raise InvalidArgumentError(f"cannot clone into {path}: it exists and is not an empty folder")
    _check_remote_name(remote)
    transport.check_url(url)
    core = Core.init(path, **options)
    try:
        remote_add(core, remote, url)
        pull(core, remote, progress=progress)
    except BaseException:
        bare.discard(path, keep_folder=existed)
        raise
    return core


class _PushPlan:
    """The ref changes to send for one agent, its refs if they land, and the result to report."""

    __slots__ = ("changes", "after", "result")

    def __init__(self, changes: dict[bytes, bytes], after: _Agent, result: TransferResult):
        self.changes = changes
        self.after = after
        self.result = result


def _check_remote_name(name: object) -> None:
    problem = naming_problem(name, "remote name")
    if problem:
        raise InvalidArgumentError(problem)


def _as_agent_ref(remote: str, tracking_ref: bytes) -> bytes:
    """``refs/remotes/<remote>/agents/x`` -> ``refs/heads/agents/x`` (tags likewise)."""
    rest = tracking_ref[len(f"refs/remotes/{remote}/"):]
    return (b"refs/tags/" + rest[len(b"tags/"):]) if rest.startswith(b"tags/") else b"refs/heads/" + rest


def _hex(sha: bytes | None) -> str | None:
    return sha.decode() if sha else None


