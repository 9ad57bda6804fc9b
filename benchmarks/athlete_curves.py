"""The cost of storing and querying the full power curves (issue 11), as ratios to the cost of one debrief.

Baseline, in the same process: one debrief's computation of a real ride, `training.ride_files.read_ride` then
`training.metrics.compute_metrics` on ``data/rides/fitparse_indoor-trainer-2011-11-02.fit`` (the graph adds its
store writes and the text; the LLM is not counted).

Per ride:
- computing the ride's curve (`training.power_curve.ride_power_curve`, pauses zero-filled, log grid);
- inserting its row with the curve arrays (`records.rides.insert_ride`, one transaction per ride, as a debrief;
  it folds the curve into the kept all-time best curve, `records.best_curve`);
- refitting the stored CP/W′ of the windows the ride falls in (`records.fitted_model.refresh_fitted_cp`), in the
  same transaction: for the newest ride (one window) during the load, and for a late ride of 89 days ago (the
  windows of the 89 rides after it; an easy one that raises no best and a best one), rolled back after each run.

Per athlete over 5 years of daily rides: 1,826 rides inserted into a throwaway database (``<db>_curves``, the
schema by `records.stores.open_stores` on a settings copy, dropped at the end unless ``--keep``), each a copy of
the real ride whose curve is cut to a random length and scaled by a random factor (0.75-1.05: bad days and good
days); then the athlete's best curve over the trailing 42 and 90 days and all time, as the project computes it:
the rows' curve arrays (`records.athlete_values.prior_curves`' query; its own function for 90 days) and their
envelope (`training.power_curve.best_of_curves`), timed together; and the kept all-time curve read
(`records.best_curve.best_curve`) and rebuilt from the rides (what a linked, moved or removed ride costs).
Also the W′ balance of one ride recomputed from its stored 1 Hz power (`records.athlete_values.recompute_scores`
does it per ride when a CP or W′ changes) and the stored bytes of that series per row.

Figures are p50/p95 in ms over ``--repeats`` runs and their p50 as a ratio to the baseline's p50.

Usage: ``uv run python benchmarks/athlete_curves.py [--repeats N] [--rides N] [--database NAME] [--keep] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from config.settings import get_settings
from records.athlete_values import prior_curves
from records.best_curve import best_curve as best_curve_kept
from records.best_curve import rebuild_best_curve
from records.fitted_model import refresh_fitted_cp
from records.rides import insert_ride
from records.stores import open_stores
from training.athlete_model import w_prime_figures
from training.debrief import ride_record
from training.metrics import compute_metrics
from training.power_curve import best_of_curves, ride_power_curve
from training.power_series import unpack_power_series
from training.records import RideRecord
from training.ride_files import read_ride

REAL_RIDE = Path(__file__).resolve().parents[1] / "data" / "rides" / "fitparse_indoor-trainer-2011-11-02.fit"
ATHLETE = "bench-curves"
FIVE_YEARS_DAYS = 1826
WINDOWS_DAYS: tuple[int | None, ...] = (42, 90, None)
"""Trailing windows of the athlete's best curve; None is all time."""
FTP_W = 250.0  # the file's device FTP (tests/integration/test_athlete_model.py DEVICE_VALUES)
T0 = datetime(2020, 1, 1, 7, tzinfo=UTC)
BACKFILL_DAYS = 89
"""A late ride this many days before the newest falls in the 90-day windows of the 89 rides after it."""

_CURVES_SQL = """SELECT ride_id, start_time, curve_durations_s, curve_power_w FROM rides
    WHERE athlete_id = %s AND start_time < %s AND (%s::timestamptz IS NULL OR start_time >= %s)
      AND primary_ride_id IS NULL AND curve_durations_s IS NOT NULL
    ORDER BY start_time"""
"""`records.athlete_values.prior_curves`' query with the window as a parameter (None: all time)."""


def stats_ms(samples_s: list[float]) -> dict[str, float]:
    """p50 and p95 in ms of durations in seconds."""
    ms = np.asarray(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Durations in seconds of `repeats` calls of `fn` (one warm-up call first)."""
    fn()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


async def atimed(fn: Callable[[], Awaitable[Any]], repeats: int) -> list[float]:
    """As `timed`, for a coroutine function."""
    await fn()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


def synthetic_rides(real: RideRecord, n: int, seed: int = 11) -> list[RideRecord]:
    """`n` daily copies of `real` from `T0`, each curve cut to a random length and scaled by 0.75-1.05."""
    assert real.curve_durations_s is not None and real.curve_power_w is not None
    rng = random.Random(seed)
    k_all = len(real.curve_durations_s)
    rides = []
    for i in range(n):
        k = rng.randint(max(2, k_all * 2 // 3), k_all)
        factor = rng.uniform(0.75, 1.05)
        rides.append(
            dataclasses.replace(
                real,
                ride_id=f"bench-{i:05d}",
                start_time=T0 + timedelta(days=i),
                end_time=T0 + timedelta(days=i, seconds=real.curve_durations_s[k - 1]),
                curve_durations_s=real.curve_durations_s[:k],
                curve_power_w=[round(p * factor, 2) for p in real.curve_power_w[:k]],
            )
        )
    return rides


async def best_curve(conn: AsyncConnection[DictRow], as_of: datetime, days: int | None) -> int:
    """The athlete's best curve of the `days` before `as_of` (None: all time); returns its number of points."""
    if days == 90:  # the project's own function (FIT_WINDOW_DAYS = 90)
        curves = [c for _, _, c in await prior_curves(conn, ATHLETE, as_of)]
    else:
        lower = None if days is None else as_of - timedelta(days=days)
        cur = await conn.execute(_CURVES_SQL, (ATHLETE, as_of, lower, lower))
        curves = [
            (np.asarray(r["curve_durations_s"], dtype=np.int64), np.asarray(r["curve_power_w"], dtype=np.float64))
            for r in await cur.fetchall()
        ]
    durations, _, _ = best_of_curves(curves)
    return int(durations.size)


async def backfill_refits(pool: Any, rides: list[RideRecord], repeats: int) -> dict[str, Any]:
    """The stored CP/W′ refit when a ride of ``BACKFILL_DAYS`` ago arrives late (its windows: every later ride's).

    Two late rides: an easy one (the real ride at 0.8: raises no best of the windows) and a best one (at 1.1:
    raises them all). Each run inserts the ride and refits in one transaction that is rolled back.
    """
    out: dict[str, Any] = {}
    at = rides[-1].start_time - timedelta(days=BACKFILL_DAYS, hours=-3)
    base = rides[-1]
    for name, factor in (("refit_cp_backfill_easy", 0.8), ("refit_cp_backfill_best", 1.1)):
        late = dataclasses.replace(
            base,
            ride_id=f"late-{factor}",
            start_time=at,
            end_time=at + (base.end_time - base.start_time) if base.end_time else None,
            curve_power_w=[round(p * factor, 2) for p in base.curve_power_w or []],
        )

        async def refit(late: RideRecord = late) -> int:
            async with pool.connection() as conn, conn.transaction(force_rollback=True):
                await insert_ride(conn, ATHLETE, late)
                return await refresh_fitted_cp(conn, ATHLETE, late.start_time)

        out[name] = stats_ms(await atimed(refit, repeats))
    return out


async def athlete_figures(url: str, rides: list[RideRecord], repeats: int) -> dict[str, Any]:
    """Insert `rides` one transaction each, then time the best curves; the figures by name."""
    settings = get_settings().model_copy(update={"database_url": url})
    async with open_stores(settings, require_postgres=True) as stores:
        pool = stores.athlete_store.pool
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM rides WHERE athlete_id = %s", (ATHLETE,))
            await conn.execute("DELETE FROM athlete_values WHERE athlete_id = %s", (ATHLETE,))
        insert_s, refit_s = [], []
        for ride in rides:
            async with pool.connection() as conn, conn.transaction():
                started = time.perf_counter()
                await insert_ride(conn, ATHLETE, ride)
                inserted = time.perf_counter()
                await refresh_fitted_cp(conn, ATHLETE, ride.start_time)
            insert_s.append(inserted - started)
            refit_s.append(time.perf_counter() - inserted)
        out: dict[str, Any] = {"insert_ride": stats_ms(insert_s), "rides": len(rides)}
        out["refit_cp_newest"] = stats_ms(refit_s)
        out.update(await backfill_refits(pool, rides, repeats))
        async with pool.connection() as conn:
            await conn.execute("ANALYZE rides")
            cur = await conn.execute(
                """SELECT avg(pg_column_size(curve_durations_s) + pg_column_size(curve_power_w))::float8 AS b,
                          avg(cardinality(curve_durations_s))::float8 AS k,
                          avg(pg_column_size(power_1hz_w))::float8 AS series_b
                   FROM rides WHERE athlete_id = %s""",
                (ATHLETE,),
            )
            row = await cur.fetchone()
            assert row is not None
            out["curve_bytes_per_ride"] = round(row["b"])
            out["curve_points_per_ride"] = round(row["k"], 1)
            out["power_1hz_bytes_per_ride"] = round(row["series_b"])
            as_of = rides[-1].start_time + timedelta(hours=12)
            for days in WINDOWS_DAYS:
                name = f"best_curve_{days}d" if days else "best_curve_all_time"

                async def query(days: int | None = days) -> int:
                    return await best_curve(conn, as_of, days)

                out[name] = {**stats_ms(await atimed(query, repeats)), "points": await query()}

            async def kept() -> int:
                curve = await best_curve_kept(conn, ATHLETE)
                return 0 if curve is None else int(curve.durations_s.size)

            async def rebuild() -> None:
                async with conn.transaction(force_rollback=True):
                    await rebuild_best_curve(conn, ATHLETE)

            out["best_curve_all_time_kept"] = {**stats_ms(await atimed(kept, repeats)), "points": await kept()}
            out["rebuild_best_curve"] = stats_ms(await atimed(rebuild, repeats))
        return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table or ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per figure (default 30)")
    parser.add_argument("--rides", type=int, default=FIVE_YEARS_DAYS, help="daily rides of the athlete (1,826)")
    parser.add_argument("--database", help="throwaway database (default <DATABASE_URL db>_curves)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rides < 1:
        parser.error("--repeats and --rides must be >= 1")
    started = time.perf_counter()

    def debrief_computation() -> Any:
        ride = read_ride(REAL_RIDE)
        return ride, compute_metrics(ride, ftp_w=FTP_W)

    baseline = stats_ms(timed(debrief_computation, args.repeats))
    ride, metrics = debrief_computation()
    report: dict[str, Any] = {"ride": REAL_RIDE.name, "baseline_debrief": baseline}
    report["compute_curve"] = stats_ms(timed(lambda: ride_power_curve(ride.samples), args.repeats))
    real = ride_record(ride, metrics)
    assert real.power_1hz_w is not None
    stored_power = real.power_1hz_w
    report["w_prime_recompute"] = stats_ms(
        timed(lambda: w_prime_figures(unpack_power_series(stored_power), 250.0, 20000.0, "confirmed"), args.repeats)
    )

    base = get_settings().database_url
    name = args.database or f"{psycopg.conninfo.conninfo_to_dict(base).get('dbname') or 'coach'}_curves"
    info = psycopg.conninfo.conninfo_to_dict(base)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    with psycopg.connect(base, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        print(f"inserting {args.rides:,} rides into {name}", file=sys.stderr)
        report.update(asyncio.run(athlete_figures(url, synthetic_rides(real, args.rides), args.repeats)))
    finally:
        if not args.keep:
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    for value in report.values():
        if isinstance(value, dict) and "p50_ms" in value:
            value["x_debrief"] = round(value["p50_ms"] / baseline["p50_ms"], 4)
    report["run_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"baseline: one debrief's read_ride + compute_metrics of {report['ride']}")
        print(f"{'figure':<24}{'p50 ms':>10}{'p95 ms':>10}{'x debrief':>11}")
        for key, value in report.items():
            if isinstance(value, dict) and "p50_ms" in value:
                print(f"{key:<24}{value['p50_ms']:>10.2f}{value['p95_ms']:>10.2f}{value['x_debrief']:>11.4f}")
        print(
            f"{report['rides']:,} rides; curve {report['curve_points_per_ride']} points, "
            f"{report['curve_bytes_per_ride']} bytes per ride; 1 Hz power {report['power_1hz_bytes_per_ride']} bytes "
            f"per ride; run {report['run_s']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
