"""The postings of large archives: per message and word, what BM25 reads (schema v42-v48, issue 12).

Recall's one statement (`memory.recall`) parses the tsvectors of every message matching a query word; on an archive of
100,000 messages a common word matches tens of thousands. An archive with kept statistics (`memory.term_stats`:
`archive_term_counts.n` set, 2,000 messages or more) also keeps `archive_postings`: one row per user/assistant message
and lexeme of its own words (`search_tsv`) or its neighbours' (`context_tsv`), with both term frequencies and both
lengths, keyed (athlete, lexeme, message). `memory.recall_large` sums BM25 over a few index ranges of it.

The rows are derived from `messages` by statement-level triggers (insert, update of the words, delete), written
only for athletes with statistics, and filled for an athlete at its first refresh (`FILL_POSTINGS_SQL`). A write and
that first refresh are ordered by the athlete's `archive_term_counts` row: the trigger locks it FOR KEY SHARE, the
refresh FOR UPDATE, so the refresh reads every message committed before it and a write after it sees `n` set. KEY
SHARE does not conflict with the write's own later update of that row (`term_stats.count_writes`).

Derived data: erased with the athlete (`records.erase`, before the messages), never exported.
"""

from __future__ import annotations

POSTINGS_TABLE_SQL = """CREATE TABLE IF NOT EXISTS archive_postings (
    athlete_id TEXT NOT NULL,
    lexeme TEXT NOT NULL,
    message_id UUID NOT NULL,
    tf_own REAL NOT NULL,
    tf_context REAL NOT NULL,
    own_len INTEGER NOT NULL,
    context_len INTEGER NOT NULL,
    PRIMARY KEY (athlete_id, lexeme, message_id) INCLUDE (tf_own, tf_context, own_len, context_len)
)"""
"""The postings table; the key, with the frequencies and lengths included, serves every read as an index-only scan."""

MESSAGE_POSTINGS_FUNCTION_SQL = """CREATE OR REPLACE FUNCTION coach_message_postings(own TSVECTOR, context TSVECTOR)
RETURNS TABLE (lexeme TEXT, tf_own REAL, tf_context REAL) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(o.lexeme, c.lexeme),
           CASE WHEN o.lexeme IS NULL THEN 0 ELSE coalesce(array_length(o.positions, 1), 1) END,
           CASE WHEN c.lexeme IS NULL THEN 0 ELSE coalesce(array_length(c.positions, 1), 1) END
    FROM unnest(coalesce(own, ''::tsvector)) o FULL JOIN unnest(coalesce(context, ''::tsvector)) c
         ON c.lexeme = o.lexeme
$$"""
"""`coach_message_postings(own, context)`: a message's postings, each lexeme of its own words or its neighbours' with
its count in each (a lexeme without positions counts 1, as recall's `TF_CTE`)."""

KEEP_POSTINGS_FUNCTION_SQL = """CREATE OR REPLACE FUNCTION coach_keep_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM 1 FROM archive_term_counts c
        WHERE c.athlete_id IN (SELECT o.athlete_id FROM old_rows o) ORDER BY c.athlete_id FOR KEY SHARE;
        DELETE FROM archive_postings p
        USING old_rows o JOIN archive_term_counts c ON c.athlete_id = o.athlete_id AND c.n IS NOT NULL
              CROSS JOIN LATERAL coach_message_postings(o.search_tsv, o.context_tsv) x
        WHERE p.athlete_id = o.athlete_id AND p.lexeme = x.lexeme AND p.message_id = o.id;
        RETURN NULL;
    END IF;
    PERFORM 1 FROM archive_term_counts c
    WHERE c.athlete_id IN (SELECT n.athlete_id FROM new_rows n) ORDER BY c.athlete_id FOR KEY SHARE;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO archive_postings
        SELECT n.athlete_id, x.lexeme, n.id, x.tf_own, x.tf_context, length(coalesce(n.search_tsv, ''::tsvector)),
               length(coalesce(n.context_tsv, ''::tsvector))
        FROM new_rows n JOIN archive_term_counts c ON c.athlete_id = n.athlete_id AND c.n IS NOT NULL
             CROSS JOIN LATERAL coach_message_postings(n.search_tsv, n.context_tsv) x
        WHERE n.role IN ('user', 'assistant')
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
    -- UPDATE: the messages whose words, neighbours' words or role changed (an embedding written is not).
    DELETE FROM archive_postings p
    USING old_rows o JOIN new_rows n ON n.id = o.id
          CROSS JOIN LATERAL coach_message_postings(o.search_tsv, o.context_tsv) x
    WHERE p.athlete_id = o.athlete_id AND p.lexeme = x.lexeme AND p.message_id = o.id
      AND (n.search_tsv IS DISTINCT FROM o.search_tsv OR n.context_tsv IS DISTINCT FROM o.context_tsv
           OR n.role IS DISTINCT FROM o.role OR n.athlete_id IS DISTINCT FROM o.athlete_id);
    INSERT INTO archive_postings
    SELECT n.athlete_id, x.lexeme, n.id, x.tf_own, x.tf_context, length(coalesce(n.search_tsv, ''::tsvector)),
           length(coalesce(n.context_tsv, ''::tsvector))
    FROM new_rows n JOIN old_rows o ON o.id = n.id
         JOIN archive_term_counts c ON c.athlete_id = n.athlete_id AND c.n IS NOT NULL
         CROSS JOIN LATERAL coach_message_postings(n.search_tsv, n.context_tsv) x
    WHERE n.role IN ('user', 'assistant')
      AND (n.search_tsv IS DISTINCT FROM o.search_tsv OR n.context_tsv IS DISTINCT FROM o.context_tsv
           OR n.role IS DISTINCT FROM o.role OR n.athlete_id IS DISTINCT FROM o.athlete_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$"""
"""`coach_keep_postings()`: the triggers' function, keeping the postings equal to the messages, per statement."""

INSERT_TRIGGER = "messages_postings_insert"
"""The name of the insert trigger on `messages` (a bulk load into archives without statistics may disable it)."""
UPDATE_TRIGGER = "messages_postings_update"
"""The name of the update trigger on `messages` (likewise)."""
DELETE_TRIGGER = "messages_postings_delete"

POSTINGS_TRIGGERS_SQL = (
    f"""CREATE OR REPLACE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION coach_keep_postings()""",
    f"""CREATE OR REPLACE TRIGGER {UPDATE_TRIGGER} AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION coach_keep_postings()""",
    f"""CREATE OR REPLACE TRIGGER {DELETE_TRIGGER} AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION coach_keep_postings()""",
)
"""The triggers on `messages` (insert, update, delete), each with its transition tables."""

BACKFILL_POSTINGS_SQL = """INSERT INTO archive_postings
SELECT m.athlete_id, x.lexeme, m.id, x.tf_own, x.tf_context, length(coalesce(m.search_tsv, ''::tsvector)),
       length(coalesce(m.context_tsv, ''::tsvector))
FROM messages m JOIN archive_term_counts c ON c.athlete_id = m.athlete_id AND c.n IS NOT NULL
     CROSS JOIN LATERAL coach_message_postings(m.search_tsv, m.context_tsv) x
WHERE m.role IN ('user', 'assistant')
ON CONFLICT DO NOTHING"""
"""The postings of the archives that had statistics when schema v48 was applied."""

FILL_POSTINGS_SQL = """INSERT INTO archive_postings
SELECT m.athlete_id, x.lexeme, m.id, x.tf_own, x.tf_context, length(coalesce(m.search_tsv, ''::tsvector)),
       length(coalesce(m.context_tsv, ''::tsvector))
FROM messages m CROSS JOIN LATERAL coach_message_postings(m.search_tsv, m.context_tsv) x
WHERE m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant')
ON CONFLICT DO NOTHING"""
"""One archive's postings, written at its first refresh (`memory.term_stats.refresh`), under its counts row's lock."""

POSTINGS_MIGRATIONS = (
    POSTINGS_TABLE_SQL,
    MESSAGE_POSTINGS_FUNCTION_SQL,
    KEEP_POSTINGS_FUNCTION_SQL,
    *POSTINGS_TRIGGERS_SQL,
    BACKFILL_POSTINGS_SQL,
)
"""Schema v42-v48, in order (`memory.schema.MIGRATIONS`)."""
