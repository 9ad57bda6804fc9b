"""All the SQL of the `rides` and `debriefs` tables: the Debrief Coach's writes and reads, the tools' queries.

`RideStore` holds the stored rides and their debriefs (`insert_ride` and `insert_debrief` take the connection of a
transaction: `RideStore.save_debriefed_ride` writes the ride, its debrief and the facts it changes in one). The
module functions are the coach's tools' reads: rides of a local day, daily training load, the last ride.

A "day" is the athlete's local calendar day: a ride belongs to day D when its start in local wall-clock time falls
on D, local meaning the athlete's ``timezone`` value (`records.athlete_values`), else the UTC offset its file gave
(FIT ``activity.local_timestamp``), else the `tz` the caller gives (the setting or the client's zone).
Every query filters by athlete; every query is also bounded on `start_time` (a window two days wider than the
UTC range of the days asked, enough for any UTC offset) so the `(athlete_id, start_time)` index is used.

Ride dicts (`rides_on_day`, `last_ride`)::

    {"ride_id": str, "file_name": str, "sport": str, "start_time": str (ISO 8601, UTC),
     "elapsed_s": float, "moving_s": float, "distance_m": float | None, "normalized_power_w": float | None,
     "tss": float | None, "hr_tss": float | None,
     # from the metrics JSONB (see training.metrics.RideMetrics):
     "avg_power_w": float | None, "intensity_factor": float | None, "avg_hr_bpm": float | None,
     "ftp_source": "confirmed" | "device" | "fitted" | "ride_best_60min_np" | None, "tss_status": str | None,
     "primary_ride_id": str | None (set on the linked copy of an activity recorded twice)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from memory.athlete_store import AthleteStore, validate_athlete_id
from memory.db import DictPool
from records.athlete_values import propose_value, recompute_scores, record_value
from records.best_curve import add_ride_curve, rebuild_best_curve
from records.fitted_model import propose_fitted_cp, refresh_fitted_cp
from training.dates import validate_timezone
from training.records import FactChange, RideRecord
from training.scoring import Recording, choose_primary, same_activity

_MARGIN = timedelta(days=2)
"""Widening of the UTC window around local days: UTC offsets lie within -12 h..+14 h."""

_RIDE_SELECT = """SELECT ride_id, file_name, sport, start_time, elapsed_s, moving_s, distance_m,
       normalized_power_w, tss, hr_tss,
       (metrics->>'avg_power_w')::float8 AS avg_power_w,
       (metrics->>'intensity_factor')::float8 AS intensity_factor,
       (metrics->>'avg_hr_bpm')::float8 AS avg_hr_bpm,
       metrics->>'ftp_source' AS ftp_source, metrics->>'tss_status' AS tss_status, primary_ride_id
FROM rides"""

_LOCAL_DAY = """(CASE WHEN (SELECT tz FROM athlete_tz) IS NOT NULL
           THEN start_time AT TIME ZONE (SELECT tz FROM athlete_tz)
      WHEN utc_offset_s IS NOT NULL THEN (start_time AT TIME ZONE 'UTC') + utc_offset_s * interval '1 second'
      ELSE start_time AT TIME ZONE %(tz)s END)::date"""
"""A ride's local day: in the athlete's time zone value, else by its file's UTC offset, else in ``tz``."""

_ATHLETE_TZ = """WITH athlete_tz AS (
    SELECT value #>> '{}' AS tz FROM athlete_values WHERE athlete_id = %(athlete_id)s AND key = 'timezone'
    ORDER BY (source = 'confirmed') DESC, valid_from DESC LIMIT 1)"""


RIDE_COLUMNS = (
    "ride_id, file_name, file_format, sport, start_time, elapsed_s, moving_s, distance_m, normalized_power_w, "
    "tss, hr_tss, metrics, curve_durations_s, curve_power_w, end_time, utc_offset_s, channels, n_samples, "
    "primary_ride_id, hr_hist_bpm, hr_hist_s, power_hist_w, power_hist_s, power_1hz_w"
)
"""The columns of `rides` that make a `training.records.RideRecord`."""

_INSERT_RIDE_SQL = f"""INSERT INTO rides ({RIDE_COLUMNS}, athlete_id)
    VALUES (%(ride_id)s, %(file_name)s, %(file_format)s, %(sport)s, %(start_time)s, %(elapsed_s)s, %(moving_s)s,
            %(distance_m)s, %(normalized_power_w)s, %(tss)s, %(hr_tss)s, %(metrics)s, %(curve_durations_s)s,
            %(curve_power_w)s, %(end_time)s, %(utc_offset_s)s, %(channels)s, %(n_samples)s, %(primary_ride_id)s,
            %(hr_hist_bpm)s, %(hr_hist_s)s, %(power_hist_w)s, %(power_hist_s)s, %(power_1hz_w)s, %(athlete_id)s)"""


async def insert_ride(
    conn: AsyncConnection[DictRow], athlete_id: str, ride: RideRecord, *, move_existing: bool = False
) -> None:
    """Insert a ride row on `conn` (inside the caller's transaction).

    Args:
        conn: an open connection, usually in a transaction.
        athlete_id: the owner (checked by the caller).
        ride: the ride.
        move_existing: when the ride exists already, set its start time to `ride.start_time` (the demo's replayed
            copies); otherwise an existing row is left as it is.

    A new primary ride's curve is folded into the athlete's kept all-time best curve (`records.best_curve`), which
    is rebuilt when a ride is moved.
    """
    conflict = "DO UPDATE SET start_time = EXCLUDED.start_time" if move_existing else "DO NOTHING"
    params = {**ride.__dict__, "metrics": Jsonb(ride.metrics), "athlete_id": athlete_id}
    cur = await conn.execute(
        f"{_INSERT_RIDE_SQL} ON CONFLICT (athlete_id, ride_id) {conflict} RETURNING (xmax = 0) AS inserted", params
    )
    row = await cur.fetchone()
    if row is None or ride.curve_durations_s is None or ride.curve_power_w is None:
        return
    if not row["inserted"]:
        await rebuild_best_curve(conn, athlete_id)  # a moved ride: its points' dates change
    elif ride.primary_ride_id is None:
        await add_ride_curve(
            conn, athlete_id, ride.ride_id, ride.start_time, ride.curve_durations_s, ride.curve_power_w
        )


async def insert_debrief(conn: AsyncConnection[DictRow], athlete_id: str, ride_id: str, text: str, writer: str) -> bool:
    """Insert a ride's debrief on `conn` unless it has one; return whether it was inserted."""
    cur = await conn.execute(
        """INSERT INTO debriefs (athlete_id, ride_id, text, writer) VALUES (%s, %s, %s, %s)
           ON CONFLICT (athlete_id, ride_id) DO NOTHING RETURNING ride_id""",
        (athlete_id, ride_id, text, writer),
    )
    return await cur.fetchone() is not None


class RideStore:
    """The athlete's stored rides and their debriefs, through a psycopg pool (autocommit, dict rows).

    Every method takes the athlete id and every query filters by it.
    """

    def __init__(self, pool: DictPool, facts: AthleteStore) -> None:
        """Wrap an open pool and the athlete store whose `facts_transaction` a debrief's facts go through."""
        self.pool = pool
        self.facts = facts

    async def get_ride(self, athlete_id: str, ride_id: str) -> RideRecord | None:
        """Return the athlete's ride `ride_id`, or None (also when the ride belongs to another athlete)."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {RIDE_COLUMNS} FROM rides WHERE athlete_id = %s AND ride_id = %s", (athlete_id, ride_id)
            )
            row = await cur.fetchone()
        return RideRecord(**row) if row else None

    async def list_rides(self, athlete_id: str, *, limit: int = 1000) -> list[RideRecord]:
        """Return the athlete's rides, most recent start first."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {RIDE_COLUMNS} FROM rides WHERE athlete_id = %s ORDER BY start_time DESC LIMIT %s",
                (athlete_id, limit),
            )
            return [RideRecord(**r) for r in await cur.fetchall()]

    async def get_debrief(self, athlete_id: str, ride_id: str) -> dict[str, Any] | None:
        """Return `{"text", "writer", "facts_changed", "created_at"}` of the ride's debrief, or None."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT text, writer, facts_changed, created_at FROM debriefs
                   WHERE athlete_id = %s AND ride_id = %s""",
                (athlete_id, ride_id),
            )
            return await cur.fetchone()

    async def rides_without_debrief(self, athlete_id: str) -> list[str]:
        """Return ids of the athlete's stored rides that have no debrief yet, oldest first."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT r.ride_id FROM rides r
                   LEFT JOIN debriefs d ON d.athlete_id = r.athlete_id AND d.ride_id = r.ride_id
                   WHERE r.athlete_id = %s AND d.ride_id IS NULL ORDER BY r.start_time""",
                (athlete_id,),
            )
            return [r["ride_id"] for r in await cur.fetchall()]

    async def save_debriefed_ride(
        self,
        athlete_id: str,
        ride: RideRecord,
        fact_changes: Sequence[FactChange],
        debrief_text: str,
        writer: str,
        *,
        dated_values: Sequence[Mapping[str, Any]] = (),
        proposals: Sequence[Mapping[str, Any]] = (),
    ) -> list[str] | None:
        """Store a ride, the facts and values it gives, its proposals and its debrief in one transaction.

        The ride row is inserted unless it exists (an earlier upload without a debrief is fine); the debrief is
        inserted unless one exists. When the ride already has a debrief, nothing at all is written. The facts go
        through the one facts write path (`AthleteStore.facts_transaction`: source `debrief_coach`, the ride as
        provenance), in the same transaction; its commit drops the athlete's cached facts. The dated values read
        from the file (``{"key", "value", "source", "valid_from", "evidence"}``) go to ``athlete_values``; a
        recording of the same activity is linked (`link_same_activity`); the proposals (``{"key", "value",
        "evidence"}``) are made; then the rides from the earliest changed value on (this one included) are
        re-scored (`records.athlete_values.recompute_scores`, after the fitted CP/W′ of the windows holding the ride
        are refitted, so W′ balances follow them); the latest fitted CP is proposed when it disagrees with the
        value in force (`records.fitted_model`).

        Returns:
            The fact keys that changed, or None when the ride was already debriefed (nothing written).

        Raises:
            InvalidAthleteIdError: bad athlete id.
            InvalidFactError: a fact change that cannot be stored (nothing is written).
        """
        validate_athlete_id(athlete_id)
        async with self.facts.facts_transaction(athlete_id) as tx:
            conn = tx.conn
            await insert_ride(conn, athlete_id, ride)
            if not await insert_debrief(conn, athlete_id, ride.ride_id, debrief_text, writer):
                return None  # already debriefed: the transaction commits nothing new (the ride row existed).
            changed = await tx.apply(fact_changes, "debrief_coach", source_ride_id=ride.ride_id)
            since = ride.start_time
            for v in dated_values:
                if await record_value(
                    conn, athlete_id, v["key"], v["value"], v["source"], v["valid_from"], v["evidence"]
                ):
                    since = min(since, v["valid_from"])
            await link_same_activity(conn, athlete_id, ride)
            await refresh_fitted_cp(conn, athlete_id, ride.start_time)  # before: W' balance follows the fitted CP
            await recompute_scores(conn, athlete_id, since)
            for p in proposals:
                await propose_value(conn, athlete_id, p["key"], p["value"], p["evidence"])
            await propose_fitted_cp(conn, athlete_id)
            await conn.execute(
                "UPDATE debriefs SET facts_changed = %s WHERE athlete_id = %s AND ride_id = %s",
                (Jsonb(changed), athlete_id, ride.ride_id),
            )
            return changed

    async def save_replay_ride(self, athlete_id: str, ride: RideRecord, debrief_text: str) -> None:
        """Store a replayed copy of a ride (the demo's recent days), moving it if it exists already.

        The copy keeps the original's metrics and debrief; only its id and start time differ. Facts are not
        touched: the original ride already counted.
        """
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn, conn.transaction():
            await insert_ride(conn, athlete_id, ride, move_existing=True)
            await insert_debrief(conn, athlete_id, ride.ride_id, debrief_text, "replay")


async def link_same_activity(conn: AsyncConnection[DictRow], athlete_id: str, ride: RideRecord) -> str | None:
    """Link the recordings of one activity: one stays primary (counted), the others point to it (never counted).

    Rides of the athlete whose spans overlap ``ride``'s by 80 % or more of the shorter are one activity
    (`training.scoring.same_activity`); the richer recording is primary (`training.scoring.choose_primary`). The
    kept all-time best curve is rebuilt when recordings are linked (it holds primary rides only).

    Returns:
        The primary ride's id when ``ride`` overlaps another recording, else None.
    """
    if ride.end_time is None:
        return None
    cur = await conn.execute(
        """SELECT ride_id, start_time, coalesce(end_time, start_time + elapsed_s * interval '1 second') AS end_time,
                  coalesce(channels, '{}') AS channels, coalesce(n_samples, 0) AS n_samples
           FROM rides WHERE athlete_id = %s AND ride_id <> %s AND primary_ride_id IS NULL
             AND start_time < %s AND coalesce(end_time, start_time + elapsed_s * interval '1 second') > %s
           ORDER BY start_time, ride_id""",
        (athlete_id, ride.ride_id, ride.end_time, ride.start_time),
    )
    this = Recording(ride.ride_id, ride.start_time, ride.end_time, ride.channels or [], ride.n_samples or 0)
    group = [this]
    for row in await cur.fetchall():
        other = Recording(row["ride_id"], row["start_time"], row["end_time"], row["channels"], row["n_samples"])
        if same_activity(this, other):
            group.append(other)
    if len(group) == 1:
        return None
    primary = group[0]
    for other in group[1:]:
        primary, _ = choose_primary(primary, other)
    linked = [r.ride_id for r in group if r is not primary]
    await conn.execute(
        """UPDATE rides SET primary_ride_id = %s
           WHERE athlete_id = %s AND (ride_id = ANY(%s) OR primary_ride_id = ANY(%s))""",
        (primary.ride_id, athlete_id, linked, linked),
    )
    await conn.execute(
        "UPDATE rides SET primary_ride_id = NULL WHERE athlete_id = %s AND ride_id = %s", (athlete_id, primary.ride_id)
    )
    await rebuild_best_curve(conn, athlete_id)  # a linked copy is not in the kept best curve
    return primary.ride_id


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
            f"""{_ATHLETE_TZ} {_RIDE_SELECT}
                WHERE athlete_id = %(athlete_id)s AND start_time >= %(lower)s AND start_time < %(upper)s
                  AND {_LOCAL_DAY} = %(day)s
                ORDER BY start_time""",
            {"athlete_id": athlete_id, "lower": lower, "upper": upper, "tz": tz, "day": day},
        )
        return [_ride_dict(r) for r in await cur.fetchall()]


async def daily_load(pool: DictPool, athlete_id: str, start: date, end: date, tz: str) -> dict[date, float]:
    """Return the athlete's training stress per local day from `start` to `end`, both included.

    A ride counts its power TSS, or its hrTSS when it has no power TSS, or 0 when it has neither (TrainingPeaks
    likewise scores a workout by power first, heart rate otherwise). A linked recording of an activity
    (``primary_ride_id`` set) is never counted: one ride, one load. Days are local: in the athlete's
    ``timezone`` value when there is one, else by the ride file's UTC offset, else in ``tz``.

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
            f"""{_ATHLETE_TZ} SELECT {_LOCAL_DAY} AS day, sum(coalesce(tss, hr_tss, 0)) AS tss FROM rides
               WHERE athlete_id = %(athlete_id)s AND start_time >= %(lower)s AND start_time < %(upper)s
                 AND primary_ride_id IS NULL AND {_LOCAL_DAY} BETWEEN %(start)s AND %(end)s
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
