"""Erase an athlete everywhere the coach keeps something about them (`coach forget`, `DELETE /athletes/me`).

Places, in the order `erase_athlete` clears them:

1. **Postgres, one transaction** (under an exclusive per-athlete advisory lock that every archive write takes
   shared, `memory.schema` v28): every table with an `athlete_id` column (facts and their history, fact and
   plan-change proposals, messages with their embeddings, conversations, rides, debriefs, failed inbox files,
   planned workouts, load reports; found through `information_schema`, so a new table is covered too), the
   LangGraph checkpoints of the athlete's threads (command line threads `kind:athlete:key`,
   `graphs.context.thread_id`; server threads by their checkpoints' metadata `langgraph_auth_user_id` or
   `owner`), and a tombstone row in `erased_athletes` (the SHA-256 of the id, not the id) with the time of the
   erase. A message or conversation of
   the athlete dated at or before that time that reaches the archive later (an outbox or spool entry drained
   after the erase) is dropped by a trigger, not resurrected.
2. **Redis**: every key holding the athlete's hash tag `{<athlete>}` (session windows, facts cache and its
   generation) and the athlete's entries of the outbox stream and of its dead-letter stream.
3. **Local spool**: the athlete's lines of the last-resort spool files (`memory.outbox.LocalSpool`).
4. **Files**: the athlete's inbox folder (ride files waiting or kept after their debrief) and the demo's charts
   (`pmc-<athlete>-<day>.png` in the temporary folder).

What cannot be identified is listed in `ErasureReport.not_erased` (charts written to a path the athlete chose,
server threads kept by the development server's own files, backups and logs).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow
from redis.asyncio import Redis

from memory.athlete_store import validate_athlete_id
from memory.errors import StoreUnavailableError
from records.inbox import athlete_inbox
from records.stores import Stores

ORDERED_TABLES = (
    "archive_term_counts",  # first: without it, deleting the messages leaves their postings to the next delete
    "archive_postings",
    "messages",
    "conversations",
    "debriefs",
    "rides",
    "athlete_facts",
    "fact_proposals",
    "planned_workouts",
    "plan_change_proposals",
    "load_reports",
    "failed_inbox_files",
)
"""Tables with an `athlete_id` column, children before parents; any other such table follows, by name."""
CHECKPOINT_TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
CLI_THREAD_KINDS = ["chat", "debrief", "pending", "audit"]
"""The kinds of `graphs.context.thread_id` (`kind:athlete:key`)."""
DEFAULT_CHART_DIRS = (Path(tempfile.gettempdir()) / "endurance-coach",)
"""Where the coach writes charts of its own choosing (`coach demo`: `cli.audit.DEMO_CHART_DIR`)."""
NOT_ERASED = (
    "charts written to a path you chose (`--chart PATH`): the coach does not keep their names",
    "exports you made (`coach export`), database backups, Postgres WAL, Redis's append-only file until its next "
    "rewrite, and server logs",
)
SERVER_THREADS_NOTE = (
    "API server threads kept in the development server's own files (.langgraph_api/) rather than Postgres: "
    "`DELETE /athletes/me` deletes them through the server; the command line cannot reach them"
)
_ERASE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('coach-erase:' || %s, 0))"
_OUTBOX_FIELD = "m"
_SCAN_BATCH = 500


@dataclass
class ErasureReport:
    """What an erase removed, per place.

    Attributes:
        athlete_id: the athlete.
        erased: place -> number of rows, keys, entries or files removed (`postgres:<table>`, `checkpoints:<table>`,
            `redis:keys`, `redis:outbox`, `redis:dead_letters`, `spool:lines`, `files:inbox`, `files:charts`, and
            `server:threads` on the server), in that order.
        not_erased: what the coach cannot identify or reach, one sentence each.
    """

    athlete_id: str
    erased: dict[str, int] = field(default_factory=dict)
    not_erased: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The number of items removed, all places together."""
        return sum(self.erased.values())

    def to_dict(self) -> dict[str, Any]:
        """`{athlete_id, erased: {place: count}, total, not_erased: [...]}` (JSON-ready)."""
        return {
            "athlete_id": self.athlete_id,
            "erased": dict(self.erased),
            "total": self.total,
            "not_erased": list(self.not_erased),
        }


async def athlete_tables(conn: AsyncConnection[DictRow]) -> list[str]:
    """The base tables of the current schema with an `athlete_id` column, children first."""
    cur = await conn.execute(
        """SELECT c.table_name FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.column_name = 'athlete_id' AND c.table_schema = current_schema()
             AND t.table_type = 'BASE TABLE'"""
    )
    found = {str(row["table_name"]) for row in await cur.fetchall()}
    return [t for t in ORDERED_TABLES if t in found] + sorted(found - set(ORDERED_TABLES))


async def _checkpoint_tables(conn: AsyncConnection[DictRow]) -> list[str]:
    cur = await conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (list(CHECKPOINT_TABLES),)
    )
    return [str(row["t"]) for row in await cur.fetchall()]


async def athlete_thread_ids(conn: AsyncConnection[DictRow], athlete_id: str) -> list[str]:
    """The checkpointed threads of the athlete: command line ids `kind:athlete:key`, server threads by metadata."""
    tables = await _checkpoint_tables(conn)
    if not tables:
        return []
    parts: list[sql.Composable] = [
        sql.SQL(
            "SELECT thread_id FROM {} WHERE split_part(thread_id, ':', 1) = ANY(%(kinds)s) "
            "AND split_part(thread_id, ':', 2) = %(a)s"
        ).format(sql.Identifier(t))
        for t in tables
    ]
    if "checkpoints" in tables:
        parts.append(
            sql.SQL(
                "SELECT thread_id FROM checkpoints WHERE metadata ->> 'langgraph_auth_user_id' = %(a)s "
                "OR metadata ->> 'owner' = %(a)s"
            )
        )
    query = sql.SQL(" UNION ").join(parts)
    cur = await conn.execute(query, {"kinds": CLI_THREAD_KINDS, "a": athlete_id})
    return sorted(str(row["thread_id"]) for row in await cur.fetchall())


async def _postgres_places(conn: AsyncConnection[DictRow], athlete_id: str, *, delete: bool) -> dict[str, int]:
    """Count (or delete) the athlete's rows: `postgres:<table>` then `checkpoints:<table>`."""
    counts: dict[str, int] = {}
    verb = "DELETE FROM {}" if delete else "SELECT count(*) AS n FROM {}"
    for table in await athlete_tables(conn):
        query = sql.SQL(verb + " WHERE athlete_id = %s").format(sql.Identifier(table))
        counts[f"postgres:{table}"] = await _rows(conn, query, (athlete_id,), delete)
    threads = await athlete_thread_ids(conn, athlete_id)
    for table in await _checkpoint_tables(conn):
        query = sql.SQL(verb + " WHERE thread_id = ANY(%s)").format(sql.Identifier(table))
        counts[f"checkpoints:{table}"] = await _rows(conn, query, (threads,), delete) if threads else 0
    return counts


async def _rows(conn: AsyncConnection[DictRow], query: sql.Composed, params: Sequence[Any], delete: bool) -> int:
    cur = await conn.execute(query, params)
    if delete:
        return max(cur.rowcount, 0)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


def _key_pattern(athlete_id: str) -> str:
    """The SCAN pattern of the athlete's keys: the hash tag `{<athlete>}` every per-athlete key carries."""
    return f"*{{{athlete_id}}}*"  # athlete ids hold no glob character ([A-Za-z0-9_.@-])


async def _redis_keys(redis: Redis, athlete_id: str) -> list[str]:
    return [str(k) async for k in redis.scan_iter(match=_key_pattern(athlete_id), count=_SCAN_BATCH)]


async def _stream_entries(redis: Redis, stream: str, athlete_id: str) -> list[str]:
    """Ids of the stream's entries whose message (field `m`, `ChatMessage.to_json`) is the athlete's."""
    found: list[str] = []
    start = "-"
    while True:
        entries = await redis.xrange(stream, start, "+", count=_SCAN_BATCH) or []
        for entry_id, fields in entries:
            if _message_athlete(str((fields or {}).get(_OUTBOX_FIELD, ""))) == athlete_id:
                found.append(str(entry_id))
        if len(entries) < _SCAN_BATCH:
            return found
        start = f"({entries[-1][0]!s}"


def _message_athlete(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get("athlete_id") if isinstance(data, dict) else None


def _spool_files(directory: Path | None) -> list[Path]:
    return sorted(directory.glob("*.jsonl")) if directory is not None and directory.is_dir() else []


def _filter_spool_file(path: Path, athlete_id: str, *, delete: bool) -> int:
    """Count (and remove) the athlete's lines of one spool file, under its lock (`LocalSpool` locks it too)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
            kept = [line for line in lines if _message_athlete(line) != athlete_id]
            removed = len(lines) - len(kept)
            if delete and removed:
                f.seek(0)
                f.truncate()
                f.write("".join(kept))
                f.flush()
                os.fsync(f.fileno())
        return removed
    finally:
        os.close(fd)


def _chart_files(athlete_id: str, chart_dirs: Sequence[Path]) -> list[Path]:
    name = re.compile(rf"pmc-{re.escape(athlete_id)}-\d{{4}}-\d{{2}}-\d{{2}}\.png")
    return [p for d in chart_dirs if d.is_dir() for p in sorted(d.iterdir()) if name.fullmatch(p.name)]


def _inbox_files(athlete_id: str, inbox_dir: Path | None) -> list[Path]:
    folder = athlete_inbox(athlete_id, inbox_dir)
    return [p for p in folder.rglob("*") if not p.is_dir()] if folder.is_dir() else []


def _local_places(
    athlete_id: str, spool_dir: Path | None, inbox_dir: Path | None, chart_dirs: Sequence[Path], *, delete: bool
) -> dict[str, int]:
    spooled = sum(_filter_spool_file(p, athlete_id, delete=delete) for p in _spool_files(spool_dir))
    inbox, charts = _inbox_files(athlete_id, inbox_dir), _chart_files(athlete_id, chart_dirs)
    if delete:
        folder = athlete_inbox(athlete_id, inbox_dir)
        if folder.is_dir():
            shutil.rmtree(folder)
        for chart in charts:
            chart.unlink(missing_ok=True)
    return {"spool:lines": spooled, "files:inbox": len(inbox), "files:charts": len(charts)}


def _redis(stores: Stores) -> Redis:
    redis = stores.memory.redis
    if redis is None:
        raise StoreUnavailableError("Redis is not configured: the athlete's window and outbox cannot be erased")
    return redis


async def _redis_places(stores: Stores, athlete_id: str, *, delete: bool) -> dict[str, int]:
    redis = _redis(stores)
    stream = stores.memory.outbox.stream if stores.memory.outbox is not None else "outbox:archive"
    keys = await _redis_keys(redis, athlete_id)
    outbox = await _stream_entries(redis, stream, athlete_id)
    dead = await _stream_entries(redis, f"{stream}:dead", athlete_id)
    if delete:
        if keys:
            await redis.delete(*keys)
        if outbox:
            await redis.xdel(stream, *outbox)
        if dead:
            await redis.xdel(f"{stream}:dead", *dead)
    return {"redis:keys": len(keys), "redis:outbox": len(outbox), "redis:dead_letters": len(dead)}


async def survey_athlete(
    stores: Stores,
    athlete_id: str,
    *,
    inbox_dir: Path | None = None,
    chart_dirs: Sequence[Path] = DEFAULT_CHART_DIRS,
) -> dict[str, int]:
    """Count what the coach holds about the athlete, per place (the places of `erase_athlete`), erasing nothing.

    The spool and the outbox are counted before the archive, so a message a concurrent drain is moving may be
    counted in both places, never in neither.

    Raises:
        InvalidAthleteIdError: an invalid id.
        StoreUnavailableError: Redis is not configured; redis-py's and psycopg's connection errors when a server
            does not answer.
    """
    validate_athlete_id(athlete_id)
    # The queues first, the archive last: a drain running meanwhile moves a message from a queue into the archive,
    # so it may be counted twice but never missed.
    spool_dir = stores.memory.spool.directory if stores.memory.spool is not None else None
    local = await asyncio.to_thread(_local_places, athlete_id, spool_dir, inbox_dir, chart_dirs, delete=False)
    counts = await _redis_places(stores, athlete_id, delete=False)
    async with stores.pool.connection() as conn:
        counts = await _postgres_places(conn, athlete_id, delete=False) | counts | local
    return counts


async def erase_athlete(
    stores: Stores,
    athlete_id: str,
    *,
    inbox_dir: Path | None = None,
    chart_dirs: Sequence[Path] = DEFAULT_CHART_DIRS,
) -> ErasureReport:
    """Erase everything the coach holds about the athlete (see the module docstring for the places and order).

    An athlete of whom nothing is held is left alone: nothing is written, not even a tombstone, and the report's
    `total` is 0.

    Args:
        stores: the open stores (Postgres and Redis must answer: Redis is checked before anything is erased).
        athlete_id: whom to erase.
        inbox_dir: the ride inbox root (default `Settings.inbox_dir`).
        chart_dirs: folders where the coach wrote charts of its own choosing.

    Returns:
        The `ErasureReport` (counts per place, and what could not be identified).

    Raises:
        InvalidAthleteIdError: an invalid id.
        StoreUnavailableError: Redis is not configured; redis-py's and psycopg's connection errors when a server
            does not answer (the Postgres transaction then erased all of its part or none of it).
    """
    report = ErasureReport(athlete_id, not_erased=[SERVER_THREADS_NOTE, *NOT_ERASED])
    before = await survey_athlete(stores, athlete_id, inbox_dir=inbox_dir, chart_dirs=chart_dirs)
    if sum(before.values()) == 0:
        report.erased = dict.fromkeys(before, 0)
        return report
    async with stores.pool.connection() as conn, conn.transaction():
        await conn.execute(_ERASE_LOCK_SQL, (athlete_id,))
        report.erased = await _postgres_places(conn, athlete_id, delete=True)
        await conn.execute(
            """INSERT INTO erased_athletes (athlete_sha256, erased_at) VALUES (%s, clock_timestamp())
               ON CONFLICT (athlete_sha256) DO UPDATE SET erased_at = EXCLUDED.erased_at""",
            (athlete_digest(athlete_id),),
        )
    # After the commit: a window hydration or a drain can no longer bring old messages back from Postgres.
    report.erased |= await _redis_places(stores, athlete_id, delete=True)
    spool_dir = stores.memory.spool.directory if stores.memory.spool is not None else None
    report.erased |= await asyncio.to_thread(_local_places, athlete_id, spool_dir, inbox_dir, chart_dirs, delete=True)
    return report


def athlete_digest(athlete_id: str) -> str:
    """The key of the athlete's tombstone in `erased_athletes`: the SHA-256 of the id, hex (not the id itself)."""
    return hashlib.sha256(athlete_id.encode("utf-8")).hexdigest()


async def erased_at(stores: Stores, athlete_id: str) -> datetime | None:
    """When the athlete was last erased (timezone-aware), or None."""
    async with stores.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT erased_at FROM erased_athletes WHERE athlete_sha256 = %s", (athlete_digest(athlete_id),)
        )
        row = await cur.fetchone()
    return row["erased_at"] if row else None
