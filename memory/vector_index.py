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
(`archive_term_counts.vector_indexed`, read by the write and by recall). `memory.term_stats.refresh` sets both,
once, when the archive reaches the size (`PROMOTE_SQL`, in the refresh's transaction, which holds the athlete's
counts row `FOR UPDATE`). Every archive write first takes that row `FOR KEY SHARE` and reads the flag
(`LOCK_FLAGS_SQL`), and inserts its messages with it. The two locks conflict, so either the write reads the flag
after the promotion committed, or the promotion waits for the write (`SKIP LOCKED`: it is skipped, and runs at the
next write) and its UPDATE then sees the write's rows. Every message of an athlete whose counts row says
`vector_indexed` is therefore in the index, which is what `memory.recall_large` relies on when it adds the
predicate (the athlete's other rows would be missed by the index scan otherwise).
"""

from __future__ import annotations

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
at its next write (`memory.term_stats`' due rule); until then recall sorts its vectors exactly."""

LOCK_FLAGS_SQL = """SELECT athlete_id, vector_indexed FROM archive_term_counts
WHERE athlete_id = ANY(%(athletes)s::text[]) ORDER BY athlete_id FOR KEY SHARE"""
"""The write's first statement: the flags of its athletes, their counts rows locked against a promotion until the
write commits (athletes in sorted order, as every lock of these rows is taken: no deadlock)."""

PROMOTE_SQL = (
    "UPDATE archive_term_counts SET vector_indexed = true WHERE athlete_id = %(athlete_id)s",
    "UPDATE messages SET vector_indexed = true WHERE athlete_id = %(athlete_id)s AND NOT vector_indexed",
)
"""Put an archive into the index (inside `memory.term_stats.refresh`, with its counts row held `FOR UPDATE`): once
per athlete, every message of it rewritten with the flag and inserted into the graph (about 0.5 ms a message)."""
