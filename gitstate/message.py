"""Commit messages of checkpoints: a one-line summary, a blank line, then trailers.

git reads trailers only from a final paragraph made entirely of ``Key: value``
lines, so that paragraph holds nothing else (``git log --format=%(trailers)``).
"""

from __future__ import annotations

import re

from .errors import InvalidArgumentError

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_INT = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only (str.isdigit accepts "²"), int64-sized


def integer(value: str | None) -> int | None:
    """A trailer's integer value; None if there is none or it is not an integer."""
    return int(value) if value is not None and _INT.fullmatch(value) else None


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so ``text`` fits on one line."""
    return " ".join(text.split())


def build(summary: str, trailers: dict[str, str]) -> bytes:
    """Return the commit message for ``summary`` and ``trailers`` (in order).

    Text that is not valid Unicode (a lone surrogate, as Python decodes
    undecodable command-line bytes) raises :class:`InvalidArgumentError`.
    """
    lines = []
    for key, value in trailers.items():
        if not _KEY.fullmatch(key):
            raise InvalidArgumentError(f"trailer key {key!r} must be letters, digits and '-'")
        value = one_line(str(value))
        if not value:
            raise InvalidArgumentError(f"trailer {key!r} has an empty value")
        _check_text(value, f"trailer {key!r} value")
        lines.append(f"{key}: {value}")
    summary = one_line(summary) or "checkpoint"
    _check_text(summary, "message")
    return (f"{summary}\n\n" + "\n".join(lines) + "\n").encode("utf-8")


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} {text!r} is not valid UTF-8 text "
                                   "(it holds a lone surrogate)") from None


def parse(message: bytes) -> tuple[str, dict[str, str]]:
    """Return ``(summary, trailers)`` of a commit message; unknown shapes give ``{}``."""
    text = message.decode("utf-8", "replace").strip("\n")
    summary, _, rest = text.partition("\n")
    block = rest.strip("\n").rsplit("\n\n", 1)[-1] if rest.strip() else ""
    trailers: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(": ")
        if not sep or not _KEY.fullmatch(key):
            return summary, {}
        trailers[key] = value
    return summary, trailers
