"""MaxScore over the postings: BM25's top messages of a large archive without reading every matching message.

The lexical side of `memory.recall_large` for an archive with kept statistics but no posting blocks yet
(`memory.posting_blocks`: built at the next refresh), and the exact reference of the tests. Turtle & Flood, "Query
evaluation: strategies and optimizations" (IPM 1995): a message's BM25 term weight is below `idf x (k1 + 1)` whatever
its frequency (tighter: the kept largest weight), so once `depth` messages scored theta or more, a message holding
only the commonest words, whose bounds add up to at most theta, cannot enter the top `depth`, and is never read.
"""

from __future__ import annotations

import math
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

# BM25 from the postings (schema v42): per message and query lexeme its term frequency as `TF_CTE` counts it (own
# words 1, the neighbours' `context_weight`) and its length; IDF from the kept df.
WEIGHTED_SQL = """
    CROSS JOIN LATERAL (SELECT p.tf_own + %(context_weight)s * p.tf_context AS tf,
                               p.own_len + %(context_weight)s * p.context_len AS dl) AS x
    CROSS JOIN LATERAL (SELECT w.idf * x.tf * (%(k1)s + 1)
                               / (x.tf + %(k1)s * (1 - %(b)s + %(b)s * x.dl / %(avgdl)s)) AS weight) AS s"""
WORDS_CTE = """w AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idf)s::float8[]) AS w(lexeme, idf))"""
# The messages' postings of every query word are read by the primary key, `message_id = ANY(...)`: the planner, which
# cannot know how long a word's list is, would otherwise read the lists whole and hash-join them (measured: 25-35 ms
# instead of 3-10 ms).
# The whole score of the %(read_limit)s messages scoring best on the words %(read)s alone: the best %(depth)s.
_SCORE_READ_SQL = f"""WITH {WORDS_CTE},
read AS (
    SELECT p.message_id AS id
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme{WEIGHTED_SQL}
    WHERE w.lexeme = ANY(%(read)s::text[]) AND x.tf > 0
    GROUP BY p.message_id ORDER BY sum(s.weight) DESC, p.message_id LIMIT %(read_limit)s
)
SELECT p.message_id AS id, sum(s.weight) AS score
FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme
     AND p.message_id = ANY((SELECT array_agg(r.id) FROM read r)::uuid[]){WEIGHTED_SQL}
WHERE x.tf > 0 AND NOT (p.message_id = ANY(%(excluded)s::uuid[]))
GROUP BY p.message_id ORDER BY score DESC, p.message_id LIMIT %(depth)s"""
# MaxScore's second statement: the messages holding an essential word (%(essential)s) whose essential words' score
# plus the most the other words can add (%(rest_bound)s) reaches %(theta)s; their whole score adds the other words'
# (%(rest)s). The best %(depth)s.
_SCORE_ESSENTIAL_SQL = f"""WITH {WORDS_CTE},
part AS (
    SELECT p.message_id AS id, sum(s.weight) AS partial
    FROM w JOIN archive_postings p ON p.athlete_id = %(athlete_id)s AND p.lexeme = w.lexeme{WEIGHTED_SQL}
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
         AND p.message_id = ANY((SELECT array_agg(c.id) FROM candidates c)::uuid[]){WEIGHTED_SQL}
    WHERE w.lexeme = ANY(%(rest)s::text[]) AND x.tf > 0
    GROUP BY p.message_id
)
SELECT c.id, c.partial + coalesce(m.more, 0) AS score
FROM candidates c LEFT JOIN more m USING (id)
ORDER BY score DESC, c.id LIMIT %(depth)s"""


def idf(n: int, df: int) -> float:
    """BM25's IDF, ln(1 + (n - df + 0.5) / (df + 0.5)) (Robertson & Zaragoza 2009, as Lucene), as `memory.recall`."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


READ_LIMIT = 2
"""The first statement scores whole `READ_LIMIT` x `depth` messages of the rarest words (those best on them): enough
for a theta near the final one, few enough to score in a few milliseconds."""


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
