"""Deleting one ride (`records.ride_delete`, `coach delete-ride`): the athlete is left as if the ride had never
been debriefed, checked against another athlete who only ever debriefed the rides that remain."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from graphs.context import Context
from graphs.debrief_coach import build_graph
from records.inbox import file_ride_id
from records.ride_delete import RideNotFoundError, delete_ride
from records.stores import Stores
from tests.conftest import ride_path
from tests.integration.athlete_state import athlete_state
from tests.integration.test_cli_debrief import coach

pytestmark = pytest.mark.integration

FIT, GPX = "sweatpy_edge1000-4078723797.fit", "sweatpy_edge1000-4078723797_strava.gpx"  # one activity, twice
DAY = date(2019, 9, 20)


async def _debrief(deps: Stores, athlete_id: str, name: str) -> dict[str, Any]:
    graph = build_graph(stores=deps, model=None)
    result: dict[str, Any] = await graph.ainvoke(
        {"ride_path": str(ride_path(name))}, context=Context(athlete_id=athlete_id)
    )
    return result["ride"]


async def _state(deps: Stores, athlete_id: str) -> dict[str, Any]:
    return await athlete_state(deps, athlete_id, DAY)


async def test_deleting_the_primary_recording_leaves_the_athlete_as_if_only_the_other_was_debriefed(
    deps: Stores, tmp_path: Path
) -> None:
    a, only_gpx = f"del-a-{uuid.uuid4().hex[:10]}", f"del-g-{uuid.uuid4().hex[:10]}"
    inbox = tmp_path / "inbox"
    (inbox / a).mkdir(parents=True)
    shutil.copy(ride_path(FIT), inbox / a / FIT)
    fit, gpx = await _debrief(deps, a, FIT), await _debrief(deps, a, GPX)
    before = await _state(deps, a)
    assert [r["primary_ride_id"] for r in before["rides"] if r["ride_id"] == gpx["ride_id"]] == [
        fit["ride_id"]
    ]  # GPX linked to the FIT
    assert ("ftp_w", 200.0, "device") in [(v["key"], v["value"], v["source"]) for v in before["values"]] and before[
        "proposals"
    ]  # from the FIT: stale 200 W
    await _debrief(deps, only_gpx, GPX)

    done = await delete_ride(deps, a, fit["ride_id"], inbox_dir=inbox)

    assert (done.ride_id, done.promoted_ride_id, done.inbox_files) == (fit["ride_id"], gpx["ride_id"], 1)
    assert done.device_values >= 1  # the FIT's device FTP and heart rates
    assert done.proposals == 0  # the GPX's debrief took the pending FTP proposal over: it stays, as for only_gpx
    assert not (inbox / a / FIT).exists()
    assert await deps.rides.get_ride(a, fit["ride_id"]) is None
    assert await deps.rides.get_debrief(a, fit["ride_id"]) is None
    assert await _state(deps, a) == await _state(deps, only_gpx)


async def test_deleting_a_ride_of_another_athlete_or_an_unknown_one_changes_nothing(deps: Stores) -> None:
    a, b = f"del-b-{uuid.uuid4().hex[:10]}", f"del-c-{uuid.uuid4().hex[:10]}"
    ride = await _debrief(deps, a, FIT)
    before = await _state(deps, a)
    for athlete, ride_id in ((b, ride["ride_id"]), (a, "0" * 32)):
        with pytest.raises(RideNotFoundError):
            await delete_ride(deps, athlete, ride_id)
    assert await _state(deps, a) == before


async def test_deleting_the_only_ride_removes_its_values_proposal_curve_and_load(deps: Stores) -> None:
    a = f"del-e-{uuid.uuid4().hex[:10]}"
    ride = await _debrief(deps, a, FIT)
    assert (await _state(deps, a))["proposals"]  # the stale device FTP: a new value proposed, this ride as evidence
    done = await delete_ride(deps, a, ride["ride_id"])
    assert done.proposals == 1 and done.promoted_ride_id is None
    after = await _state(deps, a)
    assert after["rides"] == [] and after["values"] == [] and after["proposals"] == [] and after["curve"] is None
    assert sum(after["load"].values()) == 0


def test_coach_delete_ride_asks_unless_yes() -> None:
    a = f"del-d-{uuid.uuid4().hex[:10]}"
    assert coach("debrief", str(ride_path(GPX)), "--athlete", a).returncode == 0
    ride_id = file_ride_id(ride_path(GPX))
    assert ride_id is not None
    refused = coach("delete-ride", ride_id, "--athlete", a)  # the test runner's stdin is not a terminal
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = coach("delete-ride", ride_id, "--athlete", a, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ride_id"] == ride_id
    again = coach("delete-ride", ride_id, "--athlete", a, "--yes")
    assert again.returncode == 2 and "ride_not_found" in again.stderr
