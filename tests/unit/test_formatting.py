"""The clock forms of the one duration formatter (`training.formatting.format_clock`)."""

from __future__ import annotations

import pytest

from training.formatting import format_clock


@pytest.mark.parametrize(
    ("duration_s", "text"),
    [(0, "0:00:00"), (59.6, "0:01:00"), (3599, "0:59:59"), (3600, "1:00:00"), (4530.4, "1:15:30"), (90061, "25:01:01")],
)
def test_clock_with_seconds(duration_s: float, text: str) -> None:
    assert format_clock(duration_s) == text


@pytest.mark.parametrize(("duration_s", "text"), [(0, "0:00"), (119, "0:01"), (4530, "1:15"), (36000, "10:00")])
def test_clock_without_seconds_keeps_whole_minutes(duration_s: float, text: str) -> None:
    assert format_clock(duration_s, seconds=False) == text


def test_unknown_duration_is_a_dash() -> None:
    assert format_clock(None) == "–" and format_clock(None, seconds=False) == "–"
