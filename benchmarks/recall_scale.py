"""Recall at scale: search latency per athlete and archive ingest throughput with 1,000,000 archived messages.

Builds a separate database (default `<the DATABASE_URL database>_recall_scale`, dropped at the end unless
`--keep`; a kept one of the same size is reused) with the athlete store's schema (`memory.schema.setup`,
pgvector, HNSW and GIN indexes included), then:

1. Bulk load: `--messages` messages (default 1,000,000) across `--athletes` athletes (default 10,000; 10
   sessions each), in random athlete order (as they would arrive), the text of each drawn from the LoCoMo turns
   of `--data` (`"<speaker>: <text>"`). The ~3k unique texts are embedded once with the local model and the
   vectors reused: the load is a COPY, not the ingest path, and is reported as such. The secondary indexes are
   built after the COPY (timed).
2. Search latency: `--queries` searches (default 1,000), each for one random athlete with one random LoCoMo
   question, through `Archive.search_ranked` (the SQL behind `search_conversation`): hybrid (query embedding
   computed beforehand), full-text only, and hybrid end to end (query embedding by MiniLM included: embedded while
   the search reads, as recall does with a warm model, and embedded first, the previous path, alternating). p50,
   p95, p99 after 50 warm-up searches, and the query embedding alone; the load average after.
2b. One big archive: `--big-athlete` messages (default 100,000) of one more athlete, loaded with the rest (every
   row's vector is its text's plus a little noise, `NOISE_STD`, so that they are distinct), its term statistics
   refreshed as the write path does (`memory.term_stats`): latency of its searches (`--big-queries`), whether
   EXPLAIN of its vector side reads the HNSW index (partial: it holds the archives of `VECTOR_INDEX_MIN_MESSAGES`
   or more, `memory.vector_index`; flagged in the load as a promotion flags them), recall@10 of the HNSW path
   against exact
   search per `hnsw.ef_search` value (`big_archive`, `ann_recall`), and the full-text top 10 from the posting
   blocks against the one statement over every match and against MaxScore over the postings, the previous path,
   with and without its budget (`kept_statistics_agreement`).
3. Ingest throughput: `--ingest` LoCoMo turns (default 2,000) imported as one transcript through
   `Archive.import_transcript` (`coach import-transcript`'s path: embeddings computed in batches on the embedder's
   pool, rows and indexes written; a new athlete's archive is not in the HNSW index), with the torch backend,
   with ONNX int8 on one worker (the previous default) and with the default (ONNX int8 on `EMBED_WORKERS`
   workers), models loaded and warmed first, once more with the default into an archive the HNSW index holds (a
   large athlete's import: each vector inserted into the graph too), once with the vectors precomputed (the write
   alone) and once without embeddings; messages/s, the ratios, the load average, and the query embedding's
   p50/p95.
   `--ingest-only` runs just this, on an empty table.

Usage: ``uv run python benchmarks/recall_scale.py [--messages N] [--athletes N] [--big-athlete N] [--big-queries N]
[--queries N] [--ingest N]
[--database NAME] [--keep] [--ingest-only] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from psycopg import sql

from benchmarks.bench_data import LOCOMO_DEV, require_locomo
from config.settings import Settings, get_settings
from memory.archive import Archive
from memory.embeddings import LOCAL_MODEL_NAME, ArchiveEmbedder, LocalMiniLMEmbeddings, get_embedder, vector_literal
from memory.postings import INSERT_TRIGGER, UPDATE_TRIGGER
from memory.recall import QueryVector, RankingParams, search_messages
from memory.recall_large import _INDEXED_SEMANTIC_SQL, HNSW_SETTINGS_SQL, VECTOR_SCAN_FACTOR
from memory.schema import setup
from memory.term_stats import LARGE_ARCHIVE_MESSAGES, refresh_due
from memory.vector_index import VECTOR_INDEX_MIN_MESSAGES
from records.stores import open_stores

DEFAULT_DATA = LOCOMO_DEV
SESSIONS_PER_ATHLETE = 10
WARMUP = 50
T0 = datetime(2024, 1, 1, tzinfo=UTC)
BIG_ATHLETE = "scale-big"
"""The athlete holding `--big-athlete` messages (default 100,000), on top of `--messages`."""
NOISE_STD = 0.01
"""Standard deviation of the noise added per dimension to every row's reused text vector before it is renormalised
(uniform, norm about 0.2: cosine about 0.98 with the text's own vector). Without it the 1 M rows would hold each
LoCoMo text's exact vector about 360 times, across athletes: no real archive does, and a filtered HNSW scan for one
athlete would first meet hundreds of other athletes' exact copies of every text near the query."""
POSTINGS_TRIGGERS = (INSERT_TRIGGER, UPDATE_TRIGGER)
SECONDARY_INDEXES = (
    "messages_session_idx", "messages_search_tsv_idx", "messages_athlete_search_idx", "messages_embedding_hnsw_idx"
)  # fmt: skip


def locomo_texts(path: Path) -> tuple[list[str], list[str]]:
    """The unique turn texts (`"<speaker>: <text>"`) and the questions of a LoCoMo file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    texts: dict[str, None] = {}
    questions: dict[str, None] = {}
    for sample in data:
        for key, turns in sample["conversation"].items():
            if key.startswith("session_") and isinstance(turns, list):
                for t in turns:
                    texts[f"{t['speaker']}: {t['text']}"] = None
        for qa in sample.get("qa", []):
            questions[qa["question"]] = None
    return list(texts), list(questions)


def scale_settings(url: str) -> Settings:
    """The process settings with `database_url` set to the scale database `url`."""
    return get_settings().model_copy(update={"database_url": url})


def scale_url(base_url: str, database: str) -> str:
    """`base_url` pointing at another database of the same server."""
    info = psycopg.conninfo.conninfo_to_dict(base_url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def athlete(i: int) -> str:
    return f"scale-{i:06d}"


def session_plan(n: int) -> list[int]:
    """The session (0 to `SESSIONS_PER_ATHLETE - 1`) of each of an athlete's `n` messages, in time order."""
    per_session = max(1, -(-n // SESSIONS_PER_ATHLETE))
    return [min(j // per_session, SESSIONS_PER_ATHLETE - 1) for j in range(n)]


Lexemes = dict[str, dict[str, list[int]]]
"""Per unique text, its lexemes and their positions (`to_tsvector('english', text)`)."""


def context_literal(lexemes: Lexemes, before: str | None, after: str | None) -> str:
    """`messages.context_tsv` of a message, as a tsvector literal: the words of `before` then `after`.

    The same lexemes and position counts as `to_tsvector('english', before || ' ' || after)`
    (`memory.archive_context`), from the unique texts' lexemes (`lexemes`, computed once by Postgres).
    """
    merged: dict[str, list[int]] = {}
    shift = 0
    for text in (before, after):
        if text is None:
            continue
        positions = lexemes[text]
        for lexeme, at in positions.items():
            merged.setdefault(lexeme, []).extend(min(p + shift, 16383) for p in at)
        shift += max((max(at) for at in positions.values()), default=0)
    return " ".join(
        "'" + lex.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(map(str, sorted(set(at))))
        for lex, at in merged.items()
    )


def rows(
    n_messages: int, n_athletes: int, texts: list[str], vectors: list[str], model: str, lexemes: Lexemes
) -> Iterator[tuple[Any, ...]]:
    """The bulk-load rows of the small athletes, in random athlete order; each athlete's messages in time order.

    Each row carries its `context_tsv` (the texts of its neighbours in its session, `context_literal`).
    """
    rng = random.Random(7)
    per_athlete = [n_messages // n_athletes + (1 if i < n_messages % n_athletes else 0) for i in range(n_athletes)]
    picks = [[rng.randrange(len(texts)) for _ in range(n)] for n in per_athlete]
    sessions = [session_plan(n) for n in per_athlete]
    cursor = [0] * n_athletes
    order = [i for i, n in enumerate(per_athlete) for _ in range(n)]
    rng.shuffle(order)
    for a in order:
        j = cursor[a]
        cursor[a] += 1
        yield _row(rng, athlete(a), a, j, picks[a], sessions[a], texts, vectors[picks[a][j]], model, lexemes)


def big_rows(
    n_messages: int, texts: list[str], vectors: list[str], model: str, lexemes: Lexemes
) -> Iterator[tuple[Any, ...]]:
    """The rows of `BIG_ATHLETE`, `n_messages` of them, in time order (their vectors get noise like every row's)."""
    rng = random.Random(13)
    picks = [rng.randrange(len(texts)) for _ in range(n_messages)]
    sessions = session_plan(n_messages)
    for j in range(n_messages):
        yield _row(rng, BIG_ATHLETE, 0, j, picks, sessions, texts, vectors[picks[j]], model, lexemes)


def _row(
    rng: random.Random,
    athlete_id: str,
    a: int,
    j: int,
    picks: list[int],
    sessions: list[int],
    texts: list[str],
    vector: str,
    model: str,
    lexemes: Lexemes,
) -> tuple[Any, ...]:
    session = sessions[j]
    before = texts[picks[j - 1]] if j > 0 and sessions[j - 1] == session else None
    after = texts[picks[j + 1]] if j + 1 < len(picks) and sessions[j + 1] == session else None
    created = T0 + timedelta(days=a % 300 + 7 * session, minutes=j)
    return (
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        athlete_id,
        f"s{session}",
        ("user", "assistant")[j % 2],
        texts[picks[j]],
        created.isoformat(),
        vector,
        model,
        context_literal(lexemes, before, after),
    )


def text_lexemes(conn: psycopg.Connection[Any], texts: list[str]) -> Lexemes:
    """Each text's lexemes and positions, by Postgres (`to_tsvector('english', text)`), in one statement."""
    out: Lexemes = {t: {} for t in texts}
    cur = conn.execute(
        "SELECT t.i, u.lexeme, u.positions FROM unnest(%s::text[]) WITH ORDINALITY AS t(text, i),"
        " unnest(to_tsvector('english', t.text)) AS u",
        (texts,),
    )
    for i, lexeme, positions in cur:
        out[texts[i - 1]][lexeme] = list(positions or [1])
    return out


_NOISE_SQL = """UPDATE messages m SET embedding = l2_normalize(m.embedding + (
    SELECT array_agg((random() - 0.5) * %(span)s)::vector FROM generate_series(1, %(dim)s) WHERE m.id IS NOT NULL))"""
"""Each row's vector plus its own uniform noise (`NOISE_STD` per dimension; the subquery refers to the row so that
Postgres draws it per row), renormalised (pgvector's `l2_normalize`)."""


def build(url: str, args: argparse.Namespace, texts: list[str], embedder: ArchiveEmbedder) -> dict[str, Any]:
    """Create the schema and bulk-load the messages; returns the load's figures."""
    figures: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        setup(conn)
        row = conn.execute("SELECT count(*), bool_or(vector_indexed) FROM messages").fetchone()
        # A kept database is reused when it has the rows, and the flags of the partial HNSW index (one built before
        # `memory.vector_index` has none: promoting its big athlete row by row would take longer than a rebuild).
        flagged = bool(row and row[1]) or args.big_athlete < VECTOR_INDEX_MIN_MESSAGES
        if row and row[0] == args.messages + args.big_athlete and flagged:
            figures["reused"] = True
            return figures
        conn.execute("TRUNCATE messages, conversations")
        started = time.perf_counter()
        embedded = asyncio.run(embedder.embed_documents(texts))
        vectors = [vector_literal(v) for v in embedded]
        figures["unique_texts"] = len(texts)
        figures["embed_unique_s"] = time.perf_counter() - started
        print(f"  embedded {len(texts)} unique texts in {figures['embed_unique_s']:.1f} s", file=sys.stderr)
        lexemes = text_lexemes(conn, texts)
        for name in SECONDARY_INDEXES:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        # No archive has statistics yet, so the postings triggers (schema v42) would write nothing; off, they do
        # not keep a copy of every row of the COPY and of the noise UPDATE (their transition tables).
        for trigger in POSTINGS_TRIGGERS:
            conn.execute(sql.SQL("ALTER TABLE messages DISABLE TRIGGER {}").format(sql.Identifier(trigger)))
        started = time.perf_counter()
        with conn.cursor().copy("COPY conversations (athlete_id, session_id, title) FROM STDIN") as copy:
            for a in [athlete(i) for i in range(args.athletes)] + ([BIG_ATHLETE] if args.big_athlete else []):
                for s in range(SESSIONS_PER_ATHLETE):
                    copy.write_row((a, f"s{s}", None))
        with conn.cursor().copy(
            "COPY messages (id, athlete_id, session_id, role, content, created_at, embedding, embedding_model,"
            " context_tsv) FROM STDIN"
        ) as copy:
            all_rows = itertools.chain(
                rows(args.messages, args.athletes, texts, vectors, embedder.model_id, lexemes),
                big_rows(args.big_athlete, texts, vectors, embedder.model_id, lexemes),
            )
            for i, r in enumerate(all_rows, 1):
                copy.write_row(r)
                if i % 100_000 == 0:
                    print(f"  copied {i:,} messages", file=sys.stderr)
        figures["copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(_NOISE_SQL, {"span": NOISE_STD * 12**0.5, "dim": len(embedded[0])})
        figures["noise_s"] = time.perf_counter() - started
        conn.execute(_INDEXED_SQL, {"min_messages": VECTOR_INDEX_MIN_MESSAGES})  # before the index is built
        for trigger in POSTINGS_TRIGGERS:
            conn.execute(sql.SQL("ALTER TABLE messages ENABLE TRIGGER {}").format(sql.Identifier(trigger)))
        print(f"  added noise to every vector in {figures['noise_s']:.0f} s", file=sys.stderr)
        figures["copy_messages_per_s"] = (args.messages + args.big_athlete) / figures["copy_s"]
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name, ddl in (
            ("btree (athlete_id, session_id, created_at)", "CREATE INDEX messages_session_idx ON messages "
             "(athlete_id, session_id, created_at DESC)"),
            ("GIN (athlete_id, search_tsv)", "CREATE INDEX messages_athlete_search_idx ON messages "
             "USING GIN (athlete_id, search_tsv)"),
            ("HNSW (embedding vector_cosine_ops) WHERE vector_indexed", "CREATE INDEX messages_embedding_hnsw_idx "
             "ON messages USING hnsw (embedding vector_cosine_ops) WHERE vector_indexed"),
        ):  # fmt: skip
            started = time.perf_counter()
            conn.execute(ddl)  # type: ignore[arg-type]
            figures[f"index {name} s"] = time.perf_counter() - started
            print(f"  built {name} in {figures[f'index {name} s']:.0f} s", file=sys.stderr)
        conn.execute("VACUUM ANALYZE messages")
        conn.execute("VACUUM ANALYZE conversations")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('messages'))").fetchone()
        figures["messages_size"] = size[0] if size else None
    return figures


_INDEXED_SQL = """UPDATE messages SET vector_indexed = true WHERE athlete_id IN (
    SELECT athlete_id FROM messages WHERE role IN ('user', 'assistant')
    GROUP BY athlete_id HAVING count(*) >= %(min_messages)s)"""
"""The messages of the archives that the HNSW index holds (`memory.vector_index`), flagged in the bulk load as a
promotion would flag them."""

_LARGE_COUNTS_SQL = """INSERT INTO archive_term_counts (athlete_id, written_since, vector_indexed)
SELECT athlete_id, count(*), bool_and(vector_indexed) FROM messages WHERE role IN ('user', 'assistant')
GROUP BY athlete_id HAVING count(*) >= %(min_messages)s
ON CONFLICT (athlete_id) DO NOTHING RETURNING athlete_id"""


async def refresh_statistics(url: str) -> dict[str, Any]:
    """Keep the term statistics of the archives that the write path would (`memory.term_stats.refresh_due`).

    The bulk load is a COPY, which counts no write: the large archives' rows are made here, then refreshed.
    """
    async with open_stores(scale_settings(url), require_postgres=True) as stores:
        async with stores.pool.connection() as conn:
            cur = await conn.execute(_LARGE_COUNTS_SQL, {"min_messages": LARGE_ARCHIVE_MESSAGES})
            athletes = [str(r["athlete_id"]) for r in await cur.fetchall()]
        started = time.perf_counter()
        refreshed = await refresh_due(stores.pool, athletes)
        seconds = time.perf_counter() - started
    print(f"  term statistics of {len(refreshed)} large archive(s) refreshed in {seconds:.1f} s", file=sys.stderr)
    return {"refreshed": len(refreshed), "refresh_s": seconds}


async def latency(url: str, args: argparse.Namespace, questions: list[str], embedder: ArchiveEmbedder) -> dict:
    rng = random.Random(11)
    picks = [(athlete(rng.randrange(args.athletes)), rng.choice(questions)) for _ in range(WARMUP + args.queries)]
    exits = AsyncExitStack()
    pool = (await exits.enter_async_context(open_stores(scale_settings(url), require_postgres=True))).pool
    archive = Archive(pool, embedder=embedder)
    try:
        out: dict[str, Any] = {}
        vectors, embed_ms = [], []
        for i, (_, q) in enumerate(picks):
            started = time.perf_counter()
            vectors.append(await embedder.embed_query(q))
            if i >= WARMUP:
                embed_ms.append((time.perf_counter() - started) * 1000)
        out["query_embedding_alone"] = {**percentiles(embed_ms), "mean_hits": 0.0}
        for name in ("hybrid", "full_text"):
            ms: list[float] = []
            hits = 0
            for i, ((a, q), v) in enumerate(zip(picks, vectors, strict=True)):
                started = time.perf_counter()
                result = await archive.search_ranked(a, q, k=3, query_embedding=None if name == "full_text" else v)
                if i >= WARMUP:
                    ms.append((time.perf_counter() - started) * 1000)
                    hits += len(result.hits)
                assert result.ranking == ("full_text" if name == "full_text" else "hybrid")
            out[name] = {**percentiles(ms), "mean_hits": hits / len(ms)}
            print(f"  {name}: {out[name]}", file=sys.stderr)
        embedded = await with_query_embedding(archive, embedder, picks, WARMUP)
        out |= embedded
        print(f"  with the query embedding: {embedded}", file=sys.stderr)
        out["load_average"] = os.getloadavg()
        return out
    finally:
        await exits.aclose()


async def with_query_embedding(
    archive: Archive, embedder: ArchiveEmbedder, picks: Sequence[tuple[str, str]], warmup: int
) -> dict[str, dict[str, float]]:
    """Latency of a search that embeds its query, two ways, alternating which runs first on each question.

    `hybrid_with_query_embedding`: as `ConversationMemory.recall` does with a warm model: the embedding runs in a
    task while the search reads its statistics and lexical side (`memory.recall.QueryVector`).
    `hybrid_embedding_first` (the baseline, the previous path): the query is embedded, then searched.
    """
    ms: dict[str, list[float]] = {"hybrid_with_query_embedding": [], "hybrid_embedding_first": []}
    for i, (a, q) in enumerate(picks):
        for name in sorted(ms, reverse=i % 2 == 1):
            started = time.perf_counter()
            if name == "hybrid_embedding_first":
                vector: Any = await embedder.embed_query(q)
            else:
                vector = asyncio.ensure_future(embedder.embed_query(q))
            result = await archive.search_ranked(a, q, k=3, query_embedding=vector)
            assert result.ranking == "hybrid"
            if i >= warmup:
                ms[name].append((time.perf_counter() - started) * 1000)
    return {name: percentiles(v) for name, v in ms.items()}


BIG_WARMUP = 10
"""Warm-up searches before the big athlete's timed ones (each reads the athlete's matching messages: slow)."""
EF_SEARCH_CHOICES = (40, 100, 200)
"""`hnsw.ef_search` values whose recall@10 against exact search is measured on the big athlete."""
RECALL_QUERIES = 50
HYBRID_RECALL_QUERIES = 50
EXACT_LEXICAL = RankingParams(lexical_candidates=None)
"""The large path's MaxScore without a budget of candidates: BM25's exact top `depth` under the kept statistics."""
"""Questions whose ANN top 10 is compared with the exact top 10 (each `EF_SEARCH_CHOICES` value)."""
_VECTOR_TOP10_SQL = """WITH near AS MATERIALIZED (
    SELECT id, content, embedding <=> %(qvec)s::vector AS distance FROM messages
    WHERE athlete_id = %(athlete_id)s AND role IN ('user', 'assistant') AND embedding_model = %(model)s
      AND vector_indexed
    ORDER BY distance LIMIT 20
)
SELECT id, content, distance FROM near ORDER BY distance LIMIT 10"""
"""The vector side's top 10 as recall takes its candidates (twice as many rows, the nearest kept)."""
EPSILON = 1e-3
"""ann-benchmarks' tolerance: an ANN row counts as found when its distance is at most the exact 10th's + EPSILON."""


async def big_archive(
    url: str, args: argparse.Namespace, questions: list[str], embedder: ArchiveEmbedder
) -> dict[str, Any]:
    """The `BIG_ATHLETE` case: latency of the production search, its plan, and ANN-vs-exact recall@10.

    Latency: `--big-queries` searches (after `BIG_WARMUP`) of random LoCoMo questions through `Archive.search_ranked`
    (hybrid with a precomputed query embedding, hybrid with the embedding, full text), k=3. Plan: EXPLAIN of the
    hybrid statement with the production settings (`memory.recall_large.HNSW_SETTINGS_SQL`), which must read
    `messages_embedding_hnsw_idx`. Recall@10, per `EF_SEARCH_CHOICES` value, over `RECALL_QUERIES` questions:
    the vector side alone (the athlete's 10 nearest messages through the index vs sorted exactly) and the
    whole hybrid search at k=10 (`search_messages` vs `exact_vectors=True`): |ANN top 10 ∩ exact top 10| / 10.
    """
    rng = random.Random(17)
    picks = [rng.choice(questions) for _ in range(BIG_WARMUP + args.big_queries)]
    exits = AsyncExitStack()
    pool = (await exits.enter_async_context(open_stores(scale_settings(url), require_postgres=True))).pool
    archive = Archive(pool, embedder=embedder)
    out: dict[str, Any] = {}
    try:
        vectors = [await embedder.embed_query(q) for q in picks]
        for name in ("hybrid", "full_text"):
            ms: list[float] = []
            for i, (q, v) in enumerate(zip(picks, vectors, strict=True)):
                started = time.perf_counter()
                await archive.search_ranked(BIG_ATHLETE, q, k=3, query_embedding=None if name == "full_text" else v)
                if i >= BIG_WARMUP:
                    ms.append((time.perf_counter() - started) * 1000)
            out[name] = percentiles(ms)
            out.setdefault("load_average_latency", os.getloadavg())
            print(f"  big athlete {name}: {out[name]}", file=sys.stderr)
        out |= await with_query_embedding(archive, embedder, [(BIG_ATHLETE, q) for q in picks], BIG_WARMUP)
        print(f"  big athlete with the query embedding: {out}", file=sys.stderr)
        vector = QueryVector(vectors[0], embedder.model_id)
        out["plan_uses_hnsw"] = await _plan_uses_hnsw(pool, picks[0], vector)
        out["recall_at_10"] = await ann_recall(pool, embedder.model_id, picks, vectors)
        out["kept_statistics_agreement"] = await kept_statistics_agreement(pool, picks[:HYBRID_RECALL_QUERIES])
        out["load_average"] = os.getloadavg()
        return out
    finally:
        await exits.aclose()


async def ann_recall(
    pool: Any, model: str, questions: list[str], vectors: list[list[float]]
) -> dict[int, dict[str, Any]]:
    """Recall@10 of the HNSW path against exact search on `BIG_ATHLETE`, per `EF_SEARCH_CHOICES` value.

    Vector side alone over `RECALL_QUERIES` questions, three ways: the same ids; ann-benchmarks' recall (a row
    counts when its distance is at most the exact 10th's + `EPSILON`); the same texts (the big athlete holds each
    LoCoMo text ~36 times, near-duplicates a few thousandths apart, so which copies come first is noise).
    The whole hybrid search (k=10, `search_messages` against `exact_vectors=True` with exact MaxScore,
    `EXACT_LEXICAL`) over `HYBRID_RECALL_QUERIES` of them.
    """
    out: dict[int, dict[str, Any]] = {}
    exact_hybrid: dict[int, set[str]] = {}
    for ef in EF_SEARCH_CHOICES:
        vec_recall, vec_eps, vec_texts, hyb_recall, vec_ms = [], [], [], [], []
        for i, (q, v) in enumerate(zip(questions[:RECALL_QUERIES], vectors[:RECALL_QUERIES], strict=True)):
            sql_params = {"athlete_id": BIG_ATHLETE, "model": model, "qvec": vector_literal(v)}
            async with pool.connection() as conn:
                async with conn.transaction():
                    await conn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(ef)})
                    started = time.perf_counter()
                    ann = await (await conn.execute(_VECTOR_TOP10_SQL, sql_params, prepare=False)).fetchall()
                    vec_ms.append((time.perf_counter() - started) * 1000)
                async with conn.transaction():
                    await conn.execute("SET LOCAL enable_indexscan = off")
                    exact = await (await conn.execute(_VECTOR_TOP10_SQL, sql_params, prepare=False)).fetchall()
            if exact:
                vec_recall.append(len({r["id"] for r in ann} & {r["id"] for r in exact}) / len(exact))
                vec_eps.append(sum(1 for r in ann if r["distance"] <= exact[-1]["distance"] + EPSILON) / len(exact))
                texts = {r["content"] for r in exact}
                vec_texts.append(len({r["content"] for r in ann} & texts) / len(texts))
            if i < HYBRID_RECALL_QUERIES:
                qv = QueryVector(v, model)
                if i not in exact_hybrid:
                    e = await search_messages(
                        pool, BIG_ATHLETE, q, k=10, vector=qv, exact_vectors=True, params=EXACT_LEXICAL
                    )
                    exact_hybrid[i] = {h.message_id for h in e.hits}
                a = await search_messages(pool, BIG_ATHLETE, q, k=10, vector=qv, params=RankingParams(ef_search=ef))
                hyb_recall.append(len({h.message_id for h in a.hits} & exact_hybrid[i]) / max(len(exact_hybrid[i]), 1))
        out[ef] = {
            "vector_side": statistics.fmean(vec_recall),
            "vector_side_eps": statistics.fmean(vec_eps),
            "vector_side_texts": statistics.fmean(vec_texts),
            "hybrid": statistics.fmean(hyb_recall),
            "vector_side_ms": percentiles(vec_ms),
        }
        print(f"  big athlete ef_search={ef}: {out[ef]}", file=sys.stderr)
    return out


async def kept_statistics_agreement(pool: Any, questions: list[str]) -> dict[str, Any]:
    """Full-text top 10 of `BIG_ATHLETE` from its blocks against the one statement and against MaxScore.

    The blocks (`memory.posting_blocks`, the default path) and the one statement over every match differ by the
    mean length BM25 normalises against (the athlete's messages against the matching ones) and by statistics up to
    `memory.term_stats.REFRESH_GROWTH` old. MaxScore over `archive_postings` (the previous path, the baseline, run
    here with the athlete's blocks set aside) with its budget of candidates and without (`EXACT_LEXICAL`): exact
    MaxScore and the blocks both give BM25's exact top under the kept statistics. |top 10 ∩ top 10| / 10, mean,
    and latencies.
    """
    ms: dict[str, list[float]] = {"kept": [], "one": [], "maxscore_budget": [], "maxscore_exact": []}
    tops: dict[str, list[set[str]]] = {name: [] for name in ms}

    async def timed(name: str, q: str, **kwargs: Any) -> None:
        started = time.perf_counter()
        result = await search_messages(pool, BIG_ATHLETE, q, k=10, **kwargs)
        ms[name].append((time.perf_counter() - started) * 1000)
        tops[name].append({h.message_id for h in result.hits})

    for q in questions:
        await timed("kept", q)
        await timed("one", q, kept_statistics=False)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT block_messages FROM archive_term_counts WHERE athlete_id = %s", (BIG_ATHLETE,))
        blocks = (await cur.fetchone() or {}).get("block_messages")
        await conn.execute("UPDATE archive_term_counts SET block_messages = NULL WHERE athlete_id = %s", (BIG_ATHLETE,))
    try:
        for q in questions:
            await timed("maxscore_budget", q)
            await timed("maxscore_exact", q, params=EXACT_LEXICAL)
    finally:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE archive_term_counts SET block_messages = %s WHERE athlete_id = %s", (blocks, BIG_ATHLETE)
            )

    def overlap(a: str, b: str) -> float:
        return statistics.fmean(len(x & y) / max(len(y), 1) for x, y in zip(tops[a], tops[b], strict=True))

    out = {
        "top10_overlap": overlap("kept", "one"),
        "blocks_vs_exact_maxscore_top10": overlap("kept", "maxscore_exact"),
        "budget_vs_exact_maxscore_top10": overlap("maxscore_budget", "maxscore_exact"),
        **{f"{name}_ms": percentiles(v) for name, v in ms.items()},
    }
    print(f"  big athlete kept statistics vs one statement: {out}", file=sys.stderr)
    return out


async def _plan_uses_hnsw(pool: Any, query: str, vector: QueryVector) -> bool:
    """Whether EXPLAIN of the production vector side for `BIG_ATHLETE` (an archive in the index) reads the index."""
    p = RankingParams()
    sql_params = {
        "athlete_id": BIG_ATHLETE, "excluded": [], "depth": p.depth, "scan_rows": VECTOR_SCAN_FACTOR * p.depth,
        "qvec": vector_literal(vector.values), "model": vector.model_id,
    }  # fmt: skip
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(p.ef_search)})
        plan = "\n".join(
            r["QUERY PLAN"]
            for r in await (await conn.execute("EXPLAIN " + _INDEXED_SEMANTIC_SQL, sql_params)).fetchall()
        )
    line = next((x.strip() for x in plan.splitlines() if "messages_embedding_hnsw_idx" in x), "")
    print(f"  big athlete plan: {line or 'no HNSW index scan'}", file=sys.stderr)
    return bool(line)


INGEST_BACKENDS = ("torch", "onnx-int8-1worker", "onnx-int8")
"""Local embedders whose ingest is timed side by side: torch (the first path), ONNX int8 on one worker with the
earlier batches (the previous default, `single_worker_int8`), and the default (ONNX int8, `EMBED_WORKERS` workers)."""
INDEXED_ARCHIVE = "onnx-int8-indexed-archive"
"""The default embedder importing into an archive the HNSW index holds (`memory.vector_index`): a large athlete."""
QUERY_EMBEDDINGS = 300
"""Query embeddings timed per backend (after `WARMUP // 5` warm-up ones), one at a time, as a search makes them."""


class _Precomputed(Embeddings):
    """Vectors looked up, not computed: times the write path's own cost (formatting, INSERT, HNSW insert)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[" ".join(t.split())] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[" ".join(text.split())]


def single_worker_int8(settings: Settings) -> ArchiveEmbedder:
    """The previous default embedder, as a baseline: ONNX int8 on one worker.

    One replica, 128 texts per call and 64 per forward pass, the query behind the batches in the same pool.
    """
    model = LocalMiniLMEmbeddings("onnx-int8", settings.model_cache_dir, batch_size=64, replicas=1)
    embedder = ArchiveEmbedder(model, f"local:{LOCAL_MODEL_NAME}", batch_size=128, workers=1)
    embedder.query_executor = embedder.executor
    return embedder


async def ingest(url: str, args: argparse.Namespace, texts: list[str], questions: list[str]) -> dict[str, Any]:
    """Ingest rate of `coach import-transcript`'s code path (`Archive.import_transcript`) per local backend.

    `--ingest` LoCoMo turns (in conversation order, roles alternating) are imported as one transcript into a new
    session, once per backend of `INGEST_BACKENDS` (model loaded and warmed first, as the server and commands do)
    and once without embeddings, into the database built above (1 M rows, HNSW included) or a fresh one with
    `--ingest-only`. Also times `QUERY_EMBEDDINGS` query embeddings per backend (LoCoMo questions).
    """
    records = [
        {"role": ("user", "assistant")[i % 2], "content": text, "ts": (T0 + timedelta(seconds=i)).isoformat()}
        for i, text in enumerate(texts[: args.ingest])
    ]
    exits = AsyncExitStack()
    pool = (await exits.enter_async_context(open_stores(scale_settings(url), require_postgres=True))).pool
    out: dict[str, Any] = {}
    try:
        cached: dict[str, list[float]] = {}
        for name in (*INGEST_BACKENDS, INDEXED_ARCHIVE, "vectors_precomputed", "no_embeddings"):
            embedder = None
            if name == INDEXED_ARCHIVE:  # the default embedder, into an archive already in the HNSW index
                async with pool.connection() as conn:
                    await conn.execute(
                        """INSERT INTO archive_term_counts (athlete_id, written_since, vector_indexed)
                           VALUES (%s, 0, true) ON CONFLICT (athlete_id) DO UPDATE SET vector_indexed = true""",
                        (f"ingest-{name}",),
                    )
            if name == "vectors_precomputed":  # the write alone (rows, vectors, HNSW insert): no model call
                default = get_embedder(get_settings().model_copy(update={"embedding_provider": "local"}))
                assert default is not None
                sample = [" ".join(t.split()) for t in texts[: args.ingest]]
                cached = dict(zip(sample, await default.embed_documents(sample), strict=True))
                embedder = ArchiveEmbedder(_Precomputed(cached), default.model_id)
            elif name == "onnx-int8-1worker":
                embedder = single_worker_int8(get_settings())
            elif name != "no_embeddings":
                backend = INGEST_BACKENDS[2] if name == INDEXED_ARCHIVE else name
                update = {"embedding_provider": "local", "embedding_backend": backend}
                embedder = get_embedder(get_settings().model_copy(update=update))
            if embedder is not None and name != "vectors_precomputed":
                assert await asyncio.to_thread(embedder.warm_up)
            archive = Archive(pool, embedder=embedder)
            started = time.perf_counter()
            result = await archive.import_transcript(f"ingest-{name}", "s", records)
            total_s = time.perf_counter() - started
            out[name] = {"messages": result.written, "seconds": total_s, "messages_per_s": result.written / total_s}
            if embedder is not None and name != "vectors_precomputed":
                ms: list[float] = []
                for i, q in enumerate(questions[: WARMUP // 5 + QUERY_EMBEDDINGS]):
                    t = time.perf_counter()
                    await embedder.embed_query(q)
                    if i >= WARMUP // 5:
                        ms.append((time.perf_counter() - t) * 1000)
                out[name]["query_embedding_ms"] = percentiles(ms)
            print(f"  ingest {name}: {out[name]}", file=sys.stderr)
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM messages WHERE athlete_id LIKE 'ingest-%'")
                await conn.execute("DELETE FROM conversations WHERE athlete_id LIKE 'ingest-%'")
        out["ratio"] = {
            f"{new} / {old}": out[new]["messages_per_s"] / out[old]["messages_per_s"]
            for old, new in ((INGEST_BACKENDS[0], INGEST_BACKENDS[2]), (INGEST_BACKENDS[1], INGEST_BACKENDS[2]))
        }
        out["load_average_1min"] = os.getloadavg()[0]
        return out
    finally:
        await exits.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--athletes", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument(
        "--big-athlete", type=int, default=100_000, help="messages of one more athlete (HNSW path); 0: none"
    )
    parser.add_argument("--big-queries", type=int, default=60, help="searches timed on the big athlete")
    parser.add_argument(
        "--ingest", type=int, default=2_000, help="messages written through the ingest path; 0: no ingest figures"
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="LoCoMo file whose turns and questions are used"
    )
    parser.add_argument("--database", help="database to build (default: <DATABASE_URL's database>_recall_scale)")
    parser.add_argument("--keep", action="store_true", help="keep the database (a rerun of the same size reuses it)")
    parser.add_argument("--ingest-only", action="store_true", help="only the ingest rates, into an empty database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    require_locomo(args.data, parser)
    if args.messages < args.athletes or args.athletes < 1:
        parser.error("need at least one message per athlete")

    base = get_settings().database_url
    name = args.database or f"{psycopg.conninfo.conninfo_to_dict(base).get('dbname') or 'coach'}_recall_scale"
    url = scale_url(base, name)
    embedder = get_embedder(get_settings().model_copy(update={"embedding_provider": "local"}))
    assert embedder is not None and embedder.warm_up()  # as the server and the commands do before a first recall
    texts, questions = locomo_texts(args.data)
    with psycopg.connect(base, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    report: dict[str, Any] = {
        "database": name, "messages": args.messages, "athletes": args.athletes, "big_athlete_messages": args.big_athlete
    }  # fmt: skip
    try:
        if args.ingest_only:
            with psycopg.connect(url, autocommit=True) as conn:
                setup(conn)
                conn.execute("TRUNCATE messages, conversations")
        else:
            print(f"building {name}: {args.messages:,} messages, {args.athletes:,} athletes", file=sys.stderr)
            report["load"] = build(url, args, texts, embedder)
            report["load"]["term_statistics"] = asyncio.run(refresh_statistics(url))
            print("searching", file=sys.stderr)
            report["search_ms"] = asyncio.run(latency(url, args, questions, embedder))
            if args.big_athlete:
                print(f"searching the big athlete ({args.big_athlete:,} messages)", file=sys.stderr)
                report["big_athlete"] = asyncio.run(big_archive(url, args, questions, embedder))
        if args.ingest > 0:  # `--ingest 0`: the scale figures only
            print("ingesting", file=sys.stderr)
            report["ingest"] = asyncio.run(ingest(url, args, texts, questions))
    finally:
        if not args.keep:
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def print_report(r: dict[str, Any]) -> None:
    if "load" in r:
        _print_scale(r)
    if "ingest" not in r:
        return
    ing = r["ingest"]
    where = "an empty table" if "load" not in r else f"the {r['messages']:,}-row table"
    print(f"ingest through Archive.import_transcript (coach import-transcript's path) into {where}:")
    for name, s in ing.items():
        if name in ("ratio", "load_average_1min"):
            continue
        line = f"  {name:14s} {s['messages']} messages in {s['seconds']:5.1f} s: {s['messages_per_s']:5.0f} messages/s"
        if "query_embedding_ms" in s:
            q = s["query_embedding_ms"]
            line += f"; query embedding p50 {q['p50']:.1f} ms, p95 {q['p95']:.1f} ms"
        print(line)
    for pair, ratio in ing["ratio"].items():
        print(f"  {pair}: {ratio:.2f}x")
    print(f"  load average (1 min) at the end: {ing['load_average_1min']:.2f} on {os.cpu_count()} cores")


def _print_scale(r: dict[str, Any]) -> None:
    print(f"Recall at scale: {r['messages']:,} messages, {r['athletes']:,} athletes (database {r['database']})")
    load = r["load"]
    if load.get("reused"):
        print("load: reused a kept database of the same size")
    else:
        print(
            f"load: {load['unique_texts']} unique LoCoMo texts embedded once in {load['embed_unique_s']:.1f} s;"
            f" COPY {load['copy_s']:.0f} s ({load['copy_messages_per_s']:,.0f} messages/s, vectors reused);"
            f" table + indexes {load['messages_size']}"
        )
        for key, value in load.items():
            if key.startswith("index "):
                print(f"  {key[6:-2]}: built in {value:.0f} s")
    search = r["search_ms"]
    print(f"search, one athlete at a time, k=3 ({search['hybrid']['n']} queries after {WARMUP} warm-up):")
    _print_latencies(search)
    print(f"  load average after: {_load(search['load_average'])}")
    big = r.get("big_athlete")
    if big:
        print(f"one athlete with {r['big_athlete_messages']:,} messages ({big['hybrid']['n']} queries):")
        _print_latencies(big)
        print(f"  load average: {_load(big['load_average_latency'])}")
        print(f"  EXPLAIN of its vector side reads messages_embedding_hnsw_idx: {big['plan_uses_hnsw']}")
        for ef, rec in big["recall_at_10"].items():
            v = rec["vector_side_ms"]
            print(
                f"  hnsw.ef_search={ef}: recall@10 vs exact {rec['vector_side']:.3f} ids /"
                f" {rec['vector_side_eps']:.3f} ann-benchmarks / {rec['vector_side_texts']:.3f} texts"
                f" (vector side alone, p50"
                f" {v['p50']:.1f} ms, p95 {v['p95']:.1f} ms), {rec['hybrid']:.3f} (hybrid search, k=10)"
            )
        agree = big["kept_statistics_agreement"]
        kept, one, budget, exact = (agree[f"{n}_ms"] for n in ("kept", "one", "maxscore_budget", "maxscore_exact"))
        print(
            f"  full text, blocks vs the one statement over every match: top-10 overlap"
            f" {agree['top10_overlap']:.3f}; p50 {kept['p50']:.1f} vs {one['p50']:.1f} ms"
        )
        print(
            f"  full text, blocks vs MaxScore over the postings (the previous path): p50 {kept['p50']:.1f} vs"
            f" {budget['p50']:.1f} ms ({budget['p50'] / kept['p50']:.2f}x), p95 {kept['p95']:.1f} vs"
            f" {budget['p95']:.1f} ms ({budget['p95'] / kept['p95']:.2f}x); exact MaxScore p50 {exact['p50']:.1f},"
            f" p95 {exact['p95']:.1f} ms"
        )
        print(
            f"  full-text top-10 overlap with exact MaxScore: blocks {agree['blocks_vs_exact_maxscore_top10']:.3f},"
            f" MaxScore with {RankingParams().lexical_candidates} candidates"
            f" {agree['budget_vs_exact_maxscore_top10']:.3f}"
        )


def _print_latencies(figures: dict[str, Any]) -> None:
    for name, s in figures.items():
        if isinstance(s, dict) and "p95" in s:
            print(f"  {name:28s} p50 {s['p50']:6.1f} ms  p95 {s['p95']:6.1f} ms  p99 {s['p99']:6.1f} ms")


def _load(load: Sequence[float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    """Count, nearest-rank p50 / p95 / p99 and mean of timings (the benchmarks of recall share it)."""
    ordered = sorted(ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {"n": len(ordered), "p50": pct(50), "p95": pct(95), "p99": pct(99), "mean": statistics.fmean(ordered)}


if __name__ == "__main__":
    sys.exit(main())
