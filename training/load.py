"""Fitness (CTL), fatigue (ATL) and form (TSB) from daily training stress: the Performance Manager model.

Definitions (Allen, H. & Coggan, A., *Training and Racing with a Power Meter*, 2nd ed., VeloPress 2010, chapter
"Using the Performance Manager"; TrainingPeaks, "What is the Performance Management Chart?",
trainingpeaks.com/learn/articles/what-is-the-performance-management-chart/):

* chronic training load, "fitness": ``CTL_d = CTL_{d-1} + (TSS_d - CTL_{d-1}) / 42``, an exponentially weighted
  average of daily TSS with a 42-day time constant;
* acute training load, "fatigue": ``ATL_d = ATL_{d-1} + (TSS_d - ATL_{d-1}) / 7`` (7-day time constant);
* training stress balance, "form": TrainingPeaks shows on day d yesterday's fitness minus yesterday's fatigue,
  ``TSB_d = CTL_{d-1} - ATL_{d-1}``: the form the athlete brings into day d, before its training. This module
  returns exactly that: a point's `tsb` is NOT its own ``ctl - atl`` (that is the next day's form).
* ramp rate: the change of CTL over 7 days, ``CTL_d - CTL_{d-7}`` (TrainingPeaks "Fitness ramp rate"), in CTL
  points per week.

`load_series` gives every day's point with that day's TSB (the TrainingPeaks chart convention). A summary "as of"
day d (`training_load_summary`, the Training Load Auditor, the chat tool `get_training_load`) reports instead
``tsb = CTL_d - ATL_d``: the form the athlete takes into day d + 1, its date given as ``tsb_for`` ("TSB = CTL -
ATL, for the next day"; docs/architecture.md). That is TrainingPeaks' TSB on d + 1 and intervals.icu's "form" on d
(intervals.icu subtracts the same day's fatigue from the same day's fitness; its CTL and ATL are TrainingPeaks').

Week-scale measures, over the days up to and including d (rest days count as 0):

* acute:chronic workload ratio (Gabbett, T. J., "The training-injury prevention paradox: should athletes be
  training smarter and harder?", Br J Sports Med 50:273-280, 2016): ``ACWR = (7-day load / 7) / (28-day load / 28)``
  with rolling averages. This is the *coupled* ratio: the 28 days include the 7 acute days (as in Gabbett's
  paper); Lolli et al. (Br J Sports Med 53:921-922, 2019) argue for the uncoupled one (chronic = days 8-28), which
  reads higher when load rises. None when the 28-day load is 0.
* monotony (Foster, C., "Monitoring training in athletes with reference to overtraining syndrome", Med Sci
  Sports Exerc 30(7):1164-1168, 1998): mean / standard deviation of the last 7 daily loads, with the population
  standard deviation (ddof = 0; the sample one would give a monotony lower by sqrt(6/7)). None when the standard
  deviation is 0 (no load at all, or the very same load every day: see `training.flags` for the latter).
* strain (Foster 1998): the 7-day load times the monotony; None when the monotony is None.

A day without an entry in the daily TSS is a rest day (TSS 0). Loads are in TSS points (per day for CTL, ATL, TSB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

CTL_TIME_CONSTANT_DAYS = 42
"""Time constant (days) of chronic training load (Allen & Coggan 2010; TrainingPeaks default)."""

ATL_TIME_CONSTANT_DAYS = 7
"""Time constant (days) of acute training load (Allen & Coggan 2010; TrainingPeaks default)."""

RAMP_RATE_DAYS = 7
"""Ramp rate is the CTL change over this many days (TrainingPeaks ramp rate: CTL change per week)."""

SUMMARY_DEFAULT_HISTORY_DAYS = 90
"""`training_load_summary` starts at least this many days before `as_of` (earlier when data starts earlier)."""

LOAD_HISTORY_DAYS = 365
"""Days of rides before `as_of` read to compute CTL: a load this old weighs (41/42)^365 ≈ 1.5e-4 of its day's
share, so starting from 0 a year back changes CTL by less than 0.02 % of what it was then."""

ACWR_ACUTE_DAYS = 7
"""Acute window of the acute:chronic workload ratio, days (Gabbett 2016)."""

ACWR_CHRONIC_DAYS = 28
"""Chronic window of the acute:chronic workload ratio, days (Gabbett 2016); it includes the acute days."""

MONOTONY_DAYS = 7
"""Monotony and strain are computed over this many days (Foster 1998: one week)."""


@dataclass(frozen=True)
class LoadPoint:
    """Training load on one day.

    Attributes:
        date: the day.
        tss: training stress of the day (0 on a rest day).
        ctl: chronic training load (fitness) at the end of the day, this day's TSS included.
        atl: acute training load (fatigue) at the end of the day, this day's TSS included.
        tsb: training stress balance (form) for this day = ctl − atl at the end of the previous day.
    """

    date: date
    tss: float
    ctl: float
    atl: float
    tsb: float


def load_series(
    daily_tss: Mapping[date, float],
    start: date,
    end: date,
    *,
    ctl_start: float = 0.0,
    atl_start: float = 0.0,
) -> list[LoadPoint]:
    """Compute CTL, ATL and TSB for every day from `start` to `end`, both included.

    Args:
        daily_tss: TSS per day; days absent are rest days (0). Days outside the range are ignored.
        start: first day.
        end: last day, not before `start`.
        ctl_start: CTL at the end of the day before `start`.
        atl_start: ATL at the end of the day before `start`.

    Returns:
        One `LoadPoint` per day, in date order (``(end - start).days + 1`` points).

    Raises:
        ValueError: `end` before `start`, or a TSS in the range (or a start value) that is negative or not finite.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    for name, value in (("ctl_start", ctl_start), ("atl_start", atl_start)):
        _check_load(name, value)
    ctl, atl = float(ctl_start), float(atl_start)
    points: list[LoadPoint] = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        tss = float(daily_tss.get(day, 0.0))
        _check_load(f"TSS on {day}", tss)
        tsb = ctl - atl
        ctl += (tss - ctl) / CTL_TIME_CONSTANT_DAYS
        atl += (tss - atl) / ATL_TIME_CONSTANT_DAYS
        points.append(LoadPoint(day, tss, ctl, atl, tsb))
    return points


def training_load_summary(daily_tss: Mapping[date, float], as_of: date) -> dict[str, Any]:
    """Summarise training load on day `as_of`: the Training Load Auditor's and `get_training_load`'s figures.

    The series starts from zero on the earlier of the first day with data and ``as_of − 90 days`` (starting at the
    first day with data loses nothing: the loads are 0 before it), so all history given is used. TSS after `as_of`
    is ignored.

    Args:
        daily_tss: TSS per day (rest days may be absent).
        as_of: the day summarised (its TSS included).

    Returns:
        A dict (floats rounded: loads to 1 decimal, ratios to 2, strain to 0)::

            {"as_of": date, "tsb_for": date (as_of + 1),
             "ctl": float, "atl": float,   # at the end of as_of, its TSS included
             "tsb": float,                 # CTL − ATL at the end of as_of: form for `tsb_for`
             "ramp_rate": float,           # CTL(as_of) − CTL(as_of − 7 days), CTL points per week
             "acwr": float | None, "monotony": float | None, "strain": float | None,
             "weekly_tss": float,          # load of the 7 days ending on as_of
             "chronic_daily_tss": float,   # mean daily load of the 28 days ending on as_of
             "days_of_data": int}

        `days_of_data` counts the days from the first day with TSS > 0 up to `as_of`, both included (0 when there
        is none): below 42 days CTL is still building up from 0 and understates fitness.

    Raises:
        ValueError: a TSS up to `as_of` that is negative or not finite.
    """
    for day, tss in daily_tss.items():
        if day <= as_of:
            _check_load(f"TSS on {day}", float(tss))
    data_days = sorted(d for d, tss in daily_tss.items() if d <= as_of and tss > 0)
    first = data_days[0] if data_days else None
    start = as_of - timedelta(days=SUMMARY_DEFAULT_HISTORY_DAYS)
    if first is not None and first < start:
        start = first
    series = load_series(daily_tss, start, as_of)
    today, week_ago = series[-1], series[-1 - RAMP_RATE_DAYS]
    weekly = window_load(daily_tss, as_of, ACWR_ACUTE_DAYS)
    ratio = acute_chronic_ratio(daily_tss, as_of)
    mono = monotony(daily_tss, as_of)
    week_strain = strain(daily_tss, as_of)
    return {
        "as_of": as_of,
        "tsb_for": as_of + timedelta(days=1),
        "ctl": round(today.ctl, 1),
        "atl": round(today.atl, 1),
        "tsb": round(today.ctl - today.atl, 1),
        "ramp_rate": round(today.ctl - week_ago.ctl, 1),
        "acwr": None if ratio is None else round(ratio, 2),
        "monotony": None if mono is None else round(mono, 2),
        "strain": None if week_strain is None else round(week_strain),
        "weekly_tss": round(weekly, 1),
        "chronic_daily_tss": round(window_load(daily_tss, as_of, ACWR_CHRONIC_DAYS) / ACWR_CHRONIC_DAYS, 1),
        "days_of_data": 0 if first is None else (as_of - first).days + 1,
    }


def window_loads(daily_tss: Mapping[date, float], end: date, days: int) -> list[float]:
    """Return the daily loads of the `days` days ending on `end` (included), oldest first, rest days as 0.

    Raises:
        ValueError: `days` < 1, or a load in the window that is negative or not finite.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    loads = []
    for offset in range(days - 1, -1, -1):
        day = end - timedelta(days=offset)
        tss = float(daily_tss.get(day, 0.0))
        _check_load(f"TSS on {day}", tss)
        loads.append(tss)
    return loads


def window_load(daily_tss: Mapping[date, float], end: date, days: int) -> float:
    """Total load (TSS) of the `days` days ending on `end` (included); see `window_loads`."""
    return float(sum(window_loads(daily_tss, end, days)))


def acute_chronic_ratio(daily_tss: Mapping[date, float], as_of: date) -> float | None:
    """Acute:chronic workload ratio on `as_of`, coupled rolling averages (Gabbett 2016; module docstring).

    ``(load of the 7 days ending on as_of / 7) / (load of the 28 days ending on as_of / 28)``.

    Returns:
        The ratio (dimensionless; 1.0 for a steady load), or None when the 28-day load is 0.
    """
    chronic = window_load(daily_tss, as_of, ACWR_CHRONIC_DAYS) / ACWR_CHRONIC_DAYS
    if chronic <= 0:
        return None
    return (window_load(daily_tss, as_of, ACWR_ACUTE_DAYS) / ACWR_ACUTE_DAYS) / chronic


def monotony(daily_tss: Mapping[date, float], as_of: date) -> float | None:
    """Training monotony of the 7 days ending on `as_of` (Foster 1998): mean / population standard deviation.

    Returns:
        The monotony (dimensionless), or None when the standard deviation is 0 (every day the same load, rest
        weeks included): the ratio is then undefined.
    """
    loads = window_loads(daily_tss, as_of, MONOTONY_DAYS)
    mean = sum(loads) / len(loads)
    sd = math.sqrt(sum((x - mean) ** 2 for x in loads) / len(loads))
    if sd <= 1e-9 * max(1.0, mean):
        return None
    return mean / sd


def strain(daily_tss: Mapping[date, float], as_of: date) -> float | None:
    """Training strain of the 7 days ending on `as_of` (Foster 1998): weekly load (TSS) × monotony.

    Returns:
        The strain (TSS), or None when the monotony is None.
    """
    mono = monotony(daily_tss, as_of)
    return None if mono is None else window_load(daily_tss, as_of, MONOTONY_DAYS) * mono


def _check_load(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value}")
