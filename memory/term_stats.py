"""BM25's statistics of a large archive, kept per athlete off the reply path (docs/architecture.md, recall).

On a small archive recall computes BM25's document frequencies, message count and mean length inside its one
statement, over every message matching the query (`memory.recall`). On an archive of `LARGE_ARCHIVE_MESSAGES`
messages or more that costs seconds when a query word is common (100,000 messages: about 28,000 match a speaker's
name), so these statistics are kept instead (schema v39-v40) and recall reads them (`memory.recall_large`):

- `archive_term_counts`: per athlete the messages written since the last refresh (`count_writes`, in the archive
  write's transaction) and, once refreshed, the user/assistant messages `n` and their mean own and contextual
  lengths;
- `archive_postings` (`memory.postings`): per message and lexeme, what BM25 reads (`memory.recall_large`), kept by
  triggers on `messages` once the archive has statistics, filled at its first refresh;
- `archive_term_df`: per athlete and lexeme the number of those messages holding it in their own words
  (`search_tsv`) or their neighbours' (`context_tsv`): BM25's df over both fields, as recall's statement counts it;
  and its largest BM25 term weight tf(k1+1)/(tf+k1(1-b+b·dl/avgdl)) in a message holding it in its own words,
  and in one holding it only in its neighbours', under the default `RankingParams` (recorded as
  `weight_params`): MaxScore's per-term bounds, tighter than k1+1.

`refresh_due` refreshes (one pass over the athlete's messages' lexemes, and its posting blocks rebuilt:
`memory.posting_blocks`) an archive that reached the size, grew by `REFRESH_GROWTH` since its last refresh, or has
more than `BLOCK_CHANGES_MAX` messages changed since its blocks were built; the write paths that embed (the outbox
drain and imports) call it after their transaction commits, so the refresh never delays a reply nor an acknowledged
write. Between refreshes the statistics are at most `REFRESH_GROWTH` behind (the IDF of a word moves by at most
about ln(1.1) ≈ 0.1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg import AsyncCursor
from psycopg.rows import DictRow

from memory.db import DictPool
from memory.posting_blocks import BLOCK_CHANGES_MAX, BUILD_BLOCKS_SQL
from memory.postings import FILL_POSTINGS_SQL
from memory.recall import RankingParams
from memory.vector_index import VECTOR_INDEX_MIN_MESSAGES, promote

logger = logging.getLogger(__name__)

LARGE_ARCHIVE_MESSAGES = 2_000
"""Archives of at least this many user/assistant messages get kept statistics (`refresh_due`). Recall's one
statement scores every matching message: about 40 ms at 2,000 messages when a query word is in a quarter of them
(2 s at 100,000, README), so this is where the kept statistics start to pay."""
REFRESH_GROWTH = 0.1
"""An archive's statistics are refreshed once it grew by this share of its size at the last refresh."""

_COUNT_WRITES_SQL = """INSERT INTO archive_term_counts AS c (athlete_id, written_since)
SELECT m.athlete_id, count(*) FROM messages m
WHERE m.id = ANY(%(ids)s::uuid[]) AND m.role IN ('user', 'assistant')
GROUP BY m.athlete_id ORDER BY m.athlete_id
ON CONFLICT (athlete_id) DO UPDATE SET written_since = c.written_since + EXCLUDED.written_since"""

# Per athlete written: whether its statistics are due, and whether its archive is due to enter the HNSW index.
_DUE_SQL = """SELECT c.athlete_id,
       coalesce(c.n, 0) + c.written_since >= %(min_messages)s
       AND (c.n IS NULL OR c.written_since >= %(growth)s * greatest(c.n, 1)
            OR (SELECT count(*) FROM (SELECT 1 FROM archive_block_changes ch WHERE ch.athlete_id = c.athlete_id
                                      LIMIT %(max_changes)s + 1) AS over) > %(max_changes)s) AS refresh,
       NOT c.vector_indexed AND coalesce(c.n, 0) + c.written_since >= %(vector_index_min)s AS promote
FROM archive_term_counts c
WHERE c.athlete_id = ANY(%(athletes)s::text[])
ORDER BY c.athlete_id"""

_SIZE_SQL = """SELECT count(*) AS n,
       coalesce(avg(length(search_tsv)), 0)::float8 AS avg_own_len,
       coalesce(avg(length(coalesce(context_tsv, ''::tsvector))), 0)::float8 AS avg_context_len
FROM messages WHERE athlete_id = %(athlete_id)s AND role IN ('user', 'assistant')"""

# Per message and lexeme, its term frequency as recall counts it (own words 1, the neighbours' `context_weight`) and
# the message's length; per lexeme, df and the largest BM25 term weight tf(k1+1)/(tf+k1(1-b+b dl/avgdl)).
_DF_SQL = """INSERT INTO archive_term_df (athlete_id, lexeme, df, max_own_weight, max_context_weight)
WITH per AS (
    SELECT t.lexeme, m.dl, sum(t.w * coalesce(array_length(t.positions, 1), 1)) AS tf, bool_or(t.own) AS own
    FROM (SELECT id, search_tsv, context_tsv,
                 length(search_tsv) + %(context_weight)s * length(coalesce(context_tsv, ''::tsvector)) AS dl
          FROM messages WHERE athlete_id = %(athlete_id)s AND role IN ('user', 'assistant')) AS m
    CROSS JOIN LATERAL (
        SELECT u.lexeme, u.positions, 1.0 AS w, true AS own FROM unnest(m.search_tsv) u
        UNION ALL
        SELECT u.lexeme, u.positions, %(context_weight)s, false FROM unnest(m.context_tsv) u
        WHERE %(context_weight)s > 0
    ) AS t
    GROUP BY m.id, m.dl, t.lexeme
),
weighted AS (SELECT lexeme, own, tf * (%(k1)s + 1) / (tf + %(k1)s * (1 - %(b)s + %(b)s * dl / %(avgdl)s)) AS w FROM per)
SELECT %(athlete_id)s, lexeme, count(*), max(w) FILTER (WHERE own), max(w) FILTER (WHERE NOT own)
FROM weighted GROUP BY lexeme"""


async def count_writes(cur: AsyncCursor[DictRow], message_ids: Iterable[str]) -> None:
    """Add the user/assistant messages among `message_ids` to their athletes' `written_since`.

    Run inside the archive write's transaction, after its inserts: it counts the rows that are there (a message of
    an erased athlete dropped by the insert trigger is not), athletes in sorted order (no deadlock between writers).
    """
    await cur.execute(_COUNT_WRITES_SQL, {"ids": list(message_ids)})


async def refresh_due(
    pool: DictPool,
    athlete_ids: Iterable[str],
    *,
    min_messages: int = LARGE_ARCHIVE_MESSAGES,
    growth: float = REFRESH_GROWTH,
    vector_index_min: int = VECTOR_INDEX_MIN_MESSAGES,
) -> list[str]:
    """Refresh the statistics of those athletes whose archive reached `min_messages` or grew by `growth`.

    Then put into the HNSW index those archives of `vector_index_min` messages or more not there yet
    (`memory.vector_index.promote`: once per athlete, in batches).

    Args:
        pool: the archive's pool.
        athlete_ids: the athletes just written to.
        min_messages: smallest archive (user/assistant messages) that gets statistics.
        growth: share of the last refresh's size written since, beyond which the statistics are refreshed.
        vector_index_min: smallest archive whose messages the HNSW index holds (`memory.vector_index`).

    Returns:
        The athletes refreshed (an athlete another process is refreshing at that moment is skipped).

    Raises:
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    athletes = sorted(set(athlete_ids))
    if not athletes:
        return []
    async with pool.connection() as conn:
        due_params = {"athletes": athletes, "min_messages": min_messages, "growth": growth}
        due_params |= {"max_changes": BLOCK_CHANGES_MAX, "vector_index_min": vector_index_min}
        due = await (await conn.execute(_DUE_SQL, due_params)).fetchall()
    refreshed = [str(r["athlete_id"]) for r in due if r["refresh"] and await refresh(pool, str(r["athlete_id"]))]
    for r in due:
        if r["promote"]:
            await promote(pool, str(r["athlete_id"]))
    return refreshed


async def refresh_all_due(pool: DictPool, athlete_id: str | None = None) -> list[str]:
    """`refresh_due` for one athlete, or for every athlete with a counts row (after `coach reindex --all`).

    Raises:
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    athletes = [athlete_id] if athlete_id is not None else []
    if athlete_id is None:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT athlete_id FROM archive_term_counts ORDER BY athlete_id")
            athletes = [str(r["athlete_id"]) for r in await cur.fetchall()]
    return await refresh_due(pool, athletes)


async def refresh(pool: DictPool, athlete_id: str) -> bool:
    """Recompute one athlete's statistics (`n`, mean lengths, every lexeme's df) and blocks in one transaction.

    The athlete's `archive_term_counts` row is locked first (`SKIP LOCKED`: a refresh already running elsewhere,
    or an archive write of that athlete in progress, wins); an archive write of that athlete waits for the refresh
    to commit. The row must exist (`count_writes`).

    Returns:
        Whether the statistics were refreshed (False: no row, or another refresh holds it).
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT n FROM archive_term_counts WHERE athlete_id = %(athlete_id)s FOR UPDATE SKIP LOCKED",
            {"athlete_id": athlete_id},
        )
        locked = await cur.fetchone()
        if locked is None:
            return False
        if locked["n"] is None:  # its first refresh: from now on the triggers keep its postings
            await conn.execute(FILL_POSTINGS_SQL, {"athlete_id": athlete_id})
        size = await (await conn.execute(_SIZE_SQL, {"athlete_id": athlete_id})).fetchone()
        assert size is not None  # an aggregate returns one row
        p = RankingParams()
        weights = {"k1": p.k1, "b": p.b, "context_weight": p.context_weight}
        avgdl = max(size["avg_own_len"] + p.context_weight * size["avg_context_len"], 1e-9)
        await conn.execute("DELETE FROM archive_term_df WHERE athlete_id = %(athlete_id)s", {"athlete_id": athlete_id})
        await conn.execute(_DF_SQL, {"athlete_id": athlete_id, "avgdl": avgdl, **weights})
        await conn.execute(
            """UPDATE archive_term_counts SET n = %(n)s, avg_own_len = %(avg_own_len)s,
                   avg_context_len = %(avg_context_len)s, weight_params = %(weight_params)s, written_since = 0,
                   refreshed_at = now()
               WHERE athlete_id = %(athlete_id)s""",
            {**size, "athlete_id": athlete_id, "weight_params": list(weights.values())},
        )
        for statement in BUILD_BLOCKS_SQL:  # the postings packed per word (memory.posting_blocks)
            await conn.execute(statement, {"athlete_id": athlete_id})
    logger.info("recall statistics of a %d-message archive refreshed", size["n"])
    return True
