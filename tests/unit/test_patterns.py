"""Compliance per day and week, recurring skipped workouts as facts (training.patterns)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from training.patterns import (
    SkipPattern,
    cleared_pattern_keys,
    compliance_days,
    compliance_weeks,
    pattern_fact_changes,
    pattern_key,
    recurring_skips,
)

AS_OF = date(2026, 11, 26)  # a Thursday
START = AS_OF - timedelta(days=55)  # 8 weeks: Fri 2 Oct .. Thu 26 Nov
MONDAYS = [d for d in (START + timedelta(days=i) for i in range(56)) if d.weekday() == 0]


def plan_row(day: date, kind: str, duration_s: float, tss: float) -> dict:
    return {"date": day, "kind": kind, "duration_s": duration_s, "tss": tss, "description": ""}


def ride(moving_s: float, tss: float) -> dict:
    return {"moving_s": moving_s, "tss": tss, "hr_tss": None}


def weekly_plan() -> list[dict]:
    """Monday recovery, Wednesday intervals, Saturday endurance, every week of the window."""
    rows = []
    for i in range(56):
        day = START + timedelta(days=i)
        if day.weekday() == 0:
            rows.append(plan_row(day, "recovery", 2700, 25))
        elif day.weekday() == 2:
            rows.append(plan_row(day, "intervals", 4500, 90))
        elif day.weekday() == 5:
            rows.append(plan_row(day, "endurance", 10800, 150))
    return rows


def rides_for(plan: list[dict], skip: set[date]) -> dict[date, list[dict]]:
    return {p["date"]: [ride(p["duration_s"], p["tss"])] for p in plan if p["date"] not in skip}


def test_skipped_monday_recovery_rides_become_one_fact_with_evidence():
    plan = weekly_plan()
    skipped = set(MONDAYS[-3:])  # the last 3 Mondays skipped, the one before ridden
    days = compliance_days(plan, rides_for(plan, skipped), START, AS_OF)
    patterns = recurring_skips(days, AS_OF)
    assert patterns == [
        SkipPattern("Monday", "recovery", tuple(sorted(skipped)), tuple(MONDAYS[-4:])),
    ]
    (change,) = pattern_fact_changes(patterns)
    assert change.key == "pattern_skips_monday_recovery"
    assert change.value == (
        "skips Monday recovery workouts: missed 3 of the last 4 planned (2026-11-09, 2026-11-16, 2026-11-23)"
    )
    assert len(change.value) < 200
    assert patterns[0].to_dict()["skipped_dates"] == ["2026-11-09", "2026-11-16", "2026-11-23"]


def test_two_skips_of_four_is_not_a_pattern():
    plan = weekly_plan()
    days = compliance_days(plan, rides_for(plan, {MONDAYS[-1], MONDAYS[-3]}), START, AS_OF)
    assert recurring_skips(days, AS_OF) == []


def test_a_shortened_ride_is_not_a_skip():
    plan = weekly_plan()
    rides = rides_for(plan, set(MONDAYS[-3:]))
    rides[MONDAYS[-1]] = [ride(900, 8)]  # 15 of 45 minutes: partial, not missed
    days = compliance_days(plan, rides, START, AS_OF)
    assert {d["date"]: d["status"] for d in days}[MONDAYS[-1]] == "partial"
    assert recurring_skips(days, AS_OF) == []


def test_a_workout_planned_today_is_open_not_missed():
    plan = weekly_plan() + [plan_row(AS_OF, "intervals", 3600, 80)]
    days = compliance_days(plan, rides_for(plan, {AS_OF}), START, AS_OF, open_day=AS_OF)
    assert days[-1]["status"] == "open" and days[-1]["compliance_colour"] is None
    week = compliance_weeks(days)[-1]
    assert week["open"] == 1 and week["missed"] == 0


def test_weekday_with_mixed_kinds_and_kind_across_weekdays():
    plan = []
    for i, monday in enumerate(MONDAYS):
        plan.append(plan_row(monday, "recovery" if i % 2 else "endurance", 3600, 40))
    tuesdays = [m + timedelta(days=1) for m in MONDAYS]
    thursdays = [m + timedelta(days=3) for m in MONDAYS if m + timedelta(days=3) <= AS_OF]
    plan += [plan_row(d, "vo2max", 3600, 85) for d in tuesdays[-2:] + thursdays[-2:]]
    skip = set(MONDAYS[-3:]) | {tuesdays[-1], thursdays[-1], thursdays[-2]}
    days = compliance_days(plan, rides_for(plan, skip), START, AS_OF)
    patterns = {p.key: p for p in recurring_skips(days, AS_OF)}
    assert set(patterns) == {"pattern_skips_monday", "pattern_skips_vo2max"}
    assert patterns["pattern_skips_monday"].kind is None
    assert patterns["pattern_skips_vo2max"].weekday is None
    assert patterns["pattern_skips_vo2max"].skipped_dates == tuple(sorted([tuesdays[-1], thursdays[-2], thursdays[-1]]))
    assert patterns["pattern_skips_monday"].description.startswith("skips Monday workouts: missed 3 of the last 4")


def test_old_skips_fall_out_of_the_window():
    plan = weekly_plan()
    days = compliance_days(plan, rides_for(plan, set(MONDAYS[:3])), START, AS_OF)
    assert recurring_skips(days, AS_OF) == []  # the last 4 Mondays were ridden


def test_cleared_patterns_have_hysteresis():
    plan = weekly_plan()
    key = "pattern_skips_monday_recovery"
    back = compliance_days(plan, rides_for(plan, {MONDAYS[-4]}), START, AS_OF)  # 1 of the last 4 skipped
    assert cleared_pattern_keys([key, "ftp_w"], back, AS_OF) == [key]
    halfway = compliance_days(plan, rides_for(plan, {MONDAYS[-4], MONDAYS[-1]}), START, AS_OF)
    assert cleared_pattern_keys([key], halfway, AS_OF) == []  # 2 of 4: neither a pattern nor cleared
    assert recurring_skips(halfway, AS_OF) == []
    nothing_planned = compliance_days([], {}, START, AS_OF)
    assert cleared_pattern_keys([key], nothing_planned, AS_OF) == []  # no evidence either way


def test_compliance_weeks_sum_the_days():
    plan = weekly_plan()
    rides = rides_for(plan, {MONDAYS[-1]})
    rides[AS_OF - timedelta(days=1)] = [ride(3600, 50)]  # Wednesday's intervals: 60 of 75 min (80 %: done)
    days = compliance_days(plan, rides, START, AS_OF)
    weeks = compliance_weeks(days)
    assert [w["week_start"] for w in weeks][0] == START - timedelta(days=START.weekday())
    last = weeks[-1]  # Mon 23 .. Thu 26 Nov
    assert last["week_start"] == MONDAYS[-1] and last["days"] == 4
    assert last["planned_workouts"] == 2 and last["missed"] == 1 and last["done"] == 1
    assert last["planned_tss"] == 25 + 90 and last["actual_tss"] == 50
    assert last["tss_compliance"] == round(50 / 115, 2)
    full = weeks[-2]
    assert full["days"] == 7 and full["done"] == 3 and full["tss_compliance"] == 1.0


def test_compliance_days_bounds():
    with pytest.raises(ValueError, match="before start"):
        compliance_days([], {}, AS_OF, AS_OF - timedelta(days=1))
    (only,) = compliance_days([plan_row(AS_OF, "rest", 0, 0)], {}, AS_OF, AS_OF)
    assert only["status"] == "rest" and only["weekday"] == "Thursday"


def test_pattern_keys_are_valid_fact_keys():
    assert pattern_key("Monday", "Sweet Spot / Over-unders") == "pattern_skips_monday_sweet_spot_over_unders"
    assert len(pattern_key("Wednesday", "x" * 100)) <= 64
    with pytest.raises(ValueError):
        pattern_key(None, None)


def test_a_kind_without_letters_makes_no_key_of_its_own():
    plan = [plan_row(m, "???", 3600, 40) for m in MONDAYS]
    days = compliance_days(plan, {}, START, AS_OF)
    patterns = recurring_skips(days, AS_OF)
    assert [p.key for p in patterns] == ["pattern_skips_monday"]
