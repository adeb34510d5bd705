"""``gitstate import``: migrate a folder written by the seed's persistence module."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from gitstate import FileOutcome

from .context import Settings, pass_settings
from .output import Progress, checkpoint_json, echo, emit_json, table, when
from .params import quiet_option

STATUS_STYLES = {"imported": {"fg": "green"}, "pending": {"fg": "cyan"}, "rejected": {"fg": "red"}}


def outcome_json(outcome: FileOutcome) -> dict[str, Any]:
    return {"file": outcome.filename, "status": outcome.status, "agent_id": outcome.agent_id,
            "name": outcome.name, "reason": outcome.reason,
            "saved_at": outcome.saved_at.isoformat() if outcome.saved_at else None,
            "checkpoint": checkpoint_json(outcome.checkpoint) if outcome.checkpoint else None}


@click.command("import", short_help="Import a folder of the seed's checkpoint files.")
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("--task-id", metavar="T", help="Record T in each commit's Task-Id trailer.")
@click.option("--dry-run", is_flag=True, help="Check the files and show what would be imported.")
@quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array, one object per file.")
@pass_settings
def import_(settings: Settings, directory: str, task_id: str | None, dry_run: bool, quiet: bool,
            as_json: bool) -> None:
    """Import the seed's checkpoint files ({agent_id}_{name or timestamp}.json) in DIR.

    Each valid file becomes one commit on its agent's branch, oldest first (by
    serialized_at, then file time), with the original save time as author
    time and the name as a checkpoint name. Files imported before are skipped
    (an Imported-From trailer records each file's name and SHA-256); files that
    are not valid seed checkpoints are reported and skipped. Creates the
    repository if it does not exist (except with --dry-run, which writes nothing).

    \b
    $ gitstate import ./agent_checkpoints
    STATUS    FILE                                     AGENT           NAME ... COMMIT / REASON
    imported  agent_7c1e9a42_initial.json              agent_7c1e9a42  initial ... f51b1a7
    ...
    Imported 9 files, 0 already imported, 1 rejected.
    """
    from gitstate import StateRepository
    from gitstate.seed_import import ALREADY_IMPORTED, IMPORTED, PENDING, REJECTED

    with ExitStack() as stack, Progress("Importing", quiet) as progress:
        if dry_run and not settings.exists():  # checked against an empty repository, made aside
            repo = StateRepository.init(os.path.join(stack.enter_context(tempfile.TemporaryDirectory()),
                                                     "empty.git"))
        else:
            repo = settings.open_or_init()
        outcomes = repo.import_seed(directory, task_id=task_id, dry_run=dry_run, progress=progress)
    if quiet:
        return
    if as_json:
        emit_json([outcome_json(outcome) for outcome in outcomes])
        return
    table(["STATUS", "FILE", "AGENT", "NAME", "SAVED (UTC)", "COMMIT / REASON"], [
        [(o.status, STATUS_STYLES.get(o.status, {})), o.filename, o.agent_id or "", o.name or "",
         when(o.saved_at) if o.saved_at else "", o.checkpoint.short if o.checkpoint else o.reason or ""]
        for o in outcomes])
    counts = Counter(o.status for o in outcomes)
    done = f"Would import {counts[PENDING]}" if dry_run else f"Imported {counts[IMPORTED]}"
    echo(f"{done} files, {counts[ALREADY_IMPORTED]} already imported, {counts[REJECTED]} rejected.")
