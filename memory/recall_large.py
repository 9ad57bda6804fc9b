"""Recall on a large archive: BM25 from the kept statistics and packed postings, fused with the HNSW vector side.

`memory.recall` scores every message matching a query word in one statement. On an archive with kept statistics
(`memory.term_stats`: 2,000 messages or more) `search_large` ranks the same way (BM25 over the message's own and
contextual words, fused with the cosine similarity, then lifted by its session) in a few statements:

1. the query's lexemes with their df, `n` and the mean lengths, from the kept statistics (a lexeme first written
   since the last refresh is counted now, over the postings: its messages' own words or their neighbours', as the
   kept df);
2. the lexical side: exact BM25 over every message, summed in numpy from the archive's posting blocks (one packed
   row per word, `memory.posting_blocks`, rebuilt at each refresh, with the messages changed since read from
   `archive_postings`); an archive whose blocks are not built yet is read by MaxScore over `archive_postings`
   (`memory.maxscore`: only the messages that can still reach the top `depth`, within a budget of candidates);
3. the vector side through the HNSW index (`HNSW_SETTINGS_SQL`) when the archive is in it (`memory.vector_index`:
   10,000 messages or more), else sorted exactly, at the same time on a second connection when the
   pool has one free; then one statement gives the vector side's messages missing from the lexical top their BM25,
   fuses, and lifts by session.

Every statement is planned for its own parameters (`prepare=False`): psycopg prepares a statement run five times on
a connection, and Postgres may then keep a generic plan made for an average athlete (~100 messages: sort them
exactly), which reads all 100,000 messages of this one (290 ms instead of 4-10 ms for the vector side, measured).

The lexical top `depth` is BM25's under the kept statistics: exactly from the blocks, and by MaxScore exactly without
a budget of candidates (`RankingParams.lexical_candidates=None`; with the default 500 the full-text top 10 matched the
exact one at 0.996-1.000 on the 100,000-message archive, README). BM25 here normalises length by the mean over the
athlete's messages (the textbook definition, Robertson & Zaragoza 2009) where the one statement uses the mean over
the matching messages: the one figure that differs between the two paths otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from memory.db import DictPool
from memory.maxscore import WEIGHTED_SQL, WORDS_CTE, idf, lexical_scores
from memory.posting_blocks import BLOCK_CHANGES_MAX, block_scores

HNSW_SETTINGS_SQL = """SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.ef_search', %(ef_search)s, true)"""
"""The vector side's HNSW settings, local to the search's transaction (pgvector 0.8, "Iterative index scans"):
without the iterative scan an HNSW scan returns at most `ef_search` rows before the athlete filter, so a filtered
search on the index finds fewer than `depth` of the athlete's messages, often none; `relaxed_order` keeps scanning
until `depth` rows pass the filter (results slightly out of order: the fusion re-scores them by exact distance)."""

TSQUERY_OF = """string_agg('''' || replace(replace(l, '\\', '\\\\'), '''', '''''') || '''', ' | ')::tsquery"""
"""SQL aggregate: the OR of the lexemes `l` as a tsquery (each quoted as a literal lexeme)."""

# Session-level ranking: a candidate's score plus `session_weight` x the best candidate score of its session
# (divided by the query's best), over 1 + `session_weight` so that scores stay in [0, 1].
SESSION_CTE = """
sessioned AS (
    SELECT f.id,
           (f.score + %(session_weight)s * max(f.score) OVER (PARTITION BY m.session_id)
                      / nullif(max(f.score) OVER (), 0)) / (1 + %(session_weight)s) AS score
    FROM fused f JOIN messages m ON m.id = f.id
),
best AS (SELECT id, coalesce(score, 0) AS score FROM sessioned ORDER BY score DESC NULLS LAST LIMIT %(k)s)"""

FUSED_CTE = """fused AS (
    SELECT c.id,
           %(lexical_weight)s * coalesce(b.score / nullif(max(b.score) OVER (), 0), 0)
           + (1 - %(lexical_weight)s) * CASE WHEN m.embedding_model = %(model)s
                                           THEN greatest(1 - (m.embedding <=> %(qvec)s::vector), 0) ELSE 0 END
           AS score
    FROM candidates c JOIN messages m ON m.id = c.id AND m.athlete_id = %(athlete_id)s
    LEFT JOIN {lexical} b ON b.id = c.id
)"""
"""The hybrid fusion of `candidates` (ids): `lexical_weight` x BM25 (from the table `{lexical}`: id, score) over the
best BM25 among them, plus the rest x the cosine similarity (0 for a message of another embedding model). Both
paths."""

SEARCH_OUTPUT = """
SELECT b.id::text AS message_id, m.external_id, m.session_id, m.created_at AS ts, m.role, b.score,
       ts_headline('english', m.content, q.tsq, %(headline_options)s) AS marked
FROM best b JOIN messages m ON m.id = b.id CROSS JOIN q
ORDER BY b.score DESC, m.created_at DESC"""

# The end of the large-archive path: the same fusion and output as `memory.recall`'s statements, over its scores.
_LARGE_QUERY_CTE = f"""q AS (
    SELECT {TSQUERY_OF} AS tsq
    FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS l WHERE length(l) > 1
),
lex AS (SELECT * FROM unnest(%(lex_ids)s::uuid[], %(lex_scores)s::float8[]) AS x(id, score))"""
_LARGE_FULL_TEXT_SQL = f"""WITH {_LARGE_QUERY_CTE},
fused AS (SELECT id, score / (score + 1) AS score FROM lex ORDER BY score DESC LIMIT %(depth)s),
{SESSION_CTE}{SEARCH_OUTPUT}"""
TF_CTE = """tf AS (
    SELECT mt.id, mt.dl, t.lexeme, sum(t.w * coalesce(array_length(t.positions, 1), 1)) AS tf
    FROM matched mt CROSS JOIN LATERAL (
        SELECT u.lexeme, u.positions, 1.0 AS w FROM unnest(mt.own) u
        UNION ALL
        SELECT u.lexeme, u.positions, %(context_weight)s FROM unnest(mt.ctx) u WHERE %(context_weight)s > 0
    ) AS t
    GROUP BY mt.id, mt.dl, t.lexeme
)"""
"""BM25's term frequency of each query lexeme in each `matched` message (id, dl, own, ctx: the query's lexemes of its
own words and of its neighbours'): own words count 1, the neighbours' `context_weight`. Shared by both paths."""

_MINE = (
    """m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant') AND NOT (m.id = ANY(%(excluded)s::uuid[]))"""
)

_TERMS_SQL = """WITH q AS (
    SELECT DISTINCT l FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS l WHERE length(l) > 1
)
SELECT c.n, c.avg_own_len, c.avg_context_len, c.weight_params, c.block_messages, c.vector_indexed, q.l AS lexeme,
       d.max_own_weight, d.max_context_weight, d.df IS NOT NULL AS kept,
       coalesce(d.df, (SELECT count(*) FROM archive_postings p
                       WHERE p.athlete_id = c.athlete_id AND p.lexeme = q.l)) AS df,
       ch.changes
FROM archive_term_counts c LEFT JOIN q ON true
LEFT JOIN archive_term_df d ON d.athlete_id = c.athlete_id AND d.lexeme = q.l
CROSS JOIN LATERAL (SELECT count(*) AS changes FROM (SELECT 1 FROM archive_block_changes x
                    WHERE x.athlete_id = c.athlete_id LIMIT %(max_changes)s + 1) AS counted) AS ch
WHERE c.athlete_id = %(athlete_id)s AND c.n IS NOT NULL"""
"""The query's lexemes with the kept statistics, and the messages changed since the blocks were built (counted up to
one past `BLOCK_CHANGES_MAX`)."""

# The hybrid end: the vector side's messages missing from the lexical top get their BM25 here (%(lexemes)s, %(idf)s),
# then every candidate its fused score.
_LARGE_HYBRID_SQL = f"""WITH {_LARGE_QUERY_CTE.replace("lex AS (", "top AS (")}, {WORDS_CTE},
vec AS (SELECT unnest(%(vec_ids)s::uuid[]) AS id),
lex AS (
    SELECT * FROM top
    UNION ALL
    SELECT p.message_id AS id, sum(s.weight) AS score
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme
         AND p.message_id = ANY(ARRAY(SELECT v.id FROM vec v WHERE v.id NOT IN (SELECT t.id FROM top t))){WEIGHTED_SQL}
    WHERE x.tf > 0
    GROUP BY p.message_id
),
candidates AS (SELECT id FROM lex UNION SELECT id FROM vec),
{FUSED_CTE.format(lexical="lex")},
{SESSION_CTE}{SEARCH_OUTPUT}"""


# The iterative scan's `relaxed_order` returns rows roughly by distance: read `VECTOR_SCAN_FACTOR` x `depth`, keep
# the nearest `depth` (pgvector's README, "Iterative index scans": a materialized CTE restores the strict order).
def _semantic_sql(indexed: bool) -> str:
    """The vector side's statement, sorted exactly unless `indexed`.

    `indexed` adds the partial HNSW index's predicate, so that the planner may read the index (`memory.vector_index`:
    every message of an archive in the index is flagged).
    """
    predicate = " AND m.vector_indexed" if indexed else ""
    return f"""WITH near AS MATERIALIZED (
    SELECT m.id, m.embedding <=> %(qvec)s::vector AS distance FROM messages m
    WHERE {_MINE} AND m.embedding_model = %(model)s{predicate}
    ORDER BY distance LIMIT %(scan_rows)s
)
SELECT id FROM near ORDER BY distance LIMIT %(depth)s"""


_SEMANTIC_SQL, _INDEXED_SEMANTIC_SQL = _semantic_sql(False), _semantic_sql(True)


VECTOR_SCAN_FACTOR = 4
"""The vector side reads `VECTOR_SCAN_FACTOR` x `depth` rows of the HNSW iterative scan, keeps the nearest `depth`.
On the 100,000-message benchmark archive the whole hybrid top 10 matched exact search's at 0.960 with 2, 0.968 with
3, 0.980 with 4 and 0.984 with 6 (50 questions); 6 cost 10-20 ms more at p95 than 4 (README)."""
_SECOND_CONNECTION_WAIT_S = 0.05
"""How long the vector side waits for a free connection of the pool (one was free a moment before) before running
after the lexical side on the search's own."""


async def search_large(
    conn: AsyncConnection[DictRow],
    sql_params: dict[str, Any],
    *,
    vector: Callable[[], Awaitable[str | None]] | None,
    model: str | None,
    ef_search: int,
    exact_vectors: bool,
    candidates: int | None = None,
    pool: DictPool | None = None,
) -> list[DictRow] | None:
    """Rank an archive with kept statistics; None when it has none (the caller runs its one statement).

    The lexical and vector sides are independent: with a `pool` holding a free connection, the vector side runs on
    it while `conn` runs the lexical side (on two cores each takes 10-30 ms on the 100 k-message archive); without
    one, they run one after the other on `conn` (a search never waits for a second connection). Only the vector side
    waits for the query's embedding (`vector`), so an embedding still being computed (`memory.recall.QueryVector`)
    overlaps the statistics lookup and the lexical side.

    Args:
        conn: a connection of the archive's pool (autocommit).
        sql_params: `memory.recall.search_messages`' statement parameters (query, athlete_id, excluded, k, k1, b,
            depth, lexical_weight, context_weight, session_weight, headline_options).
        vector: gives the query's embedding as a pgvector literal, or None (then BM25 alone); None: no vector.
        model: the embedder's `model_id` (with `vector`).
        ef_search: `hnsw.ef_search` of the vector side.
        exact_vectors: sort the vector side exactly (no index scan).
        candidates: `lexical_scores`' budget (`RankingParams.lexical_candidates`).
        pool: the pool `conn` comes from, for the vector side's connection.

    Returns:
        The output rows (`memory.recall`'s columns), or None without kept statistics.
    """
    cur = await conn.execute(_TERMS_SQL, {**sql_params, "max_changes": BLOCK_CHANGES_MAX}, prepare=False)
    terms = await cur.fetchall()
    if not terms:
        return None
    n = int(terms[0]["n"])
    found = [r for r in terms if r["lexeme"] is not None and int(r["df"]) > 0]
    idfs = {str(r["lexeme"]): idf(n, int(r["df"])) for r in found}
    weights_hold = terms[0]["weight_params"] == [sql_params["k1"], sql_params["b"], sql_params["context_weight"]]
    top = sql_params["k1"] + 1  # BM25's term weight is below k1 + 1 whatever the frequency
    bounds: dict[str, float] = {}
    for r in found:  # the kept largest weights when computed for these parameters, else k1 + 1
        t = str(r["lexeme"])
        kept = weights_hold and r["kept"]
        largest = max(r["max_own_weight"] or 0.0, r["max_context_weight"] or 0.0) if kept else top
        bounds[t] = idfs[t] * largest
    avgdl = float(terms[0]["avg_own_len"]) + sql_params["context_weight"] * float(terms[0]["avg_context_len"])
    params = {**sql_params, "avgdl": max(avgdl, 1e-9)}
    has_words = any(r["lexeme"] is not None for r in terms)
    dfs = {str(r["lexeme"]): int(r["df"]) for r in found}
    indexed = bool(terms[0]["vector_indexed"])  # in the HNSW index (memory.vector_index), else sorted exactly

    # The blocks, unless more messages changed since they were built than a search should read by key (after a
    # reindex, say, until the next refresh): then MaxScore over the postings, which are always current.
    blocks = terms[0]["block_messages"] is not None and terms[0]["changes"] <= BLOCK_CHANGES_MAX

    async def lexical_side() -> dict[str, float]:
        if not idfs:
            return {}
        if blocks:  # exact, from the packed postings
            return await block_scores(conn, params, idfs)
        return await lexical_scores(conn, params, idfs, bounds, dfs, candidates)

    async def vector_side(vconn: AsyncConnection[DictRow]) -> tuple[str | None, list[str]]:
        qvec = await vector() if vector is not None else None
        if qvec is None:
            return None, []
        async with vconn.transaction():  # the HNSW settings hold for this statement only (SET LOCAL)
            await vconn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(max(ef_search, 1))})
            if exact_vectors:
                await vconn.execute("SET LOCAL enable_indexscan = off")
            scan = {**params, "qvec": qvec, "model": model, "scan_rows": VECTOR_SCAN_FACTOR * params["depth"]}
            statement = _INDEXED_SEMANTIC_SQL if indexed else _SEMANTIC_SQL
            cur = await vconn.execute(statement, scan, prepare=False)
            return qvec, [str(r["id"]) for r in await cur.fetchall()]

    qvec: str | None = None
    vec_ids: list[str] = []
    if vector is None or not has_words:
        lexical = await lexical_side()
    elif pool is not None and pool.get_stats().get("pool_available", 0) > 0:
        try:
            async with pool.connection(timeout=_SECOND_CONNECTION_WAIT_S) as vconn, asyncio.TaskGroup() as group:
                lexical_task = group.create_task(lexical_side())  # a failure cancels the other side, then raises
                vector_task = group.create_task(vector_side(vconn))
            lexical, (qvec, vec_ids) = lexical_task.result(), vector_task.result()
        except PoolTimeout:  # taken meanwhile: one after the other
            lexical, (qvec, vec_ids) = await lexical_side(), await vector_side(conn)
        except ExceptionGroup as failed:  # the callers handle the store's own errors (a dead server, a timeout)
            raise failed.exceptions[0] from None
    else:
        lexical, (qvec, vec_ids) = await lexical_side(), await vector_side(conn)
    if not lexical and not vec_ids:
        return []
    ids: Sequence[str] = list(lexical)
    final = {**params, "lex_ids": ids, "lex_scores": [lexical[i] for i in ids], "vec_ids": vec_ids}
    if qvec is not None:
        final |= {"qvec": qvec, "model": model, "lexemes": list(idfs), "idf": list(idfs.values())}
    finish = _LARGE_HYBRID_SQL if qvec is not None else _LARGE_FULL_TEXT_SQL
    cur = await conn.execute(finish, final, prepare=False)
    return await cur.fetchall()
