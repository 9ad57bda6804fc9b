"""Recall: ranked search of an athlete's archived messages, in one SQL statement (docs/architecture.md).

`search_messages` fuses two rankings of the athlete's own user and assistant messages: BM25 over `search_tsv`
(the message's date and its words) plus, at half weight, `context_tsv` (the words of the turns around it,
`memory.archive_context`), and the cosine similarity of its embedding (`memory.embeddings`) with the query's;
then each candidate is lifted by the best score of its session (session-level ranking). Without pgvector, or
without a query embedding, it ranks by BM25 alone and says so (`SearchResult.ranking == "full_text"`). A large
archive is ranked the same way from its kept statistics (`memory.term_stats`, `memory.recall_large`).
`embed_query` embeds the query, falling back to full text (logged once per process) when there is no model or it
fails; a warm in-process model's embedding may be passed still running (a future), so that it runs while the
search reads its statistics and its lexical side (`QueryVector`). `Archive.search_ranked` and
`ConversationMemory.recall` are the callers; `benchmarks/recall_locomo.py` measured the choices.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from memory.athlete_store import validate_athlete_id
from memory.db import DictPool
from memory.embeddings import ArchiveEmbedder, vector_literal
from memory.messages import as_uuid
from memory.recall_large import (
    FUSED_CTE,
    HNSW_SETTINGS_SQL,
    SEARCH_OUTPUT,
    SESSION_CTE,
    TF_CTE,
    TSQUERY_OF,
    search_large,
)

logger = logging.getLogger(__name__)

SNIPPET_MAX_CHARS = 400
"""Hard cap on a search snippet's length, characters (docs/architecture.md: each under 400 characters)."""

Ranking = Literal["hybrid", "full_text"]
"""How a search ranked: BM25 fused with vector similarity, or BM25 alone (no pgvector or no query embedding)."""


@dataclass(frozen=True)
class RankingParams:
    """The knobs of recall's ranking (defaults chosen on LoCoMo, see the README's recall section).

    Attributes:
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation (0: none, 1: full); chat turns are short, so it is low.
        lexical_weight: weight of the BM25 score (divided by the best BM25 score of the query) in the fused
            score; the cosine similarity gets the rest.
        depth: candidates taken from the top of each ranking (lexical and vector) before fusion.
        context_weight: weight of a word of the neighbouring turns (`messages.context_tsv`,
            `memory.archive_context`) in BM25's term frequency and length, against 1 for the message's own
            words; 0 ranks by the message's own words only. 0.5: a neighbour's word is weaker evidence than the
            turn's own, and the two neighbours together then weigh as much as the turn.
        session_weight: weight of the session's best candidate score (divided by the query's best) added to each
            candidate's own score (session-level ranking: the turns of the session that matches best come first);
            0 ranks turns alone. 0.5: the turn's own score counts twice its session's.
        ef_search: `hnsw.ef_search` of the vector side when it reads the HNSW index (an archive the partial index
            holds, `memory.vector_index`; others are sorted exactly): the size of the candidate list of each
            round of pgvector's iterative scan (`hnsw.iterative_scan = relaxed_order`, set with it). 100: twice
            `depth`, the smallest value whose top 10 matched exact search's within 0.02 on the 100 k-message
            athlete of `benchmarks/recall_scale.py` (README).
        lexical_candidates: on an archive with kept statistics (`memory.recall_large`), how many messages of the
            query's essential words are scored whole, best on those words first; None: every one that could reach
            the top (exact MaxScore). 500, ten times `depth`: the full-text top 10 matched exact MaxScore's at
            0.996 and 0.999 on two sets of 100 questions on the 100 k-message athlete (200: 0.975), at a third of its
            p95 (README).
    """

    k1: float = 1.2
    b: float = 0.4
    lexical_weight: float = 0.3
    depth: int = 50
    context_weight: float = 0.5
    session_weight: float = 0.5
    ef_search: int = 100
    lexical_candidates: int | None = 500


@dataclass(frozen=True)
class SearchHit:
    """One result of `Archive.search`.

    Attributes:
        message_id: archive id of the message.
        external_id: its id in an imported transcript, if any.
        session_id: the conversation it belongs to.
        ts: when it was said (aware datetime).
        role: `user` or `assistant`.
        snippet: text around the best match, at most `SNIPPET_MAX_CHARS` characters, "…" where cut.
        score: higher is better, in [0, 1]: (the message's score + `session_weight` x the best message score of
            its session / the query's best) / (1 + `session_weight`), where a message's score is, in the hybrid
            ranking, `lexical_weight` x BM25 / the query's best BM25 + the rest x cosine similarity (negative
            similarity counts as 0), and in the full-text ranking BM25 / (BM25 + 1).
    """

    message_id: str
    external_id: str | None
    session_id: str
    ts: datetime
    role: str
    snippet: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; `ts` as ISO 8601 in UTC."""
        data = asdict(self)
        data["ts"] = self.ts.astimezone(UTC).isoformat()
        return data


@dataclass(frozen=True)
class SearchResult:
    """Outcome of `Archive.search_ranked`: the hits, best first, and how they were ranked."""

    hits: list[SearchHit]
    ranking: Ranking


@dataclass(frozen=True)
class QueryVector:
    """A query's embedding (or the future computing it) and the model that makes it.

    Only messages embedded by that model are compared. A future lets the search embed and read at once: the
    statistics lookup and the lexical side do not need the vector, so they run while a thread embeds the query
    (`memory.recall_large.search_large`; `ConversationMemory.recall` passes one when the model is warm).

    Attributes:
        values: the embedding (`ArchiveEmbedder.embed_query`), or a future or task of it (None or empty: no
            vector, the search ranks by full text); not a bare coroutine (a retried search awaits it again).
        model_id: the embedder's `model_id`.
    """

    values: Sequence[float] | Awaitable[Sequence[float] | None]
    model_id: str

    async def literal(self) -> str | None:
        """The embedding as a pgvector literal (waiting for a future), or None when there is none."""
        values = self.values if isinstance(self.values, Sequence) else await self.values
        return vector_literal(values) if values is not None and len(values) > 0 else None


async def search_messages(
    pool: DictPool,
    athlete_id: str,
    query: str,
    *,
    k: int = 3,
    exclude_ids: Iterable[str] = (),
    vector: QueryVector | None = None,
    params: RankingParams | None = None,
    timeout_s: float | None = None,
    exact_vectors: bool = False,
    kept_statistics: bool = True,
) -> SearchResult:
    """Search the athlete's own user and assistant messages, best first, in one SQL statement.

    Lexical side: the query's lexemes (`to_tsvector('english', query)`: stemmed, stop words removed,
    one-character lexemes dropped) OR-ed into a tsquery (`plainto_tsquery`'s AND rarely matches a whole
    question), matched against `search_tsv` (the message's date and content) and `context_tsv` (the words of
    the turns before and after it, `memory.archive_context`, counted at `context_weight`), and scored with BM25:
    IDF over the athlete's messages, term frequency saturated by `k1`, length normalised by `b` against the mean
    length of the matching messages. Vector side (with `vector`, which needs pgvector): cosine similarity with the
    message embeddings of the same model; its top `depth` are sorted exactly here (the HNSW index is partial,
    `memory.vector_index`, and holds large archives only, which `memory.recall_large` ranks: there it is read with an
    iterative scan, `HNSW_SETTINGS_SQL`, `RankingParams.ef_search`). The top `depth` of each ranking are fused by a
    weighted sum of the BM25 score divided by the query's best and the cosine similarity (`RankingParams`). Without a
    query vector the ranking is BM25 alone (its top `depth`). Then sessions: each candidate gets `session_weight` x the
    best candidate score of its session added (session-level ranking). An archive with kept statistics
    (`memory.term_stats`: 2,000 messages or more) is ranked the same way from them by `memory.recall_large`, which reads
    only the messages that can reach the top (MaxScore). Every part filters by athlete inside the query.

    A query with no usable word (empty, stop words only) returns no hit. The snippet is the message if it fits
    in `SNIPPET_MAX_CHARS` characters, else the window of it holding the most query words (marked by
    `ts_headline`), hard-capped at that length.

    Args:
        pool: the archive's pool (autocommit, dict rows).
        athlete_id: whose archive to search; other athletes' messages are never returned.
        query: free text.
        k: most hits to return.
        exclude_ids: message ids to leave out (the turns already in the prompt's window); non-UUIDs are ignored.
        vector: the query's embedding, or its future (`QueryVector`); None ranks by full text. Pass one only when
            `messages` has the `embedding` column (`Archive.vectors_enabled`).
        params: the ranking's knobs (default `RankingParams()`).
        timeout_s: longest wait for a pooled connection, seconds; None uses the pool's own `timeout`.
        exact_vectors: sort the vector side exactly, never through the HNSW index (`enable_indexscan` off for
            the statement): the reference that `benchmarks/recall_scale.py` compares the index path with.
        kept_statistics: rank an archive with kept statistics through them (`memory.recall_large`); False runs
            the one statement whatever the archive's size (the reference of `benchmarks/recall_scale.py`).

    Returns:
        Up to `k` hits, highest score first, and `ranking`: "hybrid" (with `vector`) or "full_text".

    Raises:
        InvalidAthleteIdError: invalid athlete id.
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    validate_athlete_id(athlete_id)
    literal: list[str | None] = []

    async def qvec() -> str | None:  # the vector's literal, computed once (after its future, if any)
        if not literal:
            value = await vector.literal() if vector is not None else None
            literal[:] = [value]
        return literal[0]

    if k <= 0 or not query or not query.strip():
        return SearchResult([], "hybrid" if await qvec() is not None else "full_text")
    p = params or RankingParams()
    sql_params: dict[str, Any] = {
        "query": query,
        "athlete_id": athlete_id,
        "excluded": [i for i in (as_uuid(x) for x in exclude_ids) if i is not None],
        "k": k,
        "k1": p.k1,
        "b": p.b,
        "depth": max(p.depth, k),
        "lexical_weight": p.lexical_weight,
        "context_weight": p.context_weight,
        "session_weight": p.session_weight,
        "headline_options": f"HighlightAll=true, StartSel={_MARK_START}, StopSel={_MARK_STOP}",
    }
    async with pool.connection(timeout=timeout_s) as conn:
        large = None if not kept_statistics else await search_large(
            conn, sql_params, vector=qvec if vector is not None else None,
            model=vector.model_id if vector is not None else None,
            ef_search=p.ef_search, exact_vectors=exact_vectors, candidates=p.lexical_candidates, pool=pool,
        )  # fmt: skip
        if large is not None:  # an archive with kept statistics (memory.term_stats)
            rows = large
        elif vector is not None and (values := await qvec()) is not None:
            sql_params["qvec"] = values
            sql_params["model"] = vector.model_id
            async with conn.transaction():  # the HNSW settings hold for this statement only (SET LOCAL)
                await conn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(max(p.ef_search, 1))})
                if exact_vectors:
                    await conn.execute("SET LOCAL enable_indexscan = off")
                cur = await conn.execute(_HYBRID_SQL, sql_params)
                rows = await cur.fetchall()
        else:
            cur = await conn.execute(_FULL_TEXT_SQL, sql_params)
            rows = await cur.fetchall()
    ranking: Ranking = "hybrid" if await qvec() is not None else "full_text"
    hits = [
        SearchHit(
            message_id=r["message_id"],
            external_id=r["external_id"],
            session_id=r["session_id"],
            ts=r["ts"],
            role=r["role"],
            snippet=make_snippet(r["marked"]),
            score=float(r["score"]),
        )
        for r in rows
    ]
    return SearchResult(hits, ranking)


async def embed_query(embedder: ArchiveEmbedder | None, query: str) -> list[float] | None:
    """Embed a search query, or say (once per process) why recall falls back to full text.

    Returns:
        The query's embedding; None when there is no embedder, the query is blank, or the model failed
        (logged once per kind of failure). Never raises.
    """
    if embedder is None:
        warn_once("no_embedder", "no embedding model configured: conversation recall uses full-text ranking only")
        return None
    if not query.strip():
        return None
    try:
        return await embedder.embed_query(query)
    except Exception as exc:  # noqa: BLE001 - any model failure: rank by full text, say so
        warn_once(f"query_embedding:{type(exc).__name__}", f"query embedding failed ({exc}): full-text recall")
        return None


# The parts of the search statement. Every CTE that reads `messages` filters by athlete, role and the excluded
# ids itself (the planner then reads the athlete's rows through `messages_session_idx`). `matched` keeps only the
# query's lexemes of each matching message (`setweight` marks them 'A', `ts_filter` keeps the marked: the source
# tsvectors carry no weights), so that `tf` unnests a few lexemes per message, not every word of it and its
# neighbours (the same BM25 and ranking; 3x faster on a 100 k-message archive).
_SEARCH_QUERY_CTE = f"""
q AS (
    SELECT array_agg(l) AS lexemes,
           {TSQUERY_OF} AS tsq
    FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS l
    WHERE length(l) > 1
),
mine AS (
    SELECT count(*) AS n FROM messages m
    WHERE m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant')
      AND NOT (m.id = ANY(%(excluded)s::uuid[]))
),
matched AS MATERIALIZED (
    SELECT m.id,
           ts_filter(setweight(m.search_tsv, 'A', q.lexemes), '{{a}}') AS own,
           ts_filter(setweight(coalesce(m.context_tsv, ''::tsvector), 'A', q.lexemes), '{{a}}') AS ctx,
           length(m.search_tsv) + %(context_weight)s * length(coalesce(m.context_tsv, ''::tsvector)) AS dl
    FROM messages m, q
    WHERE m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant')
      AND NOT (m.id = ANY(%(excluded)s::uuid[]))
      AND (m.search_tsv @@ q.tsq OR (%(context_weight)s > 0 AND m.context_tsv @@ q.tsq))
),
{TF_CTE},
df AS (SELECT lexeme, count(*) AS df FROM tf GROUP BY lexeme),
stats AS (SELECT (SELECT n FROM mine) AS n, (SELECT avg(dl) FROM matched) AS avgdl),
bm25 AS (
    SELECT tf.id,
           sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5))
               * tf.tf * (%(k1)s + 1) / (tf.tf + %(k1)s * (1 - %(b)s + %(b)s * tf.dl / s.avgdl))) AS score
    FROM tf JOIN df USING (lexeme) CROSS JOIN stats s
    GROUP BY tf.id
)"""

_FULL_TEXT_SQL = f"""WITH {_SEARCH_QUERY_CTE},
fused AS (SELECT id, score / (score + 1) AS score FROM bm25 ORDER BY score DESC LIMIT %(depth)s),
{SESSION_CTE}{SEARCH_OUTPUT}"""

_HYBRID_SQL = f"""WITH {_SEARCH_QUERY_CTE},
lexical AS (SELECT id FROM bm25 ORDER BY score DESC LIMIT %(depth)s),
semantic AS (
    SELECT m.id FROM messages m
    WHERE m.athlete_id = %(athlete_id)s AND m.role IN ('user', 'assistant') AND m.embedding_model = %(model)s
      AND NOT (m.id = ANY(%(excluded)s::uuid[])) AND (SELECT tsq FROM q) IS NOT NULL
    ORDER BY m.embedding <=> %(qvec)s::vector
    LIMIT %(depth)s
),
candidates AS (SELECT id FROM lexical UNION SELECT id FROM semantic),
{FUSED_CTE.format(lexical="bm25")},
{SESSION_CTE}{SEARCH_OUTPUT}"""


# Match markers of ts_headline for `make_snippet`: control characters that chat text does not contain.
_MARK_START, _MARK_STOP = "\x02", "\x03"

_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Log `message` as a warning the first time this process sees `key` (a degraded mode, not each call)."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def make_snippet(marked: str, max_chars: int = SNIPPET_MAX_CHARS) -> str:
    """Return a one-line excerpt of a message around its densest cluster of matches, at most `max_chars` chars.

    Args:
        marked: the whole message with each match wrapped in `_MARK_START`/`_MARK_STOP` (`ts_headline` with
            `HighlightAll=true`); unmarked text is excerpted from its start.
        max_chars: hard cap on the result's length, characters (ellipses included).

    Returns:
        The message with whitespace collapsed if it fits; else a window of it, cut at word boundaries, with
        "… " / " …" where text was left out.
    """
    plain_parts: list[str] = []
    starts: list[int] = []
    length = 0
    for i, part in enumerate(" ".join(marked.split()).split(_MARK_START)):
        inner, _, after = part.partition(_MARK_STOP) if i else ("", "", part)
        if i:
            starts.append(length)
        plain_parts += [inner, after]
        length += len(inner) + len(after)
    text = "".join(plain_parts)
    if len(text) <= max_chars:
        return text
    room = max_chars - 4  # "… " and " …"
    anchor = 0
    if starts:  # the window of `room` characters holding the most matches, from the earliest such match
        best = max(range(len(starts)), key=lambda j: (sum(1 for p in starts[j:] if p < starts[j] + room), -j))
        anchor = starts[best]
    start = max(0, min(anchor - room // 4, len(text) - room))
    end = min(len(text), start + room)
    if start > 0 and text[start - 1] != " ":  # do not start mid-word
        space = text.find(" ", start, max(anchor, start + 1))
        start = space + 1 if space != -1 else start
    if end < len(text) and text[end] != " ":  # do not end mid-word
        space = text.rfind(" ", start, end)
        end = space if space > start + room // 2 else end
    snippet = text[start:end].strip()
    if start > 0:
        snippet = "… " + snippet
    if end < len(text):
        snippet += " …"
    return snippet[:max_chars]
