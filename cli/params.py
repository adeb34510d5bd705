"""Arguments, options and parameter types shared by commands."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import click

from gitstate import InvalidArgumentError

from .completion import complete_agent, complete_revision

if TYPE_CHECKING:
    from gitstate import Checkpoint, Duration

# AgentStatus's values and Checkpoint's fields (tests/test_cli.py checks both lists), named
# here so that loading the command line does not import pydantic.
STATUSES = ("created", "running", "waiting", "paused", "completed", "failed", "stopped", "stopping")
CHECKPOINT_FIELDS = ("checkpoint_id", "commit", "agent_id", "iteration", "status", "names", "created",
                     "message", "parent", "schema_version")

_AGO = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Moment(click.ParamType):
    """An ISO-8601 date or time (UTC unless it has an offset), or an age like ``90m``, ``2d``."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        ago = _AGO.fullmatch(text)
        if ago:
            try:
                return datetime.now(timezone.utc) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
            except (OverflowError, ValueError):  # more than a timedelta holds, or before year 1
                self.fail(f"{text!r} is further back than the year 1", param, ctx)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not an ISO-8601 time (2025-06-03, 2025-06-03T14:05:00) "
                      "or an age (30s, 90m, 2h, 7d, 1w)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class KeyValue(click.ParamType):
    """``KEY=VALUE``, as a ``(key, value)`` pair."""

    name = "key=value"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key, text


class DurationType(click.ParamType):
    """A retention duration such as ``7d``, ``12h`` or ``1y5m7d2h`` (``m`` is months)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Duration:
        from gitstate import Duration

        try:
            return Duration.parse(value)
        except InvalidArgumentError as exc:
            self.fail(str(exc), param, ctx)


class InputFile(click.File):
    """A file to read (``-``: stdin); a closed stdin (``<&-``) is a usage error."""

    def __init__(self) -> None:
        super().__init__("rb")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except RuntimeError:  # click finds no stdin to read
            self.fail("stdin is closed: give a FILE, or pipe the state in", param, ctx)


class Status(click.Choice):
    """An agent status (``running``, ``completed``, ...); another word is a usage error listing them."""

    def __init__(self) -> None:
        super().__init__(STATUSES)


class LogFormat(click.ParamType):
    """A ``log --format`` template: placeholders as git's, for a checkpoint's fields.

    ``%H``/``%h`` commit (full, short), ``%s`` message, ``%an`` agent id, ``%ad``
    saved time (ISO-8601, UTC), ``%(FIELD)`` any checkpoint field (``iteration``,
    ``status``, ``checkpoint_id``, ``names``, ...), ``%(trailer:KEY)`` a trailer,
    ``%n`` a newline, ``%%`` a percent sign.
    """

    name = "format"
    _PLACEHOLDER = re.compile(r"%(H|h|s|an|ad|n|%|\(([a-z_]+|trailer:[^)]+)\))")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if callable(value):
            return value
        parts: list[str | Callable[[Checkpoint], str]] = []
        position = 0
        for found in [*self._PLACEHOLDER.finditer(value), None]:
            text = value[position:None if found is None else found.start()]
            if "%" in text:
                self.fail(f"unknown placeholder {text[text.index('%'):][:3]!r}: use %H %h %s %an %ad "
                          "%(FIELD) %(trailer:KEY) %n or %%", param, ctx)
            parts.append(text)
            if found is not None:
                parts.append(self._placeholder(found, param, ctx))
                position = found.end()
        return lambda checkpoint: "".join(p if isinstance(p, str) else p(checkpoint) for p in parts)

    def _placeholder(self, found: re.Match[str], param: click.Parameter | None,
                     ctx: click.Context | None) -> Callable[[Checkpoint], str]:
        code, field = found[1], found[2]
        simple: dict[str, Callable[[Checkpoint], str]] = {
            "H": lambda c: c.commit, "h": lambda c: c.short, "s": lambda c: c.message,
            "an": lambda c: c.agent_id, "ad": lambda c: c.created.isoformat().replace("+00:00", "Z"),
            "n": lambda _c: "\n", "%": lambda _c: "%"}
        if field is None:
            return simple[code]
        if field.startswith("trailer:"):
            key = field.partition(":")[2]
            return lambda c: c.trailers.get(key, "")
        if field not in CHECKPOINT_FIELDS:
            self.fail(f"no checkpoint field {field!r} (fields: {', '.join(CHECKPOINT_FIELDS)})", param, ctx)
        if field == "names":
            return lambda c: ",".join(c.names)
        if field == "created":
            return simple["ad"]
        return lambda c: "" if getattr(c, field) is None else str(getattr(c, field))


MOMENT = Moment()
KEY_VALUE = KeyValue()
DURATION = DurationType()
STATUS = Status()
LOG_FORMAT = LogFormat()
INPUT_FILE = InputFile()

agent_argument = click.argument("agent_id", metavar="AGENT", shell_complete=complete_agent)


def json_option(help: str = "Print JSON instead of a table.") -> Any:
    return click.option("--json", "as_json", is_flag=True, help=help)


quiet_option = click.option("--quiet", "-q", is_flag=True,
                            help="Print nothing but errors (no table, no summary, no progress).")


def revision_argument(name: str = "rev", metavar: str = "[REV]", required: bool = False) -> Any:
    return click.argument(name, metavar=metavar, required=required, shell_complete=complete_revision)
