"""Posting blocks: a large archive's postings packed per word and scored in numpy (schema v49-v56, issue 12).

Summing BM25 over `archive_postings` in SQL costs Postgres about a microsecond per posting (index-only scan, then a
hash aggregate by message); a question holding a common word of a 100,000-message archive reads 20,000-40,000 of
them. Here each athlete's postings are also kept packed, one row per word (`archive_blocks`): the messages'
ordinals (`archive_ordinals`: 0..n-1 in message-id order) and their term frequencies and lengths as big-endian
arrays in `bytea` columns, stored uncompressed. A search reads one row per query word and sums BM25 by ordinal with
`numpy.bincount`: exact BM25 over every message, with no candidate budget (`memory.recall_large`).

The blocks are rebuilt with the kept statistics (`memory.term_stats.refresh`, under the counts row's lock), from
`archive_postings`, which stays the truth. Between rebuilds, a trigger on `archive_postings` notes every message whose
postings were written or deleted (`archive_block_changes`): a search drops those messages' packed postings and reads
their current ones from `archive_postings` (a changed message beyond the blocks gets a fresh ordinal). A refresh is
due when the changes exceed `BLOCK_CHANGES_MAX`, so that part stays a few thousand index probes at most.

Derived data: erased with the athlete, never exported (`records.erase`, `records.export`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection
from psycopg.rows import DictRow

BLOCK_CHANGES_MAX = 1_000
"""Messages changed since the blocks were built beyond which a refresh is due (`memory.term_stats.refresh_due`)."""
_PACKED = ("tf_own", "tf_context", "own_len", "context_len")
_DTYPES = {"ordinals": ">i4", "tf_own": ">f4", "tf_context": ">f4", "own_len": ">i4", "context_len": ">i4"}
"""Each packed column's element type: Postgres's binary send format (`int4send`, `float4send`), big-endian."""

CHANGES_FUNCTION_SQL = """CREATE OR REPLACE FUNCTION coach_note_block_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO archive_block_changes (athlete_id, message_id)
        SELECT DISTINCT o.athlete_id, o.message_id FROM old_rows o
        JOIN archive_term_counts c ON c.athlete_id = o.athlete_id AND c.block_messages IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO archive_block_changes (athlete_id, message_id)
        SELECT DISTINCT n.athlete_id, n.message_id FROM new_rows n
        JOIN archive_term_counts c ON c.athlete_id = n.athlete_id AND c.block_messages IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$"""
"""`coach_note_block_changes()`: the messages whose postings a statement wrote or deleted, for athletes with blocks."""

BLOCKS_MIGRATIONS = (
    "ALTER TABLE archive_term_counts ADD COLUMN IF NOT EXISTS block_messages INTEGER",
    """CREATE TABLE IF NOT EXISTS archive_ordinals (
        athlete_id TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        message_id UUID NOT NULL,
        PRIMARY KEY (athlete_id, ordinal),
        UNIQUE (athlete_id, message_id)
    )""",
    """CREATE TABLE IF NOT EXISTS archive_blocks (
        athlete_id TEXT NOT NULL,
        lexeme TEXT NOT NULL,
        ordinals BYTEA NOT NULL,
        tf_own BYTEA NOT NULL,
        tf_context BYTEA NOT NULL,
        own_len BYTEA NOT NULL,
        context_len BYTEA NOT NULL,
        PRIMARY KEY (athlete_id, lexeme)
    )""",
    # Uncompressed: random ordinals do not compress, and a search reads them whole.
    """ALTER TABLE archive_blocks ALTER ordinals SET STORAGE EXTERNAL, ALTER tf_own SET STORAGE EXTERNAL,
    ALTER tf_context SET STORAGE EXTERNAL, ALTER own_len SET STORAGE EXTERNAL,
    ALTER context_len SET STORAGE EXTERNAL""",
    """CREATE TABLE IF NOT EXISTS archive_block_changes (
        athlete_id TEXT NOT NULL,
        message_id UUID NOT NULL,
        PRIMARY KEY (athlete_id, message_id)
    )""",
    CHANGES_FUNCTION_SQL,
    """CREATE OR REPLACE TRIGGER archive_postings_block_changes_insert AFTER INSERT ON archive_postings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION coach_note_block_changes()""",
    """CREATE OR REPLACE TRIGGER archive_postings_block_changes_delete AFTER DELETE ON archive_postings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION coach_note_block_changes()""",
)
"""Schema v49-v56: the blocks' column on the counts row (NULL: none built), ordinals, blocks, changes, the trigger."""

BUILD_BLOCKS_SQL = (
    "DELETE FROM archive_blocks WHERE athlete_id = %(athlete_id)s",
    "DELETE FROM archive_ordinals WHERE athlete_id = %(athlete_id)s",
    "DELETE FROM archive_block_changes WHERE athlete_id = %(athlete_id)s",
    """INSERT INTO archive_ordinals (athlete_id, ordinal, message_id)
    SELECT %(athlete_id)s, (row_number() OVER (ORDER BY m.id) - 1)::int, m.id
    FROM messages m WHERE m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant')""",
    # A hash join of the ordinals with the postings, whatever the statistics say: a table never analysed yet (a
    # new database's first import) made the planner loop over the ordinals and scan the athlete's postings for
    # each (pkey prefix athlete_id only): 5.3 s instead of 0.1 s for 2,000 messages.
    "SET LOCAL enable_nestloop = off",
    """INSERT INTO archive_blocks (athlete_id, lexeme, ordinals, tf_own, tf_context, own_len, context_len)
    SELECT p.athlete_id, p.lexeme, string_agg(int4send(o.ordinal), ''::bytea), string_agg(float4send(p.tf_own), ''),
           string_agg(float4send(p.tf_context), ''), string_agg(int4send(p.own_len), ''),
           string_agg(int4send(p.context_len), '')
    FROM archive_postings p JOIN archive_ordinals o ON o.athlete_id = p.athlete_id AND o.message_id = p.message_id
    WHERE p.athlete_id = %(athlete_id)s
    GROUP BY p.athlete_id, p.lexeme""",
    "RESET enable_nestloop",
    """UPDATE archive_term_counts
    SET block_messages = (SELECT count(*) FROM archive_ordinals WHERE athlete_id = %(athlete_id)s)
    WHERE athlete_id = %(athlete_id)s""",
)
"""Rebuild one athlete's blocks (statements in order, in the refresh's transaction, under its counts row's lock):
one string_agg per column over the same rows keeps the arrays aligned. The 100,000-message benchmark archive
(4.1 M postings): about 9 s, README."""

_BLOCKS_SQL = """SELECT b.lexeme, b.ordinals, b.tf_own, b.tf_context, b.own_len, b.context_len FROM archive_blocks b
WHERE b.athlete_id = %(athlete_id)s AND b.lexeme = ANY(%(lexemes)s::text[])"""
# The blocks' messages to drop (changed since the build, or excluded by the caller), and the changed messages' current
# postings of the query words (read by key: `message_id = ANY(...)`, never a whole list).
_CHANGES_SQL = """WITH changed AS MATERIALIZED (
    SELECT c.message_id FROM archive_block_changes c WHERE c.athlete_id = %(athlete_id)s
)
SELECT 'size' AS kind, c.block_messages AS ordinal, NULL::text AS message_id, NULL::text AS lexeme,
       NULL::real AS tf_own, NULL::real AS tf_context, NULL::int AS own_len, NULL::int AS context_len
FROM archive_term_counts c WHERE c.athlete_id = %(athlete_id)s
UNION ALL
SELECT 'dropped', o.ordinal, NULL, NULL, NULL, NULL, NULL, NULL
FROM archive_ordinals o
WHERE o.athlete_id = %(athlete_id)s
  AND o.message_id = ANY(ARRAY(SELECT message_id FROM changed UNION SELECT unnest(%(excluded)s::uuid[])))
UNION ALL
SELECT 'changed', NULL, p.message_id::text, p.lexeme, p.tf_own, p.tf_context, p.own_len, p.context_len
FROM archive_postings p
WHERE p.athlete_id = %(athlete_id)s AND p.lexeme = ANY(%(lexemes)s::text[])
  AND p.message_id = ANY(ARRAY(SELECT message_id FROM changed)) AND NOT (p.message_id = ANY(%(excluded)s::uuid[]))"""
"""The blocks' size (`block_messages`), the blocks' messages to drop (changed since the build, or excluded by the
caller), and the changed messages' current postings of the query words (read by key: `message_id = ANY(...)`, never
a whole list)."""
_IDS_SQL = """SELECT o.ordinal, o.message_id::text AS id FROM archive_ordinals o
WHERE o.athlete_id = %(athlete_id)s AND o.ordinal = ANY(%(ordinals)s::int[])"""


@dataclass(frozen=True)
class Postings:
    """One word's postings as aligned arrays (one element per message holding it).

    Attributes:
        ordinals: the messages' ordinals (int64).
        tf_own, tf_context: the word's count in the message's own words and in its neighbours' (float64).
        own_len, context_len: the message's own and contextual lengths, lexemes (float64).
    """

    ordinals: NDArray[np.int64]
    tf_own: NDArray[np.float64]
    tf_context: NDArray[np.float64]
    own_len: NDArray[np.float64]
    context_len: NDArray[np.float64]


def bm25_top(
    words: Mapping[str, Postings],
    idfs: Mapping[str, float],
    *,
    k1: float,
    b: float,
    context_weight: float,
    avgdl: float,
    size: int,
    dropped: Sequence[int],
    depth: int,
) -> list[tuple[int, float]]:
    """BM25's best `depth` messages (ordinal, score), highest first, ties by ordinal; only scores above 0.

    BM25 as `memory.recall_large` and `memory.recall` count it (Robertson & Zaragoza 2009): a word's term frequency
    is its own count plus `context_weight` x its count in the neighbours, the length likewise, and its weight
    idf x tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)).

    Args:
        words: each query word's postings (a word missing here holds no message).
        idfs: each word's IDF (`memory.recall_large.idf` of the kept df).
        k1: BM25's term-frequency saturation (`memory.recall.RankingParams`).
        b: BM25's length normalisation.
        context_weight: what a neighbour's occurrence of a word counts for, against 1 for the message's own.
        avgdl: the mean length (own + context_weight x contextual) over the archive.
        size: one more than the largest ordinal (the scores' length).
        dropped: ordinals whose postings do not count (changed since the blocks were built, or excluded).
        depth: how many to return.
    """
    scores = np.zeros(size, dtype=np.float64)
    for word, p in words.items():
        tf = p.tf_own + context_weight * p.tf_context
        dl = p.own_len + context_weight * p.context_len
        weight = idfs[word] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
        scores += np.bincount(p.ordinals, weights=weight, minlength=size)
    if len(dropped):
        scores[np.asarray(dropped, dtype=np.int64)] = 0.0
    positive = np.flatnonzero(scores > 0)
    if len(positive) > depth:  # every message tied with the depth-th best, then the best `depth` by score, ordinal
        threshold = np.partition(scores[positive], len(positive) - depth)[len(positive) - depth]
        positive = positive[scores[positive] >= threshold]
    order = np.lexsort((positive, -scores[positive]))[:depth]
    return [(int(positive[i]), float(scores[positive[i]])) for i in order]


async def block_scores(
    conn: AsyncConnection[DictRow], params: Mapping[str, Any], idfs: Mapping[str, float]
) -> dict[str, float]:
    """BM25's top `depth` messages (id -> score) from the athlete's blocks and its changes since.

    Three statements in one REPEATABLE READ transaction: the blocks, their ordinals and the changes are read from one
    snapshot, so a refresh committing meanwhile (which renumbers the ordinals) cannot mix two builds.

    Args:
        conn: a connection of the archive's pool (autocommit, idle).
        params: `athlete_id`, `excluded`, `k1`, `b`, `context_weight`, `avgdl`, `depth` (`memory.recall_large`).
        idfs: each query lexeme's IDF.

    Returns:
        Up to `depth` messages; none when the athlete has no blocks (any more).

    Raises:
        psycopg.Error: from Postgres.
    """
    key = {"athlete_id": params["athlete_id"], "lexemes": list(idfs), "excluded": params["excluded"]}
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        async with conn.cursor(binary=True) as cur:
            await cur.execute(_BLOCKS_SQL, key, prepare=False)
            blocks = await cur.fetchall()
        rows = await (await conn.execute(_CHANGES_SQL, key, prepare=False)).fetchall()
        size = next((r["ordinal"] for r in rows if r["kind"] == "size"), None)
        if size is None:  # erased, or never built
            return {}
        top, ids = _score(params, idfs, blocks, rows, int(size))
        wanted = [o for o, _ in top if o not in ids]
        if wanted:
            cur2 = await conn.execute(_IDS_SQL, {"athlete_id": params["athlete_id"], "ordinals": wanted}, prepare=False)
            ids |= {int(r["ordinal"]): str(r["id"]) for r in await cur2.fetchall()}
    return {ids[o]: score for o, score in top if o in ids}


def _score(
    params: Mapping[str, Any], idfs: Mapping[str, float], blocks: list[DictRow], rows: list[DictRow], size: int
) -> tuple[list[tuple[int, float]], dict[int, str]]:
    """`bm25_top` over the blocks and the changed messages' postings (ordinals from `size` on); their ids."""
    words = {str(r["lexeme"]): _unpack(r) for r in blocks}
    dropped = [int(r["ordinal"]) for r in rows if r["kind"] == "dropped"]
    changed = [r for r in rows if r["kind"] == "changed"]
    fresh = sorted({str(r["message_id"]) for r in changed})
    ordinal_of = {m: size + i for i, m in enumerate(fresh)}  # changed messages: ordinals past the blocks'
    for word in idfs:
        mine = [r for r in changed if r["lexeme"] == word]
        if mine:
            extra = Postings(
                np.array([ordinal_of[str(r["message_id"])] for r in mine], dtype=np.int64),
                *(np.array([r[c] for r in mine], dtype=np.float64) for c in _PACKED),
            )
            words[word] = _joined(words[word], extra) if word in words else extra
    top = bm25_top(
        words, idfs, k1=params["k1"], b=params["b"], context_weight=params["context_weight"], avgdl=params["avgdl"],
        size=size + len(fresh), dropped=dropped, depth=params["depth"],
    )  # fmt: skip
    return top, {o: m for m, o in ordinal_of.items()}


def _unpack(row: DictRow) -> Postings:
    """A block row's arrays (Postgres's big-endian binary values) as native numpy arrays."""
    values = {c: np.frombuffer(row[c], dtype=_DTYPES[c]) for c in _DTYPES}
    return Postings(values["ordinals"].astype(np.int64), *(values[c].astype(np.float64) for c in _PACKED))


def _joined(a: Postings, b: Postings) -> Postings:
    return Postings(*(np.concatenate((x, y)) for x, y in zip(_fields(a), _fields(b), strict=True)))


def _fields(p: Postings) -> tuple[NDArray[Any], ...]:
    return (p.ordinals, p.tf_own, p.tf_context, p.own_len, p.context_len)
