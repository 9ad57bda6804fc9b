"""The athlete model wired into the Debrief Coach and the stores (issue 11, "Done when"), on the real rides."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from graphs.context import Context
from graphs.debrief_coach import build_graph
from graphs.training_load_auditor import build_graph as build_auditor
from records.athlete_values import list_values, set_value
from records.proposals import decide_proposal
from records.rides import daily_load
from records.stores import Stores
from tests.chat_helpers import Chat
from tests.conftest import SHARED_RIDES_DIR, needs_gpl_rides, ride_path

pytestmark = pytest.mark.integration

SWEATPY_FIT = "sweatpy_edge1000-4078723797.fit"  # 2019-09-20, 2 h 19 min, NP 267 W; device FTP 200 W
SWEATPY_GPX = "sweatpy_edge1000-4078723797_strava.gpx"  # the same ride, from Strava
EDGE1030 = "gc_edge1030-virtual-14582164182.fit"

DEVICE_VALUES = {  # what each file's head unit reports (training.fit_profile); edge500 and edge1030 report none
    "fitparse_ELEMNT-2019-02-17.fit": {"ftp_w": 220.0},
    "fitparse_Edge810-Vector-2013-08-16.fit": {"ftp_w": 315.0},
    "fitparse_indoor-trainer-2011-11-02.fit": {"ftp_w": 250.0},
    SWEATPY_FIT: {"ftp_w": 200.0, "max_hr_bpm": 185.0},
    "gc_Garmin1000_withFirstbeat.fit": {"ftp_w": 285.0, "max_hr_bpm": 197.0},
    "gc_Weather_XDATA_2016-02-06.fit": {"ftp_w": 300.0, "max_hr_bpm": 179.0},
}
"""No file carries a threshold heart rate (``zones_target.threshold_heart_rate``)."""


def _all_rides() -> list[Path]:
    names = [p.name for p in (Path(__file__).parents[2] / "data" / "rides").iterdir() if p.suffix in (".fit", ".gpx")]
    if SHARED_RIDES_DIR.is_dir():
        names += [p.name for p in SHARED_RIDES_DIR.iterdir() if p.name.startswith("gc_")]
    return [ride_path(n) for n in sorted(set(names))]


async def _debrief(deps: Stores, athlete_id: str, path: Path) -> dict[str, Any]:
    graph = build_graph(stores=deps, model=None)
    return await graph.ainvoke({"ride_path": str(path)}, context=Context(athlete_id=athlete_id))


async def _scores(deps: Stores, athlete_id: str) -> dict[str, tuple[Any, Any]]:
    rides = await deps.rides.list_rides(athlete_id)
    return {r.file_name: (r.metrics.get("intensity_factor"), r.tss) for r in rides}


async def test_the_sweatpy_pair_is_one_ride_in_the_load(deps, athlete_id):
    fit = await _debrief(deps, athlete_id, ride_path(SWEATPY_FIT))
    gpx = await _debrief(deps, athlete_id, ride_path(SWEATPY_GPX))
    rides = {r.file_name: r for r in await deps.rides.list_rides(athlete_id)}
    assert rides[SWEATPY_GPX].primary_ride_id == fit["ride"]["ride_id"]  # the FIT has more channels
    assert rides[SWEATPY_FIT].primary_ride_id is None
    day = date(2019, 9, 20)
    load = await daily_load(deps.athlete_store.pool, athlete_id, day - timedelta(days=6), day, "UTC")
    assert sum(load.values()) == pytest.approx(rides[SWEATPY_FIT].tss)
    assert gpx["ride"]["ride_id"] != fit["ride"]["ride_id"]


async def test_sweatpy_stale_device_ftp_is_detected_and_proposed(deps, athlete_id):
    result = await _debrief(deps, athlete_id, ride_path(SWEATPY_FIT))
    m = result["ride"]["metrics"]
    assert m["ftp_stale"] is True
    assert m["ftp_source"] == "ride_best_60min_np"  # scored with the lowest FTP its data supports, not 200 W
    assert m["intensity_factor"] <= 1.0
    proposals = await deps.athlete_store.list_proposals(athlete_id)
    assert [(p["fact_key"], p["value"]) for p in proposals] == [("ftp_w", round(m["best_60min_np_w"]))]
    async with deps.athlete_store.pool.connection() as conn:
        device = await list_values(conn, athlete_id, "ftp_w")
    assert [(v["value"], v["source"]) for v in device] == [(200.0, "device")]


@pytest.mark.parametrize("name", sorted(DEVICE_VALUES))
async def test_device_values_are_recorded_from_every_file_that_has_them(deps, athlete_id, name):
    result = await _debrief(deps, athlete_id, ride_path(name))  # a GoldenCheetah ride: skipped with the reason
    async with deps.athlete_store.pool.connection() as conn:
        rows = await list_values(conn, athlete_id)
    device = {r["key"]: r["value"] for r in rows if r["source"] == "device" and isinstance(r["value"], float)}
    assert {k: device.get(k) for k in DEVICE_VALUES[name]} == DEVICE_VALUES[name]
    assert "lthr_bpm" not in device
    assert all(r["valid_from"] == datetime.fromisoformat(result["ride"]["start_time"]) for r in rows)


@needs_gpl_rides
async def test_edge1030_average_hr_ignores_dropouts(deps, athlete_id):
    result = await _debrief(deps, athlete_id, ride_path(EDGE1030))
    assert result["ride"]["metrics"]["avg_hr_bpm"] == pytest.approx(130, abs=2)


async def test_debrief_order_does_not_change_if_and_tss(deps, athlete_id):
    rides = _all_rides()
    for path in rides:
        await _debrief(deps, athlete_id, path)
    oldest_first = await _scores(deps, athlete_id)
    other = athlete_id + "-rev"
    for path in reversed(rides):
        await _debrief(deps, other, path)
    assert await _scores(deps, other) == oldest_first
    long_rides = [r for r in await deps.rides.list_rides(athlete_id) if (r.metrics.get("power_s") or 0) >= 3600]
    assert long_rides
    for ride in long_rides:
        assert (ride.metrics.get("intensity_factor") or 0) <= 1.05, ride.file_name


async def test_no_ftp_means_no_tss_and_a_proposal(deps, athlete_id):
    result = await _debrief(deps, athlete_id, ride_path(SWEATPY_GPX))  # an app's file: no device FTP
    m = result["ride"]["metrics"]
    assert m["normalized_power_w"] is not None  # the Strava GPX carries the head unit's power
    assert m["tss"] is None and m["tss_status"] == "no_ftp"
    assert [p["fact_key"] for p in await deps.athlete_store.list_proposals(athlete_id)] == ["ftp_w"]


async def test_a_confirmed_ftp_set_after_the_rides_recomputes_them(deps, athlete_id):
    result = await _debrief(deps, athlete_id, ride_path(SWEATPY_FIT))
    ride_id = result["ride"]["ride_id"]
    np_w = result["ride"]["metrics"]["normalized_power_w"]
    rescored = await set_value(deps.athlete_store, athlete_id, "ftp_w", 300, datetime(2019, 1, 1, tzinfo=UTC))
    assert [r["ride_id"] for r in rescored] == [ride_id]
    ride = await deps.rides.get_ride(athlete_id, ride_id)
    assert ride is not None
    assert ride.metrics["ftp_source"] == "confirmed" and ride.metrics["ftp_stale"] is False
    assert ride.metrics["intensity_factor"] == pytest.approx(np_w / 300)
    power_s = ride.metrics["power_s"]
    assert ride.tss == pytest.approx(power_s * np_w * (np_w / 300) / (300 * 3600) * 100)
    # The ride says which values it is scored with now: the confirmed FTP, not the device's 200 W of its debrief.
    used = ride.metrics["athlete_values_used"]
    assert (used["ftp_w"]["value"], used["ftp_w"]["source"]) == (300, "confirmed")
    assert used["ftp_w"]["valid_from"] == "2019-01-01T00:00:00+00:00"
    assert {"lthr_bpm", "max_hr_bpm"} <= set(used)  # the heart-rate values it was re-scored with stay listed
    again = await build_graph(stores=deps, model=None).ainvoke(
        {"ride_id": ride_id}, context=Context(athlete_id=athlete_id)
    )
    assert again["ride"]["tss"] == pytest.approx(ride.tss)  # re-running the debrief shows the current figures


async def test_an_accepted_stale_ftp_proposal_rescores_the_ride(deps, athlete_id):
    result = await _debrief(deps, athlete_id, ride_path(SWEATPY_FIT))
    (proposal,) = await deps.athlete_store.list_proposals(athlete_id)
    await decide_proposal(deps.athlete_store, "fact", athlete_id, proposal["id"], "accept")
    ride = await deps.rides.get_ride(athlete_id, result["ride"]["ride_id"])
    assert ride is not None
    assert ride.metrics["ftp_source"] == "confirmed"
    assert ride.metrics["ftp_used_w"] == proposal["value"]
    assert ride.metrics["ftp_stale"] is False


async def test_the_offline_coach_says_what_the_ftp_is_and_where_it_comes_from(deps, athlete_id):
    await _debrief(deps, athlete_id, ride_path("fitparse_indoor-trainer-2011-11-02.fit"))
    reply = await Chat(deps, athlete_id, model=None).say("what's my FTP and where does it come from?")
    assert reply["tool_calls"] == [{"name": "get_pinned_facts", "args": {}}]
    assert "FTP is 250 W" in reply["reply"] and "head unit" in reply["reply"]
    assert "fitparse_indoor-trainer-2011-11-02.fit" in reply["reply"] and "2011-11-02" in reply["reply"]

    await set_value(deps.athlete_store, athlete_id, "ftp_w", 260)
    reply = await Chat(deps, athlete_id, model=None).say("what's my FTP and where does it come from?")
    assert "FTP is 260 W: you confirmed it" in reply["reply"]


async def test_the_auditor_flags_the_days_whose_rides_have_no_load(deps, athlete_id, tmp_path: Path):
    # The Strava GPX without its heart rate: a power ride, no FTP known, so neither TSS nor hrTSS (issue 11, B6).
    gpx = ride_path(SWEATPY_GPX).read_text(encoding="utf-8")
    power_only = tmp_path / "power-only.gpx"
    power_only.write_text(re.sub(r"\s*<gpxtpx:hr>\d+</gpxtpx:hr>", "", gpx), encoding="utf-8")
    ride = (await _debrief(deps, athlete_id, power_only))["ride"]
    assert ride["metrics"]["tss_status"] == "no_ftp" and ride["tss"] is None and ride["hr_tss"] is None
    day = date(2019, 9, 20)
    audit = await build_auditor(stores=deps).ainvoke(
        {"as_of": (day + timedelta(days=3)).isoformat()}, context=Context(athlete_id=athlete_id, timezone="UTC")
    )
    flag = next(f for f in audit["report"]["flags"] if f["code"] == "rides_without_load")
    assert flag["details"] == [{"date": day.isoformat(), "rides": 1, "reasons": ["no_ftp"]}]
    assert "FTP" in flag["message"] and flag["source"]
