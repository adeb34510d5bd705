"""``gitstate remote|push|fetch|pull|clone``: move agents between repositories.

Each command takes, through ``@click.pass_obj``, an object with ``repo`` (a
:class:`~gitstate.StateRepository`; not used by ``clone``) and ``json`` (print
JSON instead of text). The main group registers them with ``add_command``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, Optional

import click

from gitstate import GitstateError, StateRepository, TransferError, TransferResult

AGENTS = click.argument("agents", nargs=-1, metavar="[AGENT]...")
REMOTE = click.argument("remote", required=False, default="origin")


def _progress(obj: Any) -> Optional[Callable[[str], None]]:
    """Transfer progress on stderr, only when it is a terminal and output is text."""
    if getattr(obj, "json", False) or not sys.stderr.isatty():
        return None
    return lambda text: click.echo(text, err=True, nl=False)


def _show(obj: Any, results: list[TransferResult]) -> None:
    if getattr(obj, "json", False):
        click.echo(json.dumps([r.model_dump(mode="json") for r in results]))
        return
    width = max((len(r.agent_id) for r in results), default=0)
    for r in results:
        old, new = (r.old or "")[:7], (r.new or "")[:7]
        heads = f"{old}..{new}" if old and new and old != new else new or old
        line = f"{r.status.value:<10}  {r.agent_id:<{width}}  {heads}"
        click.echo(f"{line}  {r.reason}" if r.reason else line.rstrip())


def _transfer(obj: Any, call: Callable[[], list[TransferResult]]) -> None:
    """Run a transfer and print each agent's outcome; any failure exits with status 1."""
    try:
        _show(obj, call())
    except TransferError as exc:
        _show(obj, exc.results)
        raise click.ClickException(str(exc).partition("\n")[0].rstrip(":")) from None


def _reporting(command: Callable[..., None]) -> Callable[..., None]:
    """Turn gitstate errors into a one-line message and exit status 1."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except GitstateError as exc:
            raise click.ClickException(str(exc)) from None
    return run


@click.group(invoke_without_command=True)
@click.pass_context
def remote(ctx: click.Context) -> None:
    """List, add or remove remotes (stored in the repository's git config)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(remote_list)


@remote.command("list")
@click.pass_obj
@_reporting
def remote_list(obj: Any) -> None:
    """List remotes (passwords in URLs are shown as ***)."""
    remotes = obj.repo.remotes()
    if obj.json:
        click.echo(json.dumps([r.model_dump() for r in remotes]))
    else:
        for r in remotes:
            click.echo(f"{r.name}\t{r.url}")


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.pass_obj
@_reporting
def remote_add(obj: Any, name: str, url: str) -> None:
    """Add remote NAME at URL (http(s)://, git://, ssh://, file:// or a path)."""
    added = obj.repo.remote_add(name, url)
    click.echo(json.dumps(added.model_dump()) if obj.json else f"added {added.name}\t{added.url}")


@remote.command("remove")
@click.argument("name")
@click.pass_obj
@_reporting
def remote_remove(obj: Any, name: str) -> None:
    """Remove remote NAME and its tracking refs (the remote itself is untouched)."""
    obj.repo.remote_remove(name)
    if not obj.json:
        click.echo(f"removed {name}")


@click.command()
@REMOTE
@AGENTS
@click.option("--force", is_flag=True, help="Replace the remote agents even if that drops checkpoints there.")
@click.option("--no-tags", is_flag=True, help="Do not push checkpoint names.")
@click.pass_obj
@_reporting
def push(obj: Any, remote: str, agents: tuple[str, ...], force: bool, no_tags: bool) -> None:
    """Push AGENTs (default: all) to REMOTE (default: origin) in one connection."""
    _transfer(obj, lambda: obj.repo.push(remote, list(agents) or None, tags=not no_tags,
                                         force=force, progress=_progress(obj)))


@click.command()
@REMOTE
@AGENTS
@click.pass_obj
@_reporting
def fetch(obj: Any, remote: str, agents: tuple[str, ...]) -> None:
    """Fetch AGENTs (default: all) into REMOTE/agents/* without touching local agents."""
    _transfer(obj, lambda: obj.repo.fetch(remote, list(agents) or None, progress=_progress(obj)))


@click.command()
@REMOTE
@AGENTS
@click.option("--into", metavar="AGENT_ID", help="Pull the one AGENT given into this local agent.")
@click.pass_obj
@_reporting
def pull(obj: Any, remote: str, agents: tuple[str, ...], into: Optional[str]) -> None:
    """Fetch AGENTs (default: all) and fast-forward the local ones; never drops a checkpoint."""
    _transfer(obj, lambda: obj.repo.pull(remote, list(agents) or None, into=into,
                                         progress=_progress(obj)))


@click.command()
@click.argument("url")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--origin", default="origin", show_default=True, help="Name of the remote to add.")
@click.pass_obj
@_reporting
def clone(obj: Any, url: str, path: str, origin: str) -> None:
    """Create a repository at PATH with every agent of URL."""
    repo = StateRepository.clone(url, path, remote=origin, progress=_progress(obj))
    agents = repo.agents()
    if getattr(obj, "json", False):
        click.echo(json.dumps({"path": repo.path, "agents": [a.agent_id for a in agents]}))
    else:
        click.echo(f"cloned {len(agents)} agent(s) into {repo.path}")


COMMANDS = (remote, push, fetch, pull, clone)
"""Register with ``for command in COMMANDS: cli.add_command(command)``."""
