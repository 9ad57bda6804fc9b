"""Parsing plan CSV files (records.plans.parse_plan_csv)."""

from __future__ import annotations

from datetime import date

import pytest

from records.plans import PlanImportError, PlanRow, parse_plan_csv

GOOD = """date,kind,duration_s,tss,description
2026-11-23,Recovery,2700,25,Easy spin Z1
2026-11-24,intervals,5400,95.5,"5x5 min VO2max, 3 min easy"

2026-11-25,rest,,,
2026-11-25,strength,1800,,gym
"""


def test_good_file():
    rows = parse_plan_csv(GOOD)
    assert rows == [
        PlanRow(date(2026, 11, 23), "recovery", 2700.0, 25.0, "Easy spin Z1"),
        PlanRow(date(2026, 11, 24), "intervals", 5400.0, 95.5, "5x5 min VO2max, 3 min easy"),
        PlanRow(date(2026, 11, 25), "rest", None, None, ""),
        PlanRow(date(2026, 11, 25), "strength", 1800.0, None, "gym"),
    ]


def test_columns_in_any_order_description_optional_bom_and_crlf():
    text = "\ufeffKind, Date ,TSS,duration_s\r\nEndurance,2026-11-26,60,3600\r\n"
    assert parse_plan_csv(text) == [PlanRow(date(2026, 11, 26), "endurance", 3600.0, 60.0, "")]


def _errors(text: str) -> list[tuple[int, str]]:
    with pytest.raises(PlanImportError) as info:
        parse_plan_csv(text)
    return info.value.errors


HEADER = "date,kind,duration_s,tss,description\n"


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("2026-13-01,endurance,3600,60,", "not a valid ISO date"),
        ("26/11/2026,endurance,3600,60,", "not a valid ISO date"),
        ("2026-11-5,endurance,3600,60,", "not a valid ISO date"),
        (",endurance,3600,60,", "date is empty"),
        ("2026-11-27,,3600,60,", "kind is empty"),
        ("2026-11-27,endurance,1h,60,", "duration_s '1h' is not a number"),
        ("2026-11-27,endurance,-60,60,", "duration_s '-60' must be a non-negative number"),
        ("2026-11-27,endurance,3600,lots,", "tss 'lots' is not a number"),
        ("2026-11-27,endurance,3600,nan,", "tss 'nan' must be a non-negative number"),
        ("2026-11-27,endurance,3600,inf,", "tss 'inf' must be a non-negative number"),
        ("2026-11-27,endurance,3600", "expected 5 fields"),
        ("2026-11-27,endurance,3600,60,easy,extra", "expected 5 fields"),
        ("2026-11-23,RECOVERY,1800,20,", "duplicate workout: 'recovery' on 2026-11-23 is already on line 2"),
    ],
)
def test_each_bad_row_is_reported_by_line_number(bad_line, reason):
    text = HEADER + "2026-11-23,recovery,2700,25,\n" + bad_line + "\n2026-11-28,endurance,3600,60,\n"
    errors = _errors(text)
    assert len(errors) == 1
    line, message = errors[0]
    assert line == 3
    assert reason in message


def test_all_errors_are_collected_and_nothing_is_returned():
    text = (
        HEADER
        + "2026-11-23,recovery,2700,25,\n"  # 2 good
        + "\n"  # 3 blank, skipped
        + "2026-02-30,endurance,3600,60,\n"  # 4 bad date
        + '2026-11-24,intervals,5400,95,"two\nlines"\n'  # 5-6 good, spans two lines
        + "2026-11-25,,x,-1,\n"  # 7 three problems
        + "2026-11-24,Intervals,5400,95,\n"  # 8 duplicate of line 5
    )
    errors = _errors(text)
    assert [line for line, _ in errors] == [4, 7, 7, 7, 8]
    assert "duplicate" in errors[-1][1] and "line 5" in errors[-1][1]


def test_message_is_readable_multi_line():
    with pytest.raises(PlanImportError) as info:
        parse_plan_csv(HEADER + "2026-11-23,,1,1,\n2026-11-24,ride,x,1,\n")
    message = str(info.value)
    assert message.splitlines() == [
        "plan file rejected, nothing imported (2 problems):",
        "  line 2: kind is empty",
        "  line 3: duration_s 'x' is not a number",
    ]
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_file(text):
    assert _errors(text) == [
        (1, "empty file: expected a header line 'date,kind,duration_s,tss,description' and one row per workout")
    ]


def test_header_only():
    assert _errors(HEADER) == [(1, "no workouts after the header")]
    assert _errors("\n" + HEADER + "\n") == [(2, "no workouts after the header")]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("2026-11-23,recovery,2700,25,", "misses column(s) date, kind, duration_s, tss"),
        ("date,kind,duration,tss,description", "misses column(s) duration_s"),
        ("date,kind,duration_s,tss,notes", "unknown column(s) 'notes'"),
        ("date,kind,duration_s,tss,tss", "repeats column(s) tss"),
    ],
)
def test_bad_header(header, reason):
    errors = _errors(header + "\n2026-11-23,recovery,2700,25,\n")
    assert errors[0][0] == 1
    assert any(reason in message for _, message in errors)


def test_long_error_lists_are_capped_in_the_message():
    text = HEADER + "".join(f"2026-11-{d:02d},,1,1,\n" for d in range(1, 31)) * 2
    with pytest.raises(PlanImportError) as info:
        parse_plan_csv(text)
    assert len(info.value.errors) == 60
    assert str(info.value).splitlines()[-1] == "  ... and 10 more"
