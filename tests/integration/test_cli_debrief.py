"""`coach debrief` / `coach facts` as a user runs them: real files, real Postgres, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

INDOOR = "fitparse_indoor-trainer-2011-11-02.fit"


def coach(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run `coach ARGS...`: in this process (Typer's test runner) or, with `env`, as a subprocess.

    Returns an object with `returncode`, `stdout` and `stderr`.
    """
    if env is None:
        result = _runner.invoke(app, list(args), catch_exceptions=False)
        return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


_runner = CliRunner()


@pytest.fixture
def bad_inputs(tmp_path: Path, rides_dir: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.fit"
    empty.write_bytes(b"")
    text = tmp_path / "notes.fit"
    text.write_text("not a ride\n")
    truncated = tmp_path / "truncated.fit"
    data = (rides_dir / INDOOR).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    unknown = tmp_path / "ride.csv"
    unknown.write_text("time,power\n0,200\n")
    no_rides = tmp_path / "no_rides"
    no_rides.mkdir()
    (no_rides / "readme.txt").write_text("nothing here")
    no_channels = tmp_path / "no_channels.gpx"
    no_channels.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">'
        "<trk><trkseg>"
        + "".join(
            f'<trkpt lat="45.0" lon="{6 + i * 1e-4:.4f}"><time>2024-05-01T10:00:{i:02d}Z</time></trkpt>'
            for i in range(30)
        )
        + "</trkseg></trk></gpx>"
    )
    return {
        "empty_file": empty,
        "corrupt_file": text,
        "truncated": truncated,
        "unsupported_format": unknown,
        "no_ride_files": no_rides,
        "no_power_or_hr": no_channels,
    }


def test_json_lines_for_good_and_bad_files(athlete_id, rides_dir, bad_inputs):
    paths = [str(p) for p in bad_inputs.values()] + [str(rides_dir / INDOOR)]
    proc = coach("debrief", *paths, "--athlete", athlete_id, "--json")
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(paths)
    codes = {Path(line["file"]).name: line["error"]["code"] for line in lines if "error" in line}
    assert codes == {
        "empty.fit": "empty_file",
        "notes.fit": "corrupt_file",
        "truncated.fit": "corrupt_file",
        "ride.csv": "unsupported_format",
        "no_rides": "no_ride_files",
        "no_channels.gpx": "no_power_or_hr",
    }
    for line in lines:
        if "error" in line:
            assert line["error"]["message"] and "\n" not in line["error"]["message"]
    (good,) = [line for line in lines if "error" not in line]
    assert good["sport"] == "cycling"
    assert good["start_time"] == "2011-11-02T12:54:19Z"
    assert abs(good["normalized_power_w"] - 228.2) <= 1
    assert good["ftp_source"] == "device" and good["ftp_used_w"] == 250  # the trainer's head unit reports 250 W
    assert good["ftp_estimate_w"] == pytest.approx(0.95 * good["best_20min_w"], abs=0.01)  # shown, never used
    assert good["debrief"].startswith("[offline coach]")
    assert "ftp_w" not in good["facts_changed"]


def test_bad_inputs_write_nothing_and_say_one_line_each(athlete_id, bad_inputs):
    proc = coach("debrief", *(str(p) for p in bad_inputs.values()), "--athlete", athlete_id)
    assert proc.returncode == 1
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("✗")]
    assert len(error_lines) == len(bad_inputs)
    facts = coach("facts", "--athlete", athlete_id, "--json")
    assert facts.returncode == 0 and json.loads(facts.stdout) == {}


def test_facts_and_history(athlete_id, rides_dir):
    assert coach("debrief", str(rides_dir / INDOOR), "--athlete", athlete_id, "--json").returncode == 0
    # A confirmed FTP set after the ride, valid from before it, re-scores it.
    proc = coach("facts", "--athlete", athlete_id, "--set", "ftp_w=200", "--from", "2011-01-01", "--json")
    assert proc.returncode == 0, proc.stderr
    (rescored,) = json.loads(proc.stdout)["rescored"]
    assert rescored["tss"] > rescored["tss_before"]  # 200 W instead of the device's 250 W
    facts = json.loads(coach("facts", "--athlete", athlete_id, "--json").stdout)
    assert facts["ftp_w"]["source"] == "user" and facts["ftp_w"]["value"] == 200
    assert facts["ftp_w"]["updated_at"].endswith("Z")
    history = json.loads(coach("facts", "--athlete", athlete_id, "--history", "ftp_w", "--json").stdout)
    assert len(history) == 1 and history[0]["valid_to"] is None
    again = json.loads(coach("debrief", str(rides_dir / INDOOR), "--athlete", athlete_id, "--json").stdout)
    assert again["ftp_used_w"] == 200 and again["tss"] == pytest.approx(rescored["tss"], abs=0.05)
    bad = coach("facts", "--athlete", athlete_id, "--set", "ftp_w=-5")
    assert bad.returncode == 2 and "positive number" in bad.stderr


def test_dead_database_is_one_clear_error(athlete_id, rides_dir):
    proc = coach(
        "debrief",
        str(rides_dir / INDOOR),
        "--athlete",
        athlete_id,
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/coach"},
    )
    assert proc.returncode == 3
    assert "store_unavailable" in proc.stderr and "127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_athlete_id_is_refused():
    proc = coach("facts", "--athlete", "x' OR '1'='1")
    assert proc.returncode == 2
    assert "invalid athlete id" in proc.stderr


def test_rides_are_debriefed_oldest_first(athlete_id, rides_dir):
    newer, older = rides_dir / "fitparse_Edge810-Vector-2013-08-16.fit", rides_dir / INDOOR
    proc = coach("debrief", str(newer), str(older), "--athlete", athlete_id, "--json")
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert Path(first["file"]).name == INDOOR
    # Each ride is scored with the FTP valid at its start: its own head unit's (dated values).
    assert first["ftp_used_w"] == 250 and second["ftp_source"] == "device" and second["ftp_used_w"] == 315
