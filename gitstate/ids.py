"""Agent ids, checkpoint names, checkpoint ids and the ref names built from them."""

from __future__ import annotations

import os
import re
import time
import uuid

from .errors import InvalidAgentIdError, InvalidNameError

BRANCH_PREFIX = "refs/heads/agents/"
TAG_PREFIX = "refs/tags/agents/"

_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_SHA = re.compile(rb"[0-9a-f]{40}")
_RESERVED_NAMES = {"latest", "HEAD"}


def naming_problem(value: object, kind: str, existing: bool = False) -> str | None:
    """Return why ``value`` is not a valid id/name, or None if it is.

    The rules keep ``refs/heads/agents/<id>`` and ``refs/tags/agents/<id>/<name>``
    valid under ``git check-ref-format``. ``existing`` also accepts a trailing
    ``.``, which older gitstate versions let through (see :func:`validate_agent_id`).
    """
    if not isinstance(value, str):
        return f"{kind} must be a string, not {type(value).__name__}"
    if not 1 <= len(value) <= 128:
        return f"{kind} must be 1-128 characters long, got {len(value)}"
    if not _ID.fullmatch(value):
        return (f"{kind} {value!r} may only hold letters, digits, '.', '_' and '-' "
                "and must not start with '.' or '-'")
    if value.endswith(".lock") or ".." in value:
        return f"{kind} {value!r} must not end in '.lock' or contain '..'"
    if value.endswith(".") and not existing:
        return f"{kind} {value!r} must not end in '.' (git refuses such ref names)"
    return None


def validate_agent_id(agent_id: object, *, existing: bool = False) -> str:
    """Return ``agent_id`` if valid, else raise :class:`InvalidAgentIdError`.

    ``existing=True`` (reading an agent) also accepts an id ending in ``.``,
    which older gitstate versions let through: such an agent can be read,
    forked and deleted, but not saved to or named.
    """
    problem = naming_problem(agent_id, "agent id", existing)
    if problem:
        if naming_problem(agent_id, "agent id", existing=True) is None:  # only the trailing '.'
            problem += (f"; to keep an agent saved under it, fork it to a valid id "
                        f"(gitstate fork {agent_id} latest NEW_ID), then delete it "
                        f"(gitstate delete {agent_id} --yes)")
        raise InvalidAgentIdError(problem)
    return agent_id  # type: ignore[return-value]


def validate_name(name: object) -> str:
    """Return a checkpoint name if valid (agent-id rules, not a reserved word)."""
    problem = naming_problem(name, "checkpoint name")
    if problem:
        raise InvalidNameError(problem)
    if name in _RESERVED_NAMES:
        raise InvalidNameError(f"checkpoint name {name!r} is reserved")
    return name  # type: ignore[return-value]


def is_valid_agent_id(text: str) -> bool:
    """Whether ``text`` is an agent id gitstate writes (see :func:`validate_agent_id`)."""
    return naming_problem(text, "") is None


def is_valid_name(text: str) -> bool:
    """Whether ``text`` is a checkpoint name gitstate writes (see :func:`validate_name`)."""
    return naming_problem(text, "") is None and text not in _RESERVED_NAMES


def branch_ref(agent_id: str) -> bytes:
    return f"{BRANCH_PREFIX}{agent_id}".encode()


def tag_prefix(agent_id: str) -> bytes:
    return f"{TAG_PREFIX}{agent_id}/".encode()


def tag_ref(agent_id: str, name: str) -> bytes:
    return tag_prefix(agent_id) + name.encode()


def tracking_branch(remote: str, agent_id: str) -> bytes:
    """Where a fetch keeps the remote's branch of an agent (``git fetch``'s refspec)."""
    return f"refs/remotes/{remote}/agents/{agent_id}".encode()


def tracking_tag_prefix(remote: str, agent_id: str) -> bytes:
    """Where a fetch keeps the remote's names of an agent."""
    return f"refs/remotes/{remote}/tags/agents/{agent_id}/".encode()


_CHECKPOINT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def new_checkpoint_id() -> str:
    """A fresh UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def is_checkpoint_id(text: str) -> bool:
    return bool(_CHECKPOINT_ID.fullmatch(text))


def is_sha(value: bytes) -> bool:
    """Whether ``value`` is a full SHA-1 in lower-case hex (what refs and object names hold)."""
    return _SHA.fullmatch(value) is not None
