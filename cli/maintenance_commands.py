"""Commands over maintenance: gc and verify."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Optional

import click

from .context import Settings, pass_settings
from .output import Progress, echo, emit_json
from .params import json_option


@click.command(short_help="Pack history with deltas; --prune drops unreachable objects.")
@click.option("--prune", is_flag=True, help="Also delete objects no ref or reflog reaches.")
@click.option("--grace", "grace_seconds", type=click.IntRange(min=0), metavar="SECONDS",
              help="With --prune: keep unreachable objects younger than this.")
@json_option("Print what gc did as JSON.")
@pass_settings
def gc(settings: Settings, prune: bool, grace_seconds: Optional[int], as_json: bool) -> None:
    """Delta-compress loose checkpoints into packs and merge small packs.

    \b
    $ gitstate gc --prune
    packed 903 objects, merged 2 packs, pruned 12; 1.4 MB -> 0.3 MB in 0.21 s
    """
    with Progress("Packing") as progress:
        result = settings.open().gc(prune=prune, grace_seconds=grace_seconds, progress=progress)
    if as_json:
        emit_json(asdict(result))
    elif result.skipped:
        echo("another maintenance run holds the lock; nothing done")
    else:
        echo(f"packed {result.packed_objects} objects, merged {result.packs_merged} packs, "
             f"pruned {result.pruned_objects}; {result.bytes_before / 1e6:.1f} MB -> "
             f"{result.bytes_after / 1e6:.1f} MB in {result.seconds:.2f} s")


@click.command(short_help="Check objects, refs, trailers and canonical states.")
@json_option("Print the result as JSON.")
@pass_settings
def verify(settings: Settings, as_json: bool) -> None:
    """Check every object, ref, checkpoint trailer and state; exit 1 if anything is wrong.

    \b
    $ gitstate verify
    ok: 3 agents, 60 checkpoints, 183 objects
    """
    result = settings.open().verify()
    if as_json:
        emit_json(asdict(result) | {"ok": result.ok})
    else:
        for problem in result.problems:
            echo(f"{problem.kind} {problem.subject}: {problem.message}", err=True)
        echo(f"{'ok' if result.ok else 'PROBLEMS'}: {result.agents} agents, "
             f"{result.checkpoints} checkpoints, {result.objects} objects")
    if not result.ok:
        sys.exit(1)
