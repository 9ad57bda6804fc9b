"""Reads of the `rides` table for the coach's tools: rides of a local day, daily training load, the last ride.

A "day" is the athlete's local calendar day: a ride belongs to day D in time zone `tz` when
``(start_time AT TIME ZONE tz)::date = D`` (Postgres converts the stored UTC instant to local wall-clock time).
Every query filters by athlete; every query is also bounded on `start_time` (a window two days wider than the
UTC range of the days asked, enough for any UTC offset) so the `(athlete_id, start_time)` index is used.

Ride dicts (`rides_on_day`, `last_ride`)::

    {"ride_id": str, "file_name": str, "sport": str, "start_time": str (ISO 8601, UTC),
     "elapsed_s": float, "moving_s": float, "distance_m": float | None, "normalized_power_w": float | None,
     "tss": float | None, "hr_tss": float | None,
     # from the metrics JSONB (see training.metrics.RideMetrics):
     "avg_power_w": float | None, "intensity_factor": float | None, "avg_hr_bpm": float | None,
     "ftp_source": "athlete" | "estimated" | None}
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from memory.athlete_store import validate_athlete_id
from memory.db import DictPool
from training.dates import validate_timezone

_MARGIN = timedelta(days=2)
"""Widening of the UTC window around local days: UTC offsets lie within -12 h..+14 h."""

_RIDE_SELECT = """SELECT ride_id, file_name, sport, start_time, elapsed_s, moving_s, distance_m,
       normalized_power_w, tss, hr_tss,
       (metrics->>'avg_power_w')::float8 AS avg_power_w,
       (metrics->>'intensity_factor')::float8 AS intensity_factor,
       (metrics->>'avg_hr_bpm')::float8 AS avg_hr_bpm,
       metrics->>'ftp_source' AS ftp_source
FROM rides"""


async def rides_on_day(pool: DictPool, athlete_id: str, day: date, tz: str) -> list[dict[str, Any]]:
    """Return the athlete's rides that started on local day `day` in time zone `tz`, earliest first.

    Args:
        pool: open pool (autocommit, dict rows).
        athlete_id: the athlete.
        day: local calendar day.
        tz: the athlete's IANA time zone name.

    Returns:
        Ride dicts (see the module docstring); empty when there is none.

    Raises:
        InvalidAthleteIdError: bad athlete id.
        InvalidTimezoneError: unknown time zone (a ValueError).
    """
    validate_athlete_id(athlete_id)
    _check_tz(tz)
    lower, upper = _utc_window(day, day)
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"""{_RIDE_SELECT}
                WHERE athlete_id = %(athlete_id)s AND start_time >= %(lower)s AND start_time < %(upper)s
                  AND (start_time AT TIME ZONE %(tz)s)::date = %(day)s
                ORDER BY start_time""",
            {"athlete_id": athlete_id, "lower": lower, "upper": upper, "tz": tz, "day": day},
        )
        return [_ride_dict(r) for r in await cur.fetchall()]


async def daily_load(pool: DictPool, athlete_id: str, start: date, end: date, tz: str) -> dict[date, float]:
    """Return the athlete's training stress per local day from `start` to `end`, both included.

    A ride counts its power TSS, or its hrTSS when it has no power TSS, or 0 when it has neither (TrainingPeaks
    likewise scores a workout by power first, heart rate otherwise).

    Args:
        pool: open pool (autocommit, dict rows).
        athlete_id: the athlete.
        start: first local day.
        end: last local day, not before `start`.
        tz: the athlete's IANA time zone name.

    Returns:
        ``{local day: summed TSS}`` for the days with at least one ride; days without a ride are absent.

    Raises:
        InvalidAthleteIdError: bad athlete id.
        InvalidTimezoneError: unknown time zone (a ValueError), or `end` before `start`.
    """
    validate_athlete_id(athlete_id)
    _check_tz(tz)
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    lower, upper = _utc_window(start, end)
    async with pool.connection() as conn:
        cur = await conn.execute(
            """SELECT (start_time AT TIME ZONE %(tz)s)::date AS day, sum(coalesce(tss, hr_tss, 0)) AS tss
               FROM rides
               WHERE athlete_id = %(athlete_id)s AND start_time >= %(lower)s AND start_time < %(upper)s
                 AND (start_time AT TIME ZONE %(tz)s)::date BETWEEN %(start)s AND %(end)s
               GROUP BY 1 ORDER BY 1""",
            {"athlete_id": athlete_id, "lower": lower, "upper": upper, "tz": tz, "start": start, "end": end},
        )
        return {r["day"]: float(r["tss"]) for r in await cur.fetchall()}


async def last_ride(pool: DictPool, athlete_id: str) -> dict[str, Any] | None:
    """Return the athlete's most recent ride by start time (a ride dict, see the module docstring), or None.

    Raises:
        InvalidAthleteIdError: bad athlete id.
    """
    validate_athlete_id(athlete_id)
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"{_RIDE_SELECT} WHERE athlete_id = %s ORDER BY start_time DESC, ride_id LIMIT 1", (athlete_id,)
        )
        row = await cur.fetchone()
    return _ride_dict(row) if row else None


def _ride_dict(row: dict[str, Any]) -> dict[str, Any]:
    start: datetime = row["start_time"]
    return {**row, "start_time": start.astimezone(UTC).isoformat()}


def _check_tz(tz: str) -> None:
    validate_timezone(tz)  # raises InvalidTimezoneError (a ValueError)


def _utc_window(start: date, end: date) -> tuple[datetime, datetime]:
    """A UTC range surely containing every instant of the local days `start`..`end` in any time zone."""
    lower = datetime.combine(start, time(0), tzinfo=UTC) - _MARGIN
    upper = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC) + _MARGIN
    return lower, upper
