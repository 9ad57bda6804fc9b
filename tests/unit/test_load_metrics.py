"""Week-scale load measures (ACWR, monotony, strain) and the summary's conventions (training.load)."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from training.load import (
    acute_chronic_ratio,
    load_series,
    monotony,
    strain,
    training_load_summary,
    window_load,
    window_loads,
)

D0 = date(2026, 3, 2)  # a Monday


def _week(loads: list[float], start: date = D0) -> dict[date, float]:
    return {start + timedelta(days=i): tss for i, tss in enumerate(loads)}


def test_ctl_and_atl_are_the_exponentially_weighted_sums():
    # An independent form of the same model: CTL_n = sum_k TSS_k / 42 * (41/42)^(n-k) (Coggan's impulse response
    # with the TrainingPeaks constants), on an irregular series with rest days.
    rng = random.Random(7)
    daily = {D0 + timedelta(days=i): float(rng.choice([0, 0, 35, 60, 90, 150])) for i in range(120)}
    end = D0 + timedelta(days=119)
    series = load_series(daily, D0, end)
    for n in (0, 6, 41, 119):
        days = [D0 + timedelta(days=k) for k in range(n + 1)]
        ctl = sum(daily[d] / 42 * (41 / 42) ** (n - k) for k, d in enumerate(days))
        atl = sum(daily[d] / 7 * (6 / 7) ** (n - k) for k, d in enumerate(days))
        assert series[n].ctl == pytest.approx(ctl, rel=1e-12)
        assert series[n].atl == pytest.approx(atl, rel=1e-12)


def test_first_week_by_hand():
    # 7 days at 100 TSS from zero: CTL = 100 (1 - (41/42)^7) = 15.52, ATL = 100 (1 - (6/7)^7) = 66.01
    summary = training_load_summary(_week([100.0] * 7), D0 + timedelta(days=6))
    assert summary["ctl"] == 15.5 and summary["atl"] == 66.0
    assert summary["tsb"] == -50.5
    assert summary["ramp_rate"] == 15.5  # from 0 a week earlier
    assert summary["weekly_tss"] == 700.0 and summary["days_of_data"] == 7


def test_summary_tsb_is_tomorrows_form_on_the_chart():
    daily = _week([80, 0, 120, 60, 0, 200, 90, 0, 40])
    as_of = D0 + timedelta(days=8)
    summary = training_load_summary(daily, as_of)
    tomorrow = load_series(daily, D0, as_of + timedelta(days=1))[-1]
    assert summary["tsb_for"] == tomorrow.date
    assert summary["tsb"] == round(tomorrow.tsb, 1)


def test_rest_week_raises_the_summary_tsb():
    block = {D0 + timedelta(days=i): 110.0 for i in range(42)}
    end_of_block = D0 + timedelta(days=41)
    tsbs = [training_load_summary(block, end_of_block + timedelta(days=i))["tsb"] for i in range(8)]
    assert tsbs[0] < -5 and tsbs == sorted(tsbs) and tsbs[-1] > 15


def test_acwr_by_hand_and_coupled():
    # 21 days at 50, then 7 days at 100: acute 100/day, chronic (21*50 + 7*100)/28 = 62.5/day
    daily = {D0 + timedelta(days=i): 50.0 for i in range(21)} | {D0 + timedelta(days=21 + i): 100.0 for i in range(7)}
    as_of = D0 + timedelta(days=27)
    assert acute_chronic_ratio(daily, as_of) == pytest.approx(100 / 62.5)
    assert training_load_summary(daily, as_of)["acwr"] == 1.6
    # a steady load reads 1.0; loads older than 28 days do not count
    steady = {D0 + timedelta(days=i): 70.0 for i in range(60)} | {D0 - timedelta(days=1): 9999.0}
    assert acute_chronic_ratio(steady, D0 + timedelta(days=59)) == pytest.approx(1.0)


def test_acwr_is_none_without_chronic_load():
    assert acute_chronic_ratio({}, D0) is None
    assert acute_chronic_ratio({D0 - timedelta(days=28): 100.0}, D0) is None  # just outside the 28 days
    assert acute_chronic_ratio({D0 - timedelta(days=27): 100.0}, D0) == 0.0  # inside chronic, outside acute


def test_monotony_and_strain_by_hand():
    loads = [100.0, 0.0, 50.0, 100.0, 0.0, 80.0, 70.0]
    daily = _week(loads)
    as_of = D0 + timedelta(days=6)
    mean = sum(loads) / 7
    sd = math.sqrt(sum((x - mean) ** 2 for x in loads) / 7)  # population standard deviation
    assert monotony(daily, as_of) == pytest.approx(mean / sd)
    assert strain(daily, as_of) == pytest.approx(sum(loads) * mean / sd)
    summary = training_load_summary(daily, as_of)
    assert summary["monotony"] == round(mean / sd, 2)
    assert summary["strain"] == round(sum(loads) * mean / sd)


def test_monotony_undefined_when_every_day_is_the_same():
    assert monotony(_week([60.0] * 7), D0 + timedelta(days=6)) is None
    assert monotony({}, D0) is None
    assert strain({}, D0) is None


def test_window_loads_fill_rest_days_and_check_input():
    daily = {D0: 10.0, D0 + timedelta(days=2): 30.0}
    assert window_loads(daily, D0 + timedelta(days=2), 4) == [0.0, 10.0, 0.0, 30.0]
    assert window_load(daily, D0 + timedelta(days=2), 4) == 40.0
    with pytest.raises(ValueError, match="at least 1"):
        window_loads(daily, D0, 0)
    with pytest.raises(ValueError, match="TSS on"):
        window_loads({D0: -5.0}, D0, 3)
