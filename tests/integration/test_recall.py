"""Hybrid recall on the real Postgres with the real MiniLM model: paraphrases, isolation, snippets, the writers
that embed (outbox drain, direct write, reindex) and the full-text fallback without pgvector."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from langchain_core.embeddings import Embeddings
from psycopg import sql

from config.settings import get_settings
from memory.archive import Archive
from memory.conversation import ConversationMemory
from memory.db import open_memory_pool
from memory.embeddings import ArchiveEmbedder, get_embedder
from memory.messages import ChatMessage, new_message_id
from memory.recall import SNIPPET_MAX_CHARS, SearchResult
from memory.redis_client import open_redis
from memory.schema import asetup
from records.audit_store import AuditStore
from records.plans import PlanStore
from records.rides import RideStore
from records.stores import Stores, open_stores
from tests.integration.test_cli_debrief import coach
from tools.base import ToolCallContext, run_tool
from tools.coach_tools import search_conversation

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 4, 18, 30, tzinfo=UTC)

CRAMP = "My calves keep cramping during the last hour of long rides."
CRAMP_REPLY = "Add more sodium to your bottles and keep your cadence up on the final climbs."
PARAPHRASE = "muscle spasms in the lower legs late in a workout"  # no word in common with CRAMP
CORPUS = [
    (CRAMP, CRAMP_REPLY),
    ("What tyre pressure should I run for the gravel race?", "Around 35 psi tubeless suits mixed gravel."),
    ("I want to lose some weight before the spring season.", "Keep a small daily deficit, fuel the key sessions."),
    ("My left knee hurts after long climbs when I stay seated.", "Raise the saddle a little and spin a lighter gear."),
]


def local_embedder() -> ArchiveEmbedder:
    embedder = get_embedder(get_settings().model_copy(update={"embedding_provider": "local"}))
    assert embedder is not None
    return embedder


def seed(athlete_id: str, corpus: list[tuple[str, str]] = CORPUS) -> list[ChatMessage]:
    messages = []
    for i, (question, answer) in enumerate(corpus):
        at, turn = T0 + timedelta(days=7 * i), new_message_id()
        messages += [
            ChatMessage(new_message_id(), athlete_id, f"s{i}", "user", question, at, turn_id=turn),
            ChatMessage(new_message_id(), athlete_id, f"s{i}", "assistant", answer, at + timedelta(seconds=5), turn),
        ]
    return messages


@pytest_asyncio.fixture
async def archive() -> AsyncIterator[Archive]:
    async with open_stores(require_postgres=True) as stores:
        yield Archive(stores.pool, timeout_s=5, embedder=local_embedder())


@pytest_asyncio.fixture
async def memory(archive: Archive) -> AsyncIterator[ConversationMemory]:
    mem = ConversationMemory(None, archive.pool, pg_timeout_s=5, embedder=archive.embedder)
    try:
        yield mem
    finally:
        await mem.close()


def tool_deps(mem: ConversationMemory) -> Stores:
    assert mem.pool is not None and mem.store is not None
    return Stores(
        memory=mem,
        athlete_store=mem.store,
        rides=RideStore(mem.pool, mem.store),
        plans=PlanStore(mem.pool),
        audits=AuditStore(mem.pool),
    )


def tool_context(athlete_id: str, window_ids: list[str] | None = None) -> ToolCallContext:
    return ToolCallContext(athlete_id, "now", "UTC", datetime.now(UTC), {}, window_ids or [])


async def embedded(archive: Archive, ids: list[str]) -> int:
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM messages WHERE id = ANY(%s::uuid[]) AND embedding IS NOT NULL", (ids,)
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def test_recall_finds_a_paraphrase_that_shares_no_word_with_the_query(
    archive: Archive, memory: ConversationMemory, athlete_id: str
) -> None:
    messages = seed(athlete_id)
    assert await archive.write(messages, embed=True) == len(messages)
    assert await embedded(archive, [m.id for m in messages]) == len(messages)

    full_text = await archive.search_ranked(athlete_id, PARAPHRASE, k=3)
    assert full_text.ranking == "full_text" and messages[0].id not in {h.message_id for h in full_text.hits}

    result = await memory.recall(athlete_id, PARAPHRASE, k=3)
    assert result.ranking == "hybrid"
    best = result.hits[0]
    assert (best.message_id, best.session_id, best.snippet) == (messages[0].id, "s0", CRAMP)
    assert best.ts == T0 and 0 < best.score <= 1
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)

    # The tool: the athlete's words, then the coach's reply to them, dated, with the ranking named.
    outcome = await run_tool(search_conversation, {
        "query": "what did we say about leg muscles seizing up?", "max_items": 2}, tool_deps(memory), tool_context(athlete_id))  # fmt: skip
    assert outcome.content["ranking"] == "hybrid"
    assert [s["text"] for s in outcome.content["snippets"]] == [CRAMP, CRAMP_REPLY]
    assert outcome.content["snippets"][0]["date"] == "2025-03-04"


async def test_recall_never_returns_another_athletes_messages(
    archive: Archive, memory: ConversationMemory, athlete_id: str
) -> None:
    other = f"{athlete_id}-other"
    await archive.write(seed(other, [(PARAPHRASE, "Stretch and salt.")] + CORPUS), embed=True)
    assert (await memory.recall(athlete_id, PARAPHRASE, k=10)).hits == []  # nothing of mine yet

    mine = seed(athlete_id, CORPUS[1:])
    await archive.write(mine, embed=True)
    result = await memory.recall(athlete_id, PARAPHRASE, k=50)
    assert result.ranking == "hybrid"
    assert {h.message_id for h in result.hits} == {m.id for m in mine}  # every one of mine, none of theirs
    for query in ("gravel tyre pressure", "knee saddle climbs"):
        assert {h.message_id for h in await memory.search(athlete_id, query, k=50)} <= {m.id for m in mine}


async def test_turns_in_the_window_are_left_out(archive: Archive, memory: ConversationMemory, athlete_id: str) -> None:
    messages = seed(athlete_id)
    await archive.write(messages, embed=True)
    window = [messages[0].id, messages[1].id]
    hits = await memory.search(athlete_id, PARAPHRASE, k=10, exclude_ids=window + ["not-a-uuid"])
    assert hits and not {h.message_id for h in hits} & set(window)
    outcome = await run_tool(
        search_conversation, {"query": PARAPHRASE}, tool_deps(memory), tool_context(athlete_id, window)
    )
    assert CRAMP not in [s["text"] for s in outcome.content["snippets"]]


async def test_snippets_are_capped_and_around_the_match(
    archive: Archive, memory: ConversationMemory, athlete_id: str
) -> None:
    filler = " ".join(f"filler{i}" for i in range(300))
    lexical = f"{filler} the threshold intervals on Tuesday felt brutal {filler}"
    semantic = "After two hours my calves start to cramp badly. " * 60  # 2,900 characters, found by meaning
    messages = [
        ChatMessage(new_message_id(), athlete_id, "long", "assistant", lexical, T0),
        ChatMessage(new_message_id(), athlete_id, "long", "user", semantic, T0 + timedelta(days=1)),
    ]
    await archive.write(messages, embed=True)
    hits = {h.message_id: h for h in await memory.search(athlete_id, "brutal threshold intervals", k=2)}
    snippet = hits[messages[0].id].snippet
    assert len(snippet) <= SNIPPET_MAX_CHARS and "threshold intervals" in snippet and snippet.startswith("…")
    outcome = await run_tool(
        search_conversation, {"query": PARAPHRASE, "max_items": 3}, tool_deps(memory), tool_context(athlete_id)
    )
    texts = [s["text"] for s in outcome.content["snippets"]]
    assert texts and texts[0].startswith("After two hours my calves")
    assert all(len(t) < 400 for t in texts)


async def test_the_outbox_drain_embeds_and_a_direct_write_is_embedded_in_the_background(
    archive: Archive, athlete_id: str
) -> None:
    settings = get_settings()
    redis = open_redis(settings.redis_url)
    stream = f"test:outbox:{uuid.uuid4().hex}"
    with_redis = ConversationMemory(redis, archive.pool, outbox_stream=stream, embedder=archive.embedder)
    without_redis = ConversationMemory(None, archive.pool, pg_timeout_s=5, embedder=archive.embedder)
    try:
        first, second = seed(athlete_id)[:2], seed(athlete_id)[2:4]
        await with_redis.save_turn(athlete_id, "s0", first)  # outbox: embedded by the drain
        await with_redis.drain_outbox()
        assert await embedded(archive, [m.id for m in first]) == 2

        assert await without_redis.save_turn(athlete_id, "s1", second) == "degraded:redis"  # straight to Postgres
        for _ in range(600):  # the background embedding, off the reply path
            if await embedded(archive, [m.id for m in second]) == 2:
                break
            await asyncio.sleep(0.05)
        assert await embedded(archive, [m.id for m in second]) == 2
    finally:
        await redis.delete(stream, f"{stream}:dead")
        await with_redis.close()
        await without_redis.close()
        await redis.aclose()


async def test_reindex_backfills_missing_vectors(archive: Archive, memory: ConversationMemory, athlete_id: str) -> None:
    messages = seed(athlete_id)
    await archive.write(messages)  # no vectors (as a direct write, or an archive from before this feature)
    assert await embedded(archive, [m.id for m in messages]) == 0
    assert messages[0].id not in {h.message_id for h in (await memory.recall(athlete_id, PARAPHRASE, k=3)).hits}

    seen: list[tuple[int, int]] = []
    assert await memory.reindex(athlete_id, progress=lambda done, total: seen.append((done, total))) == len(messages)
    assert seen[0] == (0, len(messages)) and seen[-1] == (len(messages), len(messages))
    assert await memory.reindex(athlete_id) == 0  # nothing left
    assert (await memory.recall(athlete_id, PARAPHRASE, k=1)).hits[0].message_id == messages[0].id


def test_coach_reindex_command(athlete_id: str) -> None:
    async def write_without_vectors() -> int:
        async with open_stores(require_postgres=True) as stores:
            return await Archive(stores.pool).write(seed(athlete_id))

    n = asyncio.run(write_without_vectors())
    done = coach("reindex", "--athlete", athlete_id)
    assert done.returncode == 0, done.stderr
    assert f"embedded {n} messages of athlete {athlete_id} with local:all-MiniLM-L6-v2" in done.stdout
    assert "embedded 0 messages" in coach("reindex", "--athlete", athlete_id).stdout
    assert coach("reindex").returncode == 2
    assert coach("reindex", "--athlete", athlete_id, "--all").returncode == 2


class BrokenEmbeddings(Embeddings):
    """A model that fails (a remote embedding service being down, say)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding service unreachable")

    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding service unreachable")


async def test_a_failing_model_archives_anyway_and_recall_falls_back_to_full_text(
    archive: Archive, athlete_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = ArchiveEmbedder(BrokenEmbeddings(), "broken:1")
    mem = ConversationMemory(None, archive.pool, pg_timeout_s=5, embedder=broken)
    try:
        messages = seed(athlete_id)
        assert await Archive(archive.pool, embedder=broken).write(messages, embed=True) == len(messages)
        with caplog.at_level(logging.WARNING):
            result = await mem.recall(athlete_id, "knee climbs saddle", k=2)
        assert result.ranking == "full_text" and result.hits[0].session_id == "s3"
        assert "full-text recall" in caplog.text
    finally:
        await mem.close()


class FailsAfterWarmUp(Embeddings):
    """An in-process model that loads, then fails on a query (warm, so recall embeds while the search reads)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if texts == ["warm up"]:
            return [[1.0] + [0.0] * 383]
        raise RuntimeError("model crashed")

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


async def test_a_warm_model_embeds_the_query_while_the_search_reads_and_ranks_the_same(
    archive: Archive, memory: ConversationMemory, athlete_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = seed(athlete_id)
    assert await archive.write(messages, embed=True) == len(messages)
    embedder = archive.embedder
    assert embedder is not None and await asyncio.to_thread(embedder.warm_up) and embedder.warm
    vector = await embedder.embed_query(PARAPHRASE)
    before = await archive.search_ranked(athlete_id, PARAPHRASE, k=3, query_embedding=vector)
    assert memory.archive is not None
    passed: list[object] = []
    search = memory.archive.search_ranked

    async def spy(*args: Any, **kwargs: Any) -> SearchResult:
        passed.append(kwargs["query_embedding"])
        return await search(*args, **kwargs)

    monkeypatch.setattr(memory.archive, "search_ranked", spy)
    result = await memory.recall(athlete_id, PARAPHRASE, k=3)
    assert isinstance(passed[0], asyncio.Task)  # embedding while the search reads, not before it
    assert result.ranking == "hybrid" and result.hits == before.hits and result.hits[0].message_id == messages[0].id

    crashing = ArchiveEmbedder(FailsAfterWarmUp(), "crashes:1")
    assert crashing.warm_up() and crashing.warm
    mem = ConversationMemory(None, archive.pool, pg_timeout_s=5, embedder=crashing)
    try:
        fallback = await mem.recall(athlete_id, "knee climbs saddle", k=2)
        assert fallback.ranking == "full_text" and fallback.hits[0].session_id == "s3"
    finally:
        await mem.close()


@pytest.fixture
def database_without_pgvector() -> Iterator[str]:
    """A fresh database owned by a role that may not create the (untrusted) pgvector extension."""
    admin_url = get_settings().database_url
    name = f"coach_novec_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'novec' NOSUPERUSER").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info.update(dbname=name, user=name, password="novec")
    try:
        yield psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


async def test_without_pgvector_recall_works_on_full_text_and_says_so(
    database_without_pgvector: str, athlete_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await open_memory_pool(database_without_pgvector, max_size=2, timeout_s=5)
    mem = ConversationMemory(None, pool, pg_timeout_s=5, embedder=local_embedder(), owns_clients=True)
    try:
        async with pool.connection() as conn:
            await asetup(conn)  # the schema applies; the vector parts are skipped
            cur = await conn.execute("SELECT count(*) AS n FROM pg_extension WHERE extname = 'vector'")
            assert (await cur.fetchone()) == {"n": 0}
        assert mem.archive is not None
        with caplog.at_level(logging.WARNING):
            assert not await mem.archive.vectors_enabled()
        assert "pgvector is not installed" in caplog.text

        messages = seed(athlete_id)
        assert await mem.archive.write(messages, embed=True) == len(messages)  # archived, without vectors
        result = await mem.recall(athlete_id, "why does my knee hurt on climbs?", k=3)
        assert result.ranking == "full_text"
        assert result.hits[0].message_id == messages[6].id and len(result.hits) <= 3
        outcome = await run_tool(
            search_conversation, {"query": "gravel tyre pressure"}, tool_deps(mem), tool_context(athlete_id)
        )
        assert outcome.content["ranking"] == "full_text"
        assert outcome.content["snippets"][0]["text"] == CORPUS[1][0]
        assert await mem.reindex(athlete_id) == 0  # nothing to embed into
    finally:
        await mem.close()


async def test_two_athletes_with_identical_sentences_each_find_only_their_own(
    archive: Archive, memory: ConversationMemory, athlete_id: str
) -> None:
    other = f"{athlete_id}-twin"
    mine, theirs = seed(athlete_id), seed(other)  # the same sentences, sessions and times; other ids
    await archive.write(mine + theirs, embed=True)
    full_text = ConversationMemory(None, archive.pool, pg_timeout_s=5)
    try:
        for who, own in ((athlete_id, mine), (other, theirs)):
            own_ids = {m.id for m in own}
            for query in (PARAPHRASE, CRAMP, "gravel tyre pressure", "knee saddle climbs"):
                for mem, ranking in ((memory, "hybrid"), (full_text, "full_text")):
                    if query == PARAPHRASE and mem is full_text:
                        continue  # no word in common: full text finds nothing, by design
                    result = await mem.recall(who, query, k=50)
                    assert result.ranking == ranking
                    assert result.hits and {h.message_id for h in result.hits} <= own_ids, (who, query, ranking)
    finally:
        await full_text.close()


GIRONA = [
    ("Did you finish the gravel race in Girona last weekend?", "Yes! Crossed the line after six hours, wrecked."),
    ("What should I eat the night before a long ride?", "Rice or pasta and some salt, nothing new."),
]


async def test_a_turn_is_found_through_the_words_of_the_turn_before_it(
    archive: Archive, memory: ConversationMemory, athlete_id: str
) -> None:
    messages = seed(athlete_id, GIRONA)
    reply = messages[1]  # "Yes! Crossed the line ...": not a word of the query in it
    full_text = ConversationMemory(None, archive.pool, pg_timeout_s=5)
    try:
        await archive.write(messages)  # a direct write: no context yet (filled off the reply path)
        assert reply.id not in {h.message_id for h in (await full_text.recall(athlete_id, "Girona", k=5)).hits}

        await memory.reindex(athlete_id)  # the backfill embeds and fills the contextual field
        for mem in (full_text, memory):
            hits = (await mem.recall(athlete_id, "Girona", k=5)).hits
            assert [h.message_id for h in hits[:2]] == [messages[0].id, reply.id]  # own words rank first
            assert all(0 <= h.score <= 1 for h in hits)

        at, turn = T0 + timedelta(days=30), new_message_id()
        later = [
            ChatMessage(
                new_message_id(), athlete_id, "s9", "user", "How did the recovery week in Girona go?", at, turn
            ),
            ChatMessage(
                new_message_id(),
                athlete_id,
                "s9",
                "assistant",
                "Legs feel fresh again.",
                at + timedelta(seconds=5),
                turn,
            ),
        ]
        await archive.write(later, embed=True)  # the drain's and imports' write fills it at once
        assert later[1].id in {h.message_id for h in (await full_text.recall(athlete_id, "recovery Girona", k=5)).hits}
    finally:
        await full_text.close()
