"""Which archives the HNSW index holds: those of `VECTOR_INDEX_MIN_MESSAGES` messages or more.

Recall's vector side sorts a small archive's vectors exactly: about 1 µs a message on this machine (2,000
messages 2.6 ms, 10,000 10 ms, 20,000 22 ms, 50,000 57 ms; the vector side alone, measured with psql), exact and
cheap. An approximate index pays off only for a large archive: 100,000 messages would take about 110 ms exactly,
10-30 ms through HNSW (README). So the index is partial (`WHERE vector_indexed`, pgvector's README, "Filtering": partial
indexes), and holds only the messages of athletes whose archive reached the size:

- a write of a small archive's messages does no graph insert: that insert was most of the write's cost (2,000
  LoCoMo turns into a new database: about 2 s with the index on every message, 0.45 s without; README, ingest);
- a large archive's filtered search walks a graph of large archives only, not one crowded by every other athlete's
  vectors (at 1 M messages the 100,000-message athlete held a tenth of a global graph).

The flag is per message (`messages.vector_indexed`, the index's predicate) and per athlete
(`archive_term_counts.vector_indexed`, read by the write and by recall). `promote` sets them once, when the
statistics' refresh finds the archive that large (`memory.term_stats.refresh_due`): first the messages, in batches
of `PROMOTE_BATCH_ROWS`, each its own transaction (each message is inserted into the graph: 0.8 ms a LoCoMo turn,
5.6 ms a random vector; the athlete's writes go on meanwhile, and recall still sorts exactly); then, holding the
athlete's counts row `FOR UPDATE`, the athlete's flag and the messages written since. Every archive write first
takes that row `FOR KEY SHARE` and reads the flag (`LOCK_FLAGS_SQL`), and inserts its messages with it. The two
locks conflict, so either the write reads the flag after the promotion committed, or the promotion's last step
waits for the write to commit and then flags its rows too. Every message of an athlete whose counts row says
`vector_indexed` is therefore in the index, which is what `memory.recall_large` relies on when it adds the
predicate (an unflagged row of such an athlete would be missed by the index scan).
"""

from __future__ import annotations

import logging

from memory.db import DictPool

logger = logging.getLogger(__name__)

VECTOR_INDEX_MIN_MESSAGES = 10_000
"""Smallest archive (user/assistant messages, as counted by the statistics' refresh) whose messages the HNSW index
holds. Below it the vector side's exact sort costs at most about 10 ms (see above), about what the index scan of
a 100,000-message archive costs, and is exact."""

VECTOR_INDEX_SETUP = """DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = 'messages'::regclass AND attname = 'embedding' AND NOT attisdropped) THEN
        IF EXISTS (SELECT 1 FROM pg_index
                   WHERE indexrelid = to_regclass('messages_embedding_hnsw_idx') AND indpred IS NULL) THEN
            DROP INDEX messages_embedding_hnsw_idx;
        END IF;
        CREATE INDEX IF NOT EXISTS messages_embedding_hnsw_idx ON messages
            USING hnsw (embedding vector_cosine_ops) WHERE vector_indexed;
    END IF;
END
$$"""
"""Replace the HNSW index over every message (schema v19, `memory.schema.VECTOR_SETUP`) by the partial one, when
`messages.embedding` exists (pgvector); otherwise nothing. Idempotent: a partial index already there is kept. Run
as a migration and again after `VECTOR_SETUP` by `ArchiveVectors.ensure_vectors`."""

VECTOR_INDEX_MIGRATIONS = (
    "ALTER TABLE messages ADD COLUMN IF NOT EXISTS vector_indexed BOOLEAN NOT NULL DEFAULT false",
    "ALTER TABLE archive_term_counts ADD COLUMN IF NOT EXISTS vector_indexed BOOLEAN NOT NULL DEFAULT false",
    VECTOR_INDEX_SETUP,
)
"""Schema v57-v59: the two flags, and the index made partial. An archive that is already large gets into the index
at its next write (`memory.term_stats.refresh_due`); until then recall sorts its vectors exactly."""

LOCK_FLAGS_SQL = """SELECT athlete_id, vector_indexed FROM archive_term_counts
WHERE athlete_id = ANY(%(athletes)s::text[]) ORDER BY athlete_id FOR KEY SHARE"""
"""The write's first statement: the flags of its athletes, their counts rows locked against a promotion until the
write commits (athletes in sorted order, as every lock of these rows is taken: no deadlock)."""

PROMOTE_BATCH_ROWS = 1_000
"""Messages flagged per transaction of a promotion's first step (about 1-6 s each, see above)."""

_PROMOTE_BATCH_SQL = """UPDATE messages SET vector_indexed = true WHERE id IN (
    SELECT id FROM messages WHERE athlete_id = %(athlete_id)s AND NOT vector_indexed LIMIT %(rows)s)"""


async def promote(pool: DictPool, athlete_id: str, *, batch_rows: int = PROMOTE_BATCH_ROWS) -> int:
    """Put an athlete's archive into the HNSW index: its messages, then its flag (see the module's locking).

    Idempotent, and safe to run from two processes at once (the last step is serialised by the row lock). A
    failure part-way leaves some messages flagged and the athlete's flag unset: recall sorts exactly until a later
    promotion finishes the job.

    Args:
        pool: the archive's pool (autocommit connections).
        athlete_id: an athlete with an `archive_term_counts` row (else only its messages are flagged).
        batch_rows: messages flagged per transaction before the last step.

    Returns:
        The number of messages flagged by this call.

    Raises:
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    flagged = 0
    params = {"athlete_id": athlete_id, "rows": batch_rows}
    async with pool.connection() as conn:
        while (cur := await conn.execute(_PROMOTE_BATCH_SQL, params)).rowcount > 0:
            flagged += cur.rowcount
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM archive_term_counts WHERE athlete_id = %(athlete_id)s FOR UPDATE", params)
            await conn.execute(
                "UPDATE archive_term_counts SET vector_indexed = true WHERE athlete_id = %(athlete_id)s", params
            )
            cur = await conn.execute(
                "UPDATE messages SET vector_indexed = true WHERE athlete_id = %(athlete_id)s AND NOT vector_indexed",
                params,
            )
            flagged += max(cur.rowcount, 0)
    logger.info("an archive entered the HNSW index (%d messages flagged)", flagged)
    return flagged
