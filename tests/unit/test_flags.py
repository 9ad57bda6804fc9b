"""Risk flags: each fires on a constructed series and stays silent on a normal one (training.flags)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from training.flags import (
    EVENT_TAPER_DAYS,
    assess_load,
    event_date_from_facts,
    form_zone,
    load_flags,
)
from training.load import training_load_summary

AS_OF = date(2026, 11, 26)  # a Thursday
# A sensible week: two hard days, a long ride, one day off (weekly TSS 490, monotony about 1.6).
NORMAL_WEEK = [70.0, 95.0, 45.0, 0.0, 100.0, 130.0, 50.0]


def history(days: int, week: list[float] = NORMAL_WEEK, end: date = AS_OF) -> dict[date, float]:
    """`days` days of a repeating week ending on `end` (rest days left out, as the store returns them)."""
    start = end - timedelta(days=days - 1)
    out = {}
    for i in range(days):
        tss = week[i % len(week)]
        if tss > 0:
            out[start + timedelta(days=i)] = tss
    return out


def with_last(days: dict[date, float], last: list[float], end: date = AS_OF) -> dict[date, float]:
    """Replace the last len(last) days ending on `end` (0 = rest)."""
    out = {d: v for d, v in days.items() if d <= end - timedelta(days=len(last))}
    for i, tss in enumerate(last):
        if tss > 0:
            out[end - timedelta(days=len(last) - 1 - i)] = tss
    return out


def codes(daily: dict[date, float], **kwargs) -> list[str]:
    return [f["code"] for f in assess_load(daily, AS_OF, **kwargs)["flags"]]


def test_a_normal_series_raises_no_flag():
    result = assess_load(history(120), AS_OF)
    assert result["flags"] == []
    assert 0.8 <= result["acwr"] <= 1.3 and result["monotony"] < 2 and abs(result["ramp_rate"]) < 2
    assert -30 <= result["tsb"] <= 25


def test_every_flag_explains_itself():
    daily = with_last(history(120), [150.0] * 7)
    flags = assess_load(daily, AS_OF)["flags"]
    assert {f["code"] for f in flags} >= {"tsb_high_risk", "ramp_rate_high", "acwr_high"}
    for f in flags:
        assert f["code"] and f["source"] and len(f["message"]) > 40
        assert set(f) == {"code", "message", "source", "value", "threshold"}


def test_tsb_high_risk():
    daily = with_last(history(120), [140.0, 150.0, 160.0, 150.0, 140.0, 150.0, 160.0])
    result = assess_load(daily, AS_OF)
    (flag,) = [f for f in result["flags"] if f["code"] == "tsb_high_risk"]
    assert result["tsb"] < -30 and flag["value"] == result["tsb"] and flag["threshold"] == -30
    assert "Fri 27 Nov" in flag["message"]  # the form is for the next day
    assert result["form_zone"]["code"] == "high_risk"


def test_ramp_rate_high_and_held_back_on_short_history():
    daily = with_last(history(120, [40.0]), [120.0] * 7)
    summary = training_load_summary(daily, AS_OF)
    assert summary["ramp_rate"] > 8
    assert "ramp_rate_high" in codes(daily)
    young = {d: v for d, v in daily.items() if d > AS_OF - timedelta(days=30)}
    assert "ramp_rate_high" not in codes(young) and "short_history" in codes(young)


def test_acwr_high_and_low():
    spike = with_last(history(120), [180.0, 0.0, 200.0, 190.0, 0.0, 210.0, 200.0])
    assert "acwr_high" in codes(spike)
    easy = with_last(history(120), [20.0, 0.0, 30.0, 0.0, 25.0, 0.0, 20.0])
    result = assess_load(easy, AS_OF)
    assert result["acwr"] < 0.8 and "acwr_low" in codes(easy)
    assert "acwr_high" not in codes(easy)


def test_acwr_flags_wait_for_28_days_of_data():
    daily = history(10, [150.0])
    assert training_load_summary(daily, AS_OF)["acwr"] > 1.5
    assert "acwr_high" not in codes(daily)


def test_monotony_high():
    daily = with_last(history(120), [70.0, 72.0, 68.0, 71.0, 69.0, 70.0, 74.0])
    result = assess_load(daily, AS_OF)
    assert result["monotony"] > 2 and "monotony_high" in codes(daily)


def test_monotony_high_when_every_day_is_the_same():
    daily = history(120, [65.0])
    result = assess_load(daily, AS_OF)
    assert result["monotony"] is None
    (flag,) = [f for f in result["flags"] if f["code"] == "monotony_high"]
    assert "same load every day" in flag["message"]


def test_form_transition_unless_an_event_is_near():
    daily = with_last(history(120, [110.0, 90.0, 0.0]), [10.0, 0.0, 15.0, 0.0, 10.0, 0.0, 12.0] * 2)
    result = assess_load(daily, AS_OF)
    assert result["tsb"] > 25 and "form_transition" in codes(daily)
    assert "form_transition" not in codes(daily, event_date=AS_OF + timedelta(days=EVENT_TAPER_DAYS))
    assert "form_transition" in codes(daily, event_date=AS_OF + timedelta(days=EVENT_TAPER_DAYS + 1))


def test_no_recent_rides():
    daily = {d: v for d, v in history(120).items() if d <= AS_OF - timedelta(days=7)}
    (flag,) = [f for f in assess_load(daily, AS_OF)["flags"] if f["code"] == "no_recent_rides"]
    assert flag["value"] >= 7
    assert "acwr_low" not in codes(daily)  # said better by no_recent_rides
    six_days = daily | {AS_OF - timedelta(days=6): 60.0}  # a ride 6 days ago: within the week
    assert "no_recent_rides" not in codes(six_days)


def test_low_compliance():
    def day(i: int, planned: float, actual: float, status: str) -> dict:
        return {"date": AS_OF - timedelta(days=i), "planned_tss": planned, "actual_tss": actual, "status": status}

    poor = [day(6, 80, 0, "missed"), day(4, 100, 40, "partial"), day(2, 90, 0, "missed"), day(0, 60, 30, "partial")]
    flags = [f for f in assess_load(history(120), AS_OF, recent_days=poor)["flags"] if f["code"] == "low_compliance"]
    assert len(flags) == 1 and flags[0]["value"] == pytest.approx(70 / 330, abs=0.01)
    assert "Fri 20 Nov" in flags[0]["message"]
    fine = [day(6, 80, 75, "done"), day(2, 90, 95, "done")]
    assert "low_compliance" not in codes(history(120), recent_days=fine)
    today_open = [day(1, 80, 75, "done"), day(0, 200, 0, "open")]  # today's workout is not late yet
    assert "low_compliance" not in codes(history(120), recent_days=today_open)


def test_no_data_at_all():
    result = assess_load({}, AS_OF)
    assert [f["code"] for f in result["flags"]] == ["no_ride_data"]
    assert result["last_ride_day"] is None


def test_load_flags_on_a_summary_directly():
    summary = training_load_summary(history(120), AS_OF)
    assert load_flags(summary, last_ride_day=AS_OF) == []


@pytest.mark.parametrize(
    ("tsb", "zone"),
    [(40, "transition"), (25.1, "transition"), (25, "fresh"), (5, "fresh"), (4.9, "grey"), (-10, "grey")]
    + [(-10.1, "optimal"), (-30, "optimal"), (-30.1, "high_risk")],
)
def test_form_zones(tsb, zone):
    assert form_zone(tsb)["code"] == zone


def test_event_date_from_facts():
    assert event_date_from_facts({"event_date": {"value": "2027-06-12"}}) == date(2027, 6, 12)
    assert event_date_from_facts({"race_date": "2027-05-01", "goal": "sub-5h century"}) == date(2027, 5, 1)
    assert event_date_from_facts({"event_date": {"value": "June"}, "goal_date": "2027-07-01"}) == date(2027, 7, 1)
    assert event_date_from_facts({"goal": "win"}) is None


def test_days_whose_rides_add_no_load_are_flagged_with_the_reason():
    day = AS_OF - timedelta(days=3)
    hr_day, linked_day, old_day = AS_OF - timedelta(days=2), AS_OF - timedelta(days=1), AS_OF - timedelta(days=50)
    unloaded = {"moving_s": 3600.0, "tss": None, "hr_tss": None}
    rides = {
        day: [{**unloaded, "tss_status": "no_ftp", "primary": True}, {**unloaded, "tss_status": "no_power"}],
        hr_day: [{**unloaded, "hr_tss": 55.0, "tss_status": "no_ftp", "primary": True}],  # hrTSS carries the load
        linked_day: [{**unloaded, "tss_status": "no_ftp", "primary": False}],  # a linked copy never counts
        old_day: [{**unloaded, "tss_status": "no_ftp", "primary": True}],  # older than the 42 days looked at
        AS_OF: [{**unloaded, "tss": 80.0, "tss_status": "ok", "primary": True}],
    }
    daily = {**history(120), day: 0.0, hr_day: 55.0, AS_OF: 80.0}
    out = assess_load(daily, AS_OF, rides_by_day=rides)
    flag = next(f for f in out["flags"] if f["code"] == "rides_without_load")
    assert flag["details"] == [{"date": day.isoformat(), "rides": 2, "reasons": ["no_ftp", "no_power"]}]
    assert flag["value"] == 1.0 and "FTP" in flag["message"] and flag["source"]
    # Every ride loaded, or the rides not given: no flag, and no "details" key on the other flags.
    rides[day] = [{**unloaded, "hr_tss": 40.0, "tss_status": "no_ftp"}]
    assert "rides_without_load" not in {f["code"] for f in assess_load(daily, AS_OF, rides_by_day=rides)["flags"]}
    assert "rides_without_load" not in {f["code"] for f in assess_load(daily, AS_OF)["flags"]}
    assert all("details" not in f for f in assess_load(daily, AS_OF)["flags"])
