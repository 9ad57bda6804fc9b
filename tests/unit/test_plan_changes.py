"""Plan-change proposals from flags (training.plan_changes)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from training.plan_changes import (
    RECOVERY_DURATION_S,
    RECOVERY_TSS,
    is_hard,
    planned_intensity_factor,
    propose_plan_changes,
)

AS_OF = date(2026, 11, 26)  # a Thursday


def w(days_ahead: int, kind: str, duration_s: float | None = 3600, tss: float | None = 60, description: str = ""):
    return {
        "date": AS_OF + timedelta(days=days_ahead),
        "kind": kind,
        "duration_s": duration_s,
        "tss": tss,
        "description": description,
    }


TSB = {"code": "tsb_high_risk", "value": -36.4}
ACWR = {"code": "acwr_high", "value": 1.72}
RAMP = {"code": "ramp_rate_high", "value": 9.4}
PLAN = [w(1, "endurance", 5400, 65), w(2, "threshold", 4500, 85, "3 x 12 min at FTP"), w(3, "vo2max", 3600, 80)]


def test_deep_fatigue_replaces_the_next_hard_workout_by_a_recovery_ride():
    (proposal,) = propose_plan_changes([TSB], PLAN, AS_OF)
    assert proposal.flag_code == "tsb_high_risk"
    assert proposal.change == {
        "action": "replace",
        "date": "2026-11-28",
        "kind": "threshold",
        "before": {"kind": "threshold", "duration_s": 4500.0, "tss": 85.0, "description": "3 x 12 min at FTP"},
        "after": {
            "kind": "recovery",
            "duration_s": RECOVERY_DURATION_S,
            "tss": RECOVERY_TSS,
            "description": "Recovery ride, easy spin below 55 % of FTP (replaces: threshold (1h15, 85 TSS))",
        },
    }
    assert "-36.4" in proposal.reason and "Saturday 28 Nov" in proposal.reason


def test_a_load_spike_shortens_the_next_hard_workout_by_30_percent():
    (proposal,) = propose_plan_changes([ACWR], PLAN, AS_OF)
    assert proposal.change["action"] == "reduce" and proposal.flag_code == "acwr_high"
    assert proposal.change["after"]["kind"] == "threshold"
    assert proposal.change["after"]["duration_s"] == 3180.0  # 75 min x 0.7 = 52.5 -> 53 min
    assert proposal.change["after"]["tss"] == 60.0  # 85 x 0.7 = 59.5 -> 60
    assert "1.72" in proposal.reason
    (by_ramp,) = propose_plan_changes([RAMP], PLAN, AS_OF)
    assert by_ramp.flag_code == "ramp_rate_high" and "9.4 per week" in by_ramp.reason


def test_one_proposal_the_most_urgent_rule_wins():
    proposals = propose_plan_changes([ACWR, RAMP, TSB], PLAN, AS_OF)
    assert [p.flag_code for p in proposals] == ["tsb_high_risk"]


def test_no_hard_workout_within_three_days_means_no_proposal():
    easy = [w(1, "endurance", 5400, 65), w(2, "recovery", 2700, 25), w(4, "threshold", 4500, 85)]
    assert propose_plan_changes([TSB], easy, AS_OF) == []
    assert propose_plan_changes([TSB], [w(0, "threshold")], AS_OF) == []  # today or before: not proposed
    assert propose_plan_changes([], PLAN, AS_OF) == []
    assert propose_plan_changes([{"code": "monotony_high", "value": 2.4}], PLAN, AS_OF) == []


def test_not_before_skips_days_already_gone():
    (proposal,) = propose_plan_changes([TSB], PLAN, AS_OF, not_before=AS_OF + timedelta(days=3))
    assert proposal.change["kind"] == "vo2max"


@pytest.mark.parametrize(
    ("workout", "hard"),
    [
        (w(1, "Sweet Spot"), True),
        (w(1, "intervals", None, None), True),
        (w(1, "endurance", 3600, 85), True),  # IF 0.92 implied
        (w(1, "endurance", 7200, 130), False),  # IF 0.81
        (w(1, "recovery", 1800, 40), False),  # never hard, whatever its numbers
        (w(1, "rest", None, None), False),
        (w(1, "tempo", None, None), False),
    ],
)
def test_hard_workouts(workout, hard):
    assert is_hard(workout) is hard


def test_planned_intensity_factor():
    assert planned_intensity_factor(w(1, "x", 3600, 100)) == pytest.approx(1.0)
    assert planned_intensity_factor(w(1, "x", None, 100)) is None
    assert planned_intensity_factor(w(1, "x", 0, 100)) is None
