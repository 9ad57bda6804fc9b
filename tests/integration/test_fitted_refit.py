"""The stored fitted CP/W′ after many rides, in any order, equals each window's fit alone (issue 11)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from records.athlete_values import list_values
from records.stores import Stores
from tests.curve_rides import curve_ride
from training.athlete_model import FIT_WINDOW_DAYS, fit_from_curves
from training.power_curve import log_duration_grid
from training.records import RideRecord

pytestmark = pytest.mark.integration

T0 = datetime(2023, 3, 1, 7, tzinfo=UTC)


def _rides(n: int, seed: int = 5) -> list[RideRecord]:
    """``n`` rides over about 150 days whose curves follow a CP model, maximal short or long, scaled at random."""
    rng = random.Random(seed)
    grid = log_duration_grid(2 * 3600)
    rides = []
    for i in range(n):
        start = T0 + timedelta(days=rng.randint(0, 150), hours=rng.randint(0, 3))
        model = 20000.0 / grid + 290.0
        shape = np.where(grid <= 300, 1.0, 0.86) if i % 2 else np.where(grid > 300, 1.0, 0.9)
        power = np.round(model * shape * rng.uniform(0.9, 1.05), 1)
        rides.append(curve_ride(f"ride-{i:02d}", start, grid, power, 7200.0))
    return rides


async def _fitted_rows(deps: Stores, athlete_id: str) -> list[tuple[Any, ...]]:
    async with deps.athlete_store.pool.connection() as conn:
        rows = await list_values(conn, athlete_id)
    return sorted(
        (r["key"], r["value"], r["valid_from"], tuple(r["evidence"].get("ride_ids", [])))
        for r in rows
        if r["source"] == "fitted" and r["key"] in ("cp_w", "w_prime_j")
    )


async def test_fitted_cp_rows_equal_each_window_alone_in_any_order(deps, athlete_id):
    rides = _rides(24)
    window = timedelta(days=FIT_WINDOW_DAYS)
    chronological = sorted(rides, key=lambda r: (r.start_time, r.ride_id))
    curves = [
        (r.ride_id, r.start_time, (np.asarray(r.curve_durations_s), np.asarray(r.curve_power_w))) for r in chronological
    ]
    expected = []
    for _, start, _ in curves:
        fitted = fit_from_curves([c for c in curves if start - window < c[1] <= start])
        if fitted is not None:
            fit, evidence = fitted
            ids = tuple(evidence["ride_ids"])
            expected += [("cp_w", round(fit.cp_w, 1), start, ids), ("w_prime_j", round(fit.w_prime_j), start, ids)]
    assert len(expected) >= 10  # most windows hold a model
    for n, order in enumerate((chronological, chronological[::-1], random.Random(1).sample(rides, len(rides)))):
        who = f"{athlete_id}-{n}"
        for ride in order:
            assert await deps.rides.save_debriefed_ride(who, ride, [], "test ride", "offline") is not None
        assert await _fitted_rows(deps, who) == sorted(expected)
