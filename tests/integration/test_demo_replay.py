"""The demo's replay: copies of debriefed rides on recent days, a sample plan, nothing duplicated on a re-run."""

from __future__ import annotations

from datetime import date

import pytest

from cli.debrief import debrief_paths
from cli.replay import REPLAY_PREFIX, replay_days, replay_recent
from records.rides import rides_on_day

pytestmark = pytest.mark.integration


def test_replay_days_skip_mondays_and_end_yesterday():
    days = replay_days(8, date(2026, 11, 26))  # a Thursday
    assert days[-1] == date(2026, 11, 25) and len(days) == 8
    assert all(d.weekday() != 0 for d in days) and days == sorted(days)


async def test_replay_places_rides_and_plan_once(deps, athlete_id, rides_dir):
    files = [
        rides_dir / "fitparse_indoor-trainer-2011-11-02.fit",
        rides_dir / "fitparse_Edge810-Vector-2013-08-16.fit",
        rides_dir / "sweatpy_edge1000-4078723797.fit",
        rides_dir / "sweatpy_edge1000-4078723797_strava.gpx",  # the same ride again: replayed once
    ]
    lines = await debrief_paths([str(f) for f in files], athlete_id, show_progress=False)
    today = date(2026, 11, 26)
    placed = await replay_recent(deps.rides, deps.plans, athlete_id, lines, today=today)
    assert [d for d, _ in placed] == [date(2026, 11, 22), date(2026, 11, 24), date(2026, 11, 25)]
    again = await replay_recent(deps.rides, deps.plans, athlete_id, lines, today=today)
    assert again == placed

    rides = await rides_on_day(deps.athlete_store.pool, athlete_id, date(2026, 11, 25), "UTC")
    assert len(rides) == 1 and rides[0]["file_name"].startswith(REPLAY_PREFIX)
    assert len(await deps.rides.list_rides(athlete_id)) == 4 + 3  # originals and the three copies
    assert await deps.rides.rides_without_debrief(athlete_id) == []
    monday = await deps.plans.plan_for_day(athlete_id, date(2026, 11, 23))
    assert [p["kind"] for p in monday] == ["recovery"]
    assert await rides_on_day(deps.athlete_store.pool, athlete_id, date(2026, 11, 23), "UTC") == []
    assert len(await deps.plans.plan_for_day(athlete_id, date(2026, 11, 27))) == 1
