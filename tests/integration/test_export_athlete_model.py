"""An export restores the athlete model as it was: rides with their curves, histograms, 1 Hz power and links,
the dated athlete values, the all-time best curve and so the load (issue 11's data through `coach export` and
`coach import-export`)."""

from __future__ import annotations

import json
import uuid
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from graphs.context import Context
from graphs.debrief_coach import build_graph
from records.athlete_values import list_values
from records.export import write_export
from records.restore import InvalidExportError, restore_export
from records.stores import Stores
from tests.conftest import ride_path
from tests.integration.athlete_state import athlete_state

pytestmark = pytest.mark.integration

RIDES = ("sweatpy_edge1000-4078723797.fit", "sweatpy_edge1000-4078723797_strava.gpx")  # one activity, twice


async def _model(deps: Stores, athlete_id: str) -> dict[str, Any]:
    state = await athlete_state(deps, athlete_id, date(2019, 9, 20))
    del state["proposals"]  # not restored: the coach proposes again (`records.restore`)
    return state


async def test_an_export_restores_rides_values_curve_and_load(deps: Stores, tmp_path: Path) -> None:
    a, new = f"model-a-{uuid.uuid4().hex[:10]}", f"model-n-{uuid.uuid4().hex[:10]}"
    graph = build_graph(stores=deps, model=None)
    for name in RIDES:
        await graph.ainvoke({"ride_path": str(ride_path(name))}, context=Context(athlete_id=a))
    before = await _model(deps, a)
    fit = next(r for r in before["rides"] if r["file_name"] == RIDES[0])
    gpx = next(r for r in before["rides"] if r["file_name"] == RIDES[1])
    assert gpx["primary_ride_id"] == fit["ride_id"] and fit["power_1hz_w"] and fit["hr_hist_s"]
    assert [v["source"] for v in before["values"]] and before["curve"] is not None
    assert sum(before["load"].values()) == pytest.approx(fit["tss"])  # the pair counted once

    out = tmp_path / "a.zip"
    await write_export(deps, a, out, inbox_dir=tmp_path / "inbox")
    await restore_export(deps, out, new, inbox_dir=tmp_path / "inbox")

    assert await _model(deps, new) == before


def _tampered(src: Path, dst: Path, name: str, edit: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == name:
                lines = [json.loads(line) for line in data.decode().splitlines()]
                data = "".join(json.dumps(edit(line)) + "\n" for line in lines).encode()
            zout.writestr(item, data)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("ride_details.jsonl", lambda d: {**d, "power_1hz_w": "not base64!"}),
        ("ride_details.jsonl", lambda d: {**d, "curve_durations_s": ["one", "two"]}),
        ("athlete_values.jsonl", lambda v: {**v, "source": "guessed"}),
        ("athlete_values.jsonl", lambda v: {k: x for k, x in v.items() if k != "valid_from"}),
    ],
)
async def test_a_bad_detail_or_value_refuses_the_whole_export(
    deps: Stores, tmp_path: Path, name: str, edit: Any
) -> None:
    a, new = f"model-b-{uuid.uuid4().hex[:10]}", f"model-m-{uuid.uuid4().hex[:10]}"
    graph = build_graph(stores=deps, model=None)
    await graph.ainvoke({"ride_path": str(ride_path(RIDES[0]))}, context=Context(athlete_id=a))
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    await write_export(deps, a, good, inbox_dir=tmp_path / "inbox")
    _tampered(good, bad, name, edit)
    with pytest.raises(InvalidExportError):
        await restore_export(deps, bad, new, inbox_dir=tmp_path / "inbox")
    assert await deps.rides.list_rides(new) == []  # nothing written
    async with deps.pool.connection() as conn:
        assert await list_values(conn, new) == []
