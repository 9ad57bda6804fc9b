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
* ramp rate: the change of CTL over 7 days, ``CTL_d - CTL_{d-7}`` (TrainingPeaks "Fitness ramp rate").

A day without an entry in the daily TSS is a rest day (TSS 0). Values are in TSS points per day.
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
    """Summarise training load on day `as_of`, the way a Performance Management Chart reads that day.

    The series starts from zero on the earlier of the first day with data and ``as_of − 90 days`` (starting at the
    first day with data loses nothing: the loads are 0 before it), so all history is used. TSS after `as_of` is
    ignored.

    Args:
        daily_tss: TSS per day (rest days may be absent).
        as_of: the day summarised.

    Returns:
        ``{"as_of": date, "ctl": float, "atl": float, "tsb": float, "ramp_rate": float, "days_of_data": int}``:
        CTL and ATL at the end of `as_of` (its TSS included), TSB the form for `as_of` (CTL − ATL at the end of
        the day before, see the module docstring), ramp rate ``CTL(as_of) − CTL(as_of − 7 days)``, all rounded
        to 1 decimal; `days_of_data` the number of days from the first day with TSS > 0 up to `as_of`, both
        included (0 when there is none): below 42 days, CTL is still building up and understates fitness.

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
    return {
        "as_of": as_of,
        "ctl": round(today.ctl, 1),
        "atl": round(today.atl, 1),
        "tsb": round(today.tsb, 1),
        "ramp_rate": round(today.ctl - week_ago.ctl, 1),
        "days_of_data": 0 if first is None else (as_of - first).days + 1,
    }


def _check_load(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value}")
