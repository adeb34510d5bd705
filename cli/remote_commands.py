"""``gitstate remote|push|fetch|pull|clone``: move agents between repositories.

Every transfer prints one row per agent it moved or could not move, or
"Everything up-to-date" (``--json``: every agent's result) and exits with
status 1 if any agent was rejected or diverged. Transfer
progress goes to stderr when it is a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from gitstate import TransferError

from .completion import complete_agent
from .context import Settings, in_cli_words, pass_settings
from .merge_commands import chosen_strategy, strategy_options
from .output import counted, echo, emit_json, table, transfer_progress
from .params import json_option, quiet_option

if TYPE_CHECKING:
    from gitstate import TransferResult

AGENTS = click.argument("agents", nargs=-1, metavar="[AGENT]...", shell_complete=complete_agent)
REMOTE = click.argument("remote", required=False, default="origin")
# by TransferStatus value (the enum lives with the transport, which the command line loads late)
STATUS_COLOURS = {"new": "green", "updated": "green", "forced": "yellow", "deleted": "yellow",
                  "rebased": "green", "merged": "green", "rejected": "red", "diverged": "red"}
UP_TO_DATE = "up to date"


def _progress(as_json: bool) -> Callable[[str], None] | None:
    """Transfer progress on a terminal's stderr, unless the output is JSON."""
    return None if as_json else transfer_progress()


def _show(results: list[TransferResult], as_json: bool) -> None:
    if as_json:
        emit_json([r.model_dump(mode="json") for r in results])
        return
    moved = [r for r in results if r.status.value != UP_TO_DATE]
    if not moved:
        echo("Everything up-to-date")
        return
    rows = []
    for r in moved:  # as git, only the agents something happened to
        old, new = (r.old or "")[:7], (r.new or "")[:7]
        heads = f"{old}..{new}" if old and new and old != new else new or old
        colour = STATUS_COLOURS.get(r.status.value)
        rows.append([(r.status.value, {"fg": colour} if colour else {}), r.agent_id, heads,
                     in_cli_words(r.reason or "")])
    if rows:
        table(["STATUS", "AGENT", "HEAD", "NOTE"], rows)


def _transfer(call: Callable[[Callable[[str], None] | None], list[TransferResult]],
              as_json: bool, quiet: bool = False) -> None:
    """Run a transfer and print each agent's outcome (nothing if ``quiet``); a failed agent
    exits with status 1."""
    try:
        results = call(None if quiet else _progress(as_json))
    except TransferError as exc:
        if not quiet:
            _show(exc.results, as_json)
        raise click.ClickException(in_cli_words(str(exc).partition("\n")[0].rstrip(":"))) from None
    if not quiet:
        _show(results, as_json)


VERBOSE = click.option("--verbose", "-v", is_flag=True, help="Show each remote's URL, as git remote -v.")


@click.group(invoke_without_command=True)
@VERBOSE
@click.pass_context
def remote(ctx: click.Context, verbose: bool) -> None:
    """List remotes (-v: with their URLs), or add, rename, remove one or set its URL.

    Remotes are kept in the repository's git config, so git remote -v lists
    them too; a password in a URL is shown as ***.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(remote_list, verbose=verbose)


@remote.command("list")
@VERBOSE
@json_option()
@pass_settings
def remote_list(settings: Settings, verbose: bool = False, as_json: bool = False) -> None:
    """List remotes' names (-v: with their URLs; a password in a URL is shown as ***)."""
    remotes = settings.open().remotes()
    if as_json:
        emit_json([r.model_dump() for r in remotes])
        return
    for r in remotes:
        if verbose:
            echo(f"{r.name}\t{r.url} (fetch)\n{r.name}\t{r.url} (push)")
        else:
            echo(r.name)


@remote.command("add")
@click.argument("name")
@click.argument("url")
@pass_settings
def remote_add(settings: Settings, name: str, url: str) -> None:
    """Add remote NAME at URL (http(s)://, git://, ssh://, file:// or a path)."""
    added = settings.open().remote_add(name, url)
    echo(f"Added remote {added.name} at {added.url}")


@remote.command("rename")
@click.argument("old")
@click.argument("new")
@pass_settings
def remote_rename(settings: Settings, old: str, new: str) -> None:
    """Rename remote OLD to NEW, with its tracking refs (OLD/AGENT becomes NEW/AGENT).

    \b
    $ gitstate remote add origin fleet.git
    Added remote origin at /home/me/audit/fleet.git
    $ gitstate remote rename origin backup
    Renamed remote origin to backup
    """
    settings.open().remote_rename(old, new)
    echo(f"Renamed remote {old} to {new}")


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
@pass_settings
def remote_set_url(settings: Settings, name: str, url: str) -> None:
    """Point remote NAME at URL (a password in it is shown as ***)."""
    changed = settings.open().remote_set_url(name, url)
    echo(f"Set the URL of remote {changed.name} to {changed.url}")


@remote.command("remove")
@click.argument("name")
@pass_settings
def remote_remove(settings: Settings, name: str) -> None:
    """Remove remote NAME and its tracking refs (the remote itself is untouched)."""
    settings.open().remote_remove(name)
    echo(f"Removed remote {name}")


@click.command()
@REMOTE
@AGENTS
@click.option("--force", is_flag=True, help="Replace remote agents even if that drops checkpoints there.")
@click.option("--no-tags", is_flag=True, help="Do not push checkpoint names.")
@quiet_option
@json_option()
@pass_settings
def push(settings: Settings, remote: str, agents: tuple[str, ...], force: bool, no_tags: bool,
         quiet: bool, as_json: bool) -> None:
    """Push AGENTs (default: all) to REMOTE (default: origin), in one connection.

    \b
    $ gitstate remote add origin fleet.git
    Added remote origin at /home/me/audit/fleet.git
    $ gitstate push -q
    $ gitstate push origin agent_7c1e9a42 --force   # e.g. after a retention rewrite
    Everything up-to-date
    """
    repo = settings.open()
    _transfer(lambda progress: repo.push(remote, list(agents) or None, tags=not no_tags,
                                         force=force, progress=progress), as_json, quiet)


@click.command()
@REMOTE
@AGENTS
@json_option()
@pass_settings
def fetch(settings: Settings, remote: str, agents: tuple[str, ...], as_json: bool) -> None:
    """Fetch AGENTs (default: all) into REMOTE/agents/*; local agents are not touched."""
    repo = settings.open()
    _transfer(lambda progress: repo.fetch(remote, list(agents) or None, progress=progress), as_json)


@click.command()
@REMOTE
@AGENTS
@click.option("--into", metavar="ID", help="Pull the one AGENT given into local agent ID.")
@click.option("--rebase", is_flag=True, help="Replay the local-only checkpoints of a diverged "
                                             "agent on the remote's (same ids, new commits).")
@click.option("--merge", is_flag=True, help="Join a diverged agent and the remote's with a merge "
                                            "checkpoint (three-way merge of the states).")
@strategy_options
@json_option()
@pass_settings
def pull(settings: Settings, remote: str, agents: tuple[str, ...], into: str | None, rebase: bool,
         merge: bool, strategy: str | None, resolve: tuple[tuple[str, str], ...],
         as_json: bool) -> None:
    """Fetch AGENTs (default: all) and fast-forward the local ones; never drops a checkpoint.

    \b
    $ gitstate remote add origin fleet.git
    Added remote origin at /home/me/audit/fleet.git
    $ gitstate push -q
    $ gitstate clone fleet.git laptop.git
    Cloned 3 agents into /home/me/audit/laptop.git
    $ gitstate --repo laptop.git pull
    Everything up-to-date

    An agent that diverged is left as it was, unless --rebase puts your new
    checkpoints on top of the remote's (gitstate pull origin AGENT --rebase) or
    --merge makes a merge checkpoint of both (add --strategy ours|theirs or
    --resolve PATH=SIDE for conflicts); --into keeps the remote's beside yours
    (gitstate pull origin AGENT --into NEW_ID).
    """
    repo = settings.open()
    chosen = chosen_strategy(strategy, resolve)
    _transfer(lambda progress: repo.pull(remote, list(agents) or None, into=into, rebase=rebase,
                                         merge=merge, strategy=chosen, progress=progress), as_json)


@click.command()
@click.argument("url")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--origin", default="origin", show_default=True, help="Name of the remote to add.")
@json_option()
def clone(url: str, path: str, origin: str, as_json: bool) -> None:
    """Create a repository at PATH holding every agent of URL."""
    from gitstate import StateRepository

    repo = StateRepository.clone(url, path, remote=origin, progress=_progress(as_json))
    agents = [info.agent_id for info in repo.agents()]
    if as_json:
        emit_json({"path": repo.path, "agents": agents})
    else:
        echo(f"Cloned {counted(len(agents), 'agent')} into {repo.path}")

