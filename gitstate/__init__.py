"""gitstate: AI agent state as versioned checkpoints in a bare git repository."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AgentExistsError,
    AgentNotFoundError,
    AmbiguousRevisionError,
    ConcurrentUpdateError,
    CorruptObjectError,
    DivergedError,
    EncodingError,
    GitstateError,
    InvalidAgentIdError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    MergeConflictError,
    NameTakenError,
    NotARepositoryError,
    PushRejectedError,
    RemoteError,
    RemoteExistsError,
    RemoteNotFoundError,
    RepositoryFormatError,
    RevisionNotFoundError,
    SeedFormatError,
    TransferError,
)

if TYPE_CHECKING:
    from .diff import StateDiff
    from .git.reclaim import ReclaimResult
    from .history import RollbackResult
    from .jsonmerge import Conflict
    from .maintenance import GcResult, MaintenanceSettings
    from .merge import MergeResult
    from .models import AgentInfo, AgentState, AgentStatus, Checkpoint
    from .prune import PruneResult
    from .remote import Remote, TransferResult, TransferStatus
    from .repository import StateRepository
    from .retention import Decision, Duration, RetentionPolicy, plan
    from .seed_import import FileOutcome, SeedFile, read_seed_file
    from .verify import Problem, VerifyResult

# Everything but the errors is imported on first use (PEP 562), so that ``import gitstate``
# (the command line's start, ``gitstate --version``, shell completion) loads neither dulwich
# nor pydantic nor deepdiff until a command needs them.
_LAZY = {
    "StateDiff": ".diff",
    "ReclaimResult": ".git.reclaim",
    "RollbackResult": ".history",
    "Conflict": ".jsonmerge",
    "MergeResult": ".merge",
    "GcResult": ".maintenance",
    "MaintenanceSettings": ".maintenance",
    "AgentInfo": ".models",
    "AgentState": ".models",
    "AgentStatus": ".models",
    "Checkpoint": ".models",
    "PruneResult": ".prune",
    "Remote": ".remote",
    "TransferResult": ".remote",
    "TransferStatus": ".remote",
    "StateRepository": ".repository",
    "Decision": ".retention",
    "Duration": ".retention",
    "RetentionPolicy": ".retention",
    "plan": ".retention",
    "FileOutcome": ".seed_import",
    "SeedFile": ".seed_import",
    "read_seed_file": ".seed_import",
    "Problem": ".verify",
    "VerifyResult": ".verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitstate' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AgentExistsError", "AgentInfo", "AgentNotFoundError", "AgentState", "AgentStatus",
    "AmbiguousRevisionError", "Checkpoint", "ConcurrentUpdateError", "CorruptObjectError",
    "EncodingError", "GitstateError", "InvalidAgentIdError", "InvalidArgumentError",
    "InvalidNameError", "InvalidStateError", "NameTakenError", "NotARepositoryError",
    "RepositoryFormatError", "RevisionNotFoundError", "SeedFormatError", "StateRepository",
    # history, retention, diff
    "Decision", "Duration", "PruneResult", "ReclaimResult", "RetentionPolicy", "RollbackResult",
    "StateDiff", "plan",
    # merging
    "Conflict", "MergeConflictError", "MergeResult",
    # seed import
    "FileOutcome", "SeedFile", "read_seed_file",
    # remotes
    "DivergedError", "PushRejectedError", "Remote", "RemoteError", "RemoteExistsError",
    "RemoteNotFoundError", "TransferError", "TransferResult", "TransferStatus",
    # maintenance
    "GcResult", "MaintenanceSettings", "Problem", "VerifyResult",
]
__version__ = "0.1.0"
