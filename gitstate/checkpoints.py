"""Saving, naming, loading and listing checkpoints: the everyday API, over a :class:`Core`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .core import Core, utc
from .errors import (
    CorruptObjectError,
    EncodingError,
    GitstateError,
    InvalidArgumentError,
    InvalidStateError,
    NameTakenError,
    RevisionNotFoundError,
)
from .git.layout import aware, checkpoint_time
from .ids import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    branch_ref,
    is_sha,
    new_checkpoint_id,
    tag_ref,
    validate_agent_id,
    validate_name,
)
from .message import build as build_message
from .message import integer
from .message import parse as parse_message
from .models import AgentInfo, AgentState, Checkpoint

_T = TypeVar("_T")
CORE_TRAILERS = ("Checkpoint-Id", "Agent-Id", "Iteration", "Status", "Schema-Version")


def save(core: Core, state: BaseModel | Mapping[str, Any], *, agent_id: str | None = None,
         name: str | None = None, message: str | None = None,
         time: datetime | None = None, trailers: Mapping[str, str] | None = None) -> Checkpoint:
    """Save ``state`` as a new checkpoint (a commit on the agent's branch).

    The agent is ``agent_id`` if given (also written into the state), else the
    state's own ``agent_id``. ``name`` tags the checkpoint and must be new for
    this agent. ``time`` (timezone-aware, within 1970..9999 UTC) sets the author
    time, default now. ``trailers`` adds commit trailers beside gitstate's own.
    """
    data, schema_version = _plain(state)
    extra = _extra_trailers(trailers)
    if message is not None and not isinstance(message, str):
        raise InvalidArgumentError(f"message must be a string, got {type(message).__name__}")
    agent_id = validate_agent_id(agent_id if agent_id is not None else data.get("agent_id"))
    core.store.writable_ref(branch_ref(agent_id))  # damaged or symbolic: before any write
    if data.get("agent_id") != agent_id:
        data = {**data, "agent_id": agent_id}
    if name is not None:
        validate_name(name)
        with core.store.agent_lock(agent_id):  # completes an interrupted operation first
            core.check_name_free(agent_id, name)
    when = None if time is None else checkpoint_time(time)
    iteration, status = data.get("iteration"), data.get("status")
    iteration = iteration if type(iteration) is int else None
    status = status if isinstance(status, str) else None
    fields = {"Checkpoint-Id": new_checkpoint_id(), "Agent-Id": agent_id}
    if iteration is not None:
        fields["Iteration"] = str(iteration)
    if status is not None:
        fields["Status"] = status
    fields["Schema-Version"] = str(schema_version)
    fields.update(extra)
    summary = message if message is not None else _summary(agent_id, iteration, status, name)
    text = build_message(summary, fields)

    tree = core.store.write_state(data)
    commit = core.append(agent_id, tree, text, when, name)
    return core.checkpoint(commit, agent_id, (name,) if name else ())


def tag(core: Core, agent_id: str, name: str, rev: str | None = None) -> Checkpoint:
    """Name the checkpoint at ``rev`` (default: the latest); a name is never moved (see
    :func:`untag`).

    ``rev`` is resolved under the agent's lock, so a concurrent delete, prune or
    rollback cannot leave the name on a checkpoint that left the history.
    """
    validate_agent_id(agent_id)
    validate_name(name)
    core.head(agent_id)  # no lock file for an agent that does not exist
    with core.store.agent_lock(agent_id) as lock:
        target = core.resolve(agent_id, rev)
        core.position(agent_id, core.history(agent_id), target)
        core.check_name_free(agent_id, name)
        if not core.store.update_ref(lock, tag_ref(agent_id, name), None, target.commit.encode()):
            raise NameTakenError(f"agent {agent_id!r}: the name {name!r} was just taken by a "
                                 "writer outside gitstate")
    return target.model_copy(update={"names": tuple(sorted((*target.names, name)))})


def untag(core: Core, agent_id: str, name: str) -> str:
    """Delete the agent's name ``name`` (``git tag -d``); return the commit SHA it named.

    The checkpoint stays. The name's ref is deleted under the agent's lock by
    compare-and-swap; ``RevisionNotFoundError`` if the agent has no such name.
    """
    validate_agent_id(agent_id, existing=True)
    validate_name(name)
    ref = tag_ref(agent_id, name)
    core.head(agent_id)  # no lock file for an agent that does not exist
    with core.store.agent_lock(agent_id) as lock:
        while True:
            sha = core.store.writable_ref(ref)
            if sha is None:
                raise RevisionNotFoundError(f"agent {agent_id!r} has no checkpoint named {name!r}")
            if core.store.update_ref(lock, ref, sha, None):
                return sha.decode()
            # a writer outside gitstate moved it between the read and the swap: read again


def move_name(core: Core, agent_id: str, name: str, commit: str) -> None:
    """Give ``name`` to the checkpoint ``commit`` of the agent, taking it from another
    checkpoint if it has it (the seed's API overwrote names)."""
    validate_agent_id(agent_id, existing=True)
    validate_name(name)
    ref = tag_ref(agent_id, name)
    with core.store.agent_lock(agent_id) as lock:
        if commit.encode() not in {c.id for c in core.history(agent_id)}:
            raise RevisionNotFoundError(f"{commit[:7]} is not in the history of agent {agent_id!r}")
        while not core.store.update_ref(lock, ref, core.store.read_ref(ref), commit.encode()):
            pass  # a writer outside gitstate moved it between the read and the swap


def load(core: Core, agent_id: str, rev: str | None = None, *,
         model: type[BaseModel] | None = AgentState) -> Any:
    """The state saved at ``rev`` (default: the latest), as ``model`` or a plain dict."""
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise InvalidArgumentError(f"model must be a pydantic model class or None, got {model!r}")
    commit = core.find(agent_id, rev)
    data = core.state(commit)
    if model is None:
        return data
    trailers = parse_message(commit.message)[1]
    label = trailers.get("Checkpoint-Id", commit.id.decode())
    stored = integer(trailers.get("Schema-Version", "1"))
    if stored is None:
        raise CorruptObjectError(f"checkpoint {label} of {agent_id!r} has Schema-Version "
                                 f"{trailers['Schema-Version']!r}, not an integer")
    version = getattr(model, "schema_version", 1)
    if stored != version:
        migrate = getattr(model, "migrate", None)
        if migrate is None:
            warnings.warn(f"checkpoint {label} has schema version {stored}, "
                          f"{model.__name__} expects {version}", stacklevel=3)
        else:
            data = migrate(data, stored)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidStateError(f"checkpoint {label} of {agent_id!r} "
                                f"is not a valid {model.__name__}: {exc}") from exc


def read_state(core: Core, commit: str) -> Any:
    """The decoded ``state.json`` of one checkpoint commit (its full hex SHA)."""
    sha = commit.lower().encode() if isinstance(commit, str) and commit.isascii() else b""
    if not is_sha(sha):
        raise InvalidArgumentError(f"commit must be a full 40-digit hex SHA, got {commit!r}")
    return core.state(core.commit(sha))


def log(core: Core, agent_id: str, *, limit: int | None = None,
        before: datetime | None = None, since: datetime | None = None,
        status: str | None = None) -> list[Checkpoint]:
    """Checkpoints of an agent, newest first, read lazily (``limit=20`` reads ~20 commits).

    ``before``/``since`` keep checkpoints created before / at or after a time;
    ``status`` keeps those with that status.
    """
    if limit is not None and (type(limit) is not int or limit < 0):
        raise InvalidArgumentError(f"limit must be an integer >= 0, got {limit!r}")
    before = None if before is None else aware(before, "before")
    since = None if since is None else aware(since, "since")
    head = core.head(agent_id)
    names = core.names(agent_id)
    result: list[Checkpoint] = []
    for commit in core.walk(head):
        if limit is not None and len(result) >= limit:
            break
        created = utc(commit.author_time)
        if before is not None and created >= before:
            continue
        if since is not None and created < since:
            continue
        checkpoint = core.checkpoint(commit, agent_id, names.get(commit.id, ()))
        if status is not None and checkpoint.status != status:
            continue
        result.append(checkpoint)
    return result


def count(core: Core, agent_id: str) -> int:
    """How many checkpoints the agent's history holds (commits read, no records built)."""
    return sum(1 for _commit in core.walk(core.head(agent_id)))


def names(core: Core, agent_id: str) -> dict[str, str]:
    """The agent's checkpoint names, each with the commit SHA it names (refs read, no history)."""
    core.head(agent_id)
    return {name: sha.decode() for sha, listed in core.names(agent_id).items() for name in listed}


def agents(core: Core, *, errors: dict[str, GitstateError] | None = None) -> list[AgentInfo]:
    """Every agent, sorted by id, with its newest checkpoint.

    An agent whose branch, names or head commit cannot be read raises
    ``CorruptObjectError`` naming it; given ``errors``, it is left out and its
    error put there under its id instead.
    """
    bad: dict[bytes, GitstateError] = {}
    tags = core.store.read_refs(TAG_PREFIX.encode(), bad)
    branches, failed = _branches(core, bad)
    named: dict[tuple[str, bytes], list[str]] = {}
    for ref, sha in tags.items():
        agent, _, name = ref[len(TAG_PREFIX):].decode(errors="replace").partition("/")
        named.setdefault((agent, sha), []).append(name)
    result = []
    for agent_id, sha in branches.items():
        if agent_id in failed:
            continue
        try:
            head = core.checkpoint(core.commit(sha), agent_id, named.get((agent_id, sha), ()))
        except CorruptObjectError as exc:
            failed[agent_id] = exc
            continue
        result.append(AgentInfo(agent_id=agent_id, head=head))
    return _report(result, failed, errors)


def heads(core: Core, *, errors: dict[str, GitstateError] | None = None) -> dict[str, str]:
    """Every agent's id, sorted, with the SHA of its newest checkpoint commit: refs read,
    no commit (100,000 agents in well under a second). An agent whose branch cannot be
    read raises or goes into ``errors`` as in :func:`agents`."""
    branches, failed = _branches(core, {})
    return _report({agent_id: sha.decode() for agent_id, sha in branches.items()
                    if agent_id not in failed}, failed, errors)


def _branches(core: Core, bad: dict[bytes, GitstateError]
              ) -> tuple[dict[str, bytes], dict[str, GitstateError]]:
    """(agent id -> head SHA, sorted by id; agent id -> error) of every agent's branch.

    ``bad`` holds the damaged refs found so far (e.g. names): each fails its agent.
    """
    branches = core.store.read_refs(BRANCH_PREFIX.encode(), bad)
    failed: dict[str, GitstateError] = {}
    for ref, damaged in sorted(bad.items()):  # a damaged branch or name fails its agent
        parts = ref.decode(errors="replace").split("/")
        if len(parts) < 4:  # a damaged file of many refs (packed-refs): no list to trust
            raise damaged
        failed.setdefault(parts[3], damaged)
    prefix = len(BRANCH_PREFIX)
    return {ref[prefix:].decode(errors="replace"): sha for ref, sha in sorted(branches.items())}, failed


def _report(result: _T, failed: dict[str, GitstateError],
            errors: dict[str, GitstateError] | None) -> _T:
    """``result``; the first of the agents that ``failed`` raises, unless ``errors`` takes them."""
    if failed and errors is None:
        agent_id, error = min(failed.items())
        raise CorruptObjectError(f"agent {agent_id}: {error}") from error
    if errors is not None:
        errors.update(failed)
    return result


def _plain(state: BaseModel | Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The state as a JSON-mode dict, and its schema version."""
    if isinstance(state, BaseModel):
        try:
            data = state.model_dump(mode="json")
        except ValueError as exc:  # an unknown type, or nesting deeper than pydantic writes
            raise EncodingError(f"the state cannot be dumped in JSON mode: {exc}") from None
        return data, getattr(type(state), "schema_version", 1)
    if isinstance(state, Mapping):
        return dict(state), 1
    raise InvalidArgumentError(
        f"state must be a pydantic model or a mapping, not {type(state).__name__}")


def _extra_trailers(trailers: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's trailers, checked: a mapping of strings, no core trailer, no key twice.

    git reads trailer keys case-insensitively, so keys are compared that way.
    """
    if trailers is None:
        return {}
    if not isinstance(trailers, Mapping):
        raise InvalidArgumentError(f"trailers must be a mapping, not {type(trailers).__name__}")
    reserved = {key.lower() for key in CORE_TRAILERS}
    seen: dict[str, str] = {}
    for key, value in trailers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgumentError(f"trailer {key!r}: {value!r}: keys and values must be strings")
        if key.lower() in reserved:
            raise InvalidArgumentError(f"trailer {key!r} is set by gitstate itself")
        if key.lower() in seen:
            raise InvalidArgumentError(f"trailers {seen[key.lower()]!r} and {key!r} differ only in case")
        seen[key.lower()] = key
    return dict(trailers)


def _summary(agent_id: str, iteration: int | None, status: str | None,
             name: str | None) -> str:
    parts = [agent_id]
    if iteration is not None:
        parts.append(f"iteration {iteration}")
    if status is not None:
        parts.append(status)
    if name is not None:
        parts.append(f"[{name}]")
    return " ".join(parts)
