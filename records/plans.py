"""Planned workouts: parse a plan CSV, store it per athlete, read it back by day or range.

CSV format (UTF-8, comma-separated, header line required, columns in any order, `description` optional)::

    date,kind,duration_s,tss,description
    2026-11-23,recovery,2700,25,Easy spin Z1
    2026-11-24,intervals,5400,95,"5x5 min VO2max, 3 min easy"

* ``date``: ISO ``YYYY-MM-DD``;
* ``kind``: non-empty, stored lower-cased (``endurance``, ``intervals``, ``recovery``, ``rest``...);
* ``duration_s``: planned duration in seconds, a non-negative number, or empty;
* ``tss``: planned training stress score, a non-negative number, or empty;
* ``description``: free text, may be empty.

A file is imported whole or not at all: every bad row is reported with its line number and nothing is written.
A file whose quoting is broken (a quote that is never closed, which would swallow the following rows into one
field, or text after a closing quote) is refused with the code `invalid_csv`; a file holding a character Postgres
cannot store (NUL, a lone surrogate) with `invalid_text` (`memory.text`); other problems with `invalid_plan`.
One workout per (athlete, date, kind); a re-import updates that workout in place and never deletes workouts
missing from the new file.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from memory.athlete_store import validate_athlete_id
from memory.db import DictPool
from memory.errors import MemoryError_
from memory.text import validate_text

REQUIRED_COLUMNS = ("date", "kind", "duration_s", "tss")
OPTIONAL_COLUMNS = ("description",)
HEADER_HINT = "date,kind,duration_s,tss,description"
MAX_ERRORS_IN_MESSAGE = 50
"""The error message lists at most this many problems (`PlanImportError.errors` holds them all)."""


@dataclass(frozen=True)
class PlanRow:
    """One planned workout.

    Attributes:
        date: the day it is planned for (the athlete's local calendar day).
        kind: workout kind, lower-case, non-empty.
        duration_s: planned duration in seconds, or None.
        tss: planned training stress score, or None.
        description: free text ('' when none).
    """

    date: date
    kind: str
    duration_s: float | None
    tss: float | None
    description: str = ""


class PlanImportError(MemoryError_, ValueError):
    """A plan file has problems; nothing was imported.

    Attributes:
        errors: ``[(line_number, reason), ...]``, 1-based line numbers in the file, in file order; a line with
            several problems appears several times.
    """

    code = "invalid_plan"

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        """Build the multi-line message ("plan file rejected, nothing imported" then one "line N: reason" each)."""
        self.errors = list(errors)
        lines = [f"line {line}: {reason}" for line, reason in self.errors[:MAX_ERRORS_IN_MESSAGE]]
        if len(self.errors) > MAX_ERRORS_IN_MESSAGE:
            lines.append(f"... and {len(self.errors) - MAX_ERRORS_IN_MESSAGE} more")
        count = len(self.errors)
        header = f"plan file rejected, nothing imported ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  {ln}" for ln in lines)]))


class InvalidCsvError(PlanImportError):
    """A plan file is not well-formed CSV (broken quoting, a field over the csv module's size limit).

    `errors` holds the line where the broken record starts (and any row problems found before it).
    """

    code = "invalid_csv"


_CSV_REASONS = {
    "unexpected end of data": (
        "unterminated quoted field: the '\"' opened on this line is never closed, so every row after it would "
        "be read into this field"
    ),
    "',' expected after '\"'": "text after a closing quote: a quoted field must end at a comma or at the line's end",
}


def parse_plan_csv(text: str) -> list[PlanRow]:
    """Parse a plan CSV (see the module docstring for the format).

    Blank lines are skipped; a leading byte-order mark is ignored. Line numbers count physical lines of `text`
    from 1 (the header); a row whose quoted field spans lines is reported at its first line.

    Args:
        text: the file's content.

    Returns:
        The workouts, in file order.

    Raises:
        InvalidTextError: the file holds NUL or a lone surrogate (code `invalid_text`, with its line and column).
        InvalidCsvError: broken quoting or an oversized field (code `invalid_csv`, with the record's first line).
        PlanImportError: an empty file, a missing, unknown or repeated column, a header without rows, or any bad
            row (wrong number of fields, a date that is not ``YYYY-MM-DD``, an empty kind, a duration or TSS that
            is not a non-negative number, a (date, kind) already seen in the file). All problems are reported.
    """
    validate_text(text, "plan file")
    # strict: an unterminated quote raises at the end of the data instead of swallowing the rest of the file.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    errors: list[tuple[int, str]] = []
    header: list[str] | None = None
    header_line = 1
    rows: list[PlanRow] = []
    seen: dict[tuple[date, str], int] = {}
    next_line = 1
    try:
        for record in reader:
            line, next_line = next_line, reader.line_num + 1
            if not any(field.strip() for field in record):
                continue
            if header is None:
                header, header_line = [field.strip().lower() for field in record], line
                header_errors = _check_header(header)
                if header_errors:
                    raise PlanImportError([(line, reason) for reason in header_errors])
                continue
            row, row_errors = _parse_row(header, record)
            errors.extend((line, reason) for reason in row_errors)
            if row is None:
                continue
            first = seen.setdefault((row.date, row.kind), line)
            if first != line:
                errors.append((line, f"duplicate workout: {row.kind!r} on {row.date} is already on line {first}"))
                continue
            rows.append(row)
    except csv.Error as exc:
        errors.append((next_line, _CSV_REASONS.get(str(exc), f"unreadable CSV: {exc}")))
        raise InvalidCsvError(errors) from None
    if header is None:
        raise PlanImportError(
            errors or [(1, f"empty file: expected a header line '{HEADER_HINT}' and one row per workout")]
        )
    if not errors and not rows:
        errors.append((header_line, "no workouts after the header"))
    if errors:
        raise PlanImportError(errors)
    return rows


def _check_header(header: list[str]) -> list[str]:
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        problems.append(f"header misses column(s) {', '.join(missing)} (expected '{HEADER_HINT}')")
    unknown = [c for c in header if c not in known]
    if unknown:
        problems.append(f"header has unknown column(s) {', '.join(map(repr, unknown))} (expected '{HEADER_HINT}')")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        problems.append(f"header repeats column(s) {', '.join(repeated)}")
    return problems


def _parse_row(header: list[str], record: list[str]) -> tuple[PlanRow | None, list[str]]:
    if len(record) != len(header):
        return None, [f"expected {len(header)} fields ({', '.join(header)}), got {len(record)}"]
    values = {name: field.strip() for name, field in zip(header, record, strict=True)}
    problems: list[str] = []
    day = _parse_date(values["date"], problems)
    kind = values["kind"].lower()
    if not kind:
        problems.append("kind is empty")
    duration_s = _parse_amount("duration_s", values["duration_s"], problems)
    tss = _parse_amount("tss", values["tss"], problems)
    if problems or day is None:
        return None, problems
    return PlanRow(day, kind, duration_s, tss, values.get("description", "")), []


def _parse_date(text: str, problems: list[str]) -> date | None:
    if not text:
        problems.append("date is empty (expected YYYY-MM-DD)")
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"date {text!r} is not a valid ISO date YYYY-MM-DD")
        return None


def _parse_amount(name: str, text: str, problems: list[str]) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{name} {text!r} is not a number")
        return None
    if not math.isfinite(value) or value < 0:
        problems.append(f"{name} {text!r} must be a non-negative number")
        return None
    return value


_PLAN_COLUMNS = "date, kind, duration_s, tss, description"


class PlanStore:
    """Planned workouts in the athlete store (table `planned_workouts`); every query filters by athlete.

    Rows are returned as ``{"date": date, "kind": str, "duration_s": float | None, "tss": float | None,
    "description": str}``, ordered by date then kind.
    """

    def __init__(self, pool: DictPool) -> None:
        """Wrap an open pool (autocommit connections, dict rows); see `records.stores.open_stores`."""
        self.pool = pool

    async def import_rows(self, athlete_id: str, rows: Sequence[PlanRow]) -> int:
        """Upsert workouts in one transaction: a (date, kind) already planned is updated in place.

        Workouts of the athlete that are not in `rows` are left as they are.

        Args:
            athlete_id: the athlete.
            rows: the workouts, e.g. from `parse_plan_csv`.

        Returns:
            The number of workouts written (inserted or updated).

        Raises:
            InvalidAthleteIdError: bad athlete id.
            ValueError: a kind is empty or two rows share a (date, kind) (nothing is written).
        """
        validate_athlete_id(athlete_id)
        keys = set()
        for row in rows:
            key = (row.date, row.kind.strip().lower())
            if not key[1]:
                raise ValueError(f"empty kind for the workout on {row.date}")
            if key in keys:
                raise ValueError(f"two workouts {key[1]!r} on {row.date}")
            keys.add(key)
        if not rows:
            return 0
        params = [(athlete_id, r.date, r.kind.strip().lower(), r.duration_s, r.tss, r.description or "") for r in rows]
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                f"""INSERT INTO planned_workouts (athlete_id, {_PLAN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT (athlete_id, date, kind) DO UPDATE
                    SET duration_s = EXCLUDED.duration_s, tss = EXCLUDED.tss,
                        description = EXCLUDED.description, imported_at = now()""",
                params,
            )
        return len(params)

    async def plan_for_day(self, athlete_id: str, day: date) -> list[dict[str, Any]]:
        """Return the athlete's workouts planned on `day` (empty list when none).

        Raises:
            InvalidAthleteIdError: bad athlete id.
        """
        return await self.plan_between(athlete_id, day, day)

    async def plan_between(self, athlete_id: str, start: date, end: date) -> list[dict[str, Any]]:
        """Return the athlete's workouts planned from `start` to `end`, both included.

        Raises:
            InvalidAthleteIdError: bad athlete id.
            ValueError: `end` is before `start`.
        """
        validate_athlete_id(athlete_id)
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"""SELECT {_PLAN_COLUMNS} FROM planned_workouts
                    WHERE athlete_id = %s AND date BETWEEN %s AND %s ORDER BY date, kind""",
                (athlete_id, start, end),
            )
            return await cur.fetchall()
