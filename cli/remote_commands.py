"""``gitstate remote|push|fetch|pull|clone``: move agents between repositories.

Every transfer prints one row per agent (``--json``: a JSON list of results)
and exits with status 1 if any agent was rejected or diverged. Transfer
progress goes to stderr when it is a terminal.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from gitstate import StateRepository, TransferError, TransferResult, TransferStatus

from .completion import complete_agent
from .context import Settings, pass_settings
from .merge_commands import chosen_strategy, strategy_options
from .output import echo, emit_json, table, transfer_progress
from .params import json_option

AGENTS = click.argument("agents", nargs=-1, metavar="[AGENT]...", shell_complete=complete_agent)
REMOTE = click.argument("remote", required=False, default="origin")
STATUS_COLOURS = {TransferStatus.NEW: "green", TransferStatus.UPDATED: "green",
                  TransferStatus.FORCED: "yellow", TransferStatus.DELETED: "yellow",
                  TransferStatus.REBASED: "green", TransferStatus.MERGED: "green",
                  TransferStatus.REJECTED: "red", TransferStatus.DIVERGED: "red"}


def _progress(as_json: bool) -> Callable[[str], None] | None:
    """Transfer progress on a terminal's stderr, unless the output is JSON."""
    return None if as_json else transfer_progress()


def _show(results: list[TransferResult], as_json: bool) -> None:
    if as_json:
        emit_json([r.model_dump(mode="json") for r in results])
        return
    rows = []
    for r in results:
        old, new = (r.old or "")[:7], (r.new or "")[:7]
        heads = f"{old}..{new}" if old and new and old != new else new or old
        colour = STATUS_COLOURS.get(r.status)
        rows.append([(r.status.value, {"fg": colour} if colour else {}), r.agent_id, heads, r.reason or ""])
    if rows:
        table(["STATUS", "AGENT", "HEAD", "NOTE"], rows)


def _transfer(call: Callable[[Callable[[str], None] | None], list[TransferResult]],
              as_json: bool) -> None:
    """Run a transfer and print each agent's outcome; a failed agent exits with status 1."""
    try:
        _show(call(_progress(as_json)), as_json)
    except TransferError as exc:
        _show(exc.results, as_json)
        raise click.ClickException(str(exc).partition("\n")[0].rstrip(":")) from None


@click.group(invoke_without_command=True)
@click.pass_context
def remote(ctx: click.Context) -> None:
    """List, add or remove remotes (kept in the repository's git config)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(remote_list)


@remote.command("list")
@json_option()
@pass_settings
def remote_list(settings: Settings, as_json: bool = False) -> None:
    """List remotes (a password in a URL is shown as ***)."""
    remotes = settings.open().remotes()
    if as_json:
        emit_json([r.model_dump() for r in remotes])
    else:
        for r in remotes:
            echo(f"{r.name}\t{r.url}")


@remote.command("add")
@click.argument("name")
@click.argument("url")
@pass_settings
def remote_add(settings: Settings, name: str, url: str) -> None:
    """Add remote NAME at URL (http(s)://, git://, ssh://, file:// or a path)."""
    added = settings.open().remote_add(name, url)
    echo(f"added {added.name}\t{added.url}")


@remote.command("remove")
@click.argument("name")
@pass_settings
def remote_remove(settings: Settings, name: str) -> None:
    """Remove remote NAME and its tracking refs (the remote itself is untouched)."""
    settings.open().remote_remove(name)
    echo(f"removed {name}")


@click.command()
@REMOTE
@AGENTS
@click.option("--force", is_flag=True, help="Replace remote agents even if that drops checkpoints there.")
@click.option("--no-tags", is_flag=True, help="Do not push checkpoint names.")
@json_option()
@pass_settings
def push(settings: Settings, remote: str, agents: tuple[str, ...], force: bool, no_tags: bool,
         as_json: bool) -> None:
    """Push AGENTs (default: all) to REMOTE (default: origin), in one connection.

    \b
    $ gitstate push
    $ gitstate push origin recon-1 --force   # after a retention rewrite
    """
    repo = settings.open()
    _transfer(lambda progress: repo.push(remote, list(agents) or None, tags=not no_tags,
                                         force=force, progress=progress), as_json)


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
    $ gitstate pull
    $ gitstate pull origin recon-1 --rebase                 # diverged: yours on top of theirs
    $ gitstate pull origin recon-1 --merge --strategy ours  # diverged: a merge checkpoint
    $ gitstate pull origin recon-1 --into recon-1-origin   # keep a diverged one beside yours
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
    repo = StateRepository.clone(url, path, remote=origin, progress=_progress(as_json))
    agents = [info.agent_id for info in repo.agents()]
    if as_json:
        emit_json({"path": repo.path, "agents": agents})
    else:
        echo(f"cloned {len(agents)} agent(s) into {repo.path}")

