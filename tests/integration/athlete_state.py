"""Everything of an athlete's model a test compares between two athletes (or before and after a change)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

from records.athlete_values import list_values
from records.best_curve import best_curve
from records.rides import daily_load
from records.stores import Stores


async def athlete_state(deps: Stores, athlete_id: str, load_day: date) -> dict[str, Any]:
    """Rides (every column), dated values (without their recording time), the kept best curve, the load of the
    week ending ``load_day`` (UTC days) and the pending proposals, with the athlete id left out."""
    rides = sorted(await deps.rides.list_rides(athlete_id), key=lambda r: r.ride_id)
    async with deps.pool.connection() as conn:
        values = [{k: v for k, v in row.items() if k != "recorded_at"} for row in await list_values(conn, athlete_id)]
        curve = await best_curve(conn, athlete_id)
    return {
        "rides": [dataclasses.asdict(r) for r in rides],
        "values": values,
        "curve": None if curve is None else (curve.durations_s.tolist(), curve.power_w.tolist(), curve.ride_ids),
        "load": await daily_load(deps.pool, athlete_id, load_day - timedelta(days=6), load_day, "UTC"),
        "proposals": [(p["fact_key"], p["value"]) for p in await deps.athlete_store.list_proposals(athlete_id)],
    }
