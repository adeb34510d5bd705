"""gitstate: AI agent state as versioned checkpoints in a bare git repository."""

from .diff import StateDiff
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
