"""The athlete's all-time best power curve, kept per athlete (table ``athlete_best_curves``, `memory.schema` v36).

The curve is the envelope of the curves of the athlete's primary rides (linked duplicates left out): per duration
the best mean-max power and the ride and start it comes from, the earliest ride (then the smaller ride id) on a
tie, as `training.power_curve.best_of_curves` over the rides oldest first. Computing it from every stored ride on
each request costs about as much as a debrief at 5 years of daily rides (`benchmarks/athlete_curves.py`), so:

* a ride inserted as a primary ride is folded in (`add_ride_curve`: the envelope of the kept curve and the ride's,
  in one statement; order-free, since the tie rule is a total order);
* when rides are linked as one activity (a primary becomes a linked copy), moved or removed, or restored from an
  export, the curve is rebuilt from the rides (`rebuild_best_curve`); an erase (`coach forget`) removes the row
  with the athlete's other rows.

The 42- and 90-day windows stay queries (`records.athlete_values.prior_curves`): a few ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection
from psycopg.rows import DictRow

_BEST_SELECT = """SELECT array_agg(d ORDER BY d) AS durations_s, array_agg(p ORDER BY d) AS power_w,
           array_agg(r ORDER BY d) AS ride_ids, array_agg(t ORDER BY d) AS start_times
    FROM (SELECT DISTINCT ON (d) d, p, r, t FROM candidates WHERE p <> 'NaN'::float8 ORDER BY d, p DESC, t, r) best"""
"""The envelope of ``candidates(d, p, r, t)``: per duration the highest power, the earliest (t, r) on a tie."""

_UPSERT = """INSERT INTO athlete_best_curves (athlete_id, durations_s, power_w, ride_ids, start_times)
    SELECT %(a)s, durations_s, power_w, ride_ids, start_times FROM envelope WHERE durations_s IS NOT NULL
    ON CONFLICT (athlete_id) DO UPDATE SET durations_s = EXCLUDED.durations_s, power_w = EXCLUDED.power_w,
        ride_ids = EXCLUDED.ride_ids, start_times = EXCLUDED.start_times, updated_at = clock_timestamp()"""


@dataclass(frozen=True)
class BestCurve:
    """An athlete's all-time best curve: four arrays of shape ``(k,)``, sorted by duration.

    Attributes:
        durations_s: int64 durations (s).
        power_w: float64 best mean-max power (W) at each duration.
        ride_ids: the ride each best comes from.
        start_times: that ride's start (timezone-aware).
    """

    durations_s: npt.NDArray[np.int64]
    power_w: npt.NDArray[np.float64]
    ride_ids: list[str]
    start_times: list[datetime]


async def add_ride_curve(
    conn: AsyncConnection[DictRow],
    athlete_id: str,
    ride_id: str,
    start_time: datetime,
    durations_s: list[int],
    power_w: list[float],
) -> None:
    """Fold one primary ride's curve into the athlete's kept best curve (in the caller's transaction)."""
    await conn.execute(
        f"""WITH candidates AS (
                SELECT u.d, u.p, u.r, u.t FROM athlete_best_curves b,
                    unnest(b.durations_s, b.power_w, b.ride_ids, b.start_times) AS u(d, p, r, t)
                WHERE b.athlete_id = %(a)s
                UNION ALL
                SELECT u.d, u.p, %(ride)s::text, %(start)s::timestamptz
                FROM unnest(%(durations)s::int[], %(power)s::float8[]) AS u(d, p)),
            envelope AS ({_BEST_SELECT})
            {_UPSERT}""",
        {"a": athlete_id, "ride": ride_id, "start": start_time, "durations": durations_s, "power": power_w},
    )


async def rebuild_best_curve(conn: AsyncConnection[DictRow], athlete_id: str) -> None:
    """Recompute the athlete's kept best curve from the stored primary rides (none: the row goes)."""
    await conn.execute("DELETE FROM athlete_best_curves WHERE athlete_id = %(a)s", {"a": athlete_id})
    await conn.execute(
        f"""WITH candidates AS (
                SELECT u.d, u.p, r.ride_id AS r, r.start_time AS t
                FROM rides r, unnest(r.curve_durations_s, r.curve_power_w) AS u(d, p)
                WHERE r.athlete_id = %(a)s AND r.primary_ride_id IS NULL AND r.curve_durations_s IS NOT NULL),
            envelope AS ({_BEST_SELECT})
            {_UPSERT}""",
        {"a": athlete_id},
    )


async def best_curve(conn: AsyncConnection[DictRow], athlete_id: str) -> BestCurve | None:
    """The athlete's kept all-time best curve, or None when no primary ride has a power curve."""
    cur = await conn.execute(
        "SELECT durations_s, power_w, ride_ids, start_times FROM athlete_best_curves WHERE athlete_id = %s",
        (athlete_id,),
    )
    row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        return None
    return BestCurve(
        np.asarray(row["durations_s"], dtype=np.int64),
        np.asarray(row["power_w"], dtype=np.float64),
        list(row["ride_ids"]),
        list(row["start_times"]),
    )


async def curves_between(
    conn: AsyncConnection[DictRow],
    athlete_id: str,
    lower: datetime | None,
    upper: datetime,
    *,
    upper_inclusive: bool = False,
    exclude_ride_id: str | None = None,
) -> list[tuple[str, datetime, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]]:
    """The curves of the athlete's primary rides started in ``[lower, upper)``, oldest first (ties by ride id).

    ``[lower, upper]`` when ``upper_inclusive``; no lower bound when ``lower`` is None; ``exclude_ride_id`` left out.

    Returns:
        ``[(ride_id, start_time, (durations_s int64, power_w float64))]``.
    """
    below = "<=" if upper_inclusive else "<"  # one of two constants: a plain range for the (athlete, start) index
    cur = await conn.execute(
        f"""SELECT ride_id, start_time, curve_durations_s, curve_power_w FROM rides
           WHERE athlete_id = %(a)s AND start_time {below} %(upper)s
             AND (%(lower)s::timestamptz IS NULL OR start_time >= %(lower)s)
             AND primary_ride_id IS NULL AND curve_durations_s IS NOT NULL AND ride_id IS DISTINCT FROM %(excluded)s
           ORDER BY start_time, ride_id""",
        {"a": athlete_id, "upper": upper, "lower": lower, "excluded": exclude_ride_id},
    )
    return [
        (
            r["ride_id"],
            r["start_time"],
            (np.asarray(r["curve_durations_s"], dtype=np.int64), np.asarray(r["curve_power_w"], dtype=np.float64)),
        )
        for r in await cur.fetchall()
    ]


async def count_curves(conn: AsyncConnection[DictRow], athlete_id: str, upper: datetime) -> tuple[int, int]:
    """``(rides before upper, rides at or after upper)``: the athlete's primary rides with a power curve."""
    cur = await conn.execute(
        """SELECT count(*) FILTER (WHERE start_time < %s) AS before, count(*) FILTER (WHERE start_time >= %s) AS after
           FROM rides WHERE athlete_id = %s AND primary_ride_id IS NULL AND curve_durations_s IS NOT NULL""",
        (upper, upper, athlete_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["before"]), int(row["after"])
