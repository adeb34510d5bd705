"""Canonical JSON: exact round trips, determinism across processes, typed errors with paths."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from enum import Enum

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstate import EncodingError
from gitstate.codec import decode, encode

# Every JSON value gitstate accepts (integers are exact within 64 bits).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6),
    max_leaves=40,
)


def same(a: object, b: object) -> bool:
    """Equality that also tells 0.0 from -0.0 and 1 from 1.0 (exactness)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@given(json_values)
def test_any_json_value_round_trips_exactly(value: object) -> None:
    assert same(decode(encode(value)), value)


@given(json_values)
def test_encoding_is_idempotent(value: object) -> None:
    data = encode(value)
    assert encode(decode(data)) == data


@given(json_values)
def test_stdlib_reads_the_same_value(value: object) -> None:
    assert same(json.loads(encode(value)), value)


def test_layout_is_sorted_indented_one_value_per_line() -> None:
    data = encode({"b": [1, {"y": None, "x": True}], "a": "é\n\"", "c": {}, "d": []})
    assert data == (
        b'{\n  "a": "\xc3\xa9\\n\\"",\n  "b": [\n    1,\n    {\n      "x": true,\n'
        b'      "y": null\n    }\n  ],\n  "c": {},\n  "d": []\n}\n'
    )


def test_floats_are_shortest_round_trip_and_integers_exact() -> None:
    assert encode([0.1, 1e16, 1.0, -0.0, 2**64 - 1, -(2**63)]) == (
        b"[\n  0.1,\n  1e+16,\n  1.0,\n  -0.0,\n  18446744073709551615,\n  -9223372036854775808\n]\n"
    )


class Color(Enum):
    RED = "red"


def test_documented_conversions() -> None:
    assert decode(encode({"t": (1, 2), "e": Color.RED})) == {"t": [1, 2], "e": "red"}


ENCODE_IN_CHILD = (
    "import sys; from gitstate.codec import encode; "
    "value = {'set_like': sorted({'b', 'a', 'c'}), 'k': {str(i): i * 0.1 for i in range(50)}, "
    "'u': 'ünïcödé ✓'}; sys.stdout.buffer.write(encode(value))"
)


def test_equal_values_give_equal_bytes_across_processes_and_hash_seeds() -> None:
    children = [subprocess.Popen([sys.executable, "-c", ENCODE_IN_CHILD], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": seed})
                for seed in ("0", "1", "12345", "random")]  # started together: four interpreters
    outputs = {child.communicate()[0] for child in children}
    assert [child.returncode for child in children] == [0, 0, 0, 0]
    assert len(outputs) == 1


class Opaque:
    pass


class SubStr(str):
    pass


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        ({"messages": [{}, {}, {}, {"content": math.nan}]}, "$.messages[3].content", "non-finite"),
        ({"a": [math.inf]}, "$.a[0]", "non-finite"),
        ({"a": {"b": -math.inf}}, "$.a.b", "non-finite"),
        ({"tags": {"x", "y"}}, "$.tags", "set"),
        ({"raw": b"bytes"}, "$.raw", "bytes"),
        ({"ids": {1: "one"}}, "$.ids", "non-string key"),
        ({"obj": Opaque()}, "$.obj", "Opaque"),
        ({"s": ["ok", "\ud800"]}, "$.s[1]", "surrogate"),
        ({"big": 2**64}, "$.big", "outside"),
        ({"weird key": [SubStr("x")]}, '$["weird key"][0]', "SubStr"),
    ],
)
def test_bad_values_raise_typed_error_naming_the_path(value: object, path: str, words: str) -> None:
    with pytest.raises(EncodingError) as info:
        encode(value)
    assert info.value.path == path
    assert path in str(info.value) and words in str(info.value)


@pytest.mark.parametrize("text", [b"{", b'{"a": NaN}', b"[Infinity]", b"\xff"])
def test_decode_rejects_invalid_json(text: bytes) -> None:
    with pytest.raises(EncodingError):
        decode(text)


@settings(max_examples=examples(0.5))
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1))
def test_finite_floats_never_turn_into_null(values: list[float]) -> None:
    assert b"null" not in encode(values)


@given(json_values)
def test_bytes_equal_the_stdlib_reference_layout(value: object) -> None:
    """The canonical form is reproducible with nothing but Python's json module."""
    reference = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert encode(value) == reference.encode("utf-8")


plain_values = st.recursive(  # no floats: encode's fast path writes them without pinning
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6),
    max_leaves=40,
)


@given(plain_values, st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 40))
def test_the_fast_path_and_the_pinned_path_write_the_same_bytes(value: object, number: float,
                                                                  where: int) -> None:
    """A state without floats takes the fast path; the same state with one float added
    somewhere takes the pinned one: both give the stdlib's layout."""
    with_float = json.loads(json.dumps(value))
    containers = [with_float] if isinstance(with_float, (dict, list)) else []
    for container in containers:  # every container, outermost first
        containers.extend(v for v in (container.values() if isinstance(container, dict) else container)
                          if isinstance(v, (dict, list)))
    if containers:
        target = containers[where % len(containers)]
        if isinstance(target, dict):
            target["\x00float"] = number
        else:
            target.append(number)
    for v in (value, with_float):
        assert encode(v) == (json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def test_non_finite_floats_deep_in_a_plain_state_are_refused() -> None:
    state = {"messages": [{"role": "user", "content": "x" * 100}] * 50 + [{"score": [1, math.nan]}]}
    with pytest.raises(EncodingError) as info:
        encode(state)
    assert info.value.path == "$.messages[50].score[1]"
