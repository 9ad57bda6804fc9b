"""The athlete's kept all-time best curve equals the one computed from the rides (issue 11), on real Postgres."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from records.best_curve import best_curve, curves_between, rebuild_best_curve
from records.stores import Stores
from tests.integration.test_fitted_refit import _rides
from training.power_curve import best_of_curves
from training.records import RideRecord

pytestmark = pytest.mark.integration


async def _kept_and_computed(deps: Stores, athlete_id: str) -> tuple[object, object]:
    async with deps.athlete_store.pool.connection() as conn:
        kept = await best_curve(conn, athlete_id)
        rides = await curves_between(conn, athlete_id, None, datetime(9999, 1, 1, tzinfo=UTC))
    if not rides:
        return kept, None
    durations, power, source = best_of_curves([c for *_, c in rides])
    computed = (durations.tolist(), power.tolist(), [rides[i][0] for i in source], [rides[i][1] for i in source])
    assert kept is not None
    return (kept.durations_s.tolist(), kept.power_w.tolist(), kept.ride_ids, kept.start_times), computed


async def _save(deps: Stores, athlete_id: str, ride: RideRecord) -> None:
    assert await deps.rides.save_debriefed_ride(athlete_id, ride, [], "test ride", "offline") is not None


async def test_kept_best_curve_equals_the_computed_one_in_any_order_and_after_a_delete(deps, athlete_id):
    rides = _rides(14, seed=9)
    # a tie: the same curve on a later day (the earlier ride keeps the point), and a longer ride adding durations
    rides.append(dataclasses.replace(rides[0], ride_id="tie", start_time=rides[0].start_time + timedelta(days=3)))
    results = []
    for n, order in enumerate((rides, rides[::-1], random.Random(3).sample(rides, len(rides)))):
        who = f"{athlete_id}-{n}"
        for ride in order:
            await _save(deps, who, ride)
        kept, computed = await _kept_and_computed(deps, who)
        assert kept == computed
        results.append(kept)
    assert results[0] == results[1] == results[2]
    best_ids = set(results[0][2])  # type: ignore[index]
    assert "tie" not in best_ids

    who = f"{athlete_id}-0"
    gone = sorted(best_ids)[0]
    async with deps.athlete_store.pool.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM rides WHERE athlete_id = %s AND ride_id = %s", (who, gone))
        await rebuild_best_curve(conn, who)
    kept, computed = await _kept_and_computed(deps, who)
    assert kept == computed and gone not in kept[2]  # type: ignore[index]


async def test_a_richer_recording_of_the_same_ride_replaces_it_in_the_kept_curve(deps, athlete_id):
    poor = _rides(1, seed=2)[0]
    rich = dataclasses.replace(
        poor,
        ride_id="rich",
        n_samples=(poor.n_samples or 0) + 100,
        channels=["power", "heart_rate"],
        curve_power_w=[p * 0.9 for p in poor.curve_power_w or []],
    )
    await _save(deps, athlete_id, poor)
    await _save(deps, athlete_id, rich)  # rich is primary, poor is linked: its (higher) curve leaves the best
    kept, computed = await _kept_and_computed(deps, athlete_id)
    assert kept == computed and set(kept[2]) == {"rich"}  # type: ignore[index]
    assert np.allclose(kept[1], rich.curve_power_w or [])  # type: ignore[index]
