"""Arguments, options and parameter types shared by commands."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from gitstate import Duration, InvalidArgumentError

from .completion import complete_agent, complete_revision

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


MOMENT = Moment()
KEY_VALUE = KeyValue()
DURATION = DurationType()
INPUT_FILE = InputFile()

agent_argument = click.argument("agent_id", metavar="AGENT", shell_complete=complete_agent)


def json_option(help: str = "Print JSON instead of a table.") -> Any:
    return click.option("--json", "as_json", is_flag=True, help=help)


def revision_argument(name: str = "rev", metavar: str = "[REV]", required: bool = False) -> Any:
    return click.argument(name, metavar=metavar, required=required, shell_complete=complete_revision)
