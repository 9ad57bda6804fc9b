"""Recall's vector side on the HNSW index (a large archive's path) gives exact search's answer, per athlete.

The index is partial (`memory.vector_index`): it holds the messages of archives promoted at a refresh (10,000
messages; 1 here), and only the large path's statement for such an athlete carries its predicate. On a small
fixture a pool whose sessions forbid the other plans (sequential and bitmap scans, sorts) makes the planner read the
index, and EXPLAIN checks that it does. Other athletes' messages close to the query (the "crowd", promoted too) fill
the top of the index: without pgvector's iterative scan an HNSW scan stops at `ef_search` rows before the athlete
filter and finds none of the athlete's own. The last tests hold the promotion's locking: a write and a promotion of
the same athlete never leave one of its messages outside the index.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from config.settings import get_settings
from memory.archive import Archive
from memory.archive_insert import insert_statement
from memory.db import CONNECTION_KWARGS, DictPool
from memory.embeddings import vector_literal
from memory.messages import ChatMessage, new_message_id
from memory.recall import _HYBRID_SQL, QueryVector, RankingParams, search_messages
from memory.recall_large import _INDEXED_SEMANTIC_SQL, HNSW_SETTINGS_SQL
from memory.term_stats import refresh_due
from memory.vector_index import LOCK_FLAGS_SQL, VECTOR_INDEX_SETUP, promote
from records.stores import open_stores
from tests.integration.test_recall import CORPUS, PARAPHRASE, local_embedder

pytestmark = pytest.mark.integration
T0 = datetime(2025, 5, 6, 7, 0, tzinfo=UTC)
CROWD = 120
"""Messages of other athletes whose vectors lie next to the query's, more than the default `ef_search` (40)."""

INDEX_ONLY = "-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off"
EXACT_ONLY = "-c enable_indexscan=off"


@pytest_asyncio.fixture
async def archive() -> AsyncIterator[Archive]:
    async with open_stores(require_postgres=True) as stores:
        yield Archive(stores.pool, timeout_s=5, embedder=local_embedder())


async def pool_with(options: str) -> DictPool:
    pool: DictPool = AsyncConnectionPool(
        get_settings().database_url,
        kwargs={**CONNECTION_KWARGS, "options": options},
        min_size=1,
        max_size=2,
        open=False,
    )
    await pool.open(wait=True, timeout=10)
    return pool


def archive_of(athlete_id: str) -> list[ChatMessage]:
    """Twelve turns per corpus pair, in four sessions: more than `k`, the same sentences for every athlete."""
    out = []
    for i in range(3):
        for j, (question, answer) in enumerate(CORPUS):
            at = T0 + timedelta(days=7 * i, hours=j)
            out += [
                ChatMessage(new_message_id(), athlete_id, f"s{j}", "user", f"{question} ({i})", at),
                ChatMessage(
                    new_message_id(), athlete_id, f"s{j}", "assistant", f"{answer} ({i})", at + timedelta(seconds=5)
                ),
            ]
    return out


async def add_crowd(archive: Archive, athlete_id: str, query_vector: list[float], model: str) -> None:
    """`CROWD` messages of other athletes, their vectors the query's plus a little noise (closer than any own)."""
    rng = np.random.default_rng(5)
    q = np.asarray(query_vector)
    crowd = [
        ChatMessage(new_message_id(), f"{athlete_id}-crowd{i % 7}", "c", "user", f"filler {i}", T0)
        for i in range(CROWD)
    ]
    await archive.write(crowd)
    async with archive.pool.connection() as conn:
        for m in crowd:
            v = q + rng.normal(0.0, 0.005, q.shape)
            await conn.execute(
                "UPDATE messages SET embedding = %s::vector, embedding_model = %s WHERE id = %s",
                (vector_literal((v / np.linalg.norm(v)).tolist()), model, m.id),
            )


async def explain(pool: DictPool, statement: str, params: dict[str, object]) -> str:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(RankingParams().ef_search)})
        cur = await conn.execute("EXPLAIN " + statement, params)
        return "\n".join(r["QUERY PLAN"] for r in await cur.fetchall())


async def flags(archive: Archive, athlete_id: str) -> tuple[bool | None, list[bool]]:
    """The athlete's counts-row flag (None: no row) and its messages' flags."""
    async with archive.pool.connection() as conn:
        cur = await conn.execute("SELECT vector_indexed FROM archive_term_counts WHERE athlete_id = %s", (athlete_id,))
        row = await cur.fetchone()
        cur = await conn.execute("SELECT vector_indexed FROM messages WHERE athlete_id = %s", (athlete_id,))
        return (None if row is None else bool(row["vector_indexed"])), [
            bool(r["vector_indexed"]) for r in await cur.fetchall()
        ]


async def test_the_hnsw_path_finds_what_exact_search_finds_and_only_the_athletes_own(
    archive: Archive, athlete_id: str
) -> None:
    twin = f"{athlete_id}-twin"
    mine, theirs = archive_of(athlete_id), archive_of(twin)
    await archive.write(mine + theirs, embed=True)
    assert archive.embedder is not None
    model = archive.embedder.model_id
    vectors = {q: await archive.embedder.embed_query(q) for q in (PARAPHRASE, "tyre pressure gravel race")}
    await add_crowd(archive, athlete_id, vectors[PARAPHRASE], model)
    params = RankingParams()
    statement_params = {
        "query": PARAPHRASE, "athlete_id": athlete_id, "excluded": [], "k": 10, "k1": params.k1, "b": params.b,
        "depth": params.depth, "lexical_weight": params.lexical_weight, "context_weight": params.context_weight,
        "session_weight": params.session_weight, "headline_options": "", "qvec": vector_literal(vectors[PARAPHRASE]),
        "model": model, "scan_rows": 4 * params.depth,
    }  # fmt: skip
    index_pool, exact_pool = await pool_with(INDEX_ONLY), await pool_with(EXACT_ONLY)
    try:
        # Not promoted: the index holds none of these messages, and no statement can read it for them.
        assert (await flags(archive, athlete_id))[1] == [False] * len(mine)
        assert "messages_embedding_hnsw_idx" not in await explain(index_pool, _HYBRID_SQL, statement_params)
        everyone = [athlete_id, twin, *(f"{athlete_id}-crowd{i}" for i in range(7))]
        assert await refresh_due(archive.pool, everyone, min_messages=1, vector_index_min=1) == sorted(everyone)
        assert await flags(archive, athlete_id) == (True, [True] * len(mine))
        plan = await explain(index_pool, _INDEXED_SEMANTIC_SQL, statement_params)
        assert "messages_embedding_hnsw_idx" in plan, plan
        for who, own in ((athlete_id, mine), (twin, theirs)):
            for query, values in vectors.items():
                vector = QueryVector(values, model)
                on_index = await search_messages(index_pool, who, query, k=10, vector=vector)
                exact = await search_messages(exact_pool, who, query, k=10, vector=vector)
                assert on_index.ranking == exact.ranking == "hybrid"
                assert len(exact.hits) == 10
                assert [(h.message_id, round(h.score, 9)) for h in on_index.hits] == [
                    (h.message_id, round(h.score, 9)) for h in exact.hits
                ], (who, query)
                assert {h.message_id for h in on_index.hits} <= {m.id for m in own}, (who, query)
    finally:
        await index_pool.close()
        await exact_pool.close()


async def test_an_archive_enters_the_index_once_it_reaches_the_size_and_its_later_messages_with_it(
    archive: Archive, athlete_id: str
) -> None:
    first = archive_of(athlete_id)[:20]
    await archive.write(first, embed=True)
    assert await refresh_due(archive.pool, [athlete_id], min_messages=1, vector_index_min=21) == [athlete_id]
    assert await flags(archive, athlete_id) == (False, [False] * 20)  # 20 < 21: statistics, not the index
    await archive.write(archive_of(athlete_id)[20:21], embed=True)  # 21 now, under the 10 % growth of 20
    assert await refresh_due(archive.pool, [athlete_id], min_messages=1, vector_index_min=21) == []  # promoted only
    assert await flags(archive, athlete_id) == (True, [True] * 21)
    later = archive_of(athlete_id)[21:24]
    await archive.write(later, embed=True)
    assert await flags(archive, athlete_id) == (True, [True] * 24)
    other = f"{athlete_id}-other"
    await archive.write([ChatMessage(new_message_id(), other, "s", "user", "hello", T0)])
    assert await flags(archive, other) == (False, [False])  # per athlete


async def test_a_write_during_a_promotion_waits_for_it_and_inserts_into_the_index(
    archive: Archive, athlete_id: str
) -> None:
    await archive.write(archive_of(athlete_id)[:4], embed=True)
    async with archive.pool.connection() as promoter:
        async with promoter.transaction():  # a promotion holding the counts row (as `refresh` does)
            await promoter.execute("SELECT 1 FROM archive_term_counts WHERE athlete_id = %s FOR UPDATE", (athlete_id,))
            await promoter.execute(
                "UPDATE archive_term_counts SET vector_indexed = true WHERE athlete_id = %s", (athlete_id,)
            )
            await promoter.execute("UPDATE messages SET vector_indexed = true WHERE athlete_id = %s", (athlete_id,))
            write = asyncio.create_task(archive.write(archive_of(athlete_id)[4:6], embed=True))
            await asyncio.sleep(0.5)
            assert not write.done()  # waiting for the promotion's lock
        assert await write == 2
    assert await flags(archive, athlete_id) == (True, [True] * 6)


async def test_a_promotion_during_a_write_waits_for_it_and_then_takes_the_write_s_rows(
    archive: Archive, athlete_id: str
) -> None:
    await archive.write(archive_of(athlete_id)[:4], embed=True)
    late = ChatMessage(new_message_id(), athlete_id, "s0", "user", "a late message", T0 + timedelta(days=30))
    async with archive.pool.connection() as writer:
        async with writer.transaction():  # a write between its first statement and its commit
            cur = await writer.execute(LOCK_FLAGS_SQL, {"athletes": [athlete_id]})
            assert [r["vector_indexed"] for r in await cur.fetchall()] == [False]
            await writer.execute(*insert_statement([late], {}, None, None))
            promotion = asyncio.create_task(promote(archive.pool, athlete_id, batch_rows=3))
            await asyncio.sleep(0.5)
            assert not promotion.done()  # its batches ran; its last step waits for the write's lock
            assert await flags(archive, athlete_id) == (False, [True] * 4)
        assert await promotion == 5
    assert await flags(archive, athlete_id) == (True, [True] * 5)


async def test_the_index_over_every_message_is_replaced_by_the_partial_one_once(archive: Archive) -> None:
    """Schema v59 on a database of the previous schema: the HNSW index over every message becomes the partial one;
    run again, it keeps that index (no rebuild). In a transaction rolled back: the test database keeps its own."""
    definition = """SELECT i.indexrelid::int AS oid, pg_get_expr(i.indpred, i.indrelid) AS predicate FROM pg_index i
                    WHERE i.indexrelid = to_regclass('messages_embedding_hnsw_idx')"""
    async with archive.pool.connection() as conn, conn.transaction(force_rollback=True):
        await conn.execute("DROP INDEX messages_embedding_hnsw_idx")
        await conn.execute(
            "CREATE INDEX messages_embedding_hnsw_idx ON messages USING hnsw (embedding vector_cosine_ops)"
        )
        assert (await (await conn.execute(definition)).fetchone() or {}).get("predicate") is None
        await conn.execute(VECTOR_INDEX_SETUP)
        partial = await (await conn.execute(definition)).fetchone()
        assert partial is not None and partial["predicate"] == "vector_indexed"
        await conn.execute(VECTOR_INDEX_SETUP)
        assert await (await conn.execute(definition)).fetchone() == partial
