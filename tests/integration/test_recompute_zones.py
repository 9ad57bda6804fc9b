"""Recompute, don't freeze (issue 11): a value set after the rides recomputes their zones, TRIMP and hrTSS.

The expected figures are computed from the ride's 1 Hz samples (`training.metrics.compute_metrics`) with the new
values; the stored ones come from the histograms the ride row keeps (`training.ride_histograms`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from graphs.context import Context
from graphs.debrief_coach import build_graph
from records.athlete_values import set_value
from records.rides import daily_load
from records.stores import Stores
from tests.conftest import ride_path
from training.heart_rate import max_hr_estimate
from training.metrics import compute_metrics
from training.ride_files import read_ride

pytestmark = pytest.mark.integration

SWEATPY_FIT = "sweatpy_edge1000-4078723797.fit"  # power and heart rate; the device reports FTP 200 W, max HR 185
HR_ONLY = "fitparse_edge500-hr-only-2011-09-25.fit"  # heart rate only: its load is its hrTSS
INDOOR = "fitparse_indoor-trainer-2011-11-02.fit"  # power and heart rate; device FTP 250 W
BEFORE_THE_RIDES = datetime(2010, 1, 1, tzinfo=UTC)


async def _debrief(deps: Stores, athlete_id: str, name: str) -> dict[str, Any]:
    graph = build_graph(stores=deps, model=None)
    result: dict[str, Any] = await graph.ainvoke(
        {"ride_path": str(ride_path(name))}, context=Context(athlete_id=athlete_id)
    )
    return result["ride"]


def _own_max_hr(name: str) -> float:
    hr = read_ride(Path(ride_path(name))).samples.hr_bpm
    assert hr is not None
    estimate = max_hr_estimate(hr)
    assert estimate is not None
    return estimate.value_bpm


async def _day_load(deps: Stores, athlete_id: str, start: str) -> float:
    day = date.fromisoformat(start[:10])
    load = await daily_load(deps.athlete_store.pool, athlete_id, day, day, "UTC")
    return load[day]


async def test_a_confirmed_lthr_set_after_the_rides_recomputes_hr_tss_zones_and_the_load(deps, athlete_id):
    before = await _debrief(deps, athlete_id, HR_ONLY)
    lthr = round(before["metrics"]["hr_params"]["lthr_bpm"]) - 12.0  # a lower LTHR: more stress, other zones
    await set_value(deps.athlete_store, athlete_id, "lthr_bpm", lthr, BEFORE_THE_RIDES)

    ride = await deps.rides.get_ride(athlete_id, before["ride_id"])
    assert ride is not None
    expected = compute_metrics(read_ride(ride_path(HR_ONLY)), lthr_bpm=lthr, max_hr_bpm=_own_max_hr(HR_ONLY))
    assert expected.hr_tss is not None and expected.hr_tss != pytest.approx(before["hr_tss"])
    assert ride.hr_tss == pytest.approx(expected.hr_tss, rel=1e-9)
    assert ride.metrics["hr_tss"] == pytest.approx(expected.hr_tss, rel=1e-9)
    assert ride.metrics["hr_zones_s"] == expected.hr_zones_s != before["metrics"]["hr_zones_s"]
    assert ride.metrics["hr_params"]["lthr_bpm"] == lthr and ride.metrics["hr_params"]["lthr_source"] == "athlete"
    assert ride.metrics["zones_status"] == "current"
    # The Auditor's load of a ride without power is its hrTSS: it follows.
    assert await _day_load(deps, athlete_id, before["start_time"]) == pytest.approx(expected.hr_tss, rel=1e-9)
    # Re-running the debrief on the stored ride shows its current figures.
    again = await build_graph(stores=deps, model=None).ainvoke(
        {"ride_id": before["ride_id"]}, context=Context(athlete_id=athlete_id)
    )
    assert again["ride"]["hr_tss"] == pytest.approx(expected.hr_tss, rel=1e-9)
    assert again["ride"]["metrics"]["hr_zones_s"] == expected.hr_zones_s


async def test_a_confirmed_max_hr_set_after_the_rides_recomputes_trimp_and_hr_tss(deps, athlete_id):
    before = await _debrief(deps, athlete_id, HR_ONLY)
    lthr = before["metrics"]["hr_params"]["lthr_bpm"]
    max_hr = 200.0
    await set_value(deps.athlete_store, athlete_id, "max_hr_bpm", max_hr, BEFORE_THE_RIDES)

    ride = await deps.rides.get_ride(athlete_id, before["ride_id"])
    assert ride is not None
    expected = compute_metrics(read_ride(ride_path(HR_ONLY)), lthr_bpm=lthr, max_hr_bpm=max_hr)
    assert expected.hr_tss is not None and expected.hr_tss != pytest.approx(before["hr_tss"])
    assert ride.hr_tss == pytest.approx(expected.hr_tss, rel=1e-9)
    assert ride.metrics["trimp"] == pytest.approx(expected.trimp, rel=1e-9)
    assert ride.metrics["hr_params"]["max_hr_bpm"] == max_hr
    assert ride.metrics["hr_params"]["max_hr_source"] == "athlete"
    assert await _day_load(deps, athlete_id, before["start_time"]) == pytest.approx(expected.hr_tss, rel=1e-9)


async def test_a_confirmed_ftp_set_after_the_rides_recomputes_the_power_zones(deps, athlete_id):
    before = await _debrief(deps, athlete_id, INDOOR)
    assert before["metrics"]["ftp_used_w"] == 250.0  # the device's
    await set_value(deps.athlete_store, athlete_id, "ftp_w", 300, BEFORE_THE_RIDES)

    ride = await deps.rides.get_ride(athlete_id, before["ride_id"])
    assert ride is not None
    expected = compute_metrics(read_ride(ride_path(INDOOR)), ftp_w=300.0)
    assert ride.metrics["ftp_used_w"] == 300.0
    assert ride.metrics["power_zones_s"] == expected.power_zones_s != before["metrics"]["power_zones_s"]
    assert sum(expected.power_zones_s.values()) == ride.metrics["power_s"]


async def test_the_lthr_of_a_ride_with_power_follows_a_confirmed_value(deps, athlete_id):
    before = await _debrief(deps, athlete_id, SWEATPY_FIT)
    await set_value(deps.athlete_store, athlete_id, "lthr_bpm", 150, BEFORE_THE_RIDES)

    ride = await deps.rides.get_ride(athlete_id, before["ride_id"])
    assert ride is not None
    expected = compute_metrics(
        read_ride(ride_path(SWEATPY_FIT)), ftp_w=ride.metrics["ftp_used_w"], lthr_bpm=150.0, max_hr_bpm=185.0
    )
    assert ride.hr_tss == pytest.approx(expected.hr_tss, rel=1e-9)
    assert ride.metrics["hr_zones_s"] == expected.hr_zones_s
    assert ride.metrics["power_zones_s"] == expected.power_zones_s
    assert ride.tss == pytest.approx(before["tss"])  # the FTP did not change: neither did TSS


async def test_a_ride_stored_without_histograms_keeps_its_figures_and_says_so(deps, athlete_id):
    before = await _debrief(deps, athlete_id, HR_ONLY)
    async with deps.athlete_store.pool.connection() as conn:  # as a row stored before schema v35
        await conn.execute(
            """UPDATE rides SET hr_hist_bpm = NULL, hr_hist_s = NULL, power_hist_w = NULL, power_hist_s = NULL
               WHERE athlete_id = %s AND ride_id = %s""",
            (athlete_id, before["ride_id"]),
        )
    await set_value(deps.athlete_store, athlete_id, "lthr_bpm", 140, BEFORE_THE_RIDES)

    ride = await deps.rides.get_ride(athlete_id, before["ride_id"])
    assert ride is not None
    assert ride.hr_tss == pytest.approx(before["hr_tss"])
    assert ride.metrics["hr_zones_s"] == before["metrics"]["hr_zones_s"]
    assert ride.metrics["zones_status"] == "as_debriefed" and "debrief" in ride.metrics["zones_note"]
