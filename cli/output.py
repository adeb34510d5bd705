"""How the command line prints: aligned tables, JSON documents, colour and progress bars.

Colour only reaches a terminal (click strips it in pipes) and never under
``NO_COLOR``; progress bars are drawn on stderr, and only when it is a terminal.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from gitstate import Checkpoint

STATUS_COLOURS = {"completed": "green", "running": "cyan", "waiting": "yellow", "paused": "yellow",
                  "stopping": "yellow", "stopped": "magenta", "failed": "red"}


def colour_allowed() -> bool | None:
    """False under NO_COLOR, else None (click decides: colour only on a terminal)."""
    return False if os.environ.get("NO_COLOR") else None


def echo(text: str = "", *, err: bool = False) -> None:
    click.echo(text, err=err, color=colour_allowed())


def style(text: str, **styles: Any) -> str:
    return click.style(text, **styles)


def status_style(status: str | None) -> dict[str, Any]:
    colour = STATUS_COLOURS.get(status or "")
    return {"fg": colour} if colour else {}


def emit_json(value: Any) -> None:
    """Print one JSON document (or one JSON line: it is always on a single line)."""
    click.echo(json.dumps(value, ensure_ascii=False, sort_keys=True))


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return checkpoint.model_dump(mode="json")


def when(moment: datetime) -> str:
    """A time as the tables show it: UTC, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def size(nbytes: int) -> str:
    """A byte count for people: ``512 bytes``, ``8.5 kB``, ``1.4 MB``."""
    if nbytes < 1000:
        return f"{nbytes} bytes"
    return f"{nbytes / 1e3:.1f} kB" if nbytes < 1e6 else f"{nbytes / 1e6:.1f} MB"


def counted(n: int, noun: str) -> str:
    """``1 pack``, ``2 packs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows under a bold header, columns aligned; a cell may be ``(text, style)``."""
    plain = [[cell[0] if isinstance(cell, tuple) else str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in plain]) for i, h in enumerate(headers)]
    last = len(headers) - 1
    echo("  ".join(style(h.ljust(w) if i < last else h, bold=True)
                   for i, (h, w) in enumerate(zip(headers, widths, strict=True))))
    for row, texts in zip(rows, plain, strict=True):
        cells = []
        for i, (cell, text) in enumerate(zip(row, texts, strict=True)):
            padded = text.ljust(widths[i]) if i < last else text
            cells.append(style(padded, **cell[1]) if isinstance(cell, tuple) and cell[1] else padded)
        echo("  ".join(cells).rstrip())


class Progress:
    """A ``progress(done, total)`` callback drawing a bar on a terminal's stderr."""

    def __init__(self, label: str, quiet: bool = False):
        self.label, self.quiet = label, quiet
        self._bar: Any = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or not sys.stderr.isatty():
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr,
                                          color=colour_allowed())
            self._bar.__enter__()
        self._bar.length = total  # gc's total grows when it goes on to merge packs
        self._bar.update(done - self._shown)
        self._shown = done

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)


PAGER_ENV = "GITSTATE_PAGER"


def page(ctx: click.Context, wanted: bool) -> None:
    """Send the rest of the command's output through a pager, as git does: only when stdout
    is a terminal, with ``$GITSTATE_PAGER``, else ``$PAGER``, else ``less`` (``LESS=FRX``
    unless ``LESS`` is set, so a short output just prints); ``cat`` or an empty pager means none."""
    command = os.environ.get(PAGER_ENV, os.environ.get("PAGER", "less")).strip()
    if not wanted or command in ("", "cat") or not sys.stdout.isatty():
        return
    sys.stdout.flush()
    pager = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE,
                             env={"LESS": "FRX", **os.environ})
    assert pager.stdin is not None
    terminal, sys.stdout = sys.stdout, io.TextIOWrapper(pager.stdin, encoding="utf-8", write_through=True)

    def close() -> None:
        try:
            sys.stdout.close()
        except BrokenPipeError:  # the pager quit before the end: as git, no complaint
            pass
        sys.stdout = terminal
        ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pager's, as in git
        try:
            pager.wait()
        finally:
            signal.signal(signal.SIGINT, ignored)

    ctx.call_on_close(close)


def transfer_progress() -> Callable[[str], None] | None:
    """A callback copying git's transfer progress text to stderr, if stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    return lambda text: click.echo(text, err=True, nl=False, color=colour_allowed())


CHECKPOINT_COLUMNS = ["ITER", "STATUS", "SAVED (UTC)", "NAMES"]


def describe(checkpoint: Checkpoint) -> str:
    """One line naming a checkpoint: short SHA, checkpoint id, summary."""
    return f"{style(checkpoint.short, fg='yellow')} ({checkpoint.checkpoint_id}) {checkpoint.message}"


def checkpoint_cells(c: Checkpoint) -> list[Any]:
    """The cells under CHECKPOINT_COLUMNS for one checkpoint."""
    return ["" if c.iteration is None else str(c.iteration), (c.status or "", status_style(c.status)),
            when(c.created), ",".join(c.names)]


def history_table(checkpoints: list[Checkpoint]) -> None:
    table(["COMMIT", *CHECKPOINT_COLUMNS, "CHECKPOINT ID", "MESSAGE"],
          [[(c.short, {"fg": "yellow"}), *checkpoint_cells(c), c.checkpoint_id, c.message]
           for c in checkpoints])
