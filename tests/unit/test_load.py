"""Fitness, fatigue and form (training.load)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from training.load import LoadPoint, load_series, training_load_summary

D0 = date(2026, 1, 1)


def _days(n: int, tss: float, start: date = D0) -> dict[date, float]:
    return {start + timedelta(days=i): tss for i in range(n)}


def test_constant_daily_tss_converges_to_that_tss():
    series = load_series(_days(400, 80.0), D0, D0 + timedelta(days=399))
    last = series[-1]
    assert last.ctl == pytest.approx(80.0, abs=0.01)
    assert last.atl == pytest.approx(80.0, abs=1e-9)
    assert last.tsb == pytest.approx(0.0, abs=0.01)


def test_a_step_follows_the_closed_form():
    n_days = 30
    series = load_series(_days(n_days, 100.0), D0, D0 + timedelta(days=n_days - 1))
    for n, point in enumerate(series, start=1):
        assert point.ctl == pytest.approx(100.0 * (1 - (1 - 1 / 42) ** n), rel=1e-12)
        assert point.atl == pytest.approx(100.0 * (1 - (1 - 1 / 7) ** n), rel=1e-12)
    # first day by hand: CTL = 0 + (100 - 0) / 42, ATL = 100 / 7, form coming into day 1 = 0
    assert series[0] == LoadPoint(D0, 100.0, 100 / 42, 100 / 7, 0.0)


def test_tsb_is_the_previous_days_ctl_minus_atl():
    daily = {D0: 120.0, D0 + timedelta(days=1): 40.0, D0 + timedelta(days=3): 90.0}
    series = load_series(daily, D0, D0 + timedelta(days=6))
    for previous, point in zip(series, series[1:], strict=False):
        assert point.tsb == pytest.approx(previous.ctl - previous.atl)


def test_start_values_and_decay_over_rest_days():
    series = load_series({}, D0, D0 + timedelta(days=9), ctl_start=50.0, atl_start=70.0)
    assert series[0].tsb == pytest.approx(-20.0)
    assert all(p.tss == 0.0 for p in series)
    assert series[-1].ctl == pytest.approx(50.0 * (41 / 42) ** 10)
    assert series[-1].atl == pytest.approx(70.0 * (6 / 7) ** 10)


def test_rest_days_raise_tsb():
    block = _days(28, 100.0)
    end = D0 + timedelta(days=34)  # a hard block, then a week off
    series = load_series(block, D0, end)
    rest = series[28:]
    assert series[28].tsb < 0  # fatigued coming out of the block
    tsbs = [p.tsb for p in rest]
    assert tsbs == sorted(tsbs) and tsbs[-1] > tsbs[0] + 20
    assert rest[-1].ctl < series[27].ctl  # fitness decays, slowly


def test_days_outside_the_range_are_ignored_and_range_inclusive():
    daily = {D0 - timedelta(days=1): 500.0, D0: 42.0, D0 + timedelta(days=3): 500.0}
    series = load_series(daily, D0, D0 + timedelta(days=2))
    assert [p.date for p in series] == [D0, D0 + timedelta(days=1), D0 + timedelta(days=2)]
    assert series[0].ctl == pytest.approx(1.0)
    assert load_series({}, D0, D0)[0].ctl == 0.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_tss_raises(bad):
    with pytest.raises(ValueError, match="TSS on 2026-01-02"):
        load_series({D0 + timedelta(days=1): bad}, D0, D0 + timedelta(days=2))


def test_end_before_start_raises():
    with pytest.raises(ValueError, match="before start"):
        load_series({}, D0, D0 - timedelta(days=1))


def test_summary_of_a_steady_ramp():
    # 60 days at 50 TSS, then 14 days at 100 TSS
    daily = _days(60, 50.0) | _days(14, 100.0, D0 + timedelta(days=60))
    as_of = D0 + timedelta(days=73)
    summary = training_load_summary(daily, as_of)
    series = load_series(daily, D0, as_of)
    loads = [daily.get(as_of - timedelta(days=i), 0.0) for i in range(7)]
    mean = sum(loads) / 7
    assert summary == {
        "as_of": as_of,
        "tsb_for": as_of + timedelta(days=1),
        "ctl": round(series[-1].ctl, 1),
        "atl": round(series[-1].atl, 1),
        # form for the next day: this day's CTL - ATL, i.e. the next day's point on the chart
        "tsb": round(series[-1].ctl - series[-1].atl, 1),
        "ramp_rate": round(series[-1].ctl - series[-8].ctl, 1),
        "acwr": round((700 / 7) / ((14 * 100 + 14 * 50) / 28), 2),
        "monotony": None,  # 7 identical days: the standard deviation is 0
        "strain": None,
        "weekly_tss": round(7 * mean, 1),
        "chronic_daily_tss": 75.0,
        "days_of_data": 74,
    }
    assert summary["tsb"] == round(load_series(daily, D0, as_of + timedelta(days=1))[-1].tsb, 1)
    assert summary["ramp_rate"] > 5  # CTL is climbing
    assert summary["tsb"] < 0


def test_summary_ramp_rate_by_hand():
    # from zero, 7 days at 84 TSS: CTL(as_of) - CTL(as_of - 7) = 84 * (1 - (41/42)^7) - 0
    as_of = D0 + timedelta(days=6)
    summary = training_load_summary(_days(7, 84.0), as_of)
    assert summary["ramp_rate"] == round(84 * (1 - (41 / 42) ** 7), 1)
    assert summary["days_of_data"] == 7


def test_summary_uses_all_history_and_ignores_the_future():
    old = _days(30, 100.0, D0)
    as_of = D0 + timedelta(days=200)  # long after: CTL has decayed but is not zero
    future = {as_of + timedelta(days=1): 1000.0}
    summary = training_load_summary(old | future, as_of)
    expected_ctl = load_series(old, D0, as_of)[-1].ctl
    assert summary["ctl"] == round(expected_ctl, 1) and summary["ctl"] > 0
    assert summary["days_of_data"] == 201


def test_summary_without_data():
    assert training_load_summary({}, D0) == {
        "as_of": D0,
        "tsb_for": D0 + timedelta(days=1),
        "ctl": 0.0,
        "atl": 0.0,
        "tsb": 0.0,
        "ramp_rate": 0.0,
        "acwr": None,
        "monotony": None,
        "strain": None,
        "weekly_tss": 0.0,
        "chronic_daily_tss": 0.0,
        "days_of_data": 0,
    }
