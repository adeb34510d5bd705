"""Retention planning against golden files, and policy validation.

Golden files: ``fixtures/retention/checkpoints.json`` (34 checkpoints over six
years, three named) and one ``fixtures/retention/<case>.json`` per policy with
the expected keep/remove and reasons of every checkpoint. After a deliberate
change of the rules, rewrite them with ``GITSTATE_UPDATE_GOLDEN=1`` and review
the diff.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstate import Checkpoint, InvalidArgumentError
from gitstate.retention import Duration, RetentionPolicy, plan

FIXTURES = Path(__file__).parent.parent / "fixtures" / "retention"
CASES = {
    "empty": {},
    "empty-names-off": {"keep_named": False},
    "last-3": {"keep_last": 3},
    "last-0-names-off": {"keep_last": 0, "keep_named": False},
    "hourly-4": {"keep_hourly": 4, "keep_named": False},
    "daily-7": {"keep_daily": 7},
    "weekly-4": {"keep_weekly": 4, "keep_named": False},
    "monthly-6": {"keep_monthly": 6},
    "yearly-10": {"keep_yearly": 10, "keep_named": False},
    "within-2d": {"keep_within": "2d"},
    "within-1y2m": {"keep_within": "1y2m", "keep_named": False},
    "within-5h-last-2": {"keep_within": "5h", "keep_last": 2, "keep_named": False},
    "combined": {"keep_last": 2, "keep_daily": 3, "keep_weekly": 2, "keep_monthly": 3,
                 "keep_yearly": 2},
}


def load_checkpoints() -> tuple[list[Checkpoint], datetime]:
    data = json.loads((FIXTURES / "checkpoints.json").read_text())
    checkpoints = [
        Checkpoint(checkpoint_id=row["checkpoint_id"], commit=f"{i:040x}", agent_id="golden",
                   names=tuple(row["names"]), created=datetime.fromisoformat(row["created"].replace("Z", "+00:00")),
                   message="golden")
        for i, row in enumerate(data["checkpoints"])
    ]
    return checkpoints, datetime.fromisoformat(data["now"].replace("Z", "+00:00"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_golden_file(case):
    checkpoints, now = load_checkpoints()
    decisions = plan(checkpoints, RetentionPolicy(**CASES[case]), now)
    got = [{"checkpoint_id": d.checkpoint.checkpoint_id, "created": d.checkpoint.created.isoformat(),
            "keep": d.keep, "reasons": list(d.reasons)} for d in decisions]
    path = FIXTURES / f"{case}.json"
    if os.environ.get("GITSTATE_UPDATE_GOLDEN"):
        path.write_text(json.dumps({"policy": CASES[case], "now": now.isoformat(), "expected": got},
                                   indent=2) + "\n")
    golden = json.loads(path.read_text())
    assert golden["policy"] == CASES[case]
    assert got == golden["expected"]


def test_golden_files_hold_what_the_rules_say():
    """Spot checks of the golden files against the rules, written out by hand."""
    def kept(case):
        expected = json.loads((FIXTURES / f"{case}.json").read_text())["expected"]
        return {row["checkpoint_id"]: row["reasons"] for row in expected if row["keep"]}

    assert len(kept("empty")) == 34 and len(kept("empty-names-off")) == 34
    assert kept("last-3") == {"cp34": ["last"], "cp33": ["last"], "cp32": ["last"],
                              "cp31": ["named"], "cp20": ["named"], "cp04": ["named"]}
    assert kept("last-0-names-off") == {"cp34": ["latest"]}
    # 18:30, 18:10 and 18:05 share hour 18; 17:40 and 17:20 hour 17; 16:20 and 16:15; 15:20
    assert kept("hourly-4") == {"cp34": ["hourly"], "cp31": ["hourly"], "cp29": ["hourly"],
                                "cp27": ["hourly"]}
    # one per year with data: 2026, 2025, 2024, 2023, 2022, 2020 (none in 2021)
    assert kept("yearly-10") == {c: ["yearly"] for c in ("cp34", "cp07", "cp05", "cp04", "cp02", "cp01")}
    assert set(kept("within-5h-last-2")) == {"cp34", "cp33", "cp32", "cp31", "cp30", "cp29", "cp28", "cp27"}


def test_unfilled_periods_keep_the_oldest_checkpoint_as_restic_does():
    day = datetime(2026, 5, 1, tzinfo=timezone.utc)
    checkpoints = [Checkpoint(checkpoint_id=f"c{h}", commit=f"{h:040x}", agent_id="x",
                              created=day + timedelta(hours=h), message="m") for h in (9, 5, 1)]
    decisions = plan(checkpoints, RetentionPolicy(keep_daily=3), day + timedelta(days=1))
    assert [(d.keep, d.reasons) for d in decisions] == [
        (True, ("daily",)), (False, ()), (True, ("daily (oldest)",))]
    decisions = plan(checkpoints, RetentionPolicy(keep_daily=1), day + timedelta(days=1))
    assert [d.keep for d in decisions] == [True, False, False]


def test_empty_policy_keeps_everything_and_latest_is_always_kept():
    checkpoints, now = load_checkpoints()
    assert all(d.keep for d in plan(checkpoints, RetentionPolicy(), now))
    only_latest = plan(checkpoints, RetentionPolicy(keep_within="1h", keep_named=False),
                       now + timedelta(days=365))
    assert [d.checkpoint.checkpoint_id for d in only_latest if d.keep] == ["cp34"]
    assert plan([], RetentionPolicy(keep_last=1), now) == []


def test_plan_is_pure_and_keeps_input_order():
    checkpoints, now = load_checkpoints()
    shuffled = checkpoints[::2] + checkpoints[1::2]
    policy = RetentionPolicy(keep_daily=5, keep_monthly=2)
    first = plan(shuffled, policy, now)
    assert [d.checkpoint for d in first] == shuffled
    by_id = {d.checkpoint.checkpoint_id: (d.keep, d.reasons) for d in plan(checkpoints, policy, now)}
    assert {d.checkpoint.checkpoint_id: (d.keep, d.reasons) for d in first} == by_id
    assert plan(shuffled, policy, now) == first


@pytest.mark.parametrize("bad", [
    {"keep_last": -1}, {"keep_daily": -3}, {"keep_hourly": 1.5}, {"keep_weekly": "2"},
    {"keep_yearly": True}, {"keep_within": "3x"}, {"keep_within": "-2d"}, {"keep_within": ""},
    {"keep_within": "2h3d"}, {"keep_within": timedelta(minutes=30)}, {"keep_within": timedelta(hours=-2)},
    {"keep_within": 7}, {"keep_named": "yes"},
])
def test_invalid_policy_values_raise_a_typed_error(bad):
    with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
        RetentionPolicy(**bad)


def test_durations_follow_restic_notation():
    assert Duration.parse("1y5m7d2h") == Duration(1, 5, 7, 2)
    assert Duration.parse(timedelta(days=2, hours=3)) == Duration(days=2, hours=3)
    assert str(Duration.parse("36h")) == "36h"
    when = datetime(2024, 3, 31, 12, tzinfo=timezone.utc)
    assert Duration(months=1).before(when) == datetime(2024, 2, 29, 12, tzinfo=timezone.utc)
    assert Duration(years=1, days=1, hours=2).before(when) == datetime(2023, 3, 30, 10, tzinfo=timezone.utc)


def test_plan_needs_an_aware_now():
    with pytest.raises(InvalidArgumentError, match="now"):
        plan([], RetentionPolicy(keep_last=1), datetime(2026, 1, 1))


times = st.lists(st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2026, 12, 31),
                              timezones=st.just(timezone.utc)), min_size=1, max_size=40, unique=True)
counts = st.none() | st.integers(0, 12)
policies = st.builds(RetentionPolicy, keep_last=counts, keep_hourly=counts, keep_daily=counts,
                     keep_weekly=counts, keep_monthly=counts, keep_yearly=counts,
                     keep_within=st.none() | st.sampled_from(["1h", "3d", "2m", "1y2m3d4h"]),
                     keep_named=st.booleans())


@settings(max_examples=examples(3))
@given(times, policies, st.randoms(use_true_random=False))
def test_plan_invariants(created, policy, rnd):
    checkpoints = [Checkpoint(checkpoint_id=f"c{i}", commit=f"{i:040x}", agent_id="x", created=t,
                              message="m", names=("n",) if i % 7 == 3 else ())
                   for i, t in enumerate(created)]
    now = max(created) + timedelta(hours=1)
    decisions = plan(checkpoints, policy, now)
    assert [d.checkpoint for d in decisions] == checkpoints
    assert all(d.keep == bool(d.reasons) for d in decisions)
    newest_first = sorted(decisions, key=lambda d: d.checkpoint.created, reverse=True)
    if policy.empty:
        assert all(d.keep for d in decisions)
        return
    assert newest_first[0].keep
    if policy.keep_last is not None:
        assert [("last" in d.reasons) for d in newest_first] == \
            [i < policy.keep_last for i in range(len(newest_first))]
    for bucket in ("hourly", "daily", "weekly", "monthly", "yearly"):
        count = getattr(policy, f"keep_{bucket}")
        marked = [d for d in decisions if bucket in d.reasons or f"{bucket} (oldest)" in d.reasons]
        assert len(marked) <= (count or 0)
    for d in decisions:
        assert ("named" in d.reasons) == (policy.keep_named and bool(d.checkpoint.names))
    shuffled = list(checkpoints)
    rnd.shuffle(shuffled)
    again = {d.checkpoint.checkpoint_id: d.reasons for d in plan(shuffled, policy, now)}
    assert again == {d.checkpoint.checkpoint_id: d.reasons for d in decisions}
