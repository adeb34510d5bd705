"""Migrate a folder written by the seed's ``AgentStatePersistence`` into history.

The seed wrote one file per checkpoint, ``{agent_id}_{name or timestamp}.json``,
holding ``{"version": ..., "serialized_at": iso, "state": {...}}``. Importing
turns each valid file into one commit on its agent's branch, oldest first (by
``serialized_at``, then file modification time), with the original save time
as author time and the checkpoint name as a tag (``YYYYMMDD_HHMMSS`` parts are
the seed's timestamps, not names). Each commit records its source in an
``Imported-From: <file name>@<sha256 of the file>`` trailer, so importing the
same folder again imports nothing twice. Every file is checked before the
first write; a file that is not a valid seed checkpoint is reported and
skipped, never half-imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from . import checkpoints, codec
from .core import Core
from .errors import (
    AgentNotFoundError,
    GitstateError,
    InvalidArgumentError,
    SeedFormatError,
)
from .git.layout import checkpoint_time
from .ids import tag_ref, validate_agent_id, validate_name
from .message import one_line
from .models import AgentState, Checkpoint

IMPORTED_FROM = "Imported-From"
TASK_ID = "Task-Id"
_TIMESTAMP_NAME = re.compile(r"\d{8}_\d{6}")

# Outcomes of one file, as reported by StateRepository.import_seed.
IMPORTED, ALREADY_IMPORTED, PENDING, REJECTED = "imported", "already imported", "pending", "rejected"


@dataclass(frozen=True)
class SeedFile:
    """One valid checkpoint file of the seed."""

    path: str
    agent_id: str
    name: str | None
    saved_at: datetime
    mtime_ns: int
    sha256: str
    state: dict[str, Any]

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)

    @property
    def source(self) -> str:
        """The ``Imported-From`` trailer value identifying this file's content."""
        return f"{self.filename}@{self.sha256}"


@dataclass(frozen=True)
class FileOutcome:
    """What importing did with one file: ``status`` is one of the outcome constants."""

    filename: str
    status: str
    agent_id: str | None = None
    name: str | None = None
    saved_at: datetime | None = None
    checkpoint: Checkpoint | None = None
    reason: str | None = None


def read_seed_file(path: str | os.PathLike[str]) -> SeedFile:
    """Read and check one seed checkpoint file; :class:`SeedFormatError` says what is wrong."""
    path = os.fspath(path)
    filename = os.path.basename(path)
    with open(path, "rb") as f:
        raw = f.read()
    stat = os.stat(path)
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeedFormatError(path, f"not JSON ({exc})") from None
    except RecursionError:
        raise SeedFormatError(path, "not JSON that can be read (nested too deeply)") from None
    if not isinstance(envelope, dict) or not {"version", "serialized_at", "state"} <= envelope.keys():
        raise SeedFormatError(path, "not a seed checkpoint "
                              "(needs the keys 'version', 'serialized_at' and 'state')")
    state = envelope["state"]
    if not isinstance(state, dict):
        raise SeedFormatError(path, "'state' is not a JSON object")
    saved_at = _parse_time(envelope["serialized_at"], path)
    try:
        AgentState.model_validate(state)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SeedFormatError(path, f"not a valid agent state ({where}: {first['msg']})") from None
    stem = filename[:-len(".json")] if filename.endswith(".json") else filename
    try:
        agent_id = validate_agent_id(state.get("agent_id"))
        suffix = stem[len(agent_id) + 1:] if stem.startswith(agent_id + "_") else None
        name = None if suffix is None or _TIMESTAMP_NAME.fullmatch(suffix) else validate_name(suffix)
        codec.encode(state)
    except GitstateError as exc:
        raise SeedFormatError(path, str(exc)) from None
    if suffix is None:
        raise SeedFormatError(path, f"file name does not start with the state's agent id {agent_id!r}")
    return SeedFile(path=path, agent_id=agent_id, name=name, saved_at=saved_at,
                    mtime_ns=stat.st_mtime_ns, sha256=hashlib.sha256(raw).hexdigest(), state=state)


def _parse_time(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise SeedFormatError(path, "'serialized_at' is not a string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SeedFormatError(path, f"'serialized_at' {value!r} is not an ISO-8601 time") from None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    try:
        checkpoint_time(when, "'serialized_at'")
    except InvalidArgumentError as exc:
        raise SeedFormatError(path, str(exc)) from None
    return when


def import_seed(core: Core, directory: str | os.PathLike[str], *, task_id: str | None = None,
                dry_run: bool = False,
                progress: Callable[[int, int], None] | None = None) -> list[FileOutcome]:
    """Import every ``*.json`` file of ``directory`` (not its subfolders).

    Returns one outcome per file: the valid ones oldest first, then the
    rejected ones by name. ``task_id`` is recorded in a ``Task-Id``
    trailer (the seed's database rows had one). ``dry_run`` writes
    nothing and reports the files to import as ``pending``.
    ``progress(done, total)`` is called after each file written.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise SeedFormatError(directory, "not a directory")
    trailers: dict[str, str] = {}
    if task_id is not None:
        if not one_line(task_id):
            raise InvalidArgumentError("task id must not be empty")
        trailers[TASK_ID] = task_id
    valid: list[SeedFile] = []
    rejected: list[FileOutcome] = []
    for filename in sorted(os.listdir(directory)):
        path = os.path.join(directory, filename)
        if not filename.endswith(".json") or not os.path.isfile(path):
            continue
        try:
            valid.append(read_seed_file(path))
        except SeedFormatError as exc:
            rejected.append(FileOutcome(filename, REJECTED, reason=exc.reason))
    valid.sort(key=lambda f: (f.saved_at, f.mtime_ns, f.filename))

    outcomes: list[FileOutcome] = []
    pending: list[tuple[int, SeedFile]] = []
    done = {agent: _imported_sources(core, agent) for agent in {f.agent_id for f in valid}}
    for file in valid:
        outcome = FileOutcome(file.filename, PENDING, file.agent_id, file.name, file.saved_at)
        if file.source in done[file.agent_id]:
            outcome = replace(outcome, status=ALREADY_IMPORTED,
                              checkpoint=done[file.agent_id][file.source])
        elif file.name is not None and core.store.read_ref(tag_ref(file.agent_id, file.name)):
            outcome = replace(outcome, status=REJECTED,
                              reason=f"agent {file.agent_id!r} already has a "
                                     f"checkpoint named {file.name!r}")
        else:
            pending.append((len(outcomes), file))
        outcomes.append(outcome)
    if not dry_run:
        for done_count, (index, file) in enumerate(pending, 1):
            checkpoint = checkpoints.save(core, file.state, agent_id=file.agent_id, name=file.name,
                                          time=file.saved_at,
                                          trailers={**trailers, IMPORTED_FROM: file.source})
            outcomes[index] = replace(outcomes[index], status=IMPORTED, checkpoint=checkpoint)
            if progress is not None:
                progress(done_count, len(pending))
    return outcomes + rejected


def _imported_sources(core: Core, agent_id: str) -> dict[str, Checkpoint]:
    """``Imported-From`` value -> checkpoint, over the agent's history."""
    try:
        history = checkpoints.log(core, agent_id)
    except AgentNotFoundError:
        return {}
    return {c.trailers[IMPORTED_FROM]: c for c in history if IMPORTED_FROM in c.trailers}
