"""Commands over maintenance: gc and verify."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from .context import Settings, pass_settings
from .output import Progress, counted, echo, emit_json, size
from .params import json_option


@click.command(short_help="Pack history with deltas; --prune drops unreachable objects.")
@click.option("--prune", is_flag=True, help="Also delete objects no ref or reflog reaches.")
@click.option("--grace", "grace_seconds", type=click.IntRange(min=0), metavar="SECONDS",
              help="With --prune: keep unreachable objects younger than this.")
@json_option("Print what gc did as JSON.")
@pass_settings
def gc(settings: Settings, prune: bool, grace_seconds: int | None, as_json: bool) -> None:
    """Delta-compress loose checkpoints into packs and merge small packs.

    \b
    $ gitstate gc
    Packed 27 objects, merged 0 packs, pruned 0 objects; 37.0 kB -> 8.5 kB in 0.01 s
    """
    if grace_seconds is not None and not prune:
        raise click.UsageError("--grace only applies with --prune")
    with Progress("Packing") as progress:
        result = settings.open().gc(prune=prune, grace_seconds=grace_seconds, progress=progress)
    if as_json:
        emit_json(asdict(result))
    elif result.skipped:
        echo("Nothing done: another maintenance run holds the lock")
    else:
        echo(f"Packed {counted(result.packed_objects, 'object')}, merged "
             f"{counted(result.packs_merged, 'pack')}, pruned {counted(result.pruned_objects, 'object')}; "
             f"{size(result.bytes_before)} -> "
             f"{size(result.bytes_after)} in {result.seconds:.2f} s")


@click.command(short_help="Check objects, refs, trailers and canonical states.")
@json_option("Print the result as JSON.")
@pass_settings
def verify(settings: Settings, as_json: bool) -> None:
    """Check every object, ref, checkpoint trailer and state; exit 1 if anything is wrong.

    \b
    $ gitstate verify
    Checked 3 agents, 9 checkpoints, 27 objects: no problems
    """
    result = settings.open().verify()
    if as_json:
        emit_json(asdict(result) | {"ok": result.ok})
    else:
        for problem in result.problems:
            echo(str(problem), err=True)
        found = "no problems" if result.ok else counted(len(result.problems), "problem")
        echo(f"Checked {counted(result.agents, 'agent')}, {counted(result.checkpoints, 'checkpoint')}, "
             f"{counted(result.objects, 'object')}: {found}")
    if not result.ok:
        sys.exit(1)
