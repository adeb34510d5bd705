"""Canonical JSON: one deterministic byte string per JSON value.

Format: exactly what Python's ``json.dumps(value, indent=2, sort_keys=True,
ensure_ascii=False)`` writes, plus a final newline: keys sorted, UTF-8, minimal
string escaping (``"``, ``\\`` and control characters), floats as Python's
shortest round-trip ``repr`` (``0.1``, ``1e+16``), integers exact, 2-space
indentation with one value per line. orjson does the work, ~20x faster.

Accepted: ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` in [-2**63, 2**64),
finite ``float``, ``bool``, ``None``, nested at most :data:`MAX_DEPTH` levels
(``{"a": [1]}`` has 2); and, as pydantic's JSON mode does, a ``tuple`` becomes
an array, an ``Enum`` its value (checked like any other value) and a ``UUID``
its string. Rejected with :class:`EncodingError` naming the JSON path: NaN and
infinities, non-string keys, sets, bytes, lone surrogates, larger integers,
deeper nesting, and any other object (convert pydantic models with
``model_dump(mode="json")`` first).

:data:`MAX_DEPTH` is 200: orjson writes at most 254 levels, and deepdiff (the
report of ``diff``) needs 4 Python frames a level within Python's default
recursion limit of 1,000. :func:`decode` reads what orjson reads (1,024 levels);
:func:`check` tells whether a decoded value can be written back.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from enum import Enum
from itertools import chain, compress, repeat
from operator import is_
from typing import Any

import orjson

from .errors import EncodingError

MAX_DEPTH = 200
_OPTIONS = (
    orjson.OPT_INDENT_2
    | orjson.OPT_SORT_KEYS
    | orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1
_LEAVES = (str, int, bool, type(None), uuid.UUID)
_PLAIN = frozenset(_LEAVES)  # what orjson writes as is: _pin_floats need not look into it
_SCALARS = frozenset((str, int, bool, type(None)))  # what _only_plain lets through, with:
_UNPINNED = _SCALARS | {dict, list}


class _Rejected(Exception):
    """Raised by _pin_floats for what orjson would write wrongly (NaN) or not at all (depth)."""


def encode(value: Any) -> bytes:
    """Return the canonical JSON bytes of ``value`` (see the module docstring)."""
    try:
        if _only_plain(value):  # no float, Enum or tuple: orjson writes it as it is
            return orjson.dumps(value, option=_OPTIONS)
        return orjson.dumps(_pin_floats(value, 1), option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError, _Rejected) as exc:
        check(value)  # raises an EncodingError naming the path
        raise EncodingError(f"cannot encode the value: {exc}") from exc  # an orjson check does not know


def decode(data: bytes | str) -> Any:
    """Parse JSON text; invalid JSON raises :class:`EncodingError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EncodingError(f"invalid JSON: {exc}") from exc


def check(value: Any) -> None:
    """Raise an :class:`EncodingError` naming the first part of ``value`` that :func:`encode` rejects."""
    _find_problem(value, "$", 1)


def _only_plain(value: Any) -> bool:
    """Whether ``value`` holds only dicts, lists, strings, integers, booleans and None,
    nested at most ``MAX_DEPTH`` levels: what orjson writes canonically by itself.

    Checked one nesting level at a time with C iterators, no Python call per
    container (the JSON-mode dump of a 1,000-message state: ~0.23 ms, against
    ~0.35 ms for :func:`_pin_floats`). What orjson refuses (non-string keys,
    integers beyond 64 bits, lone surrogates) it raises on.
    """
    kind = type(value)
    if kind not in _UNPINNED:
        return False
    dicts: Iterable[Any] = [value] if kind is dict else ()
    lists: Iterable[Any] = [value] if kind is list else ()
    for _depth in range(MAX_DEPTH):  # the children of the containers at depth 1, 2, ...
        children = list(chain(chain.from_iterable(map(dict.values, dicts)), chain.from_iterable(lists)))
        types = list(map(type, children))
        kinds = set(types)
        if kinds <= _SCALARS:
            return True
        if not kinds <= _UNPINNED:
            return False
        dicts = list(compress(children, map(is_, types, repeat(dict)))) if dict in kinds else ()
        lists = list(compress(children, map(is_, types, repeat(list)))) if list in kinds else ()
    return False  # containers deeper than MAX_DEPTH: _pin_floats names them


def _pin_floats(value: Any, depth: int) -> Any:
    """Swap each float for its Python ``repr`` as a raw JSON fragment, each Enum for its value.

    orjson's float format has changed between releases (``1e16`` vs ``1e+16``);
    Python's ``repr`` is the same everywhere, so the bytes do not depend on the
    installed orjson. Containers are copied only on the paths that hold floats
    or Enums. NaN and infinities, which orjson would write as ``null``, and
    containers deeper than ``MAX_DEPTH`` raise ``_Rejected``.
    """
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise _Rejected("non-finite number")  # encode re-walks from the top to name the path
        return orjson.Fragment(float.__repr__(value))
    if kind is dict:
        if depth > MAX_DEPTH:
            raise _Rejected("too deep")
        if _PLAIN.issuperset(map(type, value.values())):  # the common case, checked in C
            return value
        copy = None
        for key, item in value.items():
            if type(item) not in _PLAIN:
                pinned = _pin_floats(item, depth + 1)
                if pinned is not item:
                    if copy is None:
                        copy = dict(value)
                    copy[key] = pinned
        return value if copy is None else copy
    if kind is list or kind is tuple:
        if depth > MAX_DEPTH:
            raise _Rejected("too deep")
        if _PLAIN.issuperset(map(type, value)):
            return value
        items = None
        for i, item in enumerate(value):
            if type(item) not in _PLAIN:
                pinned = _pin_floats(item, depth + 1)
                if pinned is not item:
                    if items is None:
                        items = list(value)
                    items[i] = pinned
        return value if items is None else items
    if isinstance(value, Enum):
        return _pin_floats(value.value, depth)
    return value


def child_path(path: str, key: str) -> str:
    """The JSON path of ``key`` in the object at ``path`` (``$.a``, ``$["a b"]``)."""
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _find_problem(value: Any, path: str, depth: int) -> None:
    """Raise an EncodingError naming the first bad value under ``path`` (at nesting ``depth``)."""
    kind = type(value)
    if (kind is dict or kind is list or kind is tuple) and depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH} levels at {path}", path)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise EncodingError(f"non-string key {key!r} at {path}", path)
            _find_problem(key, path, depth)
            _find_problem(item, child_path(path, key), depth + 1)
    elif kind is list or kind is tuple:
        for i, item in enumerate(value):
            _find_problem(item, f"{path}[{i}]", depth + 1)
    elif kind is float:
        if not math.isfinite(value):
            raise EncodingError(f"non-finite number {value!r} at {path}", path)
    elif kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodingError(f"string with a lone surrogate at {path}", path) from None
    elif kind is int:
        if not _MIN_INT <= value <= _MAX_INT:
            raise EncodingError(f"integer {value} at {path} is outside [-2**63, 2**64)", path)
    elif isinstance(value, Enum):
        _find_problem(value.value, path, depth)
    elif kind not in _LEAVES:
        raise EncodingError(f"value of type {kind.__name__} at {path} is not JSON", path)
