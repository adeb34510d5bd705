"""Commands over the core API: init, save, agents, log, show, tag."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, BinaryIO

import click

from gitstate import CorruptObjectError, GitstateError, InvalidArgumentError, codec
from gitstate.message import one_line

from .completion import complete_agent, complete_tag_word
from .context import Settings, pass_settings
from .output import (
    CHECKPOINT_COLUMNS,
    checkpoint_cells,
    checkpoint_json,
    describe,
    echo,
    emit_json,
    history_table,
    page,
    table,
)

if TYPE_CHECKING:
    from gitstate import AgentInfo, Checkpoint

from .params import (
    INPUT_FILE,
    KEY_VALUE,
    LOG_FORMAT,
    MOMENT,
    STATUS,
    agent_argument,
    json_option,
    revision_argument,
)


@click.command(short_help="Create a repository.")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@pass_settings
def init(settings: Settings, path: str | None) -> None:
    """Create a repository at PATH (default: the --repo location, ./.gitstate).

    \b
    $ gitstate init
    Initialized empty gitstate repository in /home/me/audit/.gitstate
    """
    from gitstate import StateRepository

    path = path or settings.repo_path
    existed = os.path.exists(os.path.join(path, "HEAD"))
    repo = StateRepository.init(path)
    if existed:
        echo(f"gitstate repository already exists in {repo.path}")
    else:
        echo(f"Initialized empty gitstate repository in {repo.path}")


@click.command(short_help="Save a JSON state as a new checkpoint.")
@click.argument("file", type=INPUT_FILE, default="-", metavar="[FILE|-]")
@click.option("--agent", "agent_id", metavar="ID", shell_complete=complete_agent,
              help="Agent to save under (default: the state's agent_id).")
@click.option("--name", help="Name the checkpoint (a tag; never reused within an agent).")
@click.option("--message", "-m", help="One-line summary (default: agent, iteration, status).")
@click.option("--time", "at", type=MOMENT, help="Checkpoint time (default: now).")
@click.option("--trailer", "trailers", type=KEY_VALUE, multiple=True, metavar="KEY=VALUE",
              help="Extra commit trailer; repeatable.")
@json_option("Print the new checkpoint as JSON.")
@pass_settings
def save(settings: Settings, file: BinaryIO, agent_id: str | None, name: str | None,
         message: str | None, at: datetime | None, trailers: tuple[tuple[str, str], ...],
         as_json: bool) -> None:
    """Save the JSON state in FILE (default: stdin) as a new checkpoint.

    Creates the repository first if it does not exist.

    \b
    $ gitstate show agent_7c1e9a42 initial > state.json
    $ gitstate save state.json --name restarted
    Saved 3f1c2ab (...) agent_7c1e9a42 iteration 0 running [restarted]
    """
    try:
        text = file.read()
    except OSError as exc:  # e.g. stdin opened for writing only
        raise click.BadParameter(f"cannot read {file.name}: {exc.strerror}",
                                 param_hint="'[FILE|-]'") from None
    state = codec.decode(text)
    if not isinstance(state, dict):
        raise InvalidArgumentError(f"the state must be a JSON object, not {type(state).__name__}")
    if agent_id is None and not isinstance(state.get("agent_id"), str):
        kind = "no" if state.get("agent_id") is None else "a non-string"
        raise InvalidArgumentError(f'the state has {kind} "agent_id": add one to the JSON, or give '
                                   '--agent ID')
    checkpoint = settings.open_or_init().save(state, agent_id=agent_id, name=name, message=message,
                                              time=at, trailers=dict(trailers))
    if as_json:
        emit_json(checkpoint_json(checkpoint))
    else:
        echo(f"Saved {describe(checkpoint)}")


@click.command(short_help="List the agents and their newest checkpoints.")
@json_option()
@pass_settings
def agents(settings: Settings, as_json: bool) -> None:
    """List every agent with its newest checkpoint and checkpoint count.

    An agent that cannot be read is one "Error: agent ID: ..." line on stderr
    (exit code 1); one whose older checkpoints cannot be read is listed with
    COUNT "?" (null in JSON) and such a line.

    \b
    $ gitstate agents
    AGENT           COUNT  HEAD     ITER  STATUS     SAVED (UTC)          NAMES
    agent_7c1e9a42  4      8ae86dd  10    completed  2025-06-03 14:04:00  final
    ...
    """
    repo = settings.open()
    errors: dict[str, GitstateError] = {}
    rows: list[tuple[AgentInfo, int | None]] = []
    for info in repo.agents(errors=errors):
        try:
            rows.append((info, repo.count(info.agent_id)))
        except CorruptObjectError as exc:  # an older checkpoint cannot be read
            errors[info.agent_id] = exc
            rows.append((info, None))
    if as_json:
        emit_json([{"agent_id": info.agent_id, "count": count, "head": checkpoint_json(info.head)}
                   for info, count in rows])
    else:
        table(["AGENT", "COUNT", "HEAD", *CHECKPOINT_COLUMNS],
              [[(info.agent_id, {"bold": True}), "?" if count is None else str(count),
                (info.head.short, {"fg": "yellow"}), *checkpoint_cells(info.head)]
               for info, count in rows])
    for agent_id, error in sorted(errors.items()):
        echo(f"Error: agent {agent_id}: {one_line(str(error))}", err=True)
    if errors:
        sys.exit(1)


@click.command(short_help="List an agent's checkpoints (or every agent's).")
@click.argument("agent_id", metavar="AGENT", required=False, shell_complete=complete_agent)
@click.option("--all", "all_agents", is_flag=True, help="Every agent's checkpoints, each commit once.")
@click.option("--graph", "drawn", is_flag=True, help="With --all: draw forks like git log --graph.")
@click.option("--oneline", is_flag=True, help="One short line per checkpoint: its commit and message.")
@click.option("--field", "-f", "paths", multiple=True, metavar="PATH",
              help="A column of this field's values, e.g. total_tokens or messages[-1].role; repeatable.")
@click.option("--limit", "-n", type=click.IntRange(min=0), help="Show at most N checkpoints.")
@click.option("--status", type=STATUS, help="Only checkpoints with this status.")
@click.option("--since", type=MOMENT, help="Only checkpoints saved at or after this time.")
@click.option("--until", type=MOMENT, help="Only checkpoints saved at or before this time.")
@click.option("--reverse", is_flag=True, help="Oldest first (after --limit, as git log).")
@click.option("--format", "template", type=LOG_FORMAT, metavar="FORMAT",
              help="One line per checkpoint from placeholders: %H %h %s %an %ad, %(FIELD) "
                   "(e.g. %(iteration), %(status), %(checkpoint_id)), %(trailer:KEY), %n, %%.")
@json_option()
@pass_settings
def log(settings: Settings, agent_id: str | None, all_agents: bool, drawn: bool, oneline: bool,
        paths: tuple[str, ...], limit: int | None, status: str | None,
        since: datetime | None, until: datetime | None, reverse: bool,
        template: Callable[[Checkpoint], str] | None, as_json: bool) -> None:
    """List an agent's checkpoints, newest first (--json: one JSON object per line).

    Times are ISO-8601 (UTC unless an offset is given) or ages such as 90m, 2d.
    --all lists every agent's checkpoints (--graph draws forks); --oneline
    prints a commit and its message per line; --field PATH adds a column per
    field (negative indexes count from the end of a list).

    \b
    $ gitstate log agent_7c1e9a42 --limit 1
    COMMIT   ITER  STATUS     SAVED (UTC)          NAMES  CHECKPOINT ID                         MESSAGE
    96f0b9e  10    completed  2025-06-03 14:04:00  final  01a214ba-c061-7bb2-ab2c-35674a8e8301  ...
    $ gitstate log --all --graph --oneline | tail -2
    * 09d2ccd agent_7c1e9a42 iteration 5 running
    * a8c9f62 (tag: agents/agent_7c1e9a42/initial) agent_7c1e9a42 iteration 0 running [initial]
    $ gitstate log agent_7c1e9a42 --field total_tokens --field 'messages[-1].role' --limit 2
    COMMIT   ITER  SAVED (UTC)          total_tokens  messages[-1].role
    7191f96  10    2025-06-03 14:04:00  15155         assistant
    0ce8981  10    2025-06-03 14:03:51  15155         assistant
    """
    filters = status is not None or since is not None or until is not None
    if all_agents == (agent_id is not None):
        raise click.UsageError("give either AGENT or --all")
    if drawn and not all_agents:
        raise click.UsageError("--graph goes with --all")
    if oneline and (paths or template is not None or as_json):
        raise click.UsageError("--oneline takes no --field, --format or --json")
    if (all_agents and paths) or ((all_agents or paths) and filters):
        raise click.UsageError("--all and --field take no --status, --since or --until, "
                               "and do not go together")
    if (all_agents or paths) and (reverse or template is not None):
        raise click.UsageError("--reverse and --format go with AGENT alone")
    if all_agents:
        from .explore_commands import print_log_all
        print_log_all(settings.open(), limit, drawn, oneline, as_json)
        return
    assert agent_id is not None
    if paths:
        from .explore_commands import print_fields
        print_fields(settings.open(), agent_id, paths, limit, as_json)
        return
    before = None if until is None else _just_after(until)
    history = settings.open().log(agent_id, limit=limit, status=status, since=since, before=before)
    page(click.get_current_context(), settings.pager)
    if reverse:
        history.reverse()
    if template is not None or oneline:
        for checkpoint in history:
            click.echo(template(checkpoint) if template is not None
                       else f"{checkpoint.short} {checkpoint.message}")
    elif as_json:
        for checkpoint in history:
            emit_json(checkpoint_json(checkpoint))
    else:
        history_table(history)


def _just_after(moment: datetime) -> datetime:
    """The first time after ``moment``; ``log --until`` includes ``moment`` itself."""
    try:
        return moment.astimezone(timezone.utc) + timedelta(microseconds=1)
    except OverflowError:  # beyond the years 1-9999 in UTC: before or after every checkpoint
        edge = datetime.max if moment.year > 1 else datetime.min
        return edge.replace(tzinfo=timezone.utc)


@click.command(short_help="Print a saved state (or one field of it).")
@agent_argument
@revision_argument()
@click.option("--field", "-f", metavar="PATH", help="Print one value, e.g. task or messages[-1].content.")
@click.option("--json", "as_json", is_flag=True, help="Print --field's value as JSON even if it is a string.")
@pass_settings
def show(settings: Settings, agent_id: str, rev: str | None, field: str | None,
         as_json: bool) -> None:
    """Print the state saved at REV (default: latest) as canonical JSON.

    REV is latest, a checkpoint name, a checkpoint id or a commit SHA (7+ hex
    digits), optionally followed by ~N (N checkpoints older) or ^.

    \b
    $ gitstate show agent_7c1e9a42 latest~3 > old.json
    $ gitstate show agent_7c1e9a42 final --field final_result.entry_points
    17
    """
    state = settings.open().load(agent_id, rev, model=None)
    page(click.get_current_context(), settings.pager)
    if field is None:
        click.echo(codec.encode(state), nl=False)
        return
    from gitstate.explore import value_at
    value = value_at(state, field)
    if isinstance(value, str) and not as_json:
        click.echo(value)
    else:
        click.echo(codec.encode(value), nl=False)


@click.command(short_help="Name a checkpoint, list the names, or delete names.")
@agent_argument
@click.argument("words", nargs=-1, metavar="[NAME [REV] | -d NAME...]", shell_complete=complete_tag_word)
@click.option("--list", "-l", "listing", is_flag=True, help="List AGENT's names (also without NAME).")
@click.option("--delete", "-d", is_flag=True, help="Delete the NAMEs (their checkpoints stay).")
@json_option("Print the named checkpoint (or, listing or deleting, each name's commit) as JSON.")
@pass_settings
def tag(settings: Settings, agent_id: str, words: tuple[str, ...], listing: bool, delete: bool,
        as_json: bool) -> None:
    """Name the checkpoint at REV (default: latest), list AGENT's names, or delete
    names (as git tag, git tag -l, git tag -d).

    A name is never moved to another checkpoint: delete it, then name again.

    \b
    $ gitstate tag agent_7c1e9a42 reviewed latest~1
    Tagged fb26691 (...) agent_7c1e9a42 iteration 10 running as reviewed
    $ gitstate tag agent_7c1e9a42
    final
    initial
    reviewed
    $ gitstate tag -d agent_7c1e9a42 reviewed initial
    Deleted name reviewed (was fb26691)
    Deleted name initial (was 5e0c5d1)
    """
    if listing and delete:
        raise click.UsageError("--list and --delete exclude each other")
    if delete:
        _delete_names(settings, agent_id, words, as_json)
    elif listing or not words:
        if words:
            raise click.UsageError("--list takes no NAME")
        names = settings.open().names(agent_id)
        if as_json:
            emit_json(names)
        else:
            for listed in sorted(names):
                echo(listed)
    elif len(words) > 2:
        raise click.UsageError(f"got {len(words)} arguments after AGENT: give NAME and REV "
                               "(delete several names with -d)")
    else:
        name, rev = words[0], words[1] if len(words) == 2 else None
        checkpoint = settings.open().tag(agent_id, name, rev)
        if as_json:
            emit_json(checkpoint_json(checkpoint))
        else:
            echo(f"Tagged {describe(checkpoint)} as {name}")


def _delete_names(settings: Settings, agent_id: str, names: tuple[str, ...], as_json: bool) -> None:
    """Delete the agent's ``names``, all known to exist first (a wrong one deletes none)."""
    if not names:
        raise click.UsageError("--delete needs the NAMEs to delete")
    repo = settings.open()
    missing = [name for name in names if name not in repo.names(agent_id)]
    if missing:
        raise click.ClickException(f"agent {agent_id!r} has no checkpoint named {missing[0]!r}; "
                                   "nothing was deleted (gitstate tag AGENT lists its names)")
    deleted = {name: repo.untag(agent_id, name) for name in dict.fromkeys(names)}
    if as_json:
        emit_json(deleted)
    else:
        for name, sha in deleted.items():
            echo(f"Deleted name {name} (was {sha[:7]})")
