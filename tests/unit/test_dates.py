"""Relative days in the athlete's time zone (training.dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from training.dates import DateResolutionError, find_day_in_text, is_day_phrase, local_now, resolve_day

# Thursday 2026-11-26, 10:00 UTC: the same day in UTC, Paris and Los Angeles.
THURSDAY_NOON = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
# Friday 2026-11-27, 03:30 UTC: still Thursday evening (19:30) in Los Angeles, Friday afternoon in Auckland.
FRIDAY_EARLY_UTC = datetime(2026, 11, 27, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2026, 11, 26)),
        ("yesterday", date(2026, 11, 25)),
        ("tomorrow", date(2026, 11, 27)),
        ("2 days ago", date(2026, 11, 24)),
        ("a week ago", date(2026, 11, 19)),
        ("last Thursday", date(2026, 11, 19)),  # on a Thursday: a week ago
        ("Thursday", date(2026, 11, 19)),  # a bare weekday on that weekday: a week ago too (documented)
        ("thursday", date(2026, 11, 19)),
        ("this Thursday", date(2026, 11, 26)),
        ("next Thursday", date(2026, 12, 3)),
        ("Wednesday", date(2026, 11, 25)),
        ("last Friday", date(2026, 11, 20)),
        ("Monday", date(2026, 11, 23)),
        ("2026-11-19", date(2026, 11, 19)),
        ("19 Nov", date(2026, 11, 19)),
        ("Nov 19th", date(2026, 11, 19)),
        ("November 19, 2025", date(2025, 11, 19)),
        ("Dec 3", date(2025, 12, 3)),  # past preferred
        ("  the day  before yesterday ", date(2026, 11, 24)),
        ("the 19th of November", date(2026, 11, 19)),
        ("in 3 days", date(2026, 11, 29)),
    ],
)
def test_resolve_day_in_utc(text, expected):
    assert resolve_day(text, tz="UTC", now=THURSDAY_NOON) == expected


def test_prefer_future_for_plans():
    assert resolve_day("Thursday", tz="UTC", now=THURSDAY_NOON, prefer="future") == date(2026, 12, 3)
    assert resolve_day("Friday", tz="UTC", now=THURSDAY_NOON, prefer="future") == date(2026, 11, 27)
    assert resolve_day("Dec 3", tz="UTC", now=THURSDAY_NOON, prefer="future") == date(2026, 12, 3)
    assert resolve_day("yesterday", tz="UTC", now=THURSDAY_NOON, prefer="future") == date(2026, 11, 25)


@pytest.mark.parametrize(
    ("tz", "today", "yesterday", "last_thursday"),
    [
        ("UTC", date(2026, 11, 27), date(2026, 11, 26), date(2026, 11, 26)),
        ("America/Los_Angeles", date(2026, 11, 26), date(2026, 11, 25), date(2026, 11, 19)),
        ("Pacific/Auckland", date(2026, 11, 27), date(2026, 11, 26), date(2026, 11, 26)),
        ("Europe/Paris", date(2026, 11, 27), date(2026, 11, 26), date(2026, 11, 26)),
    ],
)
def test_the_day_is_the_athletes_local_day(tz, today, yesterday, last_thursday):
    assert resolve_day("today", tz=tz, now=FRIDAY_EARLY_UTC) == today
    assert resolve_day("yesterday", tz=tz, now=FRIDAY_EARLY_UTC) == yesterday
    assert resolve_day("last Thursday", tz=tz, now=FRIDAY_EARLY_UTC) == last_thursday


def test_now_in_another_offset_and_naive_now_as_utc():
    in_tokyo = FRIDAY_EARLY_UTC.astimezone(timezone(timedelta(hours=9)))
    assert resolve_day("today", tz="America/Los_Angeles", now=in_tokyo) == date(2026, 11, 26)
    naive = FRIDAY_EARLY_UTC.replace(tzinfo=None)
    assert resolve_day("today", tz="America/Los_Angeles", now=naive) == date(2026, 11, 26)
    assert local_now("America/Los_Angeles", naive).hour == 19


def test_explicit_offset_is_converted_to_the_athletes_zone():
    assert resolve_day("2026-11-19T03:30:00+00:00", tz="America/Los_Angeles", now=THURSDAY_NOON) == date(2026, 11, 18)
    assert resolve_day("2026-11-19T03:30:00+00:00", tz="Etc/GMT+5", now=THURSDAY_NOON) == date(2026, 11, 18)
    assert resolve_day("2026-11-19T03:30:00+00:00", tz="Asia/Tokyo", now=THURSDAY_NOON) == date(2026, 11, 19)


def test_default_now_is_the_current_time():
    assert resolve_day("today", tz="UTC") == datetime.now(UTC).date()


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../etc/passwd", "not a zone"])
def test_bad_time_zone(tz):
    with pytest.raises(DateResolutionError, match="unknown time zone"):
        resolve_day("today", tz=tz, now=THURSDAY_NOON)
    with pytest.raises(DateResolutionError, match="unknown time zone"):
        find_day_in_text("yesterday", tz=tz, now=THURSDAY_NOON)


@pytest.mark.parametrize("text", ["", "   ", "now", "may", "5", "sec", "November", "5 hours", "banana", "sat"])
def test_unresolvable_text(text):
    with pytest.raises(DateResolutionError) as info:
        resolve_day(text, tz="UTC", now=THURSDAY_NOON)
    assert "2026-11-19" in str(info.value)  # the message says what works
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("show me last Thursday's logs", ("last Thursday", date(2026, 11, 19))),
        ("show me last Thursday’s logs", ("last Thursday", date(2026, 11, 19))),
        ("what did I ride yesterday?", ("yesterday", date(2026, 11, 25))),
        ("compare yesterday's ride to the plan", ("yesterday", date(2026, 11, 25))),
        ("how did 2 days ago go", ("2 days ago", date(2026, 11, 24))),
        ("what about the 2026-11-19 ride", ("2026-11-19", date(2026, 11, 19))),
        ("How was Nov 19th?", ("Nov 19th", date(2026, 11, 19))),
        ("and on Monday?", ("Monday", date(2026, 11, 23))),
        ("yesterday and today", ("yesterday", date(2026, 11, 25))),
        ("the plan for tomorrow please", ("tomorrow", date(2026, 11, 27))),
        ("what about the day before yesterday?", ("day before yesterday", date(2026, 11, 24))),
    ],
)
def test_find_day_in_text(message, expected):
    assert find_day_in_text(message, tz="UTC", now=THURSDAY_NOON) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("may I see my ride from 2 days ago", ("2 days ago", date(2026, 11, 24))),  # "may" skipped
        ("I may ride on Monday", ("Monday", date(2026, 11, 23))),
    ],
)
def test_find_day_skips_false_positives_before_the_real_phrase(message, expected):
    assert find_day_in_text(message, tz="UTC", now=THURSDAY_NOON) == expected


@pytest.mark.parametrize(
    "message",
    [
        "can I see it now",
        "give me a sec",
        "I rode 5 hours",
        "I may be tired",
        "march on",
        "I sat on the bike in the sun",
        "how is my training going",
        "set FTP to 250",
        "",
    ],
)
def test_find_day_false_positives(message):
    assert find_day_in_text(message, tz="UTC", now=THURSDAY_NOON) is None


def test_find_day_uses_the_local_day():
    found = find_day_in_text("what did I do today?", tz="America/Los_Angeles", now=FRIDAY_EARLY_UTC)
    assert found == ("today", date(2026, 11, 26))
    found = find_day_in_text("what did I do today?", tz="Pacific/Auckland", now=FRIDAY_EARLY_UTC)
    assert found == ("today", date(2026, 11, 27))


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("Thursday", True),
        ("thu", True),
        ("May 3", True),
        ("3rd of March", True),
        ("yesterday", True),
        ("3 days ago", True),
        ("2026-11-19", True),
        ("may", False),
        ("March", False),
        ("now", False),
        ("a sec", False),
        ("5", False),
        ("sun", False),
        ("2026", False),
    ],
)
def test_is_day_phrase(phrase, expected):
    assert is_day_phrase(phrase) is expected
