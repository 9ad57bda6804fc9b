"""Export everything the coach holds about an athlete as one zip of open formats.

Used by `coach export` and `GET /athletes/me/export`; `records.restore` reads it back into a fresh athlete
(`coach import-export`).

The zip holds (`README.txt` inside says the same):

- `athlete.json`: the athlete id, the export's time, the format (`EXPORT_FORMAT`) and the number of rows per file;
- `facts.jsonl`: every value each fact has had (history), oldest first per key, `current` true on the live one;
- `messages.jsonl`: every archived message, per conversation in the order they were said;
- `plans.csv`: the planned workouts, in the CSV format `coach plan import` reads;
- `rides.csv`: one row per stored ride with its headline metrics (`metrics_json`: all of them, JSON);
- `ride_details.jsonl`: per ride what recomputing its figures needs (power curve, heart rate and power histograms,
  1 Hz power in base64, end, UTC offset, channels, and the ride it is a linked copy of);
- `<table>.jsonl` for every other table holding the athlete's rows (conversations, debriefs, fact_proposals,
  plan_change_proposals, load_reports, failed_inbox_files, and any table added later);
- `ride_files/<name>`: the original ride files still in the athlete's inbox.

Messages still queued in Redis are drained into the archive first, so they are in the export. Not exported: the
message embeddings and search vectors (derived from the text, recomputed on import) and the LangGraph
checkpoints (per-turn working state of the graphs, a binary format; the turns themselves are in messages.jsonl).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from memory.athlete_store import validate_athlete_id
from memory.errors import MemoryError_
from records.erase import athlete_tables
from records.inbox import inbox_files
from records.stores import Stores

EXPORT_FORMAT = "coach-export/1"
PLAN_CSV_COLUMNS = ("date", "kind", "duration_s", "tss", "description")
RIDE_CSV_COLUMNS = (
    "ride_id",
    "file_name",
    "file_format",
    "sport",
    "start_time",
    "elapsed_s",
    "moving_s",
    "distance_m",
    "normalized_power_w",
    "tss",
    "hr_tss",
    "metrics_json",
)
RIDE_DETAIL_COLUMNS = (
    "ride_id",
    "end_time",
    "utc_offset_s",
    "channels",
    "n_samples",
    "primary_ride_id",
    "curve_durations_s",
    "curve_power_w",
    "hr_hist_bpm",
    "hr_hist_s",
    "power_hist_w",
    "power_hist_s",
    "power_1hz_w",
)
"""The `rides` columns of `ride_details.jsonl` (`training.records.RideRecord`'s athlete-model fields)."""
RIDE_DETAILS_FILE = "ride_details.jsonl"
RIDE_FILES_DIR = "ride_files"
_FILE_NAMES = {"athlete_facts": "facts.jsonl", "planned_workouts": "plans.csv", "rides": "rides.csv"}
_ORDER = {
    "messages": "session_id, created_at, id",
    "athlete_facts": "fact_key, valid_from, id",
    "conversations": "created_at, session_id",
    "planned_workouts": "date, kind",
    "rides": "start_time, ride_id",
}
_SKIPPED_TYPES = ("USER-DEFINED", "tsvector")  # the embedding vector and the search document: derived data
_DERIVED_TABLES = (
    "archive_term_counts", "archive_term_df", "archive_postings", "archive_ordinals", "archive_blocks",
    "archive_block_changes",
)  # fmt: skip
"""Recall's term statistics and postings of the messages (`memory.term_stats`, `memory.postings`,
`memory.posting_blocks`): derived, rebuilt from the messages."""

README = """What the endurance coach held about athlete {athlete_id}, exported {exported_at}.

Open formats: JSON lines (one JSON object per line, UTF-8), CSV (UTF-8, header line), the original ride files.
Times are ISO 8601 with their UTC offset; dates are YYYY-MM-DD.

athlete.json        the athlete id, the time of the export, the format ({format}) and the rows of each file.
facts.jsonl         every value each fact has had: key, value, source (user, debrief_coach,
                    training_load_auditor), the session or ride it came from, valid_from, valid_to (null while
                    current), current (true for the live value). Oldest first per key.
messages.jsonl      every archived message of every conversation: id, session_id, turn_id (shared by the messages
                    of one turn), role (user, assistant, tool), content, tool_name, external_id (the id an
                    imported transcript gave it), created_at. Per conversation, in the order they were said.
conversations.jsonl one line per conversation: session_id, title, created_at, updated_at.
plans.csv           the planned workouts (date, kind, duration_s, tss, description): `coach plan import` reads it.
rides.csv           one row per stored ride: ride_id (SHA-256 prefix of the file), file name and format, sport,
                    start_time, elapsed_s, moving_s, distance_m, normalized_power_w, tss, hr_tss, and
                    metrics_json (every metric of the ride, JSON).
ride_details.jsonl  per ride (ride_id) what its figures are recomputed from when FTP, LTHR, max HR, CP or W'
                    change: curve_durations_s / curve_power_w (mean-max power curve, s / W), hr_hist_bpm /
                    hr_hist_s and power_hist_w / power_hist_s (seconds at each heart rate and power), power_1hz_w
                    (1 Hz power, int16 little-endian, base64), end_time, utc_offset_s, channels, n_samples, and
                    primary_ride_id (set on the linked copy of an activity recorded twice: not counted in the load).
debriefs.jsonl      the Debrief Coach's words on each ride (ride_id, text, writer, facts_changed, created_at).
fact_proposals.jsonl, plan_change_proposals.jsonl
                    facts and plan changes the coach proposed, with their status (pending, accepted, rejected).
load_reports.jsonl  the Training Load Auditor's reports (one per day audited).
failed_inbox_files.jsonl
                    ride files of the inbox that could not be read, with the error code.
athlete_values.jsonl
                    dated athlete values (FTP, LTHR, max HR, CP, W', sex, weight, time zone): key, value, source
                    (confirmed, device, fitted), valid_from, evidence, recorded_at.
athlete_best_curves.jsonl
                    the all-time best power curve (derived from rides.csv): durations_s, power_w and the ride_ids
                    and start_times each best comes from.
<table>.jsonl       any other table holding rows of the athlete, all columns.
{ride_files}/         the original ride files still in the athlete's inbox folder.

Not included: message embeddings and search vectors (derived from the text; recomputed on import) and the
LangGraph checkpoints (the graphs' per-turn working state in a binary format; the turns are in messages.jsonl).
`coach import-export FILE.zip --athlete NEW` restores facts (with history), messages, plans, rides, debriefs
and ride files into a fresh athlete.
"""


class ExportExistsError(MemoryError_, FileExistsError):
    """The export's target file exists (pass `force=True` / `--force` to replace it)."""

    code = "export_exists"


def json_value(value: Any) -> Any:
    """`json.dumps`'s `default`: datetimes and dates in ISO 8601, UUIDs as text, decimals as floats.

    Raises:
        TypeError: any other type.
    """
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def _columns(conn: AsyncConnection[DictRow], table: str) -> list[str]:
    cur = await conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = %s AND column_name <> 'athlete_id'
             AND data_type <> ALL(%s) ORDER BY ordinal_position""",
        (table, list(_SKIPPED_TYPES)),
    )
    return [str(row["column_name"]) for row in await cur.fetchall()]


async def _table_rows(conn: AsyncConnection[DictRow], table: str, athlete_id: str) -> list[dict[str, Any]]:
    columns = await _columns(conn, table)
    query = sql.SQL("SELECT {} FROM {} WHERE athlete_id = %s ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.Identifier(table),
        sql.SQL(_ORDER.get(table, "1")),  # constants of this module
    )
    cur = await conn.execute(query, (athlete_id,))
    return list(await cur.fetchall())


def _jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, default=json_value, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _csv(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(
        ["" if v is None else v.isoformat() if isinstance(v, datetime | date) else v for v in row] for row in rows
    )
    return buffer.getvalue().encode("utf-8")


def _fact_lines(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "key": r["fact_key"],
            "value": r["value"],
            "source": r["source"],
            "source_session_id": r["source_session_id"],
            "source_ride_id": r["source_ride_id"],
            "valid_from": r["valid_from"],
            "valid_to": r["valid_to"],
            "current": r["valid_to"] is None,
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


def _ride_details(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `RIDE_DETAIL_COLUMNS` of each ride; the 1 Hz power (bytes) in base64."""
    details = []
    for r in rows:
        line = {c: r[c] for c in RIDE_DETAIL_COLUMNS}
        if line["power_1hz_w"] is not None:
            line["power_1hz_w"] = base64.b64encode(bytes(line["power_1hz_w"])).decode("ascii")
        details.append(line)
    return details


def _file_content(table: str, rows: list[dict[str, Any]]) -> bytes:
    if table == "athlete_facts":
        return _jsonl(_fact_lines(rows))
    if table == "planned_workouts":
        return _csv(PLAN_CSV_COLUMNS, ([r[c] for c in PLAN_CSV_COLUMNS] for r in rows))
    if table == "rides":
        return _csv(
            RIDE_CSV_COLUMNS,
            ([*(r[c] for c in RIDE_CSV_COLUMNS[:-1]), json.dumps(r["metrics"], default=json_value)] for r in rows),
        )
    return _jsonl(rows)


async def export_files(stores: Stores, athlete_id: str, *, inbox_dir: Path | None = None) -> dict[str, bytes]:
    """Everything the coach holds about the athlete, as `{file name in the zip: bytes}` (see the module docstring).

    Raises:
        InvalidAthleteIdError: an invalid id.
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    validate_athlete_id(athlete_id)
    await stores.memory.drain_outbox()  # queued messages are part of what the coach holds
    files: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    async with stores.pool.connection() as conn:
        for table in [t for t in await athlete_tables(conn) if t not in _DERIVED_TABLES]:
            rows = await _table_rows(conn, table, athlete_id)
            name = _FILE_NAMES.get(table, f"{table}.jsonl")
            files[name], counts[name] = _file_content(table, rows), len(rows)
            if table == "rides":
                files[RIDE_DETAILS_FILE], counts[RIDE_DETAILS_FILE] = _jsonl(_ride_details(rows)), len(rows)
    for path in await asyncio.to_thread(inbox_files, athlete_id, inbox_dir):
        name = f"{RIDE_FILES_DIR}/{path.name}"
        files[name] = await asyncio.to_thread(path.read_bytes)
        counts[name] = 1
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    meta = {"athlete_id": athlete_id, "exported_at": exported_at, "format": EXPORT_FORMAT, "files": counts}
    head = {
        "README.txt": README.format(
            athlete_id=athlete_id, exported_at=exported_at, format=EXPORT_FORMAT, ride_files=RIDE_FILES_DIR
        ).encode("utf-8"),
        "athlete.json": json.dumps(meta, indent=2).encode("utf-8"),
    }
    return head | files


def _write_zip(files: Mapping[str, bytes], out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ExportExistsError(f"{out} exists: choose another file or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        os.chmod(tmp, 0o600)  # personal data: the owner only
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


async def write_export(
    stores: Stores, athlete_id: str, out: Path, *, force: bool = False, inbox_dir: Path | None = None
) -> dict[str, int]:
    """Write the athlete's export zip to `out` (mode 0600; written to a temporary file, then renamed).

    Args:
        stores: the open stores.
        athlete_id: whose data.
        out: the zip file to write.
        force: replace `out` when it exists.
        inbox_dir: the ride inbox root (default `Settings.inbox_dir`).

    Returns:
        `{file name in the zip: rows (or 1 for a ride file)}`, as in `athlete.json`.

    Raises:
        ExportExistsError: `out` exists and not `force` (checked before anything is read).
        InvalidAthleteIdError: an invalid id.
        OSError: `out` cannot be written.
    """
    if not force and await asyncio.to_thread(out.exists):
        raise ExportExistsError(f"{out} exists: choose another file or pass --force to replace it")
    files = await export_files(stores, athlete_id, inbox_dir=inbox_dir)
    await asyncio.to_thread(_write_zip, files, out, force)
    return dict(json.loads(files["athlete.json"])["files"])
