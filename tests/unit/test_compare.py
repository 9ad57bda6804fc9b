"""Planned versus actual for one day (training.compare)."""

from __future__ import annotations

import pytest

from training.compare import compare_day
from training.formatting import format_duration


def plan(kind="endurance", duration_s=3600.0, tss=60.0):
    return {"kind": kind, "duration_s": duration_s, "tss": tss, "description": ""}


def ride(moving_s=3600.0, tss=60.0, hr_tss=None):
    return {"moving_s": moving_s, "tss": tss, "hr_tss": hr_tss}


@pytest.mark.parametrize(
    ("moving_s", "status", "colour"),
    [
        (3600.0, "done", "green"),
        (0.80 * 3600, "done", "green"),
        (1.20 * 3600, "done", "green"),
        (0.79 * 3600, "partial", "yellow"),
        (0.50 * 3600, "partial", "yellow"),
        (1.21 * 3600, "partial", "yellow"),
        (1.50 * 3600, "partial", "yellow"),
        (0.49 * 3600, "partial", "red"),
        (1.51 * 3600, "partial", "red"),
    ],
)
def test_status_thresholds_on_duration(moving_s, status, colour):
    result = compare_day([plan()], [ride(moving_s=moving_s)])
    assert (result["status"], result["compliance_colour"], result["compliance_basis"]) == (status, colour, "duration")


def test_done_with_differences_and_ratios():
    result = compare_day([plan(duration_s=5400, tss=85)], [ride(moving_s=4920, tss=79.4)])
    assert result["status"] == "done"
    assert result["planned_duration_s"] == 5400
    assert result["actual_moving_s"] == 4920
    assert result["duration_diff_s"] == -480
    assert result["tss_diff"] == pytest.approx(-5.6)
    assert result["duration_compliance"] == 0.91
    assert result["tss_compliance"] == 0.93
    assert result["actual_tss_source"] == "power"
    assert result["summary"] == (
        "Planned endurance (1h30, 85 TSS); rode 1h22 (79 TSS): 91 % of planned duration, done."
    )


def test_duration_decides_over_tss():
    # on time but twice the stress: TrainingPeaks' duration basis says done, the TSS ratio shows the rest
    result = compare_day([plan(duration_s=3600, tss=50)], [ride(moving_s=3600, tss=100)])
    assert result["status"] == "done"
    assert result["tss_compliance"] == 2.0


def test_tss_basis_when_no_duration_is_planned():
    result = compare_day([plan(duration_s=None, tss=100)], [ride(moving_s=7200, tss=60)])
    assert result["compliance_basis"] == "tss"
    assert result["status"] == "partial" and result["compliance_colour"] == "yellow"
    assert result["duration_compliance"] is None and result["duration_diff_s"] is None
    assert "60 % of planned TSS" in result["summary"]


def test_hr_tss_is_used_without_power():
    result = compare_day([plan(duration_s=None, tss=50)], [ride(tss=None, hr_tss=48.0)])
    assert result["actual_tss"] == 48.0
    assert result["actual_tss_source"] == "heart_rate"
    assert result["status"] == "done"


def test_several_workouts_and_rides_are_summed():
    planned = [plan("endurance", 3600, 50), plan("strength", 1800, None)]
    rides = [ride(3000, 45.0), ride(2400, None, 20.0), ride(600, None, None)]
    result = compare_day(planned, rides)
    assert result["planned_kinds"] == ["endurance", "strength"]
    assert result["planned_duration_s"] == 5400 and result["planned_tss"] == 50
    assert result["rides"] == 3
    assert result["actual_moving_s"] == 6000
    assert result["actual_tss"] == 65.0
    assert result["actual_tss_source"] == "mixed"
    assert result["status"] == "done"
    assert "in 3 rides" in result["summary"]


def test_missed():
    result = compare_day([plan("intervals", 3600, 70)], [])
    assert result["status"] == "missed" and result["compliance_colour"] == "red"
    assert result["actual_moving_s"] == 0 and result["actual_tss"] == 0
    assert result["duration_compliance"] == 0.0
    assert result["duration_diff_s"] == -3600
    assert result["summary"] == "Planned intervals (1h00, 70 TSS); no ride recorded: missed."


def test_unplanned():
    result = compare_day([], [ride(3900, 60.0)])
    assert result["status"] == "unplanned"
    assert result["compliance_colour"] is None and result["compliance_basis"] is None
    assert result["duration_compliance"] is None and result["tss_compliance"] is None
    assert result["planned_duration_s"] is None and result["duration_diff_s"] is None
    assert result["summary"] == "Nothing planned; rode 1h05 (60 TSS): unplanned."


def test_rest():
    result = compare_day([], [])
    assert result["status"] == "rest"
    assert result["summary"] == "Rest day: nothing planned, no ride."
    result = compare_day([plan("rest", None, None)], [])
    assert result["status"] == "rest" and result["planned_kinds"] == ["rest"]


def test_riding_on_a_planned_rest_day_is_unplanned():
    result = compare_day([plan("Rest", 0, 0)], [ride(1800, 20.0)])
    assert result["status"] == "unplanned"
    assert result["summary"].startswith("Planned rest, but rode 30min")


def test_planned_without_targets_counts_as_done_when_ridden():
    result = compare_day([plan("group ride", None, None)], [ride(5000, None, None)])
    assert result["status"] == "done"
    assert result["compliance_basis"] is None and result["compliance_colour"] is None
    assert result["actual_tss"] is None and result["actual_tss_source"] is None
    assert "no planned duration or TSS" in result["summary"]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0min"), (2700, "45min"), (3600, "1h00"), (3900, "1h05"), (7170, "2h00")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
