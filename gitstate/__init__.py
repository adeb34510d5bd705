"""gitstate: AI agent state as versioned checkpoints in a bare git repository."""

from .errors import (
    AgentExistsError,
    AgentNotFoundError,
    AmbiguousRevisionError,
    ConcurrentUpdateError,
    CorruptObjectError,
    EncodingError,
    GitstateError,
    InvalidAgentIdError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    NameTakenError,
    NotARepositoryError,
    RevisionNotFoundError,
)
from .diff import StateDiff
from .history import RollbackResult
from .models import AgentInfo, AgentState, AgentStatus, Checkpoint
from .prune import PruneResult
from .reclaim import ReclaimResult
from .repository import StateRepository
from .retention import Decision, Duration, RetentionPolicy, plan

__all__ = [
    "AgentExistsError", "AgentInfo", "AgentNotFoundError", "AgentState", "AgentStatus",
    "AmbiguousRevisionError", "Checkpoint", "ConcurrentUpdateError", "CorruptObjectError",
    "EncodingError", "GitstateError", "InvalidAgentIdError", "InvalidArgumentError",
    "InvalidNameError", "InvalidStateError", "NameTakenError", "NotARepositoryError",
    "RevisionNotFoundError", "StateRepository",
    # history, retention, diff
    "Decision", "Duration", "PruneResult", "ReclaimResult", "RetentionPolicy", "RollbackResult",
    "StateDiff", "plan",
]
__version__ = "0.1.0"
