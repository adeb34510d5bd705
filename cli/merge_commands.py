"""``gitstate merge|merge-base``: bring another history of an agent into it (docs/merging.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gitstate import MergeConflictError

from .completion import complete_agent
from .context import Settings, pass_settings
from .output import checkpoint_json, describe, echo, emit_json, table
from .params import KEY_VALUE, agent_argument, json_option

if TYPE_CHECKING:
    from gitstate import MergeResult

other_argument = click.argument("other", metavar="OTHER_REV", shell_complete=complete_agent)


def strategy_options(command: Any) -> Any:
    """``--strategy ours|theirs`` and ``--resolve PATH=SIDE`` (repeatable)."""
    command = click.option("--resolve", type=KEY_VALUE, multiple=True, metavar="PATH=SIDE",
                           help="Resolve the conflicts at JSON PATH (and below) with SIDE, "
                                "ours or theirs, e.g. '$.status=theirs'. Repeatable.")(command)
    return click.option("--strategy", type=click.Choice(["ours", "theirs"]),
                        help="Resolve every conflict with this side (what merges cleanly "
                             "is merged anyway).")(command)


def chosen_strategy(strategy: str | None, resolve: tuple[tuple[str, str], ...]) -> Any:
    """The library's strategy from ``--strategy`` or ``--resolve``."""
    if strategy and resolve:
        raise click.UsageError("give --strategy or --resolve, not both")
    return strategy or (dict(resolve) if resolve else None)


def _merge_json(result: MergeResult) -> dict[str, Any]:
    return {"status": result.status, "checkpoint": checkpoint_json(result.checkpoint),
            "base": checkpoint_json(result.base) if result.base else None,
            "conflicts": [c.to_json() for c in result.conflicts], "appended": list(result.appended)}


@click.command(short_help="Merge another history into an agent.")
@agent_argument
@other_argument
@strategy_options
@json_option("Print the result (or the conflicts) as JSON.")
@pass_settings
def merge(settings: Settings, agent_id: str, other: str, strategy: str | None,
          resolve: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """Merge OTHER_REV into AGENT: a merge checkpoint whose state is the three-way merge of
    both states and their merge base.

    OTHER_REV is an agent (a fork: a-fork) or a remote's agent as last fetched
    (origin/a), optionally with ~N. A conflict (one JSON path changed
    differently on both sides) writes nothing, lists every conflict and exits
    1, unless --strategy or --resolve chooses a side.

    \b
    $ gitstate fork agent_7c1e9a42 initial agent_7c1e9a42-retry
    Forked agent_7c1e9a42-retry: ...
    $ gitstate merge agent_7c1e9a42 agent_7c1e9a42-retry
    Merged agent_7c1e9a42-retry into agent_7c1e9a42: 3647a12 (...) agent_7c1e9a42 merge of ...
    $ gitstate merge agent_7c1e9a42 agent_7c1e9a42-retry --strategy ours
    Up to date: agent_7c1e9a42 is at 3647a12 (...) agent_7c1e9a42 merge of ...
    """
    repo = settings.open()
    try:
        result = repo.merge(agent_id, other, strategy=chosen_strategy(strategy, resolve))
    except MergeConflictError as exc:
        unresolved = [c for c in exc.conflicts if c.resolved is None]
        if as_json:
            emit_json({"status": "conflict", "conflicts": [c.to_json() for c in exc.conflicts]})
        else:
            table(["CONFLICT", "OURS", "THEIRS"],
                  [[c.path, *str(c).split(": ours ", 1)[1].split(", theirs ", 1)] for c in unresolved])
        raise click.ClickException(f"{len(unresolved)} conflict(s) merging {other} into {agent_id}; "
                                   "nothing was written: choose a side with --strategy ours|theirs "
                                   "or --resolve PATH=ours|theirs") from None
    if as_json:
        emit_json(_merge_json(result))
        return
    if result.status == "merged":
        echo(f"Merged {other} into {agent_id}: {describe(result.checkpoint)}")
    else:
        echo(f"{result.status.capitalize()}: {agent_id} is at {describe(result.checkpoint)}")
    for path in result.appended:
        echo(f"  both sides appended to {path}: kept both, ours first")
    for conflict in result.conflicts:
        echo(f"  {conflict.path}: took {conflict.resolved}")


@click.command("merge-base", short_help="The newest checkpoint two histories share.")
@agent_argument
@other_argument
@json_option("Print the checkpoint as JSON.")
@pass_settings
def merge_base(settings: Settings, agent_id: str, other: str, as_json: bool) -> None:
    """Print the newest checkpoint both AGENT and OTHER_REV have (like git merge-base).

    \b
    $ gitstate fork agent_7c1e9a42 initial agent_7c1e9a42-retry
    Forked agent_7c1e9a42-retry: 8783d3f (...) agent_7c1e9a42-retry fork of agent_7c1e9a42 at ...
    $ gitstate merge-base agent_7c1e9a42 agent_7c1e9a42-retry
    a8c9f62 (...) agent_7c1e9a42 iteration 0 running [initial]
    """
    base = settings.open().merge_base(agent_id, other)
    if base is None:
        raise click.ClickException(f"{agent_id} and {other} share no checkpoint")
    if as_json:
        emit_json(checkpoint_json(base))
    else:
        echo(describe(base))
