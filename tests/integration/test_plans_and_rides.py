"""Planned workouts and ride reads on the real athlete store (records.plans, records.rides)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from psycopg.types.json import Jsonb

from memory.athlete_store import AthleteStore
from memory.errors import InvalidAthleteIdError
from records.plans import PlanStore, parse_plan_csv
from records.rides import daily_load, last_ride, rides_on_day
from training.compare import compare_day

pytestmark = pytest.mark.integration

PLAN = """date,kind,duration_s,tss,description
2026-11-23,recovery,2700,25,Easy spin
2026-11-26,endurance,5400,85,Z2 steady
2026-11-26,strength,1800,,Gym
2026-11-28,intervals,4500,95,"4x8 min threshold, 4 min easy"
"""

PLAN_V2 = """date,kind,duration_s,tss,description
2026-11-26,endurance,7200,110,Z2 long
2026-11-29,rest,,,
"""


async def _plan_count(store: AthleteStore, athlete_id: str) -> int:
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM planned_workouts WHERE athlete_id = %s", (athlete_id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def _insert_ride(
    store: AthleteStore,
    athlete_id: str,
    start_time: datetime,
    *,
    moving_s: float = 3600.0,
    tss: float | None = 60.0,
    hr_tss: float | None = None,
    metrics: dict | None = None,
) -> str:
    ride_id = uuid.uuid4().hex
    async with store.pool.connection() as conn:
        await conn.execute(
            """INSERT INTO rides (athlete_id, ride_id, file_name, file_format, sport, start_time, elapsed_s,
                                  moving_s, distance_m, normalized_power_w, tss, hr_tss, metrics)
               VALUES (%s, %s, %s, 'fit', 'cycling', %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                athlete_id,
                ride_id,
                f"{ride_id[:8]}.fit",
                start_time,
                moving_s + 120,
                moving_s,
                30_000.0,
                210.0 if tss is not None else None,
                tss,
                hr_tss,
                Jsonb(metrics if metrics is not None else {"avg_power_w": 190.5, "intensity_factor": 0.8}),
            ),
        )
    return ride_id


# ----- plans ---------------------------------------------------------------------------------------------------


async def test_import_twice_updates_in_place(store, athlete_id):
    plans = PlanStore(store.pool)
    assert await plans.import_rows(athlete_id, parse_plan_csv(PLAN)) == 4
    assert await plans.import_rows(athlete_id, parse_plan_csv(PLAN)) == 4
    assert await _plan_count(store, athlete_id) == 4  # no duplicates

    assert await plans.import_rows(athlete_id, parse_plan_csv(PLAN_V2)) == 2
    assert await _plan_count(store, athlete_id) == 5  # endurance updated, rest added, nothing deleted
    day = await plans.plan_for_day(athlete_id, date(2026, 11, 26))
    assert day == [
        {"date": date(2026, 11, 26), "kind": "endurance", "duration_s": 7200.0, "tss": 110.0, "description": "Z2 long"},
        {"date": date(2026, 11, 26), "kind": "strength", "duration_s": 1800.0, "tss": None, "description": "Gym"},
    ]


async def test_plan_for_day_and_between(store, athlete_id):
    plans = PlanStore(store.pool)
    await plans.import_rows(athlete_id, parse_plan_csv(PLAN))
    assert await plans.plan_for_day(athlete_id, date(2026, 11, 27)) == []
    [intervals] = await plans.plan_for_day(athlete_id, date(2026, 11, 28))
    assert intervals["description"] == "4x8 min threshold, 4 min easy"
    week = await plans.plan_between(athlete_id, date(2026, 11, 23), date(2026, 11, 26))
    assert [(w["date"].day, w["kind"]) for w in week] == [(23, "recovery"), (26, "endurance"), (26, "strength")]
    with pytest.raises(ValueError, match="before start"):
        await plans.plan_between(athlete_id, date(2026, 11, 26), date(2026, 11, 23))


async def test_another_athlete_sees_nothing(store, athlete_id):
    plans = PlanStore(store.pool)
    other = f"{athlete_id}-other"
    await plans.import_rows(athlete_id, parse_plan_csv(PLAN))
    await _insert_ride(store, athlete_id, datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    assert await plans.plan_for_day(other, date(2026, 11, 26)) == []
    assert await plans.plan_between(other, date(2026, 1, 1), date(2026, 12, 31)) == []
    assert await rides_on_day(store.pool, other, date(2026, 11, 26), "UTC") == []
    assert await daily_load(store.pool, other, date(2026, 11, 1), date(2026, 11, 30), "UTC") == {}
    assert await last_ride(store.pool, other) is None
    # the other athlete's own import does not touch the first one's plan
    await plans.import_rows(other, parse_plan_csv(PLAN_V2))
    [endurance, _] = await plans.plan_for_day(athlete_id, date(2026, 11, 26))
    assert endurance["duration_s"] == 5400.0


async def test_import_rejects_duplicates_and_bad_athlete_ids(store, athlete_id):
    plans = PlanStore(store.pool)
    rows = parse_plan_csv(PLAN)
    with pytest.raises(ValueError, match="two workouts"):
        await plans.import_rows(athlete_id, [*rows, rows[0]])
    assert await _plan_count(store, athlete_id) == 0
    assert await plans.import_rows(athlete_id, []) == 0
    with pytest.raises(InvalidAthleteIdError):
        await plans.import_rows("bad id; DROP TABLE", rows)
    with pytest.raises(InvalidAthleteIdError):
        await plans.plan_for_day("", date(2026, 11, 26))


# ----- rides ---------------------------------------------------------------------------------------------------


async def test_rides_on_day_across_a_time_zone_boundary(store, athlete_id):
    # 03:30 UTC on Friday 27 Nov is 19:30 on Thursday 26 Nov in Los Angeles (UTC-8)
    late = await _insert_ride(store, athlete_id, datetime(2026, 11, 27, 3, 30, tzinfo=UTC))
    morning = await _insert_ride(store, athlete_id, datetime(2026, 11, 26, 16, 0, tzinfo=UTC))  # 08:00 LA
    pool = store.pool

    in_la = await rides_on_day(pool, athlete_id, date(2026, 11, 26), "America/Los_Angeles")
    assert [r["ride_id"] for r in in_la] == [morning, late]
    assert [r["ride_id"] for r in await rides_on_day(pool, athlete_id, date(2026, 11, 27), "America/Los_Angeles")] == []

    assert [r["ride_id"] for r in await rides_on_day(pool, athlete_id, date(2026, 11, 26), "UTC")] == [morning]
    assert [r["ride_id"] for r in await rides_on_day(pool, athlete_id, date(2026, 11, 27), "UTC")] == [late]
    # Auckland (UTC+13): 16:00 UTC on the 26th is 05:00 on the 27th
    in_auckland = await rides_on_day(pool, athlete_id, date(2026, 11, 27), "Pacific/Auckland")
    assert [r["ride_id"] for r in in_auckland] == [morning, late]

    ride = in_la[1]
    assert ride["start_time"] == "2026-11-27T03:30:00+00:00"
    assert ride["moving_s"] == 3600.0 and ride["elapsed_s"] == 3720.0 and ride["distance_m"] == 30_000.0
    assert ride["tss"] == 60.0 and ride["hr_tss"] is None and ride["normalized_power_w"] == 210.0
    assert ride["avg_power_w"] == 190.5 and ride["intensity_factor"] == 0.8
    assert ride["avg_hr_bpm"] is None and ride["ftp_source"] is None
    assert ride["sport"] == "cycling" and ride["file_name"].endswith(".fit")

    with pytest.raises(ValueError, match="unknown time zone"):
        await rides_on_day(pool, athlete_id, date(2026, 11, 26), "Mars/Olympus")


async def test_daily_load_sums_per_local_day(store, athlete_id):
    pool = store.pool
    await _insert_ride(store, athlete_id, datetime(2026, 11, 26, 16, 0, tzinfo=UTC), tss=50.0)
    await _insert_ride(store, athlete_id, datetime(2026, 11, 27, 3, 30, tzinfo=UTC), tss=30.0)
    await _insert_ride(store, athlete_id, datetime(2026, 11, 27, 18, 0, tzinfo=UTC), tss=None, hr_tss=42.0)
    await _insert_ride(store, athlete_id, datetime(2026, 11, 28, 18, 0, tzinfo=UTC), tss=None, hr_tss=None)
    await _insert_ride(store, athlete_id, datetime(2026, 12, 5, 18, 0, tzinfo=UTC), tss=99.0)  # out of range

    start, end = date(2026, 11, 20), date(2026, 11, 30)
    assert await daily_load(pool, athlete_id, start, end, "America/Los_Angeles") == {
        date(2026, 11, 26): 80.0,
        date(2026, 11, 27): 42.0,
        date(2026, 11, 28): 0.0,
    }
    assert await daily_load(pool, athlete_id, start, end, "UTC") == {
        date(2026, 11, 26): 50.0,
        date(2026, 11, 27): 72.0,
        date(2026, 11, 28): 0.0,
    }
    assert await daily_load(pool, athlete_id, date(2026, 11, 27), date(2026, 11, 27), "UTC") == {
        date(2026, 11, 27): 72.0
    }
    with pytest.raises(ValueError, match="before start"):
        await daily_load(pool, athlete_id, end, start, "UTC")


async def test_last_ride(store, athlete_id):
    assert await last_ride(store.pool, athlete_id) is None
    await _insert_ride(store, athlete_id, datetime(2026, 11, 20, 7, 0, tzinfo=UTC))
    newest = await _insert_ride(
        store,
        athlete_id,
        datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
        tss=None,
        hr_tss=55.0,
        metrics={"avg_hr_bpm": 141.2, "ftp_source": None},
    )
    await _insert_ride(store, athlete_id, datetime(2026, 11, 22, 7, 0, tzinfo=UTC))
    ride = await last_ride(store.pool, athlete_id)
    assert ride is not None
    assert ride["ride_id"] == newest
    assert ride["hr_tss"] == 55.0 and ride["avg_hr_bpm"] == 141.2 and ride["avg_power_w"] is None


async def test_plan_and_rides_feed_compare_day(store, athlete_id):
    plans = PlanStore(store.pool)
    await plans.import_rows(athlete_id, parse_plan_csv(PLAN))
    await _insert_ride(store, athlete_id, datetime(2026, 11, 26, 16, 0, tzinfo=UTC), moving_s=6600.0, tss=90.0)
    day = date(2026, 11, 26)
    result = compare_day(
        await plans.plan_for_day(athlete_id, day),
        await rides_on_day(store.pool, athlete_id, day, "America/Los_Angeles"),
    )
    assert result["status"] == "done"
    assert result["planned_duration_s"] == 7200 and result["actual_moving_s"] == 6600
    assert result["duration_compliance"] == 0.92
