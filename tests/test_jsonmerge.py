"""The three-way structural merge of JSON states (gitstate.jsonmerge): its rules and properties."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstate import InvalidArgumentError, codec
from gitstate.diff import apply_patch, json_patch
from gitstate.jsonmerge import ABSENT, same, three_way

scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)
objects = st.dictionaries(st.text(max_size=6), values, max_size=6)


@settings(max_examples=examples(4))
@given(values, values)
def test_a_change_on_one_side_only_is_taken(base: Any, x: Any) -> None:
    assert same(three_way(base, x, base).value, x)
    assert same(three_way(base, base, x).value, x)
    assert not three_way(base, x, base).conflicts and not three_way(base, base, x).conflicts


@settings(max_examples=examples(4))
@given(objects, objects, objects)
def test_changes_to_disjoint_paths_combine(base: dict[str, Any], left: dict[str, Any],
                                           right: dict[str, Any]) -> None:
    """ours adds keys 'l:*' and removes one of base's, theirs adds 'r:*' and changes another."""
    base = {f"b:{k}": v for k, v in base.items()}
    ours = {**base, **{f"l:{k}": v for k, v in left.items()}}
    theirs = {**base, **{f"r:{k}": v for k, v in right.items()}}
    if base:  # one side also removes a key of the base, the other changes another one
        first = sorted(base)[0]
        del ours[first]
        if len(base) > 1:
            theirs[sorted(base)[1]] = ["changed by theirs"]
    merged = three_way(base, ours, theirs)
    assert not merged.conflicts
    both = apply_patch(apply_patch(base, json_patch(base, ours)), json_patch(base, theirs))
    assert same(merged.value, both)
    assert codec.decode(codec.encode(merged.value)) == merged.value  # canonical JSON holds it


@settings(max_examples=examples(4))
@given(values, values, values)
def test_the_result_is_canonical_json_and_conflicts_name_paths(base: Any, ours: Any, theirs: Any) -> None:
    merged = three_way(base, ours, theirs, "ours")
    data = codec.encode(merged.value)
    assert codec.encode(codec.decode(data)) == data
    for conflict in merged.conflicts:
        assert conflict.path.startswith("$") and conflict.resolved == "ours"
    assert bool(three_way(base, ours, theirs).unresolved) == bool(merged.conflicts)


def test_lists_both_sides_appended_keep_both_appends_ours_first() -> None:
    base = {"messages": ["m1"], "n": 1}
    merged = three_way(base, {"messages": ["m1", "a"], "n": 1}, {"messages": ["m1", "b", "c"], "n": 1})
    assert merged.value == {"messages": ["m1", "a", "b", "c"], "n": 1}
    assert merged.appended == ["$.messages"] and not merged.conflicts


def test_the_same_change_on_both_sides_is_taken_once() -> None:
    base = {"messages": ["m1"], "status": "running"}
    side = {"messages": ["m1", "same"], "status": "done"}
    merged = three_way(base, side, dict(side))
    assert merged.value == side and not merged.appended and not merged.conflicts
    appended = three_way(base, {"messages": ["m1", "x", "same"]}, {"messages": ["m1", "x", "same"]})
    assert appended.value == {"messages": ["m1", "x", "same"]}


def test_list_items_changed_on_different_sides_combine_with_appends() -> None:
    base = {"items": [{"a": 1}, {"b": 1}]}
    ours = {"items": [{"a": 2}, {"b": 1}, "ours"]}
    theirs = {"items": [{"a": 1}, {"b": 2}]}
    assert three_way(base, ours, theirs).value == {"items": [{"a": 2}, {"b": 2}, "ours"]}


def test_a_conflict_is_reported_per_path_with_both_values() -> None:
    base = {"status": "running", "ctx": {"k": 1, "gone": 1}, "log": [1, 2], "n": 1}
    ours = {"status": "done", "ctx": {"k": 2}, "log": [1], "n": 1.0}
    theirs = {"status": "failed", "ctx": {"k": 3, "gone": 2}, "log": [1, 3], "n": True}
    merged = three_way(base, ours, theirs)
    found = {c.path: (c.ours, c.theirs) for c in merged.unresolved}
    assert found == {"$.status": ("done", "failed"), "$.ctx.k": (2, 3), "$.ctx.gone": (ABSENT, 2),
                     "$.log": ([1], [1, 3]), "$.n": (1.0, True)}  # 1, 1.0, true differ
    assert merged.unresolved[0].to_json() == {"path": "$.ctx.gone", "base": 1, "theirs": 2,
                                              "resolved": None}


def test_a_strategy_resolves_conflicts_only_and_per_path_takes_the_longest_path() -> None:
    base = {"a": {"x": 0, "y": 0}, "b": 0, "c": [1]}
    ours = {"a": {"x": 1, "y": 1}, "b": 1, "c": [1, "o"]}
    theirs = {"a": {"x": 2, "y": 2}, "b": 2, "c": [1, "t"]}
    assert three_way(base, ours, theirs, "theirs").value == {"a": {"x": 2, "y": 2}, "b": 2,
                                                             "c": [1, "o", "t"]}
    per_path = three_way(base, ours, theirs, {"$.a": "theirs", "$.a.y": "ours", "$.b": "ours"})
    assert per_path.value == {"a": {"x": 2, "y": 1}, "b": 1, "c": [1, "o", "t"]}
    assert not per_path.unresolved
    partly = three_way(base, ours, theirs, {"$.b": "theirs"})
    assert [c.path for c in partly.unresolved] == ["$.a.x", "$.a.y"]


@pytest.mark.parametrize("strategy, message", [
    ("mine", "must be None, 'ours', 'theirs'"),
    ({"status": "ours"}, "must be a JSON path"),
    ({"$.status": "both"}, "must be 'ours' or 'theirs'"),
    ({"$.nothing": "ours"}, r"no conflict at or below '\$.nothing'"),
])
def test_a_bad_strategy_is_a_typed_error_naming_it(strategy: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        three_way({"status": 1}, {"status": 2}, {"status": 3}, strategy)
