"""The seed's persistence API (``AgentStatePersistence``, ``CheckpointManager``) on gitstate.

Same constructor arguments, method names, arguments and return shapes as the
seed module, with the storage moved into a bare git repository at
``persist_dir``:

- A checkpoint reference (what ``save_state`` returns and ``load_state``,
  ``delete_checkpoint`` and ``restore_from_checkpoint`` accept) is
  ``"<agent_id>@<checkpoint_id>"``; any revision works after the ``@``
  (a name, a commit SHA, ``latest~2``). ``load_state`` also reads a file the
  seed wrote (to import whole folders, see ``StateRepository.import_seed``).
- Like the seed, loaders return None and deleters False on failure (with a log
  line); saving raises gitstate's typed errors.
- ``checkpoint_name``: a name that the agent already uses moves to the new
  checkpoint (the seed overwrote the file; here the older checkpoint stays in
  the history without the name).
- ``save_state_to_db``/``load_state_from_db`` need no database: the task id
  rides in a ``Task-Id`` trailer, and loading finds the newest checkpoint of
  that task. ``use_database`` and ``db_session_factory`` are accepted and
  ignored.
- Not kept: the module-level instances of the seed (they created a folder on
  import); create your own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import codec
from .checkpoints import move_name
from .core import Core
from .errors import AgentNotFoundError, GitstateError, InvalidArgumentError
from .ids import validate_name
from .models import AgentState, Checkpoint
from .repository import StateRepository
from .retention import RetentionPolicy
from .seed_import import TASK_ID, read_seed_file

logger = logging.getLogger(__name__)


def checkpoint_ref(checkpoint: Checkpoint) -> str:
    """The reference string of a checkpoint: ``<agent_id>@<checkpoint_id>``."""
    return f"{checkpoint.agent_id}@{checkpoint.checkpoint_id}"


def _parse_ref(reference: str) -> tuple[str, str]:
    agent_id, sep, rev = str(reference).partition("@")
    if not sep or not agent_id or not rev:
        raise InvalidArgumentError(f"{reference!r} is not a checkpoint reference "
                                   "'<agent_id>@<revision>'")
    return agent_id, rev


def _state_size(repository: StateRepository, commit: str) -> int:
    """Bytes of a checkpoint's ``state.json`` (its canonical form: what gitstate wrote)."""
    return len(codec.encode(repository.read_state(commit)))


class AgentStatePersistence:
    """The seed's persistence manager; checkpoints are commits in the repository ``persist_dir``."""

    def __init__(self, persist_dir: str = "./agent_checkpoints", use_database: bool = False,
                 db_session_factory: Any = None):
        self.persist_dir = Path(persist_dir)
        self.use_database = use_database
        self.db_session_factory = db_session_factory
        self.repository = StateRepository.init(self.persist_dir)
        self._core = Core.open(self.persist_dir)  # moving a name: below the façade's API

    # -- the seed's file API ---------------------------------------------------------
    def save_state(self, state: AgentState, checkpoint_name: str | None = None,
                   *, trailers: dict[str, str] | None = None) -> str:
        """Save ``state`` as a checkpoint; return its reference ``<agent_id>@<checkpoint_id>``."""
        if checkpoint_name is not None:
            validate_name(checkpoint_name)
        checkpoint = self.repository.save(state, trailers=trailers)
        if checkpoint_name is not None:
            self._name(checkpoint, checkpoint_name)
        logger.info("Saved agent state to %s", checkpoint_ref(checkpoint))
        return checkpoint_ref(checkpoint)

    def _name(self, checkpoint: Checkpoint, name: str) -> None:
        """Give ``name`` to ``checkpoint``, taking it from an older checkpoint if needed."""
        move_name(self._core, checkpoint.agent_id, name, checkpoint.commit)

    def load_state(self, filepath: str) -> AgentState | None:
        """Load the checkpoint a reference names (or a checkpoint file the seed wrote);
        None (and a log line) if that fails."""
        try:
            if "@" not in str(filepath) and os.path.isfile(filepath):  # a file the seed wrote
                state = AgentState.model_validate(read_seed_file(filepath).state)
            else:
                agent_id, rev = _parse_ref(filepath)
                state = self.repository.load(agent_id, rev)
        except (GitstateError, ValidationError) as exc:
            logger.error("Failed to load agent state from %s: %s", filepath, exc)
            return None
        logger.info("Loaded agent state from %s", filepath)
        return state

    def load_latest_checkpoint(self, agent_id: str) -> AgentState | None:
        """The newest checkpoint of the agent (its branch head), or None."""
        try:
            return self.repository.load(agent_id)
        except GitstateError as exc:
            logger.warning("No checkpoints found for agent %s: %s", agent_id, exc)
            return None

    def list_checkpoints(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Checkpoints of one agent (or all), newest first, as the seed's dicts.

        Keys: ``filepath`` (the reference), ``filename`` (the seed's
        ``<agent_id>_<name or timestamp>.json``), ``size_bytes`` (of
        ``state.json``), ``created_at``/``modified_at`` (the checkpoint time,
        ISO 8601), plus ``commit`` and ``checkpoint_id``.
        """
        agents = [agent_id] if agent_id is not None else [a.agent_id for a in self.repository.agents()]
        rows = []
        for agent in agents:
            try:
                rows += [self._row(c) for c in self.repository.log(agent)]
            except AgentNotFoundError:
                continue
        rows.sort(key=lambda row: row["modified_at"], reverse=True)
        return rows

    def _row(self, checkpoint: Checkpoint) -> dict[str, Any]:
        label = checkpoint.names[0] if checkpoint.names else checkpoint.created.strftime("%Y%m%d_%H%M%S")
        when = checkpoint.created.isoformat()
        return {
            "filepath": checkpoint_ref(checkpoint),
            "filename": f"{checkpoint.agent_id}_{label}.json",
            "size_bytes": _state_size(self.repository, checkpoint.commit),
            "created_at": when,
            "modified_at": when,
            "commit": checkpoint.commit,
            "checkpoint_id": checkpoint.checkpoint_id,
        }

    def delete_checkpoint(self, filepath: str) -> bool:
        """Remove one checkpoint from its agent's history (the agent, if it was the only one)."""
        try:
            self.repository.delete(*_parse_ref(filepath))
        except GitstateError as exc:
            logger.error("Failed to delete checkpoint %s: %s", filepath, exc)
            return False
        logger.info("Deleted checkpoint: %s", filepath)
        return True

    def cleanup_old_checkpoints(self, agent_id: str, keep_count: int = 5) -> int:
        """Keep the newest ``keep_count`` checkpoints (named or not); return how many went.

        Unlike the seed, the newest checkpoint always stays (``keep_count=0`` keeps one).
        """
        try:
            self.repository.resolve(agent_id)
        except GitstateError:
            return 0
        result = self.repository.prune(agent_id, RetentionPolicy(keep_last=keep_count, keep_named=False))
        return result.removed

    # -- the seed's database API -----------------------------------------------------
    async def save_state_to_db(self, state: AgentState, task_id: str) -> bool:
        """Save ``state`` as a checkpoint of task ``task_id`` (``Task-Id`` trailer)."""
        try:
            await asyncio.to_thread(self.save_state, state, trailers={TASK_ID: task_id})
        except GitstateError as exc:
            logger.error("Failed to save agent state for task %s: %s", task_id, exc)
            return False
        return True

    async def load_state_from_db(self, task_id: str,
                                 agent_id: str | None = None) -> AgentState | None:
        """The newest checkpoint of task ``task_id`` (of ``agent_id`` only, if given), or None."""
        return await asyncio.to_thread(self._load_task, task_id, agent_id)

    def _load_task(self, task_id: str, agent_id: str | None) -> AgentState | None:
        try:
            agents = [agent_id] if agent_id else [info.agent_id for info in self.repository.agents()]
            found = [c for a in agents for c in self.repository.log(a)
                     if c.trailers.get(TASK_ID) == task_id]
            if not found:
                return None
            newest = max(found, key=lambda c: (c.created, c.checkpoint_id))
            return self.repository.load(newest.agent_id, newest.commit)
        except GitstateError as exc:
            logger.error("Failed to load agent state for task %s: %s", task_id, exc)
            return None


class CheckpointManager:
    """The seed's checkpoint manager: saves every ``auto_checkpoint_interval`` iterations."""

    def __init__(self, persistence: AgentStatePersistence, auto_checkpoint_interval: int = 5):
        self.persistence = persistence
        self.auto_checkpoint_interval = auto_checkpoint_interval
        self._last_checkpoint_iteration: dict[str, int] = {}

    def should_checkpoint(self, state: AgentState) -> bool:
        last_iteration = self._last_checkpoint_iteration.get(state.agent_id, 0)
        return state.iteration - last_iteration >= self.auto_checkpoint_interval

    def create_checkpoint(self, state: AgentState, checkpoint_name: str | None = None) -> str:
        reference = self.persistence.save_state(state, checkpoint_name)
        self._last_checkpoint_iteration[state.agent_id] = state.iteration
        return reference

    def auto_checkpoint(self, state: AgentState) -> str | None:
        if self.should_checkpoint(state):
            return self.create_checkpoint(state)
        return None

    def restore_from_checkpoint(self, agent_id: str,
                                checkpoint_filepath: str | None = None) -> AgentState | None:
        if checkpoint_filepath:
            return self.persistence.load_state(checkpoint_filepath)
        return self.persistence.load_latest_checkpoint(agent_id)
