"""The one exception hierarchy of gitstate: every failure is a ``GitstateError``."""

from __future__ import annotations


class GitstateError(Exception):
    """Base class of every error gitstate raises on purpose."""


class NotARepositoryError(GitstateError):
    """The path is not a git repository that gitstate can use."""


class RepositoryFormatError(NotARepositoryError):
    """The repository's config does not parse, or asks for a format gitstate cannot write."""


class InvalidAgentIdError(GitstateError, ValueError):
    """An agent id breaks the naming rules (see ``gitstate.ids``)."""


class InvalidNameError(GitstateError, ValueError):
    """A checkpoint name breaks the naming rules, or is reserved."""


class InvalidArgumentError(GitstateError, ValueError):
    """An argument has a value gitstate cannot use (message names it)."""


class NameTakenError(GitstateError):
    """A checkpoint name is already used by another checkpoint of the agent."""


class AgentNotFoundError(GitstateError, LookupError):
    """The agent has no branch in the repository."""


class AgentExistsError(GitstateError):
    """An agent with that id already exists."""


class RevisionNotFoundError(GitstateError, LookupError):
    """No checkpoint of the agent matches the revision."""


class AmbiguousRevisionError(RevisionNotFoundError):
    """An abbreviated revision matches several checkpoints."""

    def __init__(self, message: str, candidates: list[str]):
        super().__init__(message)
        self.candidates = candidates


class EncodingError(GitstateError, ValueError):
    """A value cannot be stored as canonical JSON; ``path`` names where (``$.a[2]``)."""

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message)
        self.path = path


class SeedFormatError(GitstateError, ValueError):
    """A file is not a checkpoint in the seed's format; ``reason`` says why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class InvalidStateError(GitstateError, ValueError):
    """A stored state does not validate against the requested model."""


class ConcurrentUpdateError(GitstateError):
    """Another writer kept the agent busy until the retry budget ran out."""


class CorruptObjectError(GitstateError):
    """A git object is missing, unreadable, or not what a checkpoint must be."""


class DamagedObjectError(CorruptObjectError, ValueError):
    """A loose object, pack or pack index on disk that git would not read (the message names
    the file). A ``ValueError`` too: what the object reader's callers expect of damage."""


class RemoteError(GitstateError):
    """Talking to a remote failed (connection, protocol, server); URLs are shown redacted."""


class RemoteNotFoundError(RemoteError, LookupError):
    """No remote of that name is configured."""


class RemoteExistsError(RemoteError):
    """A remote of that name is already configured."""


class TransferError(RemoteError):
    """Some agents of a push or pull failed; ``results`` holds every agent's outcome."""

    def __init__(self, message: str, results: list):
        super().__init__(message)
        self.results = results


class PushRejectedError(TransferError):
    """The push of some agents was refused (non-fast-forward, or by the server)."""


class DivergedError(TransferError):
    """A local agent and its remote counterpart both have checkpoints the other lacks."""


class MergeConflictError(GitstateError):
    """A merge changed the same JSON paths differently on both sides and no strategy resolved
    them; nothing was written. ``conflicts`` lists each (``gitstate.jsonmerge.Conflict``)."""

    def __init__(self, message: str, conflicts: list):
        super().__init__(message)
        self.conflicts = conflicts
