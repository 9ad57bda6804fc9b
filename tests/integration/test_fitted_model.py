"""Fitted CP and W′ stored as dated athlete values, proposed to the athlete, and used by the W′ balance of a
debrief (issue 11), on real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from graphs.context import Context
from graphs.debrief_coach import build_graph
from records.athlete_values import list_values, set_value, values_at
from records.proposals import decide_proposal
from records.stores import Stores
from tests.conftest import ride_path
from tests.curve_rides import curve_ride
from training.power_curve import log_duration_grid
from training.records import RideRecord
from training.scoring import DatedValue

pytestmark = pytest.mark.integration

SWEATPY_FIT = "sweatpy_edge1000-4078723797.fit"  # 2019-09-20 06:27 UTC
CP_W, W_PRIME_J = 300.0, 18000.0
SHORT_DAY = datetime(2019, 8, 20, 7, tzinfo=UTC)
LONG_DAY = SHORT_DAY + timedelta(days=7)


def _test_ride(ride_id: str, start: datetime, short: bool) -> RideRecord:
    """A synthetic ride whose curve is maximal (on the model) up to 5 min (``short``) or beyond 5 min."""
    t = log_duration_grid(3600)
    model = W_PRIME_J / t + CP_W
    power = np.where(t <= 300, model, 0.85 * model) if short else np.where(t > 300, model, 0.9 * model)
    return curve_ride(ride_id, start, t, power, 3600.0)


async def _store(deps: Stores, athlete_id: str, ride: RideRecord) -> None:
    assert await deps.rides.save_debriefed_ride(athlete_id, ride, [], "test ride", "offline") is not None


async def _cp_rows(deps: Stores, athlete_id: str) -> list[tuple[str, Any, str, datetime]]:
    async with deps.athlete_store.pool.connection() as conn:
        rows = await list_values(conn, athlete_id)
    return [(r["key"], r["value"], r["source"], r["valid_from"]) for r in rows if r["key"] in ("cp_w", "w_prime_j")]


async def test_fitted_cp_and_w_prime_are_dated_values_whatever_the_order(deps, athlete_id):
    short, long = _test_ride("short-test", SHORT_DAY, True), _test_ride("long-test", LONG_DAY, False)
    await _store(deps, athlete_id, short)
    assert await _cp_rows(deps, athlete_id) == []  # one day of efforts: no model
    await _store(deps, athlete_id, long)
    rows = await _cp_rows(deps, athlete_id)
    assert [(k, s, v) for k, _, s, v in rows] == [("cp_w", "fitted", LONG_DAY), ("w_prime_j", "fitted", LONG_DAY)]
    cp, w_prime = rows[0][1], rows[1][1]
    assert cp == pytest.approx(CP_W, rel=0.02) and w_prime == pytest.approx(W_PRIME_J, rel=0.02)
    async with deps.athlete_store.pool.connection() as conn:
        evidence = (await list_values(conn, athlete_id, "cp_w"))[0]["evidence"]
    assert evidence["ride_ids"] == ["long-test", "short-test"] and evidence["fit"]["effort_days"] == 2

    other = f"{athlete_id}-rev"  # the same rides stored the other way round give the same values
    await _store(deps, other, long)
    await _store(deps, other, short)
    assert await _cp_rows(deps, other) == rows


async def test_the_coach_proposes_the_fitted_cp_and_accepting_confirms_both(deps, athlete_id):
    await _store(deps, athlete_id, _test_ride("short-test", SHORT_DAY, True))
    await _store(deps, athlete_id, _test_ride("long-test", LONG_DAY, False))
    (proposal,) = await deps.athlete_store.list_proposals(athlete_id)
    assert proposal["fact_key"] == "cp_w" and proposal["value"] == pytest.approx(CP_W, abs=6)
    await decide_proposal(deps.athlete_store, "fact", athlete_id, proposal["id"], "accept")
    async with deps.athlete_store.pool.connection() as conn:
        values = await values_at(conn, athlete_id, LONG_DAY + timedelta(days=1))
    cp, w_prime = values["cp_w"], values["w_prime_j"]
    assert isinstance(cp, DatedValue) and isinstance(w_prime, DatedValue)
    assert (cp.source, w_prime.source) == ("confirmed", "confirmed")  # confirmed > fitted
    assert cp.valid_from == LONG_DAY and w_prime.value == pytest.approx(W_PRIME_J, rel=0.02)
    await _store(deps, athlete_id, _test_ride("again", LONG_DAY + timedelta(days=2), False))
    assert await deps.athlete_store.list_proposals(athlete_id) == []  # the fit agrees with the confirmed values


async def test_a_debriefs_w_prime_balance_uses_the_values_valid_at_the_rides_start(deps, athlete_id):
    await _store(deps, athlete_id, _test_ride("short-test", SHORT_DAY, True))
    await _store(deps, athlete_id, _test_ride("long-test", LONG_DAY, False))
    graph = build_graph(stores=deps, model=None)
    result = await graph.ainvoke({"ride_path": str(ride_path(SWEATPY_FIT))}, context=Context(athlete_id=athlete_id))
    wbal = result["ride"]["metrics"]["w_prime_balance"]
    rows = await _cp_rows(deps, athlete_id)
    assert wbal["source"] == "fitted" and wbal["cp_w"] == rows[0][1] and wbal["w_prime_j"] == rows[1][1]

    other = f"{athlete_id}-confirmed"
    await set_value(deps.athlete_store, other, "cp_w", 320, datetime(2019, 1, 1, tzinfo=UTC))
    await set_value(deps.athlete_store, other, "w_prime_j", 25000, datetime(2019, 1, 1, tzinfo=UTC))
    result = await graph.ainvoke({"ride_path": str(ride_path(SWEATPY_FIT))}, context=Context(athlete_id=other))
    wbal = result["ride"]["metrics"]["w_prime_balance"]
    assert (wbal["source"], wbal["cp_w"], wbal["w_prime_j"]) == ("confirmed", 320.0, 25000.0)
