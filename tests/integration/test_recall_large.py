"""Recall on an archive with kept statistics (`memory.term_stats`, `memory.recall_large`).

The large-archive path must rank exactly as BM25 over every message would with the same statistics: the expected
ranking here is computed in Python from each message's lexemes (read from Postgres, df counted here, not by
`ts_stat`), over the whole archive, and compared with `search_messages` (full text, no session lift: score
BM25/(BM25+1)), for queries where MaxScore drops the common words and where it cannot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from memory.archive import Archive
from memory.embeddings import vector_literal
from memory.messages import ChatMessage, new_message_id
from memory.recall import QueryVector, RankingParams, search_messages
from memory.recall_large import search_large
from memory.term_stats import refresh, refresh_due
from records.erase import erase_athlete
from records.stores import open_stores

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
COMMON = ["caroline", "training", "ride"]
"""Words in most messages (their IDF is low: MaxScore leaves them out of the messages it reads)."""
RARE = ["pottery", "volcano", "harmonica", "saxophone", "lighthouse", "marathon", "glacier", "origami"]
FILLER = ["legs", "felt", "heavy", "coffee", "after", "climb", "tempo", "easy", "spin", "hills", "wind", "sunny"]
PARAMS = RankingParams(session_weight=0.0)
MESSAGE_TERMS_SQL = """SELECT m.id::text AS id, length(m.search_tsv) AS own_len,
       length(coalesce(m.context_tsv, ''::tsvector)) AS ctx_len,
       (SELECT coalesce(jsonb_object_agg(u.lexeme, coalesce(array_length(u.positions, 1), 1)), '{}')
        FROM unnest(m.search_tsv) u) AS own,
       (SELECT coalesce(jsonb_object_agg(u.lexeme, coalesce(array_length(u.positions, 1), 1)), '{}')
        FROM unnest(coalesce(m.context_tsv, ''::tsvector)) u) AS ctx
FROM messages m WHERE m.athlete_id = %s AND m.role IN ('user', 'assistant')"""
"""Each user/assistant message's lengths and its lexemes' counts, own and contextual (counted here, not by recall)."""


def messages_of(athlete_id: str, n: int, seed: int) -> list[ChatMessage]:
    rng = random.Random(seed)
    out = []
    for j in range(n):
        words = rng.sample(FILLER, 4) + [w for w in COMMON if rng.random() < 0.6]
        if rng.random() < 0.05:
            words.append(rng.choice(RARE))
        rng.shuffle(words)
        out.append(
            ChatMessage(
                id=new_message_id(),
                athlete_id=athlete_id,
                session_id=f"s{j // 40}",
                turn_id=None,
                role=("user", "assistant")[j % 2],
                content=" ".join(words),
                created_at=T0 + timedelta(minutes=j),
            )
        )
    return out


@pytest_asyncio.fixture
async def archive() -> AsyncIterator[Archive]:
    async with open_stores(require_postgres=True) as stores:
        yield Archive(stores.pool, timeout_s=5)


async def expected_bm25(archive: Archive, athlete_id: str, query: str, p: RankingParams) -> list[tuple[str, float]]:
    """BM25 of every message of the athlete, from the kept n and mean lengths but df counted here."""
    async with archive.pool.connection() as conn:
        stats = await (
            await conn.execute(
                "SELECT n, avg_own_len, avg_context_len FROM archive_term_counts WHERE athlete_id = %s", (athlete_id,)
            )
        ).fetchone()
        assert stats is not None and stats["n"] is not None
        cur = await conn.execute(
            MESSAGE_TERMS_SQL,
            (athlete_id,),
        )
        rows = await cur.fetchall()
        lexemes = await (
            await conn.execute(
                "SELECT array_agg(l) AS l FROM unnest(tsvector_to_array(to_tsvector('english', %s))) l"
                " WHERE length(l) > 1",
                (query,),
            )
        ).fetchone()
    assert lexemes is not None
    terms = lexemes["l"] or []
    df: dict[str, int] = defaultdict(int)
    for r in rows:
        for t in set(r["own"]) | set(r["ctx"]):
            df[t] += 1
    n = stats["n"]
    avgdl = stats["avg_own_len"] + p.context_weight * stats["avg_context_len"]
    scored = []
    for r in rows:
        dl = r["own_len"] + p.context_weight * r["ctx_len"]
        score = 0.0
        for t in terms:
            tf = r["own"].get(t, 0) + p.context_weight * r["ctx"].get(t, 0)
            if tf:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf * (p.k1 + 1) / (tf + p.k1 * (1 - p.b + p.b * dl / avgdl))
        if score > 0:
            scored.append((r["id"], score))
    return sorted(scored, key=lambda x: -x[1])


@pytest.mark.parametrize(
    "query",
    [
        "When did Caroline talk about pottery?",  # a rare word: the common ones are left out of the read
        "caroline training ride",  # common words only: every message holding one is read
        "pottery volcano harmonica caroline",
        "What did Caroline say after the tempo ride in the wind?",
    ],
)
async def test_the_large_path_ranks_as_bm25_over_the_whole_archive(archive: Archive, query: str) -> None:
    athlete = f"large-{uuid.uuid4().hex[:8]}"
    messages = messages_of(athlete, 400, seed=3)
    assert await archive.write(messages[:200], embed=True) == 200  # embed=True also fills the context field
    assert await archive.write(messages[200:], embed=True) == 200
    assert await refresh(archive.pool, athlete)
    expected = await expected_bm25(archive, athlete, query, PARAMS)
    found = await search_messages(archive.pool, athlete, query, k=10, params=PARAMS)
    bm25_of = dict(expected)
    assert len(found.hits) == 10
    for hit, (_, nth_best) in zip(found.hits, expected, strict=False):  # ties may come in any order
        assert hit.score == pytest.approx(nth_best / (nth_best + 1), rel=1e-9)
        assert hit.score == pytest.approx(bm25_of[hit.message_id] / (bm25_of[hit.message_id] + 1), rel=1e-9)


async def test_a_word_written_after_the_refresh_is_found(archive: Archive) -> None:
    athlete = f"large-{uuid.uuid4().hex[:8]}"
    messages = messages_of(athlete, 120, seed=5)
    await archive.write(messages, embed=True)
    assert await refresh(archive.pool, athlete)
    late = ChatMessage(
        id=new_message_id(), athlete_id=athlete, session_id="s9", role="user",
        content="I bought a theremin yesterday", created_at=T0 + timedelta(days=3),
    )  # fmt: skip
    await archive.write([late], embed=True)
    found = await search_messages(archive.pool, athlete, "theremin", k=3, params=PARAMS)
    assert [h.message_id for h in found.hits] == [late.id]


async def test_statistics_are_per_athlete_and_refreshed_as_the_archive_grows(archive: Archive) -> None:
    a, b = (f"large-{uuid.uuid4().hex[:8]}" for _ in range(2))
    same = messages_of(a, 100, seed=9)
    twin = [dataclasses.replace(m, id=new_message_id(), athlete_id=b) for m in same]
    await archive.write(same, embed=True)
    await archive.write(twin, embed=True)
    assert await refresh_due(archive.pool, [a, b], min_messages=101) == []  # below the size: no statistics
    assert await refresh_due(archive.pool, [a, b], min_messages=100) == sorted([a, b])
    assert await refresh_due(archive.pool, [a, b], min_messages=100) == []  # nothing written since
    for athlete, own in ((a, same), (b, twin)):
        found = await search_messages(archive.pool, athlete, "caroline pottery volcano", k=10, params=PARAMS)
        assert found.hits and {h.message_id for h in found.hits} <= {m.id for m in own}
    await archive.write(messages_of(a, 9, seed=10), embed=True)
    assert await refresh_due(archive.pool, [a], min_messages=100) == []  # 9 % more: not yet
    await archive.write(messages_of(a, 1, seed=11), embed=True)
    assert await refresh_due(archive.pool, [a], min_messages=100) == [a]  # 10 %
    async with archive.pool.connection() as conn:
        row = await (await conn.execute("SELECT n FROM archive_term_counts WHERE athlete_id = %s", (a,))).fetchone()
    assert row is not None and row["n"] == 110


async def test_bad_queries_keep_their_answers_on_the_large_path(archive: Archive) -> None:
    athlete = f"large-{uuid.uuid4().hex[:8]}"
    await archive.write(messages_of(athlete, 60, seed=12), embed=True)
    assert await refresh(archive.pool, athlete)
    for query in ("", "   ", "the and of", "x" * 10_000):  # empty, stop words only, one 10,000-character word
        assert (await search_messages(archive.pool, athlete, query, k=3, params=PARAMS)).hits == []
    assert len((await search_messages(archive.pool, athlete, "caroline", k=3, params=PARAMS)).hits) == 3


async def test_forgetting_an_athlete_erases_the_statistics_and_a_late_message_brings_none_back() -> None:
    async with open_stores(require_postgres=True) as stores:
        archive = Archive(stores.pool, timeout_s=5)
        athlete = f"large-{uuid.uuid4().hex[:8]}"
        messages = messages_of(athlete, 60, seed=14)
        await archive.write(messages[:-1], embed=True)
        assert await refresh(archive.pool, athlete)
        report = await erase_athlete(stores, athlete, chart_dirs=[])
        assert report.erased["postgres:archive_term_counts"] == 1 and report.erased["postgres:archive_term_df"] > 20
        assert report.erased["postgres:archive_postings"] > 200
        assert report.erased["postgres:archive_blocks"] > 20 and report.erased["postgres:archive_ordinals"] == 59
        await archive.write([dataclasses.replace(messages[-1], created_at=T0)], embed=True)  # dated before the erase
        async with stores.pool.connection() as conn:
            for table in (*BLOCK_TABLES, "archive_term_counts", "archive_term_df", "archive_postings", "messages"):
                cur = await conn.execute(f"SELECT count(*) AS n FROM {table} WHERE athlete_id = %s", (athlete,))
                assert (await cur.fetchone()) == {"n": 0}, table


async def postings_of(archive: Archive, athlete_id: str) -> dict[tuple[str, str], tuple[float, float, int, int]]:
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            """SELECT message_id::text AS id, lexeme, tf_own, tf_context, own_len, context_len
               FROM archive_postings WHERE athlete_id = %s""",
            (athlete_id,),
        )
        return {
            (r["id"], r["lexeme"]): (r["tf_own"], r["tf_context"], r["own_len"], r["context_len"])
            for r in await cur.fetchall()
        }


async def postings_from_messages(
    archive: Archive, athlete_id: str
) -> dict[tuple[str, str], tuple[float, float, int, int]]:
    """The postings computed here from each message's tsvectors (a lexeme without positions counts 1)."""
    async with archive.pool.connection() as conn:
        rows = await (await conn.execute(MESSAGE_TERMS_SQL, (athlete_id,))).fetchall()
    return {
        (r["id"], t): (float(r["own"].get(t, 0)), float(r["ctx"].get(t, 0)), r["own_len"], r["ctx_len"])
        for r in rows
        for t in set(r["own"]) | set(r["ctx"])
    }


async def test_the_postings_follow_the_messages_once_the_archive_has_statistics(archive: Archive) -> None:
    athlete, small = (f"large-{uuid.uuid4().hex[:8]}" for _ in range(2))
    messages = messages_of(athlete, 150, seed=21)
    await archive.write(messages[:100], embed=True)
    await archive.write(messages_of(small, 30, seed=22), embed=True)
    assert await postings_of(archive, athlete) == {}  # no statistics yet: nothing kept
    assert await refresh(archive.pool, athlete)
    assert await postings_of(archive, athlete) == await postings_from_messages(archive, athlete)
    await archive.write(messages[100:], embed=True)  # new messages, and the context of the 100th changes
    kept = await postings_of(archive, athlete)
    assert kept == await postings_from_messages(archive, athlete)
    assert {i for i, _ in kept} == {m.id for m in messages}
    async with archive.pool.connection() as conn:
        await conn.execute("DELETE FROM messages WHERE id = ANY(%s::uuid[])", ([m.id for m in messages[:10]],))
        await conn.execute(
            "UPDATE messages SET content = 'a theremin solo' WHERE id = %s",  # search_tsv is generated from it
            (messages[50].id,),
        )
    kept = await postings_of(archive, athlete)
    assert kept == await postings_from_messages(archive, athlete)
    assert (messages[50].id, "theremin") in kept and not any(i == messages[0].id for i, _ in kept)
    assert await postings_of(archive, small) == {}  # small archives keep none (recall's one statement reads them)


async def test_a_budget_of_candidates_ranks_as_exact_maxscore_here_and_the_sides_run_apart_or_together(
    archive: Archive,
) -> None:
    athlete = f"large-{uuid.uuid4().hex[:8]}"
    await archive.write(messages_of(athlete, 400, seed=23), embed=True)
    assert await refresh(archive.pool, athlete)
    await drop_blocks(archive, athlete)  # MaxScore: the path of an archive whose blocks are not built yet
    query = "What did Caroline say after the tempo ride in the wind?"
    exact = await search_messages(
        archive.pool, athlete, query, k=10, params=dataclasses.replace(PARAMS, lexical_candidates=None)
    )
    budget = await search_messages(archive.pool, athlete, query, k=10, params=PARAMS)
    tiny = await search_messages(
        archive.pool, athlete, query, k=10, params=dataclasses.replace(PARAMS, lexical_candidates=1)
    )
    assert [h.score for h in budget.hits] == pytest.approx([h.score for h in exact.hits], rel=1e-9)
    assert len(tiny.hits) == 10  # the first statement's messages are there whatever the budget
    vector = QueryVector([0.1] * 384, "no-such-model")  # the vector side runs, and finds nothing of that model
    together = await search_messages(archive.pool, athlete, query, k=10, vector=vector, params=PARAMS)
    async with archive.pool.connection() as conn:
        alone = await search_large(
            conn, {**together_params(query, athlete)}, vector=vector.literal, model=vector.model_id,
            ef_search=100, exact_vectors=False, candidates=PARAMS.lexical_candidates, pool=None,
        )  # fmt: skip
    assert alone is not None
    assert [str(r["message_id"]) for r in alone] == [h.message_id for h in together.hits]


BLOCK_TABLES = ("archive_blocks", "archive_ordinals", "archive_block_changes")


async def drop_blocks(archive: Archive, athlete_id: str) -> None:
    """Leave the athlete's statistics but not its posting blocks (as before the first refresh that builds them)."""
    async with archive.pool.connection() as conn:
        await conn.execute("UPDATE archive_term_counts SET block_messages = NULL WHERE athlete_id = %s", (athlete_id,))
        for table in BLOCK_TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE athlete_id = %s", (athlete_id,))  # noqa: S608


def together_params(query: str, athlete_id: str) -> dict[str, object]:
    return {
        "query": query, "athlete_id": athlete_id, "excluded": [], "k": 10, "k1": PARAMS.k1, "b": PARAMS.b,
        "depth": PARAMS.depth, "lexical_weight": PARAMS.lexical_weight, "context_weight": PARAMS.context_weight,
        "session_weight": PARAMS.session_weight, "headline_options": "HighlightAll=true",
    }  # fmt: skip


async def test_writes_running_with_the_first_refresh_leave_no_message_without_its_postings(archive: Archive) -> None:
    athlete = f"large-{uuid.uuid4().hex[:8]}"
    messages = messages_of(athlete, 200, seed=24)
    await archive.write(messages[:100], embed=True)
    batches = [messages[i : i + 10] for i in range(100, 200, 10)]
    # The first refresh (FOR UPDATE on the counts row) and the writes (FOR KEY SHARE in the trigger) interleave.
    results = await asyncio.gather(refresh(archive.pool, athlete), *(archive.write(b, embed=True) for b in batches))
    assert results[1:] == [10] * len(batches)
    if not results[0]:  # a write held the row at that moment (SKIP LOCKED): the refresh runs again later
        assert await refresh(archive.pool, athlete)
    assert await postings_of(archive, athlete) == await postings_from_messages(archive, athlete)


async def test_a_vector_candidate_outside_the_lexical_top_gets_its_bm25_in_the_fusion(archive: Archive) -> None:
    athlete = f"large-{uuid.uuid4().hex[:8]}"
    await archive.write(messages_of(athlete, 400, seed=25), embed=True)
    assert await refresh(archive.pool, athlete)
    query = "caroline training ride"
    expected = await expected_bm25(archive, athlete, query, PARAMS)
    outside, bm25 = expected[120]  # holds a query word, far below the lexical top 50
    rng = random.Random(26)
    async with archive.pool.connection() as conn:
        cur = await conn.execute("SELECT id::text AS id FROM messages WHERE athlete_id = %s", (athlete,))
        ids = [r["id"] for r in await cur.fetchall()]
        vectors = {i: [rng.gauss(0, 1) for _ in range(384)] for i in ids}
        async with conn.cursor() as c:
            await c.executemany(
                "UPDATE messages SET embedding = %s::vector, embedding_model = 'test-model' WHERE id = %s::uuid",
                [(vector_literal(v), i) for i, v in vectors.items()],
            )
    found = await search_messages(
        archive.pool, athlete, query, k=50, params=PARAMS, exact_vectors=True,
        vector=QueryVector(vectors[outside], "test-model"),
    )  # fmt: skip
    scores = {h.message_id: h.score for h in found.hits}
    assert scores[outside] == pytest.approx(0.3 * bm25 / expected[0][1] + 0.7 * 1.0, rel=1e-6)

    async def embedding_later(values: list[float] | None) -> list[float] | None:
        await asyncio.sleep(0.05)  # still embedding while the statistics and the lexical side are read
        return values

    for values, ranking in ((vectors[outside], "hybrid"), (None, "full_text")):
        pending = QueryVector(asyncio.ensure_future(embedding_later(values)), "test-model")
        later = await search_messages(
            archive.pool, athlete, query, k=50, params=PARAMS, exact_vectors=True, vector=pending
        )
        now = found if values else await search_messages(archive.pool, athlete, query, k=50, params=PARAMS)
        assert later.ranking == ranking and later.hits == now.hits
