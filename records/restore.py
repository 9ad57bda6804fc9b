"""Restore an export zip (`records.export`) into a fresh athlete: `coach import-export FILE.zip --athlete NEW`.

Restored: facts with their whole history (values, sources, validity times), messages (content, role, order,
times, turns; new ids derived from the old ones, embeddings recomputed), plans, rides with their metrics, their
details (`ride_details.jsonl`: curves, histograms, 1 Hz power, links between two recordings of one activity) and
debriefs, the dated athlete values (FTP, LTHR, CP, W', ... with source and evidence), the all-time best power
curve (rebuilt from the rides), and the original ride files (into the new athlete's inbox, where they are already
debriefed). Not restored: proposals, load reports and failed inbox files (the Auditor and the inbox scan make them
again). An export written before `ride_details.jsonl` existed restores its rides with their debrief figures only
(`zones_status`/`w_prime_status`: `as_debriefed`).

The target must hold no facts, messages, rides or plans yet (a merge of two histories is not what an import
means); an athlete erased earlier keeps its tombstone, so messages dated before that erase would be dropped
(`records.erase`): import into a new id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import json
import os
import uuid
import zipfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from memory.athlete_store import validate_athlete_id
from memory.errors import MemoryError_
from memory.messages import ChatMessage
from records.export import EXPORT_FORMAT, RIDE_DETAIL_COLUMNS, RIDE_DETAILS_FILE, RIDE_FILES_DIR
from records.inbox import ensure_athlete_inbox, is_ride_file_name
from records.plans import parse_plan_csv
from records.rides import insert_debrief, insert_ride
from records.stores import Stores
from training.records import RideRecord

_ID_NAMESPACE = uuid.UUID("6c1d9a52-3f0b-4c57-9a51-0f6e9b0c2d11")
"""Namespace of the restored messages' ids: uuid5(namespace, "<new athlete>:<old id>")."""


class InvalidExportError(MemoryError_, ValueError):
    """The file is not a coach export (not a zip, no `athlete.json` of `EXPORT_FORMAT`, a bad line)."""

    code = "invalid_export"


class AthleteNotEmptyError(MemoryError_, ValueError):
    """The target athlete already holds facts, messages, rides or plans."""

    code = "athlete_not_empty"


@dataclass(frozen=True)
class RestoreResult:
    """What `restore_export` wrote: rows per kind (`facts` counts every historical value)."""

    facts: int
    messages: int
    plans: int
    rides: int
    debriefs: int
    ride_files: int
    athlete_values: int = 0


def _read_zip(path: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidExportError(f"{path} is not a readable zip: {exc}") from None


def _jsonl(files: dict[str, bytes], name: str) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(files.get(name, b"").decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise InvalidExportError(f"{name} line {n} is not JSON: {exc}") from None
    return rows


def _csv_rows(files: dict[str, bytes], name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files.get(name, b"").decode("utf-8"))))


def _uuid(athlete_id: str, old: str | None) -> str | None:
    return None if old is None else str(uuid.uuid5(_ID_NAMESPACE, f"{athlete_id}:{old}"))


def _messages(athlete_id: str, rows: list[dict[str, Any]]) -> list[ChatMessage]:
    try:
        return [
            ChatMessage(
                id=str(_uuid(athlete_id, r["id"])),
                athlete_id=athlete_id,
                session_id=r["session_id"],
                role=r["role"],
                content=r["content"],
                created_at=datetime.fromisoformat(r["created_at"]),
                turn_id=_uuid(athlete_id, r.get("turn_id")),
                tool_name=r.get("tool_name"),
                external_id=r.get("external_id"),
            )
            for r in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidExportError(f"messages.jsonl holds a bad message: {exc}") from None


def _number(text: str) -> float | None:
    return float(text) if text != "" else None


def _rides(rows: list[dict[str, str]]) -> list[RideRecord]:
    try:
        return [
            RideRecord(
                ride_id=r["ride_id"],
                file_name=r["file_name"],
                file_format=r["file_format"],
                sport=r["sport"],
                start_time=datetime.fromisoformat(r["start_time"]),
                elapsed_s=float(r["elapsed_s"]),
                moving_s=float(r["moving_s"]),
                distance_m=_number(r["distance_m"]),
                normalized_power_w=_number(r["normalized_power_w"]),
                tss=_number(r["tss"]),
                hr_tss=_number(r["hr_tss"]),
                metrics=json.loads(r["metrics_json"]),
            )
            for r in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidExportError(f"rides.csv holds a bad ride: {exc}") from None


def _with_details(rides: list[RideRecord], details: list[dict[str, Any]]) -> list[RideRecord]:
    """The rides with the fields of their `ride_details.jsonl` line (rides without one are left as they are)."""
    by_id = {d.get("ride_id"): d for d in details}
    out = []
    try:
        for ride in rides:
            line = by_id.get(ride.ride_id)
            if line is None:
                out.append(ride)
                continue
            fields: dict[str, Any] = {c: line.get(c) for c in RIDE_DETAIL_COLUMNS[1:]}
            if fields["end_time"] is not None:
                fields["end_time"] = datetime.fromisoformat(fields["end_time"])
            if fields["power_1hz_w"] is not None:
                fields["power_1hz_w"] = base64.b64decode(fields["power_1hz_w"], validate=True)
            out.append(replace(ride, **fields))
    except (TypeError, ValueError, binascii.Error) as exc:
        raise InvalidExportError(f"{RIDE_DETAILS_FILE} holds a bad ride: {exc}") from None
    return out


def _athlete_values(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    try:
        return [
            (r["key"], Jsonb(r["value"]), r["source"], r["valid_from"], Jsonb(r.get("evidence") or {})) for r in rows
        ]
    except (KeyError, TypeError) as exc:
        raise InvalidExportError(f"athlete_values.jsonl holds a bad value: {exc}") from None


def _copy_ride_files(files: dict[str, bytes], athlete_id: str, inbox_dir: Path | None) -> int:
    names = [n for n in files if n.startswith(f"{RIDE_FILES_DIR}/")]
    if not names:
        return 0
    folder = ensure_athlete_inbox(athlete_id, inbox_dir)
    copied = 0
    for name in names:
        base = Path(name).name
        if not is_ride_file_name(base) or (folder / base).exists():
            continue
        fd = os.open(folder / base, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(files[name])
        copied += 1
    return copied


async def _holds_data(stores: Stores, athlete_id: str) -> bool:
    async with stores.pool.connection() as conn:
        cur = await conn.execute(
            """SELECT EXISTS (SELECT 1 FROM athlete_facts WHERE athlete_id = %(a)s)
                   OR EXISTS (SELECT 1 FROM messages WHERE athlete_id = %(a)s)
                   OR EXISTS (SELECT 1 FROM rides WHERE athlete_id = %(a)s)
                   OR EXISTS (SELECT 1 FROM planned_workouts WHERE athlete_id = %(a)s) AS held""",
            {"a": athlete_id},
        )
        row = await cur.fetchone()
    return bool(row and row["held"])


async def restore_export(
    stores: Stores, path: Path, athlete_id: str, *, inbox_dir: Path | None = None
) -> RestoreResult:
    """Restore the export zip at `path` into the athlete `athlete_id`, which must hold nothing yet.

    Facts, plans, rides and debriefs are written in one Postgres transaction, then the messages (one
    transaction, with their embeddings), then the ride files.

    Raises:
        InvalidExportError: not a coach export, or a bad line in it (nothing written).
        AthleteNotEmptyError: the athlete already holds facts, messages, rides or plans (nothing written).
        InvalidAthleteIdError: an invalid id.
        PlanImportError: plans.csv does not parse (nothing written).
    """
    validate_athlete_id(athlete_id)
    files = await asyncio.to_thread(_read_zip, path)
    try:
        meta = json.loads(files["athlete.json"])
    except (KeyError, ValueError):
        raise InvalidExportError(f"{path} has no readable athlete.json: not a coach export") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise InvalidExportError(f"{path} is not a {EXPORT_FORMAT} export")
    facts = _jsonl(files, "facts.jsonl")
    messages = _messages(athlete_id, _jsonl(files, "messages.jsonl"))
    plan_text = files.get("plans.csv", b"").decode("utf-8")
    plans = parse_plan_csv(plan_text) if len(plan_text.strip().splitlines()) > 1 else []  # rows after the header
    rides = _with_details(_rides(_csv_rows(files, "rides.csv")), _jsonl(files, RIDE_DETAILS_FILE))
    values = _athlete_values(_jsonl(files, "athlete_values.jsonl"))
    debriefs = _jsonl(files, "debriefs.jsonl")
    if await _holds_data(stores, athlete_id):
        raise AthleteNotEmptyError(f"athlete {athlete_id} already holds data: import into a new athlete id")
    try:
        async with stores.pool.connection() as conn, conn.transaction():
            async with conn.cursor() as cur:
                await cur.executemany(
                    """INSERT INTO athlete_facts (athlete_id, fact_key, value, source, source_session_id,
                           source_ride_id, valid_from, valid_to, updated_at)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (
                            athlete_id,
                            f["key"],
                            Jsonb(f["value"]),
                            f["source"],
                            f.get("source_session_id"),
                            f.get("source_ride_id"),
                            f["valid_from"],
                            f.get("valid_to"),
                            f.get("updated_at") or f["valid_from"],
                        )
                        for f in facts
                    ],
                )
                await cur.executemany(
                    """INSERT INTO athlete_values (athlete_id, key, value, source, valid_from, evidence)
                       VALUES (%s, %s, %s, %s, %s, %s)""",
                    [(athlete_id, *v) for v in values],
                )
            for ride in rides:  # oldest first (the export's order): the kept best curve is built as on insert
                await insert_ride(conn, athlete_id, ride)
            for d in debriefs:
                await insert_debrief(conn, athlete_id, d["ride_id"], d["text"], d["writer"])
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:  # e.g. a value of an unknown source
        raise InvalidExportError(f"the export holds a row the store refuses (nothing written): {exc}") from None
    if plans:
        await stores.plans.import_rows(athlete_id, plans)
    written = await stores.memory.archive.write(messages, embed=True) if stores.memory.archive and messages else 0
    await stores.memory.invalidate_facts(athlete_id)
    copied = await asyncio.to_thread(_copy_ride_files, files, athlete_id, inbox_dir)
    return RestoreResult(
        facts=len(facts),
        messages=written,
        plans=len(plans),
        rides=len(rides),
        debriefs=len(debriefs),
        ride_files=copied,
        athlete_values=len(values),
    )
