"""The athlete store's schema: an append-only list of migrations and an idempotent `setup()`.

The pattern follows langgraph-checkpoint-postgres (`PostgresSaver.MIGRATIONS` / `setup()`): a table records the
version of every migration applied; `setup()` applies, in order, the ones not yet recorded, each in its own
transaction. Never edit or reorder a migration that has shipped: append a new one.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection

MIGRATIONS: list[str] = [
    # v0: the migrations table itself.
    """CREATE TABLE IF NOT EXISTS coach_migrations (
        v INTEGER PRIMARY KEY,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    # v1: athlete facts with history. A superseded fact keeps its row, closed by valid_to; the current value of
    # a key (valid_to IS NULL) is unique per athlete.
    """CREATE TABLE IF NOT EXISTS athlete_facts (
        id BIGSERIAL PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        fact_key TEXT NOT NULL,
        value JSONB NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('user', 'debrief_coach', 'training_load_auditor')),
        source_session_id TEXT,
        source_ride_id TEXT,
        valid_from TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        valid_to TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS athlete_facts_current_uq
        ON athlete_facts (athlete_id, fact_key) WHERE valid_to IS NULL""",
    """CREATE INDEX IF NOT EXISTS athlete_facts_history_idx
        ON athlete_facts (athlete_id, fact_key, valid_from DESC)""",
    # v4: rides, one row per ride file, keyed per athlete by the SHA-256 of the file: re-ingest is a no-op.
    """CREATE TABLE IF NOT EXISTS rides (
        athlete_id TEXT NOT NULL,
        ride_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        file_format TEXT NOT NULL,
        sport TEXT NOT NULL,
        start_time TIMESTAMPTZ NOT NULL,
        elapsed_s DOUBLE PRECISION NOT NULL,
        moving_s DOUBLE PRECISION NOT NULL,
        distance_m DOUBLE PRECISION,
        normalized_power_w DOUBLE PRECISION,
        tss DOUBLE PRECISION,
        hr_tss DOUBLE PRECISION,
        metrics JSONB NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (athlete_id, ride_id)
    )""",
    """CREATE INDEX IF NOT EXISTS rides_athlete_start_idx ON rides (athlete_id, start_time DESC)""",
    # v6: one debrief per ride.
    """CREATE TABLE IF NOT EXISTS debriefs (
        athlete_id TEXT NOT NULL,
        ride_id TEXT NOT NULL,
        text TEXT NOT NULL,
        writer TEXT NOT NULL,
        facts_changed JSONB NOT NULL DEFAULT '[]'::jsonb,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (athlete_id, ride_id),
        FOREIGN KEY (athlete_id, ride_id) REFERENCES rides (athlete_id, ride_id) ON DELETE CASCADE
    )""",
]

# One advisory-lock key for the whole schema, so two processes running setup() at once do not race.
_SETUP_LOCK_KEY = 7_261_034_551


async def asetup(conn: AsyncConnection[Any]) -> int:
    """Apply every migration not yet applied; safe to call any number of times, from several processes.

    Args:
        conn: an autocommit connection to the athlete store's database.

    Returns:
        The number of migrations applied by this call (0 when the schema was already current).
    """
    applied = 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK_KEY,))
        await conn.execute(MIGRATIONS[0])
        cur = await conn.execute("SELECT coalesce(max(v), -1) AS v FROM coach_migrations")
        row = await cur.fetchone()
        version = _version(row)
        for v in range(version + 1, len(MIGRATIONS)):
            await conn.execute(MIGRATIONS[v])
            await conn.execute("INSERT INTO coach_migrations (v) VALUES (%s)", (v,))
            applied += 1
    return applied


def setup(conn: Connection[Any]) -> int:
    """Synchronous twin of `asetup` for scripts and tests (same arguments and return value)."""
    applied = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK_KEY,))
        conn.execute(MIGRATIONS[0])
        row = conn.execute("SELECT coalesce(max(v), -1) AS v FROM coach_migrations").fetchone()
        version = _version(row)
        for v in range(version + 1, len(MIGRATIONS)):
            conn.execute(MIGRATIONS[v])
            conn.execute("INSERT INTO coach_migrations (v) VALUES (%s)", (v,))
            applied += 1
    return applied


def _version(row: object) -> int:
    if row is None:
        return -1
    if isinstance(row, dict):
        return int(row["v"])
    return int(row[0])  # type: ignore[index]
