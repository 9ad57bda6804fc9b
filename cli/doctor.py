"""`coach doctor`: the state of the memory's stores, and what is waiting or was lost on the way to the archive.

Reports Postgres (reachable, version), Redis (reachable, version, append-only file), the outbox (entries waiting
for the archive, and lines in the local spool) and the dead-letter stream (`outbox:archive:dead`: queued
messages the archive refused, with the last entries' athlete, session, role and reason). Registered on the
`coach` app by `cli.main`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from memory.conversation import ConversationMemory
from memory.outbox import PG_DOWN_ERRORS
from memory.redis_client import REDIS_ERRORS

out = Console(highlight=False, soft_wrap=True)
LAST_DEAD_LETTERS = 5
"""How many of the newest dead letters the report lists."""


def _stream_time(entry_id: str) -> str | None:
    """The UTC time (ISO 8601) a Redis stream entry id was made: its first part is Unix time in milliseconds."""
    try:
        ms = int(entry_id.split("-", 1)[0])
    except ValueError:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _dead_letter_row(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": entry_id,
        "at": _stream_time(entry_id),
        "athlete_id": None,
        "session_id": None,
        "role": None,
        "reason": fields.get("reason", "(no reason recorded)"),
    }
    try:
        message = json.loads(fields.get("m", ""))
        if isinstance(message, dict):
            row.update({k: message.get(k) for k in ("athlete_id", "session_id", "role")})
    except ValueError:
        pass
    return row


async def doctor_report(memory: ConversationMemory, *, last: int = LAST_DEAD_LETTERS) -> dict[str, Any]:
    """Probe the memory's servers and read its queues.

    Args:
        memory: an open `ConversationMemory` (e.g. `ConversationMemory.from_settings()`).
        last: how many of the newest dead letters to list.

    Returns:
        `{"status": "ok" | "attention", "postgres": {"status", "server_version"?, "error"?},
        "redis": {"status", "version"?, "appendonly"?, "error"?}, "outbox": {"stream", "pending", "spool_pending"},
        "dead_letters": {"stream", "count", "last": [{"id", "at", "athlete_id", "session_id", "role", "reason"}]}}`.
        `status` is `attention` when a server is unreachable or the dead-letter stream is not empty; counts
        that could not be read (Redis down) are None.
    """
    postgres: dict[str, Any] = {"status": "unreachable"}
    if memory.pool is not None:
        try:
            async with asyncio.timeout(memory.pg_timeout_s * 3):
                async with memory.pool.connection() as conn:
                    row = await (await conn.execute("SHOW server_version")).fetchone()
            postgres = {"status": "ok", "server_version": row["server_version"] if row else None}
        except PG_DOWN_ERRORS as exc:
            postgres["error"] = f"{type(exc).__name__}: {exc}".strip()
    redis: dict[str, Any] = {"status": "unreachable"}
    outbox = memory.outbox
    queue: dict[str, Any] = {"stream": outbox.stream if outbox else None, "pending": None, "spool_pending": 0}
    dead: dict[str, Any] = {"stream": outbox.dead_stream if outbox else None, "count": None, "last": []}
    if memory.redis is not None:
        try:
            server = await memory.redis.info("server")
            persistence = await memory.redis.info("persistence")
            redis = {
                "status": "ok",
                "version": server.get("redis_version"),
                "appendonly": bool(int(persistence.get("aof_enabled", 0))),
            }
            if outbox is not None:
                queue["pending"] = await outbox.pending()
                dead["count"] = int(await memory.redis.xlen(outbox.dead_stream))
                entries = await memory.redis.xrevrange(outbox.dead_stream, "+", "-", count=last)
                dead["last"] = [
                    _dead_letter_row(str(i), {str(k): str(v) for k, v in (f or {}).items()}) for i, f in entries or []
                ]
        except REDIS_ERRORS as exc:
            redis = {"status": "unreachable", "error": f"{type(exc).__name__}: {exc}".strip()}
    if memory.spool is not None:
        queue["spool_pending"] = await memory.spool.pending()
    healthy = postgres["status"] == "ok" and redis["status"] == "ok" and not dead["count"]
    return {
        "status": "ok" if healthy else "attention",
        "postgres": postgres,
        "redis": redis,
        "outbox": queue,
        "dead_letters": dead,
    }


def print_report(report: dict[str, Any]) -> None:
    """Print `doctor_report`'s output for a person."""
    pg, redis, queue, dead = report["postgres"], report["redis"], report["outbox"], report["dead_letters"]

    def state(part: dict[str, Any], detail: str) -> str:
        if part["status"] == "ok":
            return f"[green]ok[/green] ({escape(detail)})"
        return f"[red]unreachable[/red] ({escape(part.get('error', ''))})"

    out.print(f"postgres      {state(pg, str(pg.get('server_version')))}")
    aof = "appendonly yes" if redis.get("appendonly") else "[yellow]appendonly no[/yellow]"
    out.print(
        f"redis         {state(redis, str(redis.get('version')))}" + (f", {aof}" if redis["status"] == "ok" else "")
    )
    pending = "unknown" if queue["pending"] is None else str(queue["pending"])
    out.print(f"outbox        {pending} waiting in {queue['stream']}, {queue['spool_pending']} in the local spool")
    count = dead["count"]
    colour = "green" if count == 0 else "red"
    shown = "unknown" if count is None else str(count)
    out.print(f"dead letters  [{colour}]{shown}[/{colour}] in {dead['stream']} (messages the archive refused)")
    for row in dead["last"]:
        who = f"{row['athlete_id']}/{row['session_id']} {row['role']}"
        out.print(f"  {row['at']}  {escape(who)}: {escape(row['reason'])}")


def register(app: typer.Typer, run: Any) -> None:
    """Add `coach doctor` to the app (`run` comes from `cli.main`)."""

    @app.command()
    def doctor(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
        """Show the state of Postgres, Redis, the outbox and its dead letters; exit 1 when something needs care."""

        async def go() -> dict[str, Any]:
            memory = await ConversationMemory.from_settings()
            try:
                return await doctor_report(memory)
            finally:
                await memory.close()

        report = run(go())
        if as_json:
            print(json.dumps(report), flush=True)
        else:
            print_report(report)
        raise typer.Exit(0 if report["status"] == "ok" else 1)
