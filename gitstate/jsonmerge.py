"""The three-way structural merge of JSON states: a pure function of base, ours and theirs.

:func:`three_way` walks the three values together and, at each JSON path:

- takes a change made on one side only (the other side equals the base);
- takes the same change made on both sides once;
- merges objects key by key (a key added, changed or removed on one side only
  is taken; a key both sides added with objects is merged as if the base held ``{}``);
- merges lists that both sides kept at least as long as the base item by item,
  then keeps what each side appended after the base's items, ours first (both
  appends kept is reported in ``appended``; the same append on both sides once);
- anything else is a conflict: the same path changed differently on both sides
  (a list shortened, a value replaced by two others, a key removed on one side
  and changed on the other).

A conflict is resolved only by an explicit strategy (:data:`Strategy`): ``"ours"``
or ``"theirs"`` for every conflict, or a mapping of JSON paths to ``"ours"``/
``"theirs"``, which resolves the conflicts at that path and below it (the
longest path given wins). A strategy applies to conflicts only: what merges
cleanly is merged whatever the strategy. Values are compared as JSON (``1``,
``1.0`` and ``true`` differ). Paths are written as in :mod:`gitstate.codec`'s
errors: ``$``, ``$.messages[3]``, ``$["key with spaces"]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .codec import child_path
from .errors import InvalidArgumentError

SIDES = ("ours", "theirs")
Strategy = str | Mapping[str, str] | None
"""``None`` (conflicts stop the merge), ``"ours"``, ``"theirs"``, or ``{json path: side}``."""


class _Absent:
    """A key one side does not have (shown as ``absent``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""The value of a key that a side lacks, in a :class:`Conflict`."""


@dataclass(frozen=True)
class Conflict:
    """The same JSON path changed differently on both sides; ``resolved`` is the side the
    strategy took (None: unresolved). A value a side lacks is :data:`ABSENT`."""

    path: str
    base: Any
    ours: Any
    theirs: Any
    resolved: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The path, the values (a side that lacks the key is left out) and the resolution."""
        shown: dict[str, Any] = {"path": self.path}
        for side in ("base", "ours", "theirs"):
            value = getattr(self, side)
            if value is not ABSENT:
                shown[side] = value
        shown["resolved"] = self.resolved
        return shown

    def __str__(self) -> str:
        def show(value: Any) -> str:
            return "absent" if value is ABSENT else json.dumps(value, ensure_ascii=False, sort_keys=True)
        return f"{self.path}: ours {_clip(show(self.ours))}, theirs {_clip(show(self.theirs))}"


@dataclass
class JsonMerge:
    """The merged value, every conflict (resolved or not) and the lists where both sides'
    appends were kept (ours first)."""

    value: Any
    conflicts: list[Conflict] = field(default_factory=list)
    appended: list[str] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.resolved is None]


def check_strategy(strategy: object) -> Strategy:
    """``strategy`` if it is one (see the module docstring), else ``InvalidArgumentError``."""
    if strategy is None or strategy in SIDES:
        return strategy
    if isinstance(strategy, Mapping):
        for path, side in strategy.items():
            if not isinstance(path, str) or not path.startswith("$"):
                raise InvalidArgumentError(f"strategy path {path!r} must be a JSON path such as "
                                           "'$' or '$.status'")
            if side not in SIDES:
                raise InvalidArgumentError(f"strategy for {path!r} must be 'ours' or 'theirs', "
                                           f"got {side!r}")
        return strategy
    raise InvalidArgumentError(f"strategy must be None, 'ours', 'theirs' or a mapping of JSON "
                               f"paths to 'ours'/'theirs', got {strategy!r}")


def three_way(base: Any, ours: Any, theirs: Any, strategy: Strategy = None) -> JsonMerge:
    """Merge ``ours`` and ``theirs``, both changed from ``base`` (see the module docstring).

    Every conflict is in ``conflicts``; those the strategy did not resolve keep
    ours' value in ``value`` and are listed by ``unresolved`` (the caller must not
    write such a merge). A per-path strategy naming no conflict raises
    ``InvalidArgumentError`` (a typo would otherwise pass unnoticed).
    """
    strategy = check_strategy(strategy)
    result = JsonMerge(value=None)
    result.value = _merge(base, ours, theirs, "$", strategy, result)
    if isinstance(strategy, Mapping):
        unused = [path for path in strategy
                  if not any(_under(c.path, path) for c in result.conflicts)]
        if unused:
            raise InvalidArgumentError(f"no conflict at or below {', '.join(map(repr, unused))}; "
                                       "the conflicts are at "
                                       + (", ".join(c.path for c in result.conflicts) or "no path"))
    return result


def same(a: Any, b: Any) -> bool:
    """JSON equality: like ``==`` but ``1``, ``1.0`` and ``True`` differ, and ``0.0`` and ``-0.0``."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a.hex() == b.hex()
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _merge(base: Any, ours: Any, theirs: Any, path: str, strategy: Strategy,
           result: JsonMerge) -> Any:
    if same(ours, theirs):
        return ours
    if same(base, ours):
        return theirs
    if same(base, theirs):
        return ours
    if type(ours) is dict and type(theirs) is dict and (type(base) is dict or base is ABSENT):
        return _merge_objects({} if base is ABSENT else base, ours, theirs, path, strategy, result)
    if type(ours) is list and type(theirs) is list and type(base) is list \
            and len(ours) >= len(base) and len(theirs) >= len(base):
        return _merge_lists(base, ours, theirs, path, strategy, result)
    side = _side(strategy, path)
    result.conflicts.append(Conflict(path, base, ours, theirs, side))
    return theirs if side == "theirs" else ours


def _merge_objects(base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], path: str,
                   strategy: Strategy, result: JsonMerge) -> dict[str, Any]:
    merged = {}
    for key in sorted(base.keys() | ours.keys() | theirs.keys()):
        value = _merge(base.get(key, ABSENT), ours.get(key, ABSENT), theirs.get(key, ABSENT),
                       child_path(path, key), strategy, result)
        if value is not ABSENT:
            merged[key] = value
    return merged


def _merge_lists(base: list[Any], ours: list[Any], theirs: list[Any], path: str,
                 strategy: Strategy, result: JsonMerge) -> list[Any]:
    n = len(base)
    merged = [_merge(base[i], ours[i], theirs[i], f"{path}[{i}]", strategy, result) for i in range(n)]
    ours_tail, theirs_tail = ours[n:], theirs[n:]
    if same(ours_tail, theirs_tail) or not theirs_tail:
        return merged + ours_tail
    if not ours_tail:
        return merged + theirs_tail
    result.appended.append(path)
    return merged + ours_tail + theirs_tail


def _side(strategy: Strategy, path: str) -> str | None:
    """The side ``strategy`` takes for a conflict at ``path`` (None: unresolved)."""
    if strategy is None or isinstance(strategy, str):
        return strategy
    matches = [p for p in strategy if _under(path, p)]
    return strategy[max(matches, key=len)] if matches else None


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it."""
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] in ".[")


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
