"""The ``gitstate`` command: a click group holding every subcommand."""

from __future__ import annotations

import click

from gitstate import __version__

from .context import REPO_ENV, GitstateGroup, Settings
from .explore_commands import export, find
from .history_commands import delete, diff, fork, prune, rollback
from .import_command import import_
from .maintenance_commands import gc, verify
from .merge_commands import merge, merge_base
from .remote_commands import clone, fetch, pull, push, remote
from .state_commands import agents, init, log, save, show, tag
from .web_command import serve

EPILOG = f"""\b
Repository: --repo PATH, else ${REPO_ENV}, else ./.gitstate in the current
directory. 'init' creates it; 'save' and 'import' create it when missing;
the other commands need it to exist.

\b
Exit codes:
  0  success
  1  a gitstate error (one line on stderr; --debug shows the traceback),
     problems found by 'verify', agents 'push'/'fetch'/'pull' could not move
  2  a usage error (unknown command or option, bad argument)
As with git, a command whose output pipe closes is killed by SIGPIPE (141),
one stopped by Ctrl-C by SIGINT (130), without a message. log, show and diff
page their output on a terminal through $GITSTATE_PAGER, else $PAGER, else
'less' (with LESS=FRX unless LESS is set; --no-pager or an empty or 'cat'
pager turns it off).
"""


@click.group(cls=GitstateGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", envvar=REPO_ENV, type=click.Path(file_okay=False), metavar="PATH",
              help=f"Repository to use (env {REPO_ENV}; default ./.gitstate).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.option("--no-pager", is_flag=True,
              help="Do not page the output of log, show and diff on a terminal.")
@click.version_option(__version__, prog_name="gitstate")
@click.pass_context
def cli(ctx: click.Context, repo: str | None, debug: bool, no_pager: bool) -> None:
    """Keep AI agents' states as versioned checkpoints in a bare git repository."""
    ctx.obj = Settings(repo=repo, debug=debug, pager=not no_pager)


for command in (init, save, agents, log, show, tag, rollback, fork, delete, diff, prune, import_,
                gc, verify, remote, push, fetch, pull, clone, merge, merge_base, find, export,
                serve):
    cli.add_command(command)
