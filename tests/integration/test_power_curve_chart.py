"""`coach power-curve` and the ride chart of `coach debrief --chart` on the shared rides (data/rides)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

RIDE = Path(__file__).resolve().parents[2] / "data" / "rides" / "sweatpy_edge1000-4078723797.fit"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def coach(*args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), catch_exceptions=False)


async def test_power_curve_and_ride_chart_through_the_commands(athlete_id: str, tmp_path: Path):
    pytest.importorskip("matplotlib")
    result = await coach("debrief", str(RIDE), "--athlete", athlete_id, "--json", "--chart", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stdout.splitlines()[0])
    ride_id, day = line["ride_id"], line["start_time"][:10]
    assert (tmp_path / f"ride-{ride_id[:12]}.png").read_bytes().startswith(PNG_MAGIC)
    assert "ride chart of" in result.stderr

    chart = tmp_path / "curve.png"
    result = await coach("power-curve", "--athlete", athlete_id, "--chart", str(chart), "--as-of", day, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rides_90d"] == 1 and report["rides_all_time"] == 1 and report["chart"] == str(chart)
    assert report["fit"]["status"] in ("ok", "insufficient_data")
    assert chart.read_bytes().startswith(PNG_MAGIC)

    result = await coach("power-curve", "--athlete", athlete_id, "--as-of", "2030-01-01")
    assert result.exit_code == 0, result.stderr
    assert "No CP/W′ model: no ride with power in the last 90 days" in result.stdout
