"""Commands over the history API: rollback, fork, delete, diff, prune."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import click

from gitstate import codec

from .completion import complete_agent
from .context import Settings, pass_settings
from .output import (
    CHECKPOINT_COLUMNS,
    Progress,
    checkpoint_cells,
    checkpoint_json,
    counted,
    describe,
    echo,
    emit_json,
    page,
    size,
    style,
    table,
)

if TYPE_CHECKING:
    from gitstate import Decision, Duration

from .params import DURATION, agent_argument, json_option, quiet_option, revision_argument


@click.command(short_help="Return an agent to an earlier state.")
@agent_argument
@revision_argument(metavar="REV", required=True)
@click.option("--hard", is_flag=True,
              help="Move the branch back to REV, dropping the newer checkpoints (like git reset --hard).")
@json_option("Print the result as JSON.")
@pass_settings
def rollback(settings: Settings, agent_id: str, rev: str, hard: bool, as_json: bool) -> None:
    """Return AGENT to the state saved at REV.

    By default a new checkpoint holding REV's state is saved on top (history
    kept, like git revert); --hard removes the newer checkpoints instead.

    \b
    $ gitstate rollback agent_7c1e9a42 initial
    Rolled back agent_7c1e9a42: new checkpoint 5b1e0c9 (...) agent_7c1e9a42 rollback to ...
    """
    result = settings.open().rollback(agent_id, rev, hard=hard)
    if as_json:
        emit_json({"hard": result.hard, "checkpoint": checkpoint_json(result.checkpoint),
                   "dropped": [checkpoint_json(c) for c in result.dropped]})
    elif hard:
        echo(f"Reset {agent_id} to {describe(result.checkpoint)}; dropped "
             f"{counted(len(result.dropped), 'checkpoint')}:")
        for checkpoint in result.dropped:
            echo(f"  {describe(checkpoint)}")
    else:
        echo(f"Rolled back {agent_id}: new checkpoint {describe(result.checkpoint)}")


@click.command(short_help="Start a new agent from a checkpoint.")
@agent_argument
@revision_argument(metavar="REV", required=True)
@click.argument("new_agent_id", metavar="NEW_AGENT")
@json_option("Print the new agent's first checkpoint as JSON.")
@pass_settings
def fork(settings: Settings, agent_id: str, rev: str, new_agent_id: str, as_json: bool) -> None:
    """Start NEW_AGENT from AGENT's checkpoint REV (sharing its history up to REV).

    \b
    $ gitstate fork agent_7c1e9a42 initial agent_7c1e9a42-retry
    Forked agent_7c1e9a42-retry: 1c9d7e2 (...) agent_7c1e9a42-retry fork of agent_7c1e9a42 at ...
    """
    checkpoint = settings.open().fork(agent_id, rev, new_agent_id)
    if as_json:
        emit_json(checkpoint_json(checkpoint))
    else:
        echo(f"Forked {new_agent_id}: {describe(checkpoint)}")


@click.command(short_help="Delete a checkpoint, or a whole agent.")
@agent_argument
@revision_argument()
@click.option("--yes", "-y", is_flag=True, help="Confirm deleting the whole agent (when REV is not given).")
@json_option("Print the deleted checkpoint as JSON.")
@pass_settings
def delete(settings: Settings, agent_id: str, rev: str | None, yes: bool, as_json: bool) -> None:
    """Remove checkpoint REV from AGENT's history, or with --yes and no REV the whole agent.

    The newer checkpoints are re-created on REV's parent (new commit SHAs,
    same checkpoint ids). Deleting an agent's only checkpoint deletes the
    agent, so it needs --yes too. Space is reclaimed by prune or gc.

    \b
    $ gitstate delete agent_7c1e9a42 latest~1
    Deleted a2a17eb (...) agent_7c1e9a42 iteration 10 running
    $ gitstate delete agent_e81d2c07 --yes
    Deleted agent agent_e81d2c07
    """
    repo = settings.open()
    if rev is not None and len(repo.log(agent_id, limit=2)) == 1 and not yes:
        raise click.UsageError(f"{rev!r} is the only checkpoint of {agent_id!r}: deleting it "
                               "deletes the agent, which needs --yes")
    if rev is None:
        if not yes:
            raise click.UsageError(f"deleting the whole agent {agent_id!r} needs --yes "
                                   "(or give REV to delete one checkpoint)")
        repo.delete_agent(agent_id)
        if as_json:
            emit_json({"deleted_agent": agent_id})
        else:
            echo(f"Deleted agent {agent_id}")
        return
    checkpoint = repo.delete(agent_id, rev)
    if as_json:
        emit_json(checkpoint_json(checkpoint))
    else:
        echo(f"Deleted {describe(checkpoint)}")


DIFF_FORMATS = ("summary", "json", "patch", "text")


@click.command(short_help="Show what changed between two checkpoints.")
@agent_argument
@revision_argument("rev_a", metavar="REV_A", required=True)
@revision_argument("rev_b", metavar="[REV_B]")
@click.option("--other-agent", metavar="ID", shell_complete=complete_agent,
              help="Take REV_B from this agent instead.")
@click.option("--format", "form", type=click.Choice(DIFF_FORMATS), default="summary", show_default=True,
              help="summary: one line; json: deepdiff's report and the patch; "
                   "patch: RFC 6902 JSON Patch; text: unified diff of the canonical JSON.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@pass_settings
def diff(settings: Settings, agent_id: str, rev_a: str, rev_b: str | None, other_agent: str | None,
         form: str, as_json: bool) -> None:
    """Show what changed from REV_A to REV_B (default: the latest checkpoint).

    \b
    $ gitstate diff agent_7c1e9a42 initial
    4d0233f..bbf85b1 iteration 0→10, status running→completed, actions_taken +10, ...
    """
    repo = settings.open()
    result = repo.diff(agent_id, rev_a, rev_b, other_agent=other_agent)
    page(click.get_current_context(), settings.pager)
    form = "json" if as_json else form
    if form == "json":
        emit_json(result.to_json())
    elif form == "patch":
        emit_json(result.patch)
    elif form == "summary":
        echo(f"{style(result.old.short, fg='yellow')}..{style(result.new.short, fg='yellow')} "
             f"{result.summary}")
    else:
        lines = difflib.unified_diff(
            codec.encode(repo.read_state(result.old.commit)).decode().splitlines(keepends=True),
            codec.encode(repo.read_state(result.new.commit)).decode().splitlines(keepends=True),
            fromfile=f"{result.old.agent_id}@{result.old.short}",
            tofile=f"{result.new.agent_id}@{result.new.short}")
        colours = {"+": "green", "-": "red", "@": "cyan"}
        for line in lines:
            echo(style(line.rstrip("\n"), fg=colours.get(line[:1])))


def decision_json(decision: Decision) -> dict[str, Any]:
    return {"checkpoint": checkpoint_json(decision.checkpoint), "keep": decision.keep,
            "reasons": list(decision.reasons)}


@click.command(short_help="Apply a retention policy.")
@click.argument("agent_id", metavar="(AGENT|--all)", required=False, shell_complete=complete_agent)
@click.option("--all", "all_agents", is_flag=True, help="Apply the policy to every agent.")
@click.option("--keep-last", type=click.IntRange(min=0), metavar="N", help="Keep the N newest checkpoints.")
@click.option("--keep-hourly", type=click.IntRange(min=0), metavar="N",
              help="Keep the newest of each of the last N hours.")
@click.option("--keep-daily", type=click.IntRange(min=0), metavar="N", help="... of the last N days.")
@click.option("--keep-weekly", type=click.IntRange(min=0), metavar="N", help="... of the last N weeks.")
@click.option("--keep-monthly", type=click.IntRange(min=0), metavar="N", help="... of the last N months.")
@click.option("--keep-yearly", type=click.IntRange(min=0), metavar="N", help="... of the last N years.")
@click.option("--keep-within", type=DURATION,
              help="Keep everything newer than DURATION, e.g. 7d, 12h, 1y5m7d2h (m = months).")
@click.option("--no-keep-named", is_flag=True, help="Do not keep named checkpoints just for their name.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@quiet_option
@json_option("Print the plan and the result as JSON.")
@pass_settings
def prune(settings: Settings, agent_id: str | None, all_agents: bool, keep_last: int | None,
          keep_hourly: int | None, keep_daily: int | None, keep_weekly: int | None,
          keep_monthly: int | None, keep_yearly: int | None, keep_within: Duration | None,
          no_keep_named: bool, dry_run: bool, quiet: bool, as_json: bool) -> None:
    """Remove the checkpoints a retention policy does not keep (like restic forget --prune).

    Prints every checkpoint with KEEP or REMOVE and the rules that keep it.
    The newest checkpoint and (unless --no-keep-named) named ones are always
    kept. Commit SHAs shown are those before the history was rewritten.

    \b
    $ gitstate prune agent_7c1e9a42 --keep-last 1 --dry-run
    AGENT           COMMIT   ITER  STATUS     SAVED (UTC)          NAMES    ACTION  REASONS
    agent_7c1e9a42  bbf85b1  10    completed  2025-06-03 14:04:00  final    keep    last, named
    agent_7c1e9a42  a2a17eb  10    running    2025-06-03 14:03:51           remove
    ...
    """
    from gitstate import RetentionPolicy

    if (agent_id is None) == (not all_agents):
        raise click.UsageError("give either AGENT or --all")
    policy = RetentionPolicy(keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily,
                             keep_weekly=keep_weekly, keep_monthly=keep_monthly,
                             keep_yearly=keep_yearly, keep_within=keep_within,
                             keep_named=not no_keep_named)
    if policy.empty:
        raise click.UsageError("give at least one --keep-* rule")
    with Progress("Pruning", quiet) as progress:
        result = settings.open().prune(agent_id, policy, dry_run=dry_run, progress=progress)
    if quiet:
        return
    if as_json:
        emit_json({"policy": policy.as_dict(), "dry_run": result.dry_run, "removed": result.removed,
                   "reclaimed": {"objects": result.reclaimed.objects, "bytes": result.reclaimed.bytes},
                   "agents": {agent: [decision_json(d) for d in decisions]
                              for agent, decisions in result.decisions.items()}})
        return
    table(["AGENT", "COMMIT", *CHECKPOINT_COLUMNS, "ACTION", "REASONS"], [
        [agent, (d.checkpoint.short, {"fg": "yellow"}), *checkpoint_cells(d.checkpoint),
         ("keep", {"fg": "green"}) if d.keep else ("remove", {"fg": "red"}), ", ".join(d.reasons)]
        for agent, decisions in result.decisions.items() for d in decisions])
    agents = len(result.decisions)
    if dry_run:
        echo(f"Would remove {counted(result.removed, 'checkpoint')} of {counted(agents, 'agent')}.")
    else:
        echo(f"Removed {counted(result.removed, 'checkpoint')} of {counted(agents, 'agent')}; reclaimed "
             f"{counted(result.reclaimed.objects, 'object')}, {size(result.reclaimed.bytes)}.")
