"""`coach debrief --pending`, as a system cron runs it: every ride in the inbox debriefed once."""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from config.settings import get_settings
from graphs import debrief_coach
from tests.conftest import RIDES_DIR
from training.ride_files import read_ride

pytestmark = pytest.mark.integration

OLDER, NEWER = "fitparse_indoor-trainer-2011-11-02.fit", "fitparse_Edge810-Vector-2013-08-16.fit"


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("INBOX_DIR", str(tmp_path / "inbox"))
    get_settings.cache_clear()
    yield tmp_path / "inbox"
    get_settings.cache_clear()


def pending(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(app, ["debrief", "--pending", *args], catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stdout + result.stderr


def test_pending_rides_are_debriefed_once_oldest_first(inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    def counting_read_ride(path: str, **limits: Any) -> Any:
        reads.append(Path(path).name)
        return read_ride(path, **limits)

    monkeypatch.setattr(debrief_coach, "read_ride", counting_read_ride)
    athlete = f"cron-{uuid.uuid4().hex[:10]}"
    folder = inbox / athlete
    folder.mkdir(parents=True)
    for name in (NEWER, OLDER):
        shutil.copy(RIDES_DIR / name, folder / name)
    (folder / "broken.fit").write_bytes(b"not a FIT file")
    (folder / "notes.txt").write_text("ignored")

    code, lines, output = pending("--json")
    assert code == 1, output  # the broken file is reported
    mine = [line for line in lines if line["athlete_id"] == athlete]
    assert [Path(line["file"]).name for line in mine] == [OLDER, NEWER, "broken.fit"]
    assert all(line["debrief"] and not line["already_debriefed"] for line in mine[:2])
    assert mine[2]["error"]["code"] == "corrupt_file"
    assert reads.count("broken.fit") == 1

    # The second scan does not read the broken file again: its failure is remembered by content.
    code, lines, output = pending("--athlete", athlete, "--json")
    assert code == 0, output
    assert [(Path(line["file"]).name, line["skipped"]["code"]) for line in lines] == [("broken.fit", "corrupt_file")]
    assert reads.count("broken.fit") == 1
    code, _, output = pending("--athlete", athlete)
    assert code == 0 and "broken.fit: skipped, it failed before (corrupt_file" in output
    assert reads.count("broken.fit") == 1

    # Fixed content under the same name is another file: read again.
    (folder / "broken.fit").write_bytes(b"still not a FIT file")
    code, lines, output = pending("--athlete", athlete, "--json")
    assert code == 1 and [line["error"]["code"] for line in lines] == ["corrupt_file"], output
    assert reads.count("broken.fit") == 2

    (folder / "broken.fit").unlink()
    code, lines, output = pending("--athlete", athlete)
    assert code == 0 and not lines and "No rides waiting" in output


def test_a_gzip_bomb_in_the_inbox_is_refused_once(inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIDE_MAX_BYTES", str(4 * 1024 * 1024))
    get_settings.cache_clear()
    athlete = f"bomb-{uuid.uuid4().hex[:10]}"
    folder = inbox / athlete
    folder.mkdir(parents=True)
    (folder / "huge.fit.gz").write_bytes(gzip.compress(bytes(1024 * 1024)) * 50)  # 50 MB of zeros in 50 KB
    code, lines, output = pending("--athlete", athlete, "--json")
    assert code == 1 and [line["error"]["code"] for line in lines] == ["file_too_large"], output
    code, lines, output = pending("--athlete", athlete, "--json")
    assert code == 0 and [line["skipped"]["code"] for line in lines] == ["file_too_large"], output


def test_pending_takes_no_paths(inbox: Path) -> None:
    result = CliRunner().invoke(app, ["debrief", "--pending", str(RIDES_DIR)], catch_exceptions=False)
    assert result.exit_code == 2 and "--pending takes no ride paths" in result.stderr
    result = CliRunner().invoke(app, ["debrief", str(RIDES_DIR)], catch_exceptions=False)
    assert result.exit_code == 2 and "--athlete" in result.stderr
