"""The agent state the seed persisted, and the record of one checkpoint."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class AgentStatus(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    STOPPING = "stopping"


class AgentState(BaseModel):
    """The state of one agent, with the seed's fields, defaults and helpers.

    ``schema_version`` is written to each checkpoint's ``Schema-Version`` trailer;
    a subclass that changes the shape raises it and overrides :meth:`migrate`.
    """

    model_config = ConfigDict(use_enum_values=True, validate_assignment=True)
    schema_version: ClassVar[int] = 1

    agent_id: str = Field(default_factory=lambda: f"agent_{uuid.uuid4().hex[:8]}")
    agent_name: str = "Agent"
    agent_type: str = "generic"
    parent_id: str | None = None
    task: str = ""
    task_context: dict[str, Any] = Field(default_factory=dict)
    inherited_context: dict[str, Any] = Field(default_factory=dict)
    knowledge_modules: list[str] = Field(default_factory=list)
    status: AgentStatus = AgentStatus.CREATED
    iteration: int = 0
    max_iterations: int = 50
    messages: list[dict[str, Any]] = Field(default_factory=list)
    system_prompt: str = ""
    actions_taken: list[dict[str, Any]] = Field(default_factory=list)
    observations: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    findings: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str = Field(default_factory=utc_now_iso)
    last_updated: str = Field(default_factory=utc_now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    waiting_for_input: bool = False
    waiting_start_time: datetime | None = None
    waiting_reason: str = ""
    waiting_timeout_seconds: int = 600
    final_result: dict[str, Any] | None = None
    total_tokens: int = 0
    tool_calls: int = 0
    stop_requested: bool = False
    max_iterations_warning_sent: bool = False
    poc_code: str | None = None
    sandbox_logs: dict[str, Any] = Field(default_factory=dict)
    poc_attempts: int = 0

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Turn a stored state of an older ``schema_version`` into this one's shape."""
        return data

    # -- lifecycle helpers (each updates last_updated) --------------------------------
    def _touch(self) -> None:
        self.last_updated = utc_now_iso()

    def start(self) -> None:
        self.status = AgentStatus.RUNNING
        self.started_at = utc_now_iso()
        self._touch()

    def increment_iteration(self) -> None:
        self.iteration += 1
        self._touch()

    def add_message(self, role: str, content: str) -> None:
        self.messages.append({"role": role, "content": content, "timestamp": utc_now_iso()})
        self._touch()

    def add_action(self, action: dict[str, Any]) -> None:
        self.actions_taken.append({"iteration": self.iteration, "timestamp": utc_now_iso(), **action})
        self.tool_calls += 1
        self._touch()

    def add_observation(self, observation: dict[str, Any]) -> None:
        self.observations.append({"iteration": self.iteration, "timestamp": utc_now_iso(), **observation})
        self._touch()

    def add_error(self, error: str) -> None:
        self.errors.append(error)
        self._touch()

    def add_finding(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)
        self._touch()

    def add_tokens(self, count: int) -> None:
        self.total_tokens += count
        self._touch()

    def set_waiting(self, reason: str) -> None:
        self.status = AgentStatus.WAITING
        self.waiting_for_input = True
        self.waiting_start_time = datetime.now(timezone.utc)
        self.waiting_reason = reason
        self._touch()

    def resume(self) -> None:
        self.status = AgentStatus.RUNNING
        self.waiting_for_input = False
        self.waiting_start_time = None
        self.waiting_reason = ""
        self._touch()

    def pause(self) -> None:
        self.status = AgentStatus.PAUSED
        self._touch()

    def set_completed(self, result: dict[str, Any] | None = None) -> None:
        self.status = AgentStatus.COMPLETED
        self.final_result = result
        self.finished_at = utc_now_iso()
        self._touch()

    def set_failed(self, error: str) -> None:
        self.status = AgentStatus.FAILED
        self.errors.append(error)
        self.finished_at = utc_now_iso()
        self._touch()

    def request_stop(self) -> None:
        self.stop_requested = True
        self.status = AgentStatus.STOPPING
        self._touch()

    def set_stopped(self) -> None:
        self.status = AgentStatus.STOPPED
        self.finished_at = utc_now_iso()
        self._touch()

    def is_finished(self) -> bool:
        return self.status in (AgentStatus.COMPLETED, AgentStatus.FAILED, AgentStatus.STOPPED)

    def should_stop(self) -> bool:
        return self.stop_requested or self.iteration >= self.max_iterations


class Checkpoint(BaseModel):
    """One checkpoint: a commit on an agent's branch, as read back from git."""

    model_config = ConfigDict(frozen=True)

    checkpoint_id: str
    commit: str
    agent_id: str
    iteration: int | None = None
    status: str | None = None
    names: tuple[str, ...] = ()
    created: datetime
    message: str
    parent: str | None = None
    schema_version: int = 1
    trailers: dict[str, str] = Field(default_factory=dict)

    @property
    def short(self) -> str:
        """The abbreviated commit SHA (7 hex digits), as ``git log --oneline`` shows."""
        return self.commit[:7]


class AgentInfo(BaseModel):
    """An agent of the repository and its newest checkpoint."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    head: Checkpoint
