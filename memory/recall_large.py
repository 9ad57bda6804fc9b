"""Recall on a large archive: BM25 from the kept statistics, scoring only the messages that can reach the top.

`memory.recall` scores every message matching a query word in one statement. On an archive with kept statistics
(`memory.term_stats`: 2,000 messages or more) `search_large` ranks the same way (BM25 over the message's own and
contextual words, fused with the cosine similarity, then lifted by its session) in a few statements:

1. the query's lexemes with their df, `n` and the mean lengths, from the kept statistics (a lexeme written since
   the last refresh is counted now, over the messages' own words);
2. the lexical side by MaxScore (Turtle & Flood, "Query evaluation: strategies and optimizations", IPM 1995): a
   message's BM25 term weight is below `idf x (k1 + 1)` whatever its frequency, so once `depth` messages scored
   theta or more, a message holding only the commonest words, whose bounds add up to less than theta, cannot
   enter the top `depth`, and is never read. Theta comes from scoring the messages of the rarest words first.
   A word counts in a message's own text or in its neighbours' (`context_tsv`, which has no index): the messages
   read are those whose own text holds an essential word (GIN index on `search_tsv`) and their neighbours;
3. the vector side through the HNSW index (`HNSW_SETTINGS_SQL`), the BM25 of its candidates, and the fusion.

Every statement is planned for its own parameters (`prepare=False`): psycopg prepares a statement run five times on
a connection, and Postgres may then keep a generic plan made for an average athlete (~100 messages: sort them
exactly), which reads all 100,000 messages of this one (290 ms instead of 4-10 ms for the vector side, measured).

The lexical top `depth` is exactly BM25's under the kept statistics. BM25 here normalises length by the mean over
the athlete's messages (the textbook definition, Robertson & Zaragoza 2009) where the one statement uses the mean
over the matching messages: the one figure that differs between the two paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow

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
_LARGE_HYBRID_SQL = f"""WITH {_LARGE_QUERY_CTE},
candidates AS (SELECT id FROM lex UNION SELECT unnest(%(vec_ids)s::uuid[])),
fused AS (
    SELECT c.id,
           %(lexical_weight)s * coalesce(b.score / nullif(max(b.score) OVER (), 0), 0)
           + (1 - %(lexical_weight)s) * CASE WHEN m.embedding_model = %(model)s
                                           THEN greatest(1 - (m.embedding <=> %(qvec)s::vector), 0) ELSE 0 END
           AS score
    FROM candidates c JOIN messages m ON m.id = c.id AND m.athlete_id = %(athlete_id)s
    LEFT JOIN lex b ON b.id = c.id
),
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

# BM25 of the messages holding a word of %(own)s in their own text and of the neighbours of those holding a word of
# %(context)s (the messages whose context holds it), or of the messages %(ids)s; term frequencies as in
# `memory.recall` (context words weigh `context_weight`), IDF from the kept df.
_OWN_HITS = f"""
    SELECT m.id FROM messages m
    WHERE m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant')
      AND m.search_tsv @@ (SELECT {TSQUERY_OF} FROM unnest(%(own)s::text[]) AS l)"""
_NEIGHBOURS = f"""
    SELECT nb.id FROM messages h CROSS JOIN LATERAL (
        (SELECT p.id FROM messages p
         WHERE p.athlete_id = %(athlete_id)s AND p.session_id = h.session_id AND p.role IN ('user', 'assistant')
           AND (p.created_at, p.id) < (h.created_at, h.id)
         ORDER BY p.created_at DESC, p.id DESC LIMIT 1)
        UNION ALL
        (SELECT n.id FROM messages n
         WHERE n.athlete_id = %(athlete_id)s AND n.session_id = h.session_id AND n.role IN ('user', 'assistant')
           AND (n.created_at, n.id) > (h.created_at, h.id)
         ORDER BY n.created_at, n.id LIMIT 1)
    ) AS nb
    WHERE h.athlete_id = %(athlete_id)s AND h.role IN ('user', 'assistant')
      AND h.search_tsv @@ (SELECT {TSQUERY_OF} FROM unnest(%(context)s::text[]) AS l)"""
_READ_IDS = """
read AS (SELECT unnest(%(ids)s::uuid[]) AS id)"""
_SCORE = f"""
w AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idf)s::float8[]) AS w(lexeme, idf)),
matched AS MATERIALIZED (
    SELECT m.id,
           ts_filter(setweight(m.search_tsv, 'A', %(lexemes)s::text[]), '{{a}}') AS own,
           ts_filter(setweight(coalesce(m.context_tsv, ''::tsvector), 'A', %(lexemes)s::text[]), '{{a}}') AS ctx,
           length(m.search_tsv) + %(context_weight)s * length(coalesce(m.context_tsv, ''::tsvector)) AS dl
    FROM (SELECT DISTINCT id FROM read) AS r JOIN messages m ON m.id = r.id
    WHERE {_MINE}
),
{TF_CTE}
SELECT tf.id,
       sum(w.idf * tf.tf * (%(k1)s + 1) / (tf.tf + %(k1)s * (1 - %(b)s + %(b)s * tf.dl / %(avgdl)s))) AS score
FROM tf JOIN w USING (lexeme)
GROUP BY tf.id ORDER BY score DESC, tf.id LIMIT %(depth)s"""
_SCORE_OWN_SQL = f"WITH read AS ({_OWN_HITS}),{_SCORE}"
_SCORE_CONTEXT_SQL = f"WITH read AS ({_NEIGHBOURS}),{_SCORE}"
_SCORE_BOTH_SQL = f"WITH read AS ({_OWN_HITS}\n    UNION{_NEIGHBOURS}),{_SCORE}"
_SCORE_IDS_SQL = f"WITH {_READ_IDS},{_SCORE}"

# The iterative scan's `relaxed_order` returns rows roughly by distance: take twice `depth`, keep the nearest `depth`
# (pgvector's README, "Iterative index scans": a materialized CTE restores the strict order).
_SEMANTIC_SQL = f"""WITH near AS MATERIALIZED (
    SELECT m.id, m.embedding <=> %(qvec)s::vector AS distance FROM messages m
    WHERE {_MINE} AND m.embedding_model = %(model)s
    ORDER BY distance LIMIT 2 * %(depth)s
)
SELECT id FROM near ORDER BY distance LIMIT %(depth)s"""


def idf(n: int, df: int) -> float:
    """BM25's IDF, ln(1 + (n - df + 0.5) / (df + 0.5)) (Robertson & Zaragoza 2009, as Lucene), as `memory.recall`."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


Field = Literal["own", "context"]
"""Where a message holds a query word: in its own words (read through the GIN index), or only in its neighbours'."""


async def lexical_scores(
    conn: AsyncConnection[DictRow],
    params: dict[str, Any],
    idfs: dict[str, float],
    bounds: dict[tuple[str, Field], float],
    dfs: dict[str, int],
) -> dict[str, float]:
    """BM25's top `depth` messages (id -> score) by MaxScore, reading the messages of the rarest words first.

    Each word is two lists of messages: those holding it in their own words, and those holding it only in their
    neighbours' (whose weight there is lower: `bounds`). The lists are read highest bound first (a rare word's
    before a common word's), the first round until they hold `depth` postings, then one list a round; after each
    round theta is the `depth`-th best score so far, and the rounds stop once the lists left cannot lift a message
    to theta (`left_bound` at most theta): a message in those lists only is never read. (Reading every list that
    could matter after the first round, in one statement, was measured: 2-5 times slower on the 100,000-message
    archive, theta being low after one round.)

    Args:
        conn: a connection of the archive's pool.
        params: the statement's parameters (`athlete_id`, `excluded`, `k1`, `b`, `avgdl`, `context_weight`,
            `depth`).
        idfs: each query lexeme's IDF (the kept statistics).
        bounds: per lexeme and field, the most it can add to a message's score (IDF x its largest term weight).
        dfs: each lexeme's df (how many rare words make the first round).
    """
    base = {**params, "lexemes": list(idfs), "idf": list(idfs.values())}
    fields: tuple[Field, ...] = ("own", "context") if params["context_weight"] > 0 else ("own",)
    lists: list[tuple[str, Field]] = [(t, field) for t in idfs for field in fields]
    remaining = sorted((r for r in lists if bounds[r] > 0), key=lambda r: (-bounds[r], -idfs[r[0]], r))
    scores: dict[str, float] = {}
    while remaining:
        take = [remaining.pop(0)]
        while remaining and len(scores) + sum(dfs[t] for t, _ in take) < params["depth"]:
            take.append(remaining.pop(0))
        scores.update(await _read(conn, base, take))
        best = sorted(scores.values(), reverse=True)
        theta = best[params["depth"] - 1] if len(best) >= params["depth"] else 0.0
        if left_bound(remaining, bounds) <= theta:
            break
    return dict(sorted(scores.items(), key=lambda kv: -kv[1])[: params["depth"]])


def left_bound(lists: list[tuple[str, Field]], bounds: dict[tuple[str, Field], float]) -> float:
    """The most the words of `lists` can add to one message's score.

    Per word the larger bound of its lists (a message holds a word in its own words or only in its neighbours',
    never both), summed.
    """
    per_word: dict[str, float] = {}
    for t, field in lists:
        per_word[t] = max(per_word.get(t, 0.0), bounds[(t, field)])
    return sum(per_word.values())


async def _read(
    conn: AsyncConnection[DictRow], base: dict[str, Any], lists: list[tuple[str, Field]]
) -> dict[str, float]:
    own = [t for t, field in lists if field == "own"]
    context = [t for t, field in lists if field == "context"] if base["context_weight"] > 0 else []
    statement = _SCORE_BOTH_SQL if own and context else _SCORE_OWN_SQL if own else _SCORE_CONTEXT_SQL
    return await _scores(conn, statement, {**base, "own": own, "context": context})


async def _scores(conn: AsyncConnection[DictRow], statement: str, params: dict[str, Any]) -> dict[str, float]:
    cur = await conn.execute(statement, params, prepare=False)
    return {str(r["id"]): float(r["score"]) for r in await cur.fetchall()}


async def search_large(
    conn: AsyncConnection[DictRow],
    sql_params: dict[str, Any],
    *,
    qvec: str | None,
    model: str | None,
    ef_search: int,
    exact_vectors: bool,
) -> list[DictRow] | None:
    """Rank an archive with kept statistics; None when it has none (the caller runs its one statement).

    Args:
        conn: a connection of the archive's pool (autocommit).
        sql_params: `memory.recall.search_messages`' statement parameters (query, athlete_id, excluded, k, k1, b,
            depth, lexical_weight, context_weight, session_weight, headline_options).
        qvec: the query's embedding as a pgvector literal; None ranks by BM25 alone.
        model: the embedder's `model_id` (with `qvec`).
        ef_search: `hnsw.ef_search` of the vector side.
        exact_vectors: sort the vector side exactly (no index scan).

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
    bounds: dict[tuple[str, Field], float] = {}
    for r in found:  # the kept largest weights when computed for these parameters, else k1 + 1
        t = str(r["lexeme"])
        kept = weights_hold and r["kept"]
        bounds[(t, "own")] = idfs[t] * ((r["max_own_weight"] or 0.0) if kept else top)
        bounds[(t, "context")] = idfs[t] * ((r["max_context_weight"] or 0.0) if kept else top)
    avgdl = float(terms[0]["avg_own_len"]) + sql_params["context_weight"] * float(terms[0]["avg_context_len"])
    params = {**sql_params, "avgdl": max(avgdl, 1e-9)}
    has_words = any(r["lexeme"] is not None for r in terms)
    lexical = (
        await lexical_scores(conn, params, idfs, bounds, {str(r["lexeme"]): int(r["df"]) for r in found})
        if idfs
        else {}
    )
    vec_ids: list[str] = []
    if qvec is not None and has_words:
        async with conn.transaction():  # the HNSW settings hold for this statement only (SET LOCAL)
            await conn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(max(ef_search, 1))})
            if exact_vectors:
                await conn.execute("SET LOCAL enable_indexscan = off")
            cur = await conn.execute(_SEMANTIC_SQL, {**params, "qvec": qvec, "model": model}, prepare=False)
            vec_ids = [str(r["id"]) for r in await cur.fetchall()]
        missing = [i for i in vec_ids if i not in lexical]
        if missing and idfs:
            scored = await _scores(
                conn, _SCORE_IDS_SQL, {**params, "lexemes": list(idfs), "idf": list(idfs.values()), "ids": missing,
                                       "depth": len(missing)}
            )  # fmt: skip
            lexical.update(scored)
    if not lexical and not vec_ids:
        return []
    ids: Sequence[str] = list(lexical)
    final = {**params, "lex_ids": ids, "lex_scores": [lexical[i] for i in ids], "vec_ids": vec_ids}
    if qvec is not None:
        final |= {"qvec": qvec, "model": model}
    finish = _LARGE_HYBRID_SQL if qvec is not None else _LARGE_FULL_TEXT_SQL
    cur = await conn.execute(finish, final, prepare=False)
    return await cur.fetchall()
