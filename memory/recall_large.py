"""Recall on a large archive: BM25 from the kept statistics, scoring only the messages that can reach the top.

`memory.recall` scores every message matching a query word in one statement. On an archive with kept statistics
(`memory.term_stats`: 2,000 messages or more) `search_large` ranks the same way (BM25 over the message's own and
contextual words, fused with the cosine similarity, then lifted by its session) in a few statements:

1. the query's lexemes with their df, `n` and the mean lengths, from the kept statistics (a lexeme written since
   the last refresh is counted now, over the messages' own words);
2. the lexical side by MaxScore (Turtle & Flood, "Query evaluation: strategies and optimizations", IPM 1995) over
   the archive's postings (`archive_postings`: per message and lexeme, of its own words or its neighbours', both
   term frequencies and lengths, kept by triggers): a message's BM25 term weight is below `idf x (k1 + 1)` whatever
   its frequency (tighter: the kept largest weight), so once `depth` messages scored theta or more, a message
   holding only the commonest words, whose bounds add up to at most theta, cannot enter the top `depth`, and is
   never read. Theta comes from scoring the messages of the rarest words first (`lexical_scores`);
3. the vector side through the HNSW index (`HNSW_SETTINGS_SQL`), at the same time on a second connection when the
   pool has one free; then one statement gives the vector side's messages missing from the lexical top their BM25,
   fuses, and lifts by session.

Every statement is planned for its own parameters (`prepare=False`): psycopg prepares a statement run five times on
a connection, and Postgres may then keep a generic plan made for an average athlete (~100 messages: sort them
exactly), which reads all 100,000 messages of this one (290 ms instead of 4-10 ms for the vector side, measured).

The lexical top `depth` is BM25's under the kept statistics: exactly without a budget of candidates
(`RankingParams.lexical_candidates=None`), and with the default budget of 500 the full-text top 10 matched the exact
one at 0.996-1.000 on the 100,000-message archive (README). BM25 here normalises length by the mean over the
athlete's messages (the textbook definition, Robertson & Zaragoza 2009) where the one statement uses the mean over
the matching messages: the one figure that differs between the two paths otherwise.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from memory.db import DictPool

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

_TERMS_SQL = f"""WITH q AS (
    SELECT DISTINCT l FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS l WHERE length(l) > 1
)
SELECT c.n, c.avg_own_len, c.avg_context_len, c.weight_params, q.l AS lexeme, d.max_own_weight,
       d.max_context_weight, d.df IS NOT NULL AS kept,
       coalesce(d.df, (SELECT count(*) FROM messages m
                       WHERE {_MINE} AND m.search_tsv @@ (SELECT {TSQUERY_OF} FROM (SELECT q.l AS l) AS one))) AS df
FROM archive_term_counts c LEFT JOIN q ON true
LEFT JOIN archive_term_df d ON d.athlete_id = c.athlete_id AND d.lexeme = q.l
WHERE c.athlete_id = %(athlete_id)s AND c.n IS NOT NULL"""

# BM25 from the postings (schema v42): per message and query lexeme its term frequency as `TF_CTE` counts it (own
# words 1, the neighbours' `context_weight`) and its length; IDF from the kept df.
_WEIGHTED = """
    CROSS JOIN LATERAL (SELECT p.tf_own + %(context_weight)s * p.tf_context AS tf,
                               p.own_len + %(context_weight)s * p.context_len AS dl) AS x
    CROSS JOIN LATERAL (SELECT w.idf * x.tf * (%(k1)s + 1)
                               / (x.tf + %(k1)s * (1 - %(b)s + %(b)s * x.dl / %(avgdl)s)) AS weight) AS s"""
_WORDS = """w AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idf)s::float8[]) AS w(lexeme, idf))"""
# The hybrid end: the vector side's messages missing from the lexical top get their BM25 here (%(lexemes)s, %(idf)s),
# then every candidate its fused score.
_LARGE_HYBRID_SQL = f"""WITH {_LARGE_QUERY_CTE.replace("lex AS (", "top AS (")}, {_WORDS},
vec AS (SELECT unnest(%(vec_ids)s::uuid[]) AS id),
lex AS (
    SELECT * FROM top
    UNION ALL
    SELECT p.message_id AS id, sum(s.weight) AS score
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme
         AND p.message_id = ANY(ARRAY(SELECT v.id FROM vec v WHERE v.id NOT IN (SELECT t.id FROM top t))){_WEIGHTED}
    WHERE x.tf > 0
    GROUP BY p.message_id
),
candidates AS (SELECT id FROM lex UNION SELECT id FROM vec),
{FUSED_CTE.format(lexical="lex")},
{SESSION_CTE}{SEARCH_OUTPUT}"""

# The messages' postings of every query word are read by the primary key, `message_id = ANY(...)`: the planner, which
# cannot know how long a word's list is, would otherwise read the lists whole and hash-join them (measured: 25-35 ms
# instead of 3-10 ms).
# The whole score of the %(read_limit)s messages scoring best on the words %(read)s alone: the best %(depth)s.
_SCORE_READ_SQL = f"""WITH {_WORDS},
read AS (
    SELECT p.message_id AS id
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme{_WEIGHTED}
    WHERE w.lexeme = ANY(%(read)s::text[]) AND x.tf > 0
    GROUP BY p.message_id ORDER BY sum(s.weight) DESC, p.message_id LIMIT %(read_limit)s
)
SELECT p.message_id AS id, sum(s.weight) AS score
FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme
     AND p.message_id = ANY((SELECT array_agg(r.id) FROM read r)::uuid[]){_WEIGHTED}
WHERE x.tf > 0 AND NOT (p.message_id = ANY(%(excluded)s::uuid[]))
GROUP BY p.message_id ORDER BY score DESC, p.message_id LIMIT %(depth)s"""
# MaxScore's second statement: the messages holding an essential word (%(essential)s) whose essential words' score
# plus the most the other words can add (%(rest_bound)s) reaches %(theta)s; their whole score adds the other words'
# (%(rest)s). The best %(depth)s.
_SCORE_ESSENTIAL_SQL = f"""WITH {_WORDS},
part AS (
    SELECT p.message_id AS id, sum(s.weight) AS partial
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme{_WEIGHTED}
    WHERE w.lexeme = ANY(%(essential)s::text[]) AND x.tf > 0 AND NOT (p.message_id = ANY(%(excluded)s::uuid[]))
    GROUP BY p.message_id
),
candidates AS MATERIALIZED (
    SELECT c.* FROM part c WHERE c.partial + %(rest_bound)s >= %(theta)s
    ORDER BY c.partial DESC, c.id LIMIT %(candidates)s  -- NULL: no limit
),
more AS (
    SELECT p.message_id AS id, sum(s.weight) AS more
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme
         AND p.message_id = ANY((SELECT array_agg(c.id) FROM candidates c)::uuid[]){_WEIGHTED}
    WHERE w.lexeme = ANY(%(rest)s::text[]) AND x.tf > 0
    GROUP BY p.message_id
)
SELECT c.id, c.partial + coalesce(m.more, 0) AS score
FROM candidates c LEFT JOIN more m USING (id)
ORDER BY score DESC, c.id LIMIT %(depth)s"""

# The iterative scan's `relaxed_order` returns rows roughly by distance: take twice `depth`, keep the nearest `depth`
# (pgvector's README, "Iterative index scans": a materialized CTE restores the strict order).
_SEMANTIC_SQL = f"""WITH near AS MATERIALIZED (
    SELECT m.id, m.embedding <=> %(qvec)s::vector AS distance FROM messages m
    WHERE {_MINE} AND m.embedding_model = %(model)s
    ORDER BY distance LIMIT %(scan_rows)s
)
SELECT id FROM near ORDER BY distance LIMIT %(depth)s"""


def idf(n: int, df: int) -> float:
    """BM25's IDF, ln(1 + (n - df + 0.5) / (df + 0.5)) (Robertson & Zaragoza 2009, as Lucene), as `memory.recall`."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


READ_LIMIT = 2
"""The first statement scores whole `READ_LIMIT` x `depth` messages of the rarest words (those best on them): enough
for a theta near the final one, few enough to score in a few milliseconds."""


VECTOR_SCAN_FACTOR = 2
"""The vector side reads `VECTOR_SCAN_FACTOR` x `depth` rows of the HNSW iterative scan, keeps the nearest `depth`."""
_SECOND_CONNECTION_WAIT_S = 0.05
"""How long the vector side waits for a free connection of the pool (one was free a moment before) before running
after the lexical side on the search's own."""


async def lexical_scores(
    conn: AsyncConnection[DictRow],
    params: dict[str, Any],
    idfs: dict[str, float],
    bounds: dict[str, float],
    dfs: dict[str, int],
    candidates: int | None = None,
) -> dict[str, float]:
    """BM25's top `depth` messages (id -> score) by MaxScore, in two statements over the postings.

    1. `first_words`: the messages of the rarest words (highest bound first, until their lists hold `depth`
       postings); the `READ_LIMIT` x `depth` of them scoring best on those words are scored whole, and theta is the
       `depth`-th best whole score (0 if fewer): the true `depth`-th best is at least that.
    2. The lowest-bound words whose bounds add up to at most theta are non-essential (`essential_words`): a message
       holding only those cannot score above theta. The messages holding an essential word are scored whole when
       their essential words' score plus the non-essential words' bounds reaches theta: all of them, or the
       `candidates` best on the essential words (the two-level evaluation of Broder et al., "Efficient query
       evaluation using a two-level retrieval process", CIKM 2003, with a fixed budget: a message whose
       essential words score low and which holds the common words often is then missed).

    With `candidates` None the result is exactly BM25's top `depth` under the kept statistics (ties at theta aside),
    as long as the kept bounds hold (a message written since the last refresh may exceed them:
    `memory.term_stats`).

    Args:
        conn: a connection of the archive's pool.
        params: the statements' parameters (`athlete_id`, `excluded`, `k1`, `b`, `avgdl`, `context_weight`,
            `depth`).
        idfs: each query lexeme's IDF (the kept statistics).
        bounds: per lexeme, the most it can add to a message's score (IDF x its largest term weight).
        dfs: per lexeme, the messages holding it (how many words the first statement reads).
        candidates: the most messages the second statement scores whole (`RankingParams.lexical_candidates`);
            None: all that could reach the top.
    """
    depth = params["depth"]
    base = {**params, "lexemes": list(idfs), "idf": list(idfs.values())}
    first = first_words(bounds, idfs, dfs, depth)
    scores = await _scores(conn, _SCORE_READ_SQL, {**base, "read": first, "read_limit": READ_LIMIT * depth})
    best = sorted(scores.values(), reverse=True)
    theta = best[depth - 1] if len(best) >= depth else 0.0
    essential, rest = essential_words([t for t in idfs if bounds[t] > 0], bounds, theta)
    if essential:
        more = await _scores(
            conn,
            _SCORE_ESSENTIAL_SQL,
            {
                **base,
                "essential": essential,
                "rest": rest,
                "theta": theta,
                "rest_bound": sum(bounds[t] for t in rest),
                "candidates": candidates,
            },
        )
        scores.update(more)
    return dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:depth])


def first_words(bounds: dict[str, float], idfs: dict[str, float], dfs: dict[str, int], depth: int) -> list[str]:
    """The words whose messages are scored first: highest bound first, until their lists hold `depth` postings."""
    order = sorted((t for t in idfs if bounds[t] > 0), key=lambda t: (-bounds[t], -idfs[t], t))
    first: list[str] = []
    for t in order:
        if first and sum(dfs[f] for f in first) >= depth:
            break
        first.append(t)
    return first


def essential_words(words: list[str], bounds: dict[str, float], theta: float) -> tuple[list[str], list[str]]:
    """MaxScore's split of `words` into (essential, non-essential) for the threshold `theta`.

    Non-essential: the longest run of the lowest-bound words whose bounds add up to at most theta (a message holding
    only those cannot score above theta). Essential: the others.
    """
    order = sorted(words, key=lambda t: (bounds[t], t))
    rest: list[str] = []
    total = 0.0
    for t in order:
        if total + bounds[t] > theta:
            break
        total += bounds[t]
        rest.append(t)
    return [t for t in order if t not in rest], rest


async def _scores(conn: AsyncConnection[DictRow], statement: str, params: dict[str, Any]) -> dict[str, float]:
    cur = await conn.execute(statement, params, prepare=False)
    return {str(r["id"]): float(r["score"]) for r in await cur.fetchall()}


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
    cur = await conn.execute(_TERMS_SQL, sql_params, prepare=False)
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

    async def lexical_side() -> dict[str, float]:
        return await lexical_scores(conn, params, idfs, bounds, dfs, candidates) if idfs else {}

    async def vector_side(vconn: AsyncConnection[DictRow]) -> tuple[str | None, list[str]]:
        qvec = await vector() if vector is not None else None
        if qvec is None:
            return None, []
        async with vconn.transaction():  # the HNSW settings hold for this statement only (SET LOCAL)
            await vconn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(max(ef_search, 1))})
            if exact_vectors:
                await vconn.execute("SET LOCAL enable_indexscan = off")
            scan = {**params, "qvec": qvec, "model": model, "scan_rows": VECTOR_SCAN_FACTOR * params["depth"]}
            cur = await vconn.execute(_SEMANTIC_SQL, scan, prepare=False)
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
