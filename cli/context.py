"""Which repository a command works on, and how gitstate errors end a command."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from gitstate import GitstateError, NotARepositoryError
from gitstate.message import one_line

if TYPE_CHECKING:
    from gitstate import StateRepository

DEFAULT_REPO = ".gitstate"
REPO_ENV = "GITSTATE_REPO"


@dataclass
class Settings:
    """The global options, kept in ``ctx.obj``."""

    repo: str | None = None
    debug: bool = False
    pager: bool = True

    @property
    def repo_path(self) -> str:
        """``--repo``, else ``$GITSTATE_REPO``, else ``./.gitstate``."""
        return self.repo or DEFAULT_REPO

    def exists(self) -> bool:
        """Whether something is at the repository's path (``open`` says if it is a repository)."""
        return os.path.exists(self.repo_path)

    def open(self) -> StateRepository:
        """The repository, which must exist (read commands and history edits)."""
        from gitstate import StateRepository  # here: loading the command line imports no git code

        path = self.repo_path
        if not self.exists():
            raise NotARepositoryError(
                f"no gitstate repository at {os.path.abspath(path)} (create one with 'gitstate init', "
                f"or name one with --repo or {REPO_ENV})")
        return StateRepository.open(path)

    def open_or_init(self) -> StateRepository:
        """The repository, created first if it does not exist (save, import)."""
        from gitstate import StateRepository

        return StateRepository.init(self.repo_path)


pass_settings = click.make_pass_decorator(Settings)


class GitstateGroup(click.Group):
    """A click group that turns gitstate errors into one line on stderr and exit code 1,
    and ends like git, killed by the signal, when the reader of its output goes away
    (SIGPIPE) or on Ctrl-C (SIGINT): no message, and the shell sees 141 or 130."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _whole_writes()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _die_of(signal.SIGPIPE)
            raise  # not reached
        except KeyboardInterrupt:  # what was interrupted released its locks on the way out
            _die_of(signal.SIGINT)
            raise  # not reached
        except (GitstateError, OSError) as exc:
            settings = ctx.find_object(Settings)
            if settings is not None and settings.debug:
                raise
            raise click.ClickException(in_cli_words(one_line(str(exc))) or type(exc).__name__) from exc


def _die_of(signum: signal.Signals) -> None:
    """End the process by the signal ``signum`` with its default action (as git does)."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# The library's messages name its Python API; on the command line they name the commands.
_CLI_WORDS = [(re.compile(r"remote_add\('([^']*)', URL\)"), r"gitstate remote add \1 URL"),
              (re.compile(r"\bwith force\b"), "with --force"),
              (re.compile(r"\binto=(?=\s)"), "--into")]


def in_cli_words(message: str) -> str:
    """A library error message with its Python names replaced by the command line's."""
    for pattern, replacement in _CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


def _whole_writes() -> None:
    """Put a buffer under an unbuffered stdout (``PYTHONUNBUFFERED``, ``python -u``).

    A raw pipe write cut short by a reader that goes away returns the part
    written, and Python's text layer drops the rest without an error; a
    buffered writer retries, so the closed pipe raises BrokenPipeError.
    """
    stream = sys.stdout
    if stream is not None and isinstance(getattr(stream, "buffer", None), io.RawIOBase):
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(stream.buffer), encoding=stream.encoding,
                                      errors=stream.errors, line_buffering=bool(stream.line_buffering),
                                      write_through=True)
