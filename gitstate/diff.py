"""Structural diffs between two checkpoints: a short summary, deepdiff's JSON form, RFC 6902.

:func:`json_patch` returns a JSON Patch (RFC 6902) that :func:`apply_patch`
(or any RFC 6902 implementation) turns from the old state into the new one
exactly: values are compared by JSON type too (``1``, ``1.0`` and ``true``
differ). Lists are diffed by common prefix and suffix, so the append-only lists
of an agent (messages, actions) give one ``add`` per new item.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from . import codec
from .core import Core
from .errors import EncodingError, InvalidArgumentError
from .jsonmerge import same
from .models import Checkpoint

_SHORT = 24  # scalars up to this many characters are shown as old→new in summaries
_FIRST = ("iteration", "status")


@dataclass(frozen=True)
class StateDiff:
    """The difference from checkpoint ``old`` to checkpoint ``new``."""

    old: Checkpoint
    new: Checkpoint
    summary: str
    changes: dict[str, Any]
    patch: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: both checkpoints (id, commit, agent), summary, changes, patch."""
        def ref(c: Checkpoint) -> dict[str, Any]:
            return {"agent_id": c.agent_id, "checkpoint_id": c.checkpoint_id, "commit": c.commit}
        return {"old": ref(self.old), "new": ref(self.new), "summary": self.summary,
                "changes": self.changes, "patch": self.patch}


def _pointer(path: str, key: Any) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def json_patch(old: Any, new: Any) -> list[dict[str, Any]]:
    """An RFC 6902 JSON Patch turning ``old`` into ``new``."""
    ops: list[dict[str, Any]] = []
    _diff(old, new, "", ops)
    return ops


def _diff(old: Any, new: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if type(old) is dict and type(new) is dict:
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": _pointer(path, key)})
        for key, value in new.items():
            if key in old:
                _diff(old[key], value, _pointer(path, key), ops)
            else:
                ops.append({"op": "add", "path": _pointer(path, key), "value": copy.deepcopy(value)})
    elif type(old) is list and type(new) is list:
        _diff_list(old, new, path, ops)
    elif not same(old, new):
        ops.append({"op": "replace", "path": path, "value": copy.deepcopy(new)})


def _diff_list(old: list[Any], new: list[Any], path: str, ops: list[dict[str, Any]]) -> None:
    shortest = min(len(old), len(new))
    start = 0
    while start < shortest and same(old[start], new[start]):
        start += 1
    end = 0
    while end < shortest - start and same(old[-1 - end], new[-1 - end]):
        end += 1
    old_mid, new_mid = len(old) - start - end, len(new) - start - end
    for k in range(min(old_mid, new_mid)):
        _diff(old[start + k], new[start + k], _pointer(path, start + k), ops)
    for _ in range(old_mid - new_mid):
        ops.append({"op": "remove", "path": _pointer(path, start + new_mid)})
    for k in range(old_mid, new_mid):
        ops.append({"op": "add", "path": _pointer(path, start + k),
                    "value": copy.deepcopy(new[start + k])})


def apply_patch(document: Any, patch: list[dict[str, Any]]) -> Any:
    """Apply an RFC 6902 patch (add, remove, replace, move, copy, test); returns a new value.

    A patch that does not apply raises :class:`InvalidArgumentError` naming the operation.
    """
    doc = copy.deepcopy(document)
    for number, op in enumerate(patch):
        try:
            doc = _apply(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"patch operation {number} {op!r} does not apply: {exc}") from None
    return doc


def _split(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, adding: bool = False) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise ValueError(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not adding):
        raise IndexError(f"index {index} is out of range")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = doc[_index(doc, token)] if type(doc) is list else doc[token]
    return doc


def _apply(doc: Any, op: dict[str, Any]) -> Any:
    kind, tokens = op["op"], _split(op["path"])
    if kind == "test":
        if not same(_get(doc, tokens), op["value"]):
            raise ValueError("test failed")
        return doc
    if kind in ("move", "copy"):
        source = _split(op["from"])
        if kind == "move" and tokens[:len(source)] == source and tokens != source:
            raise ValueError("cannot move a value into itself")
        value = copy.deepcopy(_get(doc, source))
        if kind == "move":
            doc = _apply(doc, {"op": "remove", "path": op["from"]})
        return _apply(doc, {"op": "add", "path": op["path"], "value": value})
    if kind not in ("add", "remove", "replace"):
        raise ValueError(f"unknown operation {kind!r}")
    if not tokens:
        if kind == "remove":
            raise ValueError("cannot remove the whole document")
        return copy.deepcopy(op["value"])
    parent, last = _get(doc, tokens[:-1]), tokens[-1]
    if type(parent) is list:
        index = _index(parent, last, adding=kind == "add")
        if kind == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind == "remove":
            del parent[index]
        else:
            parent[index] = copy.deepcopy(op["value"])
    elif type(parent) is dict:
        if kind != "add" and last not in parent:
            raise KeyError(last)
        if kind == "remove":
            del parent[last]
        else:
            parent[last] = copy.deepcopy(op["value"])
    else:
        raise TypeError(f"cannot {kind} inside a {type(parent).__name__}")
    return doc


def summarize(old: Any, new: Any) -> str:
    """A one-line human summary: ``iteration 12→15, status running→completed, messages +3``."""
    if type(old) is not dict or type(new) is not dict:
        return "no changes" if same(old, new) else _change("state", old, new)
    keys = [k for k in _FIRST if k in old or k in new]
    keys += sorted(k for k in old.keys() | new.keys() if k not in _FIRST)
    parts = []
    for key in keys:
        if key not in new:
            parts.append(f"-{key}")
        elif key not in old:
            parts.append(f"+{key}")
        elif not same(old[key], new[key]):
            parts.append(_change(key, old[key], new[key]))
    return ", ".join(parts) or "no changes"


def _change(key: str, old: Any, new: Any) -> str:
    if type(old) is list and type(new) is list and len(old) != len(new):
        return f"{key} {len(new) - len(old):+d}"
    if type(old) is dict and type(new) is dict and len(old) != len(new):
        return f"{key} {len(new) - len(old):+d} keys"
    shown = [json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v for v in (old, new)]
    if any(type(v) in (dict, list) for v in (old, new)) or max(map(len, shown)) > _SHORT:
        return f"{key} changed"
    return f"{key} {shown[0]}→{shown[1]}"


def changes(old: Any, new: Any) -> dict[str, Any]:
    """deepdiff's report of the change (``values_changed``, ``iterable_item_added``, ...) as JSON."""
    from deepdiff import (
        DeepDiff,  # imported here: it adds ~0.1 s to every command's start
    )

    return json.loads(DeepDiff(old, new, verbose_level=2).to_json())


def diff(core: Core, agent_id: str, rev_a: str, rev_b: str | None = None, *,
         other_agent: str | None = None) -> StateDiff:
    """Diff checkpoint ``rev_a`` of ``agent_id`` against ``rev_b`` (default: the latest) of
    ``other_agent`` (default: the same agent).

    A state that canonical JSON cannot hold (written by another tool, e.g. nested
    deeper than ``codec.MAX_DEPTH``) raises :class:`EncodingError`.
    """
    old_commit = core.find(agent_id, rev_a)
    other = other_agent if other_agent is not None else agent_id
    new_commit = core.find(other, rev_b)
    old = core.checkpoint(old_commit, agent_id, core.names(agent_id).get(old_commit.id, ()))
    new = core.checkpoint(new_commit, other, core.names(other).get(new_commit.id, ()))
    a, b = core.state(old_commit), core.state(new_commit)
    for checkpoint, state in ((old, a), (new, b)):  # what another tool wrote may be too deep
        try:
            codec.check(state)
        except EncodingError as exc:
            raise EncodingError(f"checkpoint {checkpoint.short} of {checkpoint.agent_id!r} "
                                f"cannot be diffed: {exc}", exc.path) from None
    return StateDiff(old=old, new=new, summary=summarize(a, b), changes=changes(a, b),
                     patch=json_patch(a, b))
