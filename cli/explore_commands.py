"""Exploring histories: ``log --all``/``--graph``/``--oneline``, ``log --field``, find, export."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from .context import Settings, pass_settings
from .output import (
    CHECKPOINT_COLUMNS,
    checkpoint_cells,
    checkpoint_json,
    describe,
    echo,
    emit_json,
    style,
    table,
    when,
)
from .params import agent_argument, json_option, revision_argument

if TYPE_CHECKING:  # the library loads when a command runs, not when the CLI starts
    from gitstate import Checkpoint, StateRepository
    from gitstate.explore import GraphEntry


def decorations(entry: GraphEntry) -> str:
    """``(agents/a, tag: agents/a/start)``, as ``git log --decorate`` shows refs."""
    refs = [f"agents/{agent}" for agent in entry.heads] + [f"tag: agents/{n}" for n in entry.names]
    return f" {style('(' + ', '.join(refs) + ')', fg='yellow')}" if refs else ""


def entry_line(entry: GraphEntry, oneline: bool) -> str:
    c = entry.checkpoint
    if oneline:
        return f"{style(c.short, fg='yellow')}{decorations(entry)} {c.message}"
    return (f"{style(c.short, fg='yellow')} {when(c.created)} {style(c.agent_id, bold=True)}"
            f"{decorations(entry)} {c.message}")


def print_log_all(repo: StateRepository, limit: int | None, drawn: bool, oneline: bool,
                  as_json: bool) -> None:
    """``log --all``: every agent's checkpoints, newest first, each commit once."""
    entries = repo.log_all(limit=limit)
    if as_json:
        for entry in entries:
            emit_json({**checkpoint_json(entry.checkpoint), "parents": list(entry.parents),
                       "heads": list(entry.heads), "refs_names": list(entry.names)})
    elif drawn:
        from gitstate.explore import graph
        for prefix, drawn_entry in graph(entries):
            echo(f"{prefix} {entry_line(drawn_entry, oneline)}" if drawn_entry else prefix)
    elif oneline:
        for entry in entries:
            echo(entry_line(entry, oneline=True))
    else:
        table(["COMMIT", "AGENT", *CHECKPOINT_COLUMNS, "MESSAGE"],
              [[(e.checkpoint.short, {"fg": "yellow"}), e.checkpoint.agent_id,
                *checkpoint_cells(e.checkpoint), e.checkpoint.message] for e in entries])


def cell(value: Any) -> str:
    """A field value in a table: strings as they are, anything else as one line of JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def print_fields(repo: StateRepository, agent_id: str, paths: tuple[str, ...], limit: int | None,
                 as_json: bool) -> None:
    """``log AGENT --field PATH...``: one column per field path."""
    rows = repo.fields(agent_id, paths, limit=limit)
    if as_json:
        for row in rows:
            emit_json({**checkpoint_json(row.checkpoint), "fields": row.values})
        return
    table(["COMMIT", "ITER", "SAVED (UTC)", *paths],
          [[(r.checkpoint.short, {"fg": "yellow"}),
            "" if r.checkpoint.iteration is None else str(r.checkpoint.iteration),
            when(r.checkpoint.created), *(cell(r.values[p]) if p in r.values else "" for p in paths)]
           for r in rows])


@click.command(short_help="Find the checkpoints where a field changed or a condition held.")
@agent_argument
@click.option("--changed", metavar="PATH", help="Checkpoints where the value at PATH changed.")
@click.option("--where", "condition", metavar="'PATH OP VALUE'",
              help="Checkpoints where the condition holds (OP: == != < <= > >=; VALUE: JSON or text).")
@click.option("--first", is_flag=True, help="Only the oldest checkpoint found.")
@click.option("--last", is_flag=True, help="Only the newest checkpoint found.")
@json_option("One JSON object per line: the checkpoint and the field's value.")
@pass_settings
def find(settings: Settings, agent_id: str, changed: str | None, condition: str | None, first: bool,
         last: bool, as_json: bool) -> None:
    """List AGENT's checkpoints (newest first) where the field at PATH changed from the
    checkpoint before (--changed), or where a condition holds (--where).

    Checkpoints whose state.json is the same blob as the one before are skipped
    without reading them.

    \b
    $ gitstate find agent_7c1e9a42 --changed status
    COMMIT   ITER  STATUS     SAVED (UTC)          NAMES    VALUE
    7191f96  10    completed  2025-06-03 14:04:00  final    completed
    a8c9f62  0     running    2025-06-03 14:02:11  initial  running
    $ gitstate find agent_7c1e9a42 --where 'total_tokens > 10000' --first
    COMMIT   ITER  STATUS   SAVED (UTC)          NAMES  VALUE
    0ce8981  10    running  2025-06-03 14:03:51         15155
    """
    if (changed is None) == (condition is None):
        raise click.UsageError("give exactly one of --changed PATH or --where 'PATH OP VALUE'")
    if first and last:
        raise click.UsageError("give at most one of --first and --last")
    result = settings.open().find(agent_id, changed=changed, where=condition)
    found: list[tuple[Checkpoint, Any]] = list(zip(result.checkpoints, result.values, strict=True))
    if found and (first or last):
        found = [found[-1] if first else found[0]]
    path = changed if changed is not None else condition
    if as_json:
        for checkpoint, value in found:
            emit_json({**checkpoint_json(checkpoint), "value": value})
        return
    table(["COMMIT", *CHECKPOINT_COLUMNS, "VALUE"],
          [[(c.short, {"fg": "yellow"}), *checkpoint_cells(c), cell(v)] for c, v in found])
    if not found:
        echo(f"No checkpoint of {agent_id} matches {path}.", err=True)


@click.command(short_help="Write a state to a file, or an agent as a git bundle.")
@agent_argument
@revision_argument()
@click.option("--output", "-o", "path", required=True, type=click.Path(dir_okay=False, writable=True),
              metavar="FILE", help="The file to write (replaced whole if it exists).")
@click.option("--bundle", is_flag=True,
              help="Write the agent's history up to REV as a git bundle (the default for *.bundle).")
@json_option("Print the exported checkpoint as JSON.")
@pass_settings
def export(settings: Settings, agent_id: str, rev: str | None, path: str, bundle: bool,
           as_json: bool) -> None:
    """Write the state saved at REV (default: latest) to FILE as canonical JSON, or with
    --bundle (or a FILE ending in .bundle) AGENT's history up to REV and its names as a
    git bundle.

    A state file goes back in with 'gitstate save FILE'; a bundle with
    'gitstate clone FILE DIR' (or 'git clone FILE'), or into an existing
    repository with 'gitstate remote add NAME FILE' and 'gitstate pull NAME'.

    \b
    $ gitstate export agent_7c1e9a42 final -o final.json
    Exported the state of 7191f96 (...) agent_7c1e9a42 iteration 10 completed [final] to final.json
    $ gitstate export agent_7c1e9a42 -o agent_7c1e9a42.bundle
    Exported agent_7c1e9a42 up to 7191f96 (...) ... [final] to agent_7c1e9a42.bundle (a git bundle)
    """
    repo = settings.open()
    as_bundle = bundle or path.endswith(".bundle")
    checkpoint = (repo.export_bundle if as_bundle else repo.export_state)(agent_id, rev, path)
    if as_json:
        emit_json(checkpoint_json(checkpoint))
    elif as_bundle:
        echo(f"Exported {agent_id} up to {describe(checkpoint)} to {path} (a git bundle)")
    else:
        echo(f"Exported the state of {describe(checkpoint)} to {path}")

