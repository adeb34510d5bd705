"""gitstate: AI agent state as versioned checkpoints in a bare git repository."""

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
    NameTakenError,
    NotARepositoryError,
    PushRejectedError,
    RemoteError,
    RemoteExistsError,
    RemoteNotFoundError,
    RevisionNotFoundError,
    TransferError,
)
from .models import AgentInfo, AgentState, AgentStatus, Checkpoint
from .remote import Remote, TransferResult, TransferStatus
from .repository import StateRepository

__all__ = [
    "AgentExistsError", "AgentInfo", "AgentNotFoundError", "AgentState", "AgentStatus",
    "AmbiguousRevisionError", "Checkpoint", "ConcurrentUpdateError", "CorruptObjectError",
    "EncodingError", "GitstateError", "InvalidAgentIdError", "InvalidArgumentError",
    "InvalidNameError", "InvalidStateError", "NameTakenError", "NotARepositoryError",
    "RevisionNotFoundError", "StateRepository",
    "DivergedError", "PushRejectedError", "Remote", "RemoteError", "RemoteExistsError",
    "RemoteNotFoundError", "TransferError", "TransferResult", "TransferStatus",
]
__version__ = "0.1.0"
