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
from .maintenance import GcResult, MaintenanceSettings, Problem, VerifyResult
from .models import AgentInfo, AgentState, AgentStatus, Checkpoint
from .repository import StateRepository

__all__ = [
    "AgentExistsError", "AgentInfo", "AgentNotFoundError", "AgentState", "AgentStatus",
    "AmbiguousRevisionError", "Checkpoint", "ConcurrentUpdateError", "CorruptObjectError",
    "EncodingError", "GcResult", "GitstateError", "InvalidAgentIdError", "InvalidArgumentError",
    "InvalidNameError", "InvalidStateError", "MaintenanceSettings", "NameTakenError",
    "NotARepositoryError", "Problem",
    "RevisionNotFoundError", "StateRepository", "VerifyResult",
]
__version__ = "0.1.0"
