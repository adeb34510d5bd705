"""Retention policies and their planning: which checkpoints a policy keeps, and why.

:func:`plan` is a pure function of the checkpoints, the policy and the time
``now``; it follows restic's ``forget`` rules with the departures listed in
``docs/retention.md`` (buckets in UTC, ``keep_within`` counted back from
``now``, the latest checkpoint always kept, names kept unless
``keep_named=False``).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import InvalidArgumentError
from .models import Checkpoint

_DURATION = re.compile(r"(?:(\d{1,12})y)?(?:(\d{1,12})m)?(?:(\d{1,12})d)?(?:(\d{1,12})h)?")
_LONGEST_YEARS = 10_000  # no two datetimes are further apart


@dataclass(frozen=True)
class Duration:
    """A restic-style duration: years, months, days, hours (``"1y5m7d2h"``; ``m`` is months).

    Each part is a whole number >= 0; neither the years and months nor the
    days and hours may add up to more than 10,000 years.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def __post_init__(self) -> None:
        for name in ("years", "months", "days", "hours"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidArgumentError(f"Duration {name} must be a whole number >= 0, got {value!r}")
        if (self.years * 12 + self.months > _LONGEST_YEARS * 12
                or self.days * 24 + self.hours > _LONGEST_YEARS * 366 * 24):
            raise InvalidArgumentError(f"keep_within {str(self)!r} is longer than {_LONGEST_YEARS:,} "
                                       "years, more than any two times are apart")

    @classmethod
    def parse(cls, value: str | timedelta | Duration) -> Duration:
        """Read ``"1y5m7d2h"`` (any parts, in that order) or a whole-hour ``timedelta``."""
        if isinstance(value, Duration):
            return value
        if isinstance(value, timedelta):
            hours, rest = divmod(value, timedelta(hours=1))
            if rest or hours < 0:
                raise InvalidArgumentError(f"keep_within {value!r} must be a non-negative "
                                           "whole number of hours")
            return cls(days=hours // 24, hours=hours % 24)
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if not value or match is None:
            raise InvalidArgumentError(f"keep_within {value!r} is not a duration such as "
                                       "'7d', '12h' or '1y5m7d2h' (y years, m months, d days, h hours)")
        return cls(*(int(part or 0) for part in match.groups()))

    def before(self, when: datetime) -> datetime:
        """``when`` minus this duration (months and years by the calendar, day clamped);
        the earliest datetime (year 1) if it reaches further back."""
        earliest = datetime.min.replace(tzinfo=when.tzinfo)
        months = when.year * 12 + when.month - 1 - self.years * 12 - self.months
        if months < 12:
            return earliest
        year, month = divmod(months, 12)
        day = min(when.day, calendar.monthrange(year, month + 1)[1])
        try:
            shifted = when.replace(year=year, month=month + 1, day=day)
            return shifted - timedelta(days=self.days, hours=self.hours)
        except OverflowError:
            return earliest

    def __str__(self) -> str:
        text = "".join(f"{n}{unit}" for n, unit in
                       ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")) if n)
        return text or "0h"


_BUCKETS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar())[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


@dataclass(frozen=True)
class RetentionPolicy:
    """Which checkpoints of an agent to keep; a policy with no ``keep_*`` rule keeps all.

    Counts are ``None`` (rule off) or ``>= 0``. ``keep_within`` is a duration
    (``"7d"``, ``"1y5m7d2h"`` or a ``timedelta``). ``keep_named`` keeps every
    checkpoint that has a name.
    """

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: Duration | str | timedelta | None = None
    keep_named: bool = True

    def __post_init__(self) -> None:
        for name in ("keep_last", *(f"keep_{b}" for b in _BUCKETS)):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise InvalidArgumentError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.keep_within is not None:
            object.__setattr__(self, "keep_within", Duration.parse(self.keep_within))
        if not isinstance(self.keep_named, bool):
            raise InvalidArgumentError(f"keep_named must be True or False, got {self.keep_named!r}")

    @property
    def empty(self) -> bool:
        """True when no ``keep_*`` rule is set (then nothing is removed)."""
        return self.keep_last is None and self.keep_within is None and all(
            getattr(self, f"keep_{b}") is None for b in _BUCKETS)

    def as_dict(self) -> dict[str, object]:
        """The rules that are set, as JSON-ready values."""
        result: dict[str, object] = {}
        for name in ("keep_last", *(f"keep_{b}" for b in _BUCKETS), "keep_within"):
            value = getattr(self, name)
            if value is not None:
                result[name] = str(value) if name == "keep_within" else value
        result["keep_named"] = self.keep_named
        return result


@dataclass(frozen=True)
class Decision:
    """One checkpoint and whether the policy keeps it, with the rules that keep it."""

    checkpoint: Checkpoint
    keep: bool
    reasons: tuple[str, ...] = field(default=())


def plan(checkpoints: Sequence[Checkpoint], policy: RetentionPolicy,
         now: datetime) -> list[Decision]:
    """Decide keep/remove for each checkpoint of one agent; results in the input order.

    Checkpoints are ranked newest first by creation time (ties: input order,
    which for :meth:`StateRepository.log` is newest first). Rules, each adding
    a reason: ``last`` (the newest ``keep_last``), ``hourly``/``daily``/
    ``weekly``/``monthly``/``yearly`` (the newest checkpoint of each of the
    newest N periods having one, in UTC; if fewer than N periods have one, the
    oldest checkpoint is kept too, as ``<period> (oldest)`` when its period
    already had a newer one), ``within <d>`` (created at or after ``now - d``),
    ``named``. The newest checkpoint is always kept (``latest``). An empty policy keeps
    everything (``no policy``).
    """
    if now.tzinfo is None:
        raise InvalidArgumentError(f"now must be a timezone-aware datetime, got {now!r}")
    order = sorted(range(len(checkpoints)), key=lambda i: (-checkpoints[i].created.timestamp(), i))
    reasons: list[list[str]] = [[] for _ in checkpoints]
    if policy.empty:
        return [Decision(c, True, ("no policy",)) for c in checkpoints]
    for rank, i in enumerate(order):
        if policy.keep_last is not None and rank < policy.keep_last:
            reasons[i].append("last")
    for bucket, key in _BUCKETS.items():
        count = getattr(policy, f"keep_{bucket}")
        if count is None:
            continue
        last = None
        for rank, i in enumerate(order):
            if count == 0:
                break
            value = key(checkpoints[i].created)
            if value != last:
                reasons[i].append(bucket)
            elif rank == len(order) - 1:  # periods left over: restic keeps the oldest too
                reasons[i].append(f"{bucket} (oldest)")
            else:
                continue
            last = value
            count -= 1
    if isinstance(policy.keep_within, Duration):
        cutoff = policy.keep_within.before(now)
        for i in order:
            if checkpoints[i].created >= cutoff:
                reasons[i].append(f"within {policy.keep_within}")
    for i, checkpoint in enumerate(checkpoints):
        if policy.keep_named and checkpoint.names:
            reasons[i].append("named")
    if order and not reasons[order[0]]:
        reasons[order[0]].append("latest")
    return [Decision(c, bool(r), tuple(r)) for c, r in zip(checkpoints, reasons, strict=True)]
