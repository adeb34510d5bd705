"""Shell completion of agent ids, names and revisions, read from the repository.

Agent ids and names come from the refs alone (:mod:`gitstate.refnames`), so completing
them imports neither dulwich nor pydantic; revisions open the repository.

Enable it the way click does, e.g. for bash:
``eval "$(_GITSTATE_COMPLETE=bash_source gitstate)"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from gitstate import GitstateError

from .context import Settings

if TYPE_CHECKING:
    from gitstate import StateRepository

RECENT = 20  # how many recent checkpoints a revision completion offers


def _settings(ctx: click.Context) -> Settings:
    """The global options of the command line being completed (its --repo)."""
    return Settings(repo=ctx.find_root().params.get("repo"))


def _repository(ctx: click.Context) -> StateRepository | None:
    """The repository named on the command line being completed, if it exists."""
    try:
        return _settings(ctx).open()
    except (GitstateError, OSError):
        return None


def complete_agent(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The agent ids, read from the refs alone (no repository opened: see :mod:`gitstate.refnames`)."""
    from gitstate import refnames  # here: only completing loads the ref reader

    try:
        heads = refnames.agent_ids(_settings(ctx).repo_path)
    except (GitstateError, OSError):
        return []
    return [CompletionItem(agent_id, help=f"head {sha[:7]}")
            for agent_id, sha in heads.items() if agent_id.startswith(incomplete)]


def complete_revision(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[CompletionItem]:
    """``latest``, the agent's checkpoint names, and its recent commits' short SHAs."""
    repo, agent_id = _repository(ctx), ctx.params.get("agent_id")
    if repo is None or not agent_id:
        return []
    try:
        recent = repo.log(agent_id, limit=RECENT)
        names = repo.names(agent_id)
    except (GitstateError, OSError):
        return []
    items = [CompletionItem("latest", help="the newest checkpoint")]
    items += [CompletionItem(name, help=f"named checkpoint {sha[:7]}") for name, sha in sorted(names.items())]
    items += [CompletionItem(c.short, help=c.message) for c in recent]
    return [item for item in items if item.value.startswith(incomplete)]


def complete_tag_word(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[CompletionItem]:
    """``tag``'s words: after a NAME its REV, else (and with ``-d``) the agent's names."""
    if len(ctx.params.get("words") or ()) == 1 and not ctx.params.get("delete"):
        return complete_revision(ctx, param, incomplete)
    from gitstate import refnames

    agent_id = ctx.params.get("agent_id")
    if not agent_id:
        return []
    try:
        names = refnames.checkpoint_names(_settings(ctx).repo_path, agent_id)
    except (GitstateError, OSError):
        return []
    return [CompletionItem(name, help=f"named checkpoint {sha[:7]}")
            for name, sha in names.items() if name.startswith(incomplete)]
