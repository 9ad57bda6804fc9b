"""Recall's vector side on the HNSW index (a large archive's path) gives exact search's answer, per athlete.

The planner reads `messages_embedding_hnsw_idx` only when an athlete holds a large share of the table; on a small
fixture a pool whose sessions forbid the other plans (sequential and bitmap scans, sorts) makes it read the index,
and EXPLAIN checks that it does. Other athletes' messages close to the query (the "crowd") fill the top of the
index: without pgvector's iterative scan an HNSW scan stops at `ef_search` rows before the athlete filter and finds
none of the athlete's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from config.settings import get_settings
from memory.archive import Archive
from memory.db import CONNECTION_KWARGS, DictPool
from memory.embeddings import vector_literal
from memory.messages import ChatMessage, new_message_id
from memory.recall import _HYBRID_SQL, QueryVector, RankingParams, search_messages
from memory.recall_large import HNSW_SETTINGS_SQL
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
    index_pool, exact_pool = await pool_with(INDEX_ONLY), await pool_with(EXACT_ONLY)
    try:
        params = RankingParams()
        async with index_pool.connection() as conn, conn.transaction():
            await conn.execute(HNSW_SETTINGS_SQL, {"ef_search": str(params.ef_search)})
            cur = await conn.execute(
                "EXPLAIN " + _HYBRID_SQL,
                {
                    "query": PARAPHRASE, "athlete_id": athlete_id, "excluded": [], "k": 10, "k1": params.k1,
                    "b": params.b, "depth": params.depth, "lexical_weight": params.lexical_weight,
                    "context_weight": params.context_weight, "session_weight": params.session_weight,
                    "headline_options": "", "qvec": vector_literal(vectors[PARAPHRASE]), "model": model,
                },
            )  # fmt: skip
            plan = "\n".join(r["QUERY PLAN"] for r in await cur.fetchall())
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
