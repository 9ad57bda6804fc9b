"""Compliance with the plan per day and per week, and recurring skipped workouts written as athlete facts.

Compliance per day is `training.compare.compare_day` (TrainingPeaks compliance colours, statuses ``done``,
``partial``, ``missed``, ``unplanned``, ``rest``), plus ``open``: a workout planned on the day still in progress
(today, when the audit runs before the day is over) that has no ride yet is not counted as missed.

Weeks run Monday to Sunday (ISO 8601 weeks, the TrainingPeaks calendar week), and only count days up to the day
audited.

Recurring skips (a rule of this project, not a published one; chosen so one bad week is not a pattern):

* an *occurrence* is a day, within the last `PATTERN_LOOKBACK_DAYS` (56) days up to the day audited, on which
  training (not rest) was planned and the day is over; for a weekday, the days of that weekday; for a kind of
  workout, the days on which that kind was planned;
* an occurrence is *skipped* when the day's status is ``missed`` (nothing ridden at all); a shortened ride
  (``partial``) is not a skip;
* a weekday or a kind is a recurring skip when it was skipped on at least `PATTERN_MIN_SKIPPED` (3) of its last
  `PATTERN_OCCURRENCES` (4) occurrences (fewer occurrences than 4 in the window: still 3 skips needed);
* a pattern already written as a fact is *cleared* when at most `PATTERN_CLEARED_MAX_SKIPPED` (1) of its last 4
  occurrences (at least 2 of them) were skipped; in between it stays as it is (hysteresis, so a pattern does not
  flicker).

A weekday pattern whose skipped days all planned the same single kind names that kind ("skips Monday recovery
rides"); a kind pattern whose skips are all part of such a weekday pattern is not repeated. Each pattern becomes
one fact (source ``training_load_auditor``) whose value names the skipped dates: its evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from training.compare import REST_KINDS, compare_day
from training.records import FactChange

PATTERN_LOOKBACK_DAYS = 56
"""Occurrences older than this many days before the audited day are not considered (8 weeks)."""

PATTERN_OCCURRENCES = 4
"""A pattern looks at the last this many planned occurrences."""

PATTERN_MIN_SKIPPED = 3
"""Skipped on at least this many of them: a recurring pattern."""

PATTERN_CLEARED_MAX_SKIPPED = 1
"""A written pattern is cleared when at most this many of the last occurrences were skipped."""

PATTERN_FACT_PREFIX = "pattern_skips_"
"""Fact keys of recurring skips start with this; the Auditor only ever clears keys it wrote with it."""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_TRAINING_STATUSES = frozenset({"done", "partial", "missed"})


def _is_training(kind: Any) -> bool:
    return str(kind or "").strip().lower() not in REST_KINDS


def compliance_days(
    planned: Iterable[Mapping[str, Any]],
    rides_by_day: Mapping[date, Sequence[Mapping[str, Any]]],
    start: date,
    end: date,
    *,
    open_day: date | None = None,
) -> list[dict[str, Any]]:
    """Compare plan and rides for every day from `start` to `end`, both included.

    Args:
        planned: planned workouts (dicts with ``date``, ``kind``, ``duration_s``, ``tss``), any order; those
            outside the range are ignored.
        rides_by_day: the rides of each local day (dicts with ``moving_s``, ``tss``, ``hr_tss``).
        start: first day.
        end: last day (the day audited), not before `start`.
        open_day: a day still in progress (today): a workout planned on it without a ride yet gets status
            ``open`` instead of ``missed``.

    Returns:
        One dict per day, in date order: ``{"date": date, "weekday": "Monday", **compare_day(...)}`` (see
        `training.compare.compare_day`), with ``status`` possibly ``open``.

    Raises:
        ValueError: `end` before `start`.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    by_day: dict[date, list[dict[str, Any]]] = {}
    for workout in planned:
        day = workout["date"]
        if start <= day <= end:
            by_day.setdefault(day, []).append(dict(workout))
    days = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        rides = [dict(r) for r in rides_by_day.get(day, [])]
        result = compare_day(sorted(by_day.get(day, []), key=lambda w: str(w["kind"])), rides)
        if day == open_day and result["status"] == "missed":
            result = {**result, "status": "open", "compliance_colour": None}
            result["summary"] = "Planned today; not ridden yet (the day is not over)."
        days.append({"date": day, "weekday": day.strftime("%A"), **result})
    return days


def compliance_weeks(days: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Sum `compliance_days` output per ISO week (Monday to Sunday).

    Args:
        days: consecutive days from `compliance_days`.

    Returns:
        One dict per week with at least one of the days, oldest first::

            {"week_start": date (Monday), "days": int (days of the week covered),
             "planned_workouts": int (days with training planned), "done": int, "partial": int, "missed": int,
             "open": int, "unplanned": int,
             "planned_tss": float, "actual_tss": float, "planned_duration_s": float, "actual_moving_s": float,
             "tss_compliance": float | None,        # actual / planned TSS, 2 decimals; None when none planned
             "duration_compliance": float | None}   # actual moving time / planned duration, likewise

        Actual totals count every ride of the week, planned or not (as TrainingPeaks' weekly summary does).
    """
    weeks: dict[date, dict[str, Any]] = {}
    for d in days:
        monday = d["date"] - timedelta(days=d["date"].weekday())
        w = weeks.setdefault(
            monday,
            {
                "week_start": monday,
                "days": 0,
                "planned_workouts": 0,
                "done": 0,
                "partial": 0,
                "missed": 0,
                "open": 0,
                "unplanned": 0,
                "planned_tss": 0.0,
                "actual_tss": 0.0,
                "planned_duration_s": 0.0,
                "actual_moving_s": 0.0,
            },
        )
        w["days"] += 1
        status = d["status"]
        if status in _TRAINING_STATUSES or status == "open":
            w["planned_workouts"] += 1
        if status in ("done", "partial", "missed", "open", "unplanned"):
            w[status] += 1
        w["planned_tss"] += float(d.get("planned_tss") or 0.0)
        w["planned_duration_s"] += float(d.get("planned_duration_s") or 0.0)
        w["actual_tss"] += float(d.get("actual_tss") or 0.0)
        w["actual_moving_s"] += float(d.get("actual_moving_s") or 0.0)
    out = []
    for w in weeks.values():
        w["tss_compliance"] = _ratio(w["actual_tss"], w["planned_tss"])
        w["duration_compliance"] = _ratio(w["actual_moving_s"], w["planned_duration_s"])
        w["planned_tss"] = round(w["planned_tss"], 1)
        w["actual_tss"] = round(w["actual_tss"], 1)
        out.append(w)
    return sorted(out, key=lambda w: w["week_start"])


def _ratio(actual: float, planned: float) -> float | None:
    return None if planned <= 0 else round(actual / planned, 2)


@dataclass(frozen=True)
class SkipPattern:
    """A weekday and/or a kind of workout skipped again and again.

    Attributes:
        weekday: e.g. ``"Monday"``, or None for a kind skipped on various days.
        kind: planned kind (lower case), or None for a weekday whose skipped workouts were of several kinds.
        skipped_dates: the skipped occurrences among the last ones examined, oldest first (the evidence).
        occurrence_dates: the occurrences examined (at most `PATTERN_OCCURRENCES`), oldest first.
    """

    weekday: str | None
    kind: str | None
    skipped_dates: tuple[date, ...]
    occurrence_dates: tuple[date, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """Fact key: ``pattern_skips_<weekday>_<kind>`` (either part may be absent), at most 64 characters."""
        return pattern_key(self.weekday, self.kind)

    @property
    def description(self) -> str:
        """The fact's value: what is skipped, how often, and on which dates (under 200 characters)."""
        what = " ".join(p for p in (self.weekday, self.kind) if p) + " workouts"
        dates = ", ".join(d.isoformat() for d in self.skipped_dates)
        n, total = len(self.skipped_dates), len(self.occurrence_dates)
        return f"skips {what}: missed {n} of the last {total} planned ({dates})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: key, weekday, kind, description, ISO dates."""
        return {
            "key": self.key,
            "weekday": self.weekday,
            "kind": self.kind,
            "description": self.description,
            "skipped_dates": [d.isoformat() for d in self.skipped_dates],
            "occurrence_dates": [d.isoformat() for d in self.occurrence_dates],
        }


def pattern_key(weekday: str | None, kind: str | None) -> str:
    """Fact key of a skip pattern: ``pattern_skips_`` + weekday and/or kind slug (snake_case, ≤ 64 characters).

    Raises:
        ValueError: neither a weekday nor a kind.
    """
    parts = [_slug(p) for p in (weekday, kind) if p]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError("a skip pattern needs a weekday or a kind")
    return (PATTERN_FACT_PREFIX + "_".join(parts))[:64].rstrip("_")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def _occurrences(
    days: Sequence[Mapping[str, Any]], as_of: date, lookback_days: int
) -> list[tuple[date, str, list[str]]]:
    """(date, status, training kinds) of the days with training planned that are over, within the window."""
    first = as_of - timedelta(days=lookback_days - 1)
    found = []
    for d in days:
        if not (first <= d["date"] <= as_of) or d["status"] not in _TRAINING_STATUSES:
            continue
        kinds = [str(k).strip().lower() for k in d.get("planned_kinds") or [] if _is_training(k)]
        found.append((d["date"], d["status"], kinds))
    return sorted(found)


def _last(occ: list[tuple[date, str, list[str]]], n: int) -> list[tuple[date, str, list[str]]]:
    return occ[-n:]


def recurring_skips(
    days: Sequence[Mapping[str, Any]],
    as_of: date,
    *,
    occurrences: int = PATTERN_OCCURRENCES,
    min_skipped: int = PATTERN_MIN_SKIPPED,
    lookback_days: int = PATTERN_LOOKBACK_DAYS,
) -> list[SkipPattern]:
    """Find weekdays and kinds of workout skipped on most of their last planned occurrences (module docstring).

    Args:
        days: `compliance_days` output covering at least the lookback window.
        as_of: the day audited (occurrences after it are ignored).
        occurrences: how many of the last occurrences are examined.
        min_skipped: skips among them that make a pattern.
        lookback_days: occurrences older than this are ignored.

    Returns:
        The patterns, weekday patterns first (Monday to Sunday), then kind patterns (alphabetical).
    """
    occ = _occurrences(days, as_of, lookback_days)
    patterns: list[SkipPattern] = []
    for weekday in WEEKDAYS:
        last = _last([o for o in occ if o[0].strftime("%A").lower() == weekday], occurrences)
        skipped = [o for o in last if o[1] == "missed"]
        if len(skipped) < min_skipped:
            continue
        kind_sets = {frozenset(o[2]) for o in skipped}
        kind = None
        if len(kind_sets) == 1:
            (only,) = kind_sets
            if len(only) == 1 and _slug(next(iter(only))):
                (kind,) = only
        patterns.append(
            SkipPattern(weekday.capitalize(), kind, tuple(o[0] for o in skipped), tuple(o[0] for o in last))
        )
    all_kinds = sorted({k for o in occ for k in o[2] if _slug(k)})  # a kind without letters or digits: no key
    for kind in all_kinds:
        last = _last([o for o in occ if kind in o[2]], occurrences)
        skipped = [o for o in last if o[1] == "missed"]
        if len(skipped) < min_skipped:
            continue
        dates = {o[0] for o in skipped}
        if any(p.kind == kind and dates <= set(p.skipped_dates) for p in patterns):
            continue  # already said by "skips <weekday> <kind> workouts"
        patterns.append(SkipPattern(None, kind, tuple(sorted(dates)), tuple(o[0] for o in last)))
    return patterns


def cleared_pattern_keys(
    keys: Iterable[str],
    days: Sequence[Mapping[str, Any]],
    as_of: date,
    *,
    occurrences: int = PATTERN_OCCURRENCES,
    max_skipped: int = PATTERN_CLEARED_MAX_SKIPPED,
    lookback_days: int = PATTERN_LOOKBACK_DAYS,
) -> list[str]:
    """Which written pattern facts no longer hold (module docstring: at most 1 skip in the last 4, ≥ 2 examined).

    Args:
        keys: fact keys written earlier (keys without `PATTERN_FACT_PREFIX` are ignored).
        days: `compliance_days` output covering the lookback window.
        as_of: the day audited.
        occurrences: how many of the last occurrences are examined.
        max_skipped: at most this many skips clear the pattern.
        lookback_days: occurrences older than this are ignored.

    Returns:
        The keys to clear, in the order given.
    """
    occ = _occurrences(days, as_of, lookback_days)
    cleared = []
    for key in keys:
        if not key.startswith(PATTERN_FACT_PREFIX):
            continue
        rest = key[len(PATTERN_FACT_PREFIX) :]
        weekday = next((w for w in WEEKDAYS if rest == w or rest.startswith(w + "_")), None)
        kind_slug = rest[len(weekday) + 1 :] if weekday else rest
        matching = [
            o
            for o in occ
            if (weekday is None or o[0].strftime("%A").lower() == weekday)
            and (not kind_slug or any(_slug(k) == kind_slug for k in o[2]))
        ]
        last = _last(matching, occurrences)
        if len(last) >= 2 and sum(o[1] == "missed" for o in last) <= max_skipped:
            cleared.append(key)
    return cleared


def pattern_fact_changes(patterns: Iterable[SkipPattern]) -> list[FactChange]:
    """One fact per pattern: key `SkipPattern.key`, value `SkipPattern.description` (its evidence dates)."""
    return [FactChange(p.key, p.description) for p in patterns]
