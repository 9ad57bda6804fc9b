"""`Archive.write` with `embed`: the context computed within the write, and writes of several INSERT statements."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory.archive import WRITE_CHUNK_ROWS, Archive
from memory.archive_context import batch_context_texts, refresh_context
from memory.embeddings import EMBEDDING_DIMENSIONS, ArchiveEmbedder
from memory.messages import ChatMessage, new_message_id
from records.stores import open_stores

pytestmark = pytest.mark.integration
T0 = datetime(2025, 6, 1, 7, 0, tzinfo=UTC)
PROPS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest_asyncio.fixture
async def archive() -> AsyncIterator[Archive]:
    async with open_stores(require_postgres=True) as stores:
        yield Archive(stores.pool, timeout_s=10)


# A message: (session 0-2, role, seconds after T0 (ties on purpose), words). Ids are random, so ties are broken by
# the uuid order, as Postgres breaks them.
MESSAGES = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["user", "assistant", "tool"]),
        st.integers(0, 6),
        st.lists(st.sampled_from(["gravel", "cramps", "Girona", "tempo", "saddle", "the", "ran"]), max_size=4),
    ),
    min_size=1,
    max_size=14,
)


def as_messages(athlete_id: str, spec: list[tuple[int, str, int, list[str]]]) -> list[ChatMessage]:
    return [
        ChatMessage(new_message_id(), athlete_id, f"s{s}", role, " ".join(words), T0 + timedelta(seconds=t))  # type: ignore[arg-type]
        for s, role, t, words in spec
    ]


async def contexts(archive: Archive, athlete_id: str) -> dict[str, str | None]:
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id::text AS id, context_tsv::text AS tsv FROM messages WHERE athlete_id = %s", (athlete_id,)
        )
        return {r["id"]: r["tsv"] for r in await cur.fetchall()}


@PROPS
@given(spec=MESSAGES)
async def test_the_context_computed_within_a_write_is_the_one_the_refresh_computes(
    archive: Archive, spec: list[tuple[int, str, int, list[str]]]
) -> None:
    athlete = f"test-{uuid.uuid4().hex[:12]}"
    messages = as_messages(athlete, spec)
    await archive.write(messages)  # no context yet
    assert await refresh_context(archive.pool, athlete_id=athlete) == sum(m.role != "tool" for m in messages)
    texts = batch_context_texts(messages)
    assert set(texts) == {m.id for m in messages if m.role != "tool"}
    async with archive.pool.connection() as conn:
        for m in messages:
            cur = await conn.execute(
                "SELECT (context_tsv IS NOT DISTINCT FROM to_tsvector('english', %s::text)) AS same FROM messages"
                " WHERE id = %s",
                (texts.get(m.id), m.id),
            )
            row = await cur.fetchone()
            assert row is not None and row["same"], (m, texts.get(m.id))


@PROPS
@given(before=MESSAGES, after=MESSAGES)
async def test_a_write_into_sessions_with_messages_leaves_every_context_as_a_full_refresh_would(
    archive: Archive, before: list[tuple[int, str, int, list[str]]], after: list[tuple[int, str, int, list[str]]]
) -> None:
    athlete = f"test-{uuid.uuid4().hex[:12]}"
    await archive.write(as_messages(athlete, before), embed=True)
    await archive.write(as_messages(athlete, after), embed=True)  # interleaves with, and borders on, the first
    written = await contexts(archive, athlete)
    assert await refresh_context(archive.pool, athlete_id=athlete) == 0  # nothing left to correct
    assert await contexts(archive, athlete) == written


async def test_a_write_of_several_insert_statements_stores_each_row_with_its_own_vector_and_context(
    archive: Archive, athlete_id: str
) -> None:
    n = 2 * WRITE_CHUNK_ROWS + 10  # three INSERT statements, one transaction
    roles = ("user", "assistant", "tool")
    messages = [
        ChatMessage(new_message_id(), athlete_id, "s", roles[i % 3], f"message {i}", T0 + timedelta(seconds=i))
        for i in range(n)
    ]
    writer = Archive(
        archive.pool,
        embedder=ArchiveEmbedder(DeterministicFakeEmbedding(size=EMBEDDING_DIMENSIONS), "fake:1", workers=2),
    )
    assert await writer.write(messages, embed=True) == n
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            """SELECT id::text AS id, embedding::text AS v, embedding_model,
                      context_tsv = to_tsvector('english', %s) AS first_context
               FROM messages WHERE athlete_id = %s AND id = ANY(%s::uuid[])""",
            ("message 1 message 4", athlete_id, [messages[i].id for i in (0, 3, WRITE_CHUNK_ROWS, n - 2, n - 1)]),
        )
        rows = {r["id"]: r for r in await cur.fetchall()}
    for i in (0, WRITE_CHUNK_ROWS, n - 2):  # a user or assistant message of each statement
        row = rows[messages[i].id]
        assert row["embedding_model"] == "fake:1"
        vector = [float(x) for x in row["v"].strip("[]").split(",")]
        assert vector == pytest.approx(
            DeterministicFakeEmbedding(size=EMBEDDING_DIMENSIONS).embed_query(f"message {i}"), rel=1e-5, abs=1e-6
        )
    assert messages[n - 1].role == "tool" and rows[messages[n - 1].id]["v"] is None  # no vector for a tool message
    assert rows[messages[3].id]["first_context"]  # its neighbours: 1 and 4, the tool message 2 skipped
    assert await refresh_context(archive.pool, athlete_id=athlete_id) == 0


async def test_a_write_failing_in_a_later_chunk_writes_nothing(archive: Archive, athlete_id: str) -> None:
    messages = [
        ChatMessage(
            new_message_id(),
            athlete_id,
            "s",
            "user",
            f"line {i}",
            T0 + timedelta(seconds=i),
            external_id="same" if i in (WRITE_CHUNK_ROWS + 1, WRITE_CHUNK_ROWS + 2) else None,
        )
        for i in range(WRITE_CHUNK_ROWS + 5)
    ]
    writer = Archive(
        archive.pool,
        embedder=ArchiveEmbedder(DeterministicFakeEmbedding(size=EMBEDDING_DIMENSIONS), "fake:1", workers=2),
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        await writer.write(messages, embed=True)  # two messages of one session with one external id
    assert await writer.count(athlete_id) == 0
