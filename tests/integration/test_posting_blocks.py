"""The posting blocks (`memory.posting_blocks`): built at each refresh, kept right by the changes noted until the next.

The blocks are checked against `archive_postings` (itself checked against the messages in `test_recall_large.py`),
and the search through them against MaxScore without a budget over `archive_postings` (exact BM25 under the same
statistics), after new, deleted and edited messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest

from config.settings import get_settings
from memory import posting_blocks, recall_large, term_stats
from memory.archive import Archive
from memory.messages import ChatMessage
from memory.posting_blocks import BUILD_BLOCKS_SQL
from memory.recall import SearchResult, search_messages
from memory.term_stats import refresh, refresh_due
from tests.integration.test_recall_large import PARAMS, archive, drop_blocks, messages_of, postings_of

pytestmark = pytest.mark.integration
__all__ = ["archive"]  # the fixture
EXACT = dataclasses.replace(PARAMS, lexical_candidates=None)
QUERIES = [
    "When did Caroline talk about pottery?",
    "caroline training ride",
    "pottery volcano harmonica caroline",
    "What did Caroline say after the tempo ride in the wind?",
]


async def blocks_of(archive: Archive, athlete_id: str) -> dict[tuple[str, str], tuple[float, float, int, int]]:
    """The athlete's blocks unpacked here: (message id, lexeme) -> (tf_own, tf_context, own_len, context_len)."""
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT ordinal, message_id::text AS id FROM archive_ordinals WHERE athlete_id = %s", (athlete_id,)
        )
        ids = {r["ordinal"]: r["id"] for r in await cur.fetchall()}
        cur = await conn.execute("SELECT * FROM archive_blocks WHERE athlete_id = %s", (athlete_id,))
        rows = await cur.fetchall()
    out = {}
    for r in rows:
        ordinals = np.frombuffer(r["ordinals"], dtype=">i4")
        tf_own, tf_context = (np.frombuffer(r[c], dtype=">f4") for c in ("tf_own", "tf_context"))
        own_len, context_len = (np.frombuffer(r[c], dtype=">i4") for c in ("own_len", "context_len"))
        for i, o in enumerate(ordinals):
            out[(ids[int(o)], r["lexeme"])] = (
                float(tf_own[i]), float(tf_context[i]), int(own_len[i]), int(context_len[i])
            )  # fmt: skip
    return out


async def changed_of(archive: Archive, athlete_id: str) -> set[str]:
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT message_id::text AS id FROM archive_block_changes WHERE athlete_id = %s", (athlete_id,)
        )
        return {r["id"] for r in await cur.fetchall()}


async def with_blocks(archive: Archive, n: int, seed: int) -> tuple[str, list[ChatMessage]]:
    """A new athlete's `n` messages, the first 120 written and refreshed (statistics and blocks built)."""
    athlete = f"blocks-{uuid.uuid4().hex[:8]}"
    messages = messages_of(athlete, n, seed=seed)
    await archive.write(messages[:120], embed=True)
    assert await refresh(archive.pool, athlete)
    return athlete, messages


def same_ranking(a: SearchResult, b: SearchResult) -> None:
    """The same scores in order, and the same messages above the last score (ties there may differ)."""
    assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], rel=1e-9)
    last = a.hits[-1].score if a.hits else 0.0
    assert {h.message_id for h in a.hits if h.score > last * (1 + 1e-9)} == {
        h.message_id for h in b.hits if h.score > last * (1 + 1e-9)
    }


async def test_the_blocks_and_their_changes_rank_as_exact_maxscore_over_the_current_postings(archive: Archive) -> None:
    athlete = f"blocks-{uuid.uuid4().hex[:8]}"
    messages = messages_of(athlete, 300, seed=31)
    await archive.write(messages[:250], embed=True)
    assert await refresh(archive.pool, athlete)
    assert await blocks_of(archive, athlete) == await postings_of(archive, athlete)
    assert await changed_of(archive, athlete) == set()

    await archive.write(messages[250:], embed=True)  # new messages, and the context of the 250th changes
    async with archive.pool.connection() as conn:
        await conn.execute("DELETE FROM messages WHERE id = ANY(%s::uuid[])", ([m.id for m in messages[:5]],))
        await conn.execute("UPDATE messages SET content = 'pottery pottery volcano' WHERE id = %s", (messages[40].id,))
    changed = await changed_of(archive, athlete)
    assert {m.id for m in messages[250:]} | {m.id for m in messages[:5]} | {messages[40].id} <= changed
    unchanged = {k: v for k, v in (await postings_of(archive, athlete)).items() if k[0] not in changed}
    assert {k: v for k, v in (await blocks_of(archive, athlete)).items() if k[0] not in changed} == unchanged

    excluded = [messages[60].id]
    found = [await search_messages(archive.pool, athlete, q, k=10, exclude_ids=excluded, params=EXACT) for q in QUERIES]
    assert found[2].hits[0].message_id == messages[40].id  # the edited message, scored on its new words
    gone = {m.id for m in messages[:5]} | set(excluded)
    assert all(h.message_id not in gone for r in found for h in r.hits)
    await drop_blocks(archive, athlete)  # MaxScore without a budget over archive_postings: exact BM25
    for query, through_blocks in zip(QUERIES, found, strict=True):
        exact = await search_messages(archive.pool, athlete, query, k=10, exclude_ids=excluded, params=EXACT)
        assert len(exact.hits) == 10
        same_ranking(through_blocks, exact)


async def test_a_refresh_during_writes_leaves_every_message_in_the_blocks_or_the_changes(archive: Archive) -> None:
    athlete = f"blocks-{uuid.uuid4().hex[:8]}"
    messages = messages_of(athlete, 200, seed=32)
    await archive.write(messages[:100], embed=True)
    assert await refresh(archive.pool, athlete)
    batches = [messages[i : i + 10] for i in range(100, 200, 10)]
    # The rebuild (FOR UPDATE on the counts row) and the writes (FOR KEY SHARE in the postings trigger) interleave.
    results = await asyncio.gather(refresh(archive.pool, athlete), *(archive.write(b, embed=True) for b in batches))
    assert results[1:] == [10] * len(batches)
    changed = await changed_of(archive, athlete)
    blocks, postings = await blocks_of(archive, athlete), await postings_of(archive, athlete)
    assert {i for i, _ in blocks} | changed >= {m.id for m in messages}
    assert {k: v for k, v in blocks.items() if k[0] not in changed} == {
        k: v for k, v in postings.items() if k[0] not in changed
    }


async def test_changes_over_the_limit_make_a_refresh_due_that_rebuilds_the_blocks(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    athlete, messages = await with_blocks(archive, 130, seed=33)
    monkeypatch.setattr(term_stats, "BLOCK_CHANGES_MAX", 4)
    await archive.write(messages[120:122], embed=True)
    assert 2 <= len(await changed_of(archive, athlete)) <= 4  # two new messages and a neighbour: not due yet
    assert await refresh_due(archive.pool, [athlete], min_messages=100) == []
    await archive.write(messages[122:], embed=True)
    assert await refresh_due(archive.pool, [athlete], min_messages=100) == [athlete]
    assert await changed_of(archive, athlete) == set()
    assert await blocks_of(archive, athlete) == await postings_of(archive, athlete)
    async with archive.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT block_messages FROM archive_term_counts WHERE athlete_id = %s", (athlete,))
        ).fetchone()
    assert row == {"block_messages": 130}


async def test_past_the_changes_limit_a_search_reads_the_current_postings_by_maxscore(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    athlete, messages = await with_blocks(archive, 140, seed=34)
    await archive.write(messages[120:], embed=True)  # 20 new messages and a neighbour changed since the blocks
    read_blocks: list[str] = []
    block_scores = recall_large.block_scores

    async def spy(*args: Any, **kwargs: Any) -> dict[str, float]:
        read_blocks.append(athlete)
        return await block_scores(*args, **kwargs)

    monkeypatch.setattr(recall_large, "block_scores", spy)
    query = QUERIES[3]
    through_blocks = await search_messages(archive.pool, athlete, query, k=10, params=EXACT)
    assert read_blocks == [athlete]
    monkeypatch.setattr(recall_large, "BLOCK_CHANGES_MAX", 10)
    by_maxscore = await search_messages(archive.pool, athlete, query, k=10, params=EXACT)
    assert read_blocks == [athlete]  # not read again: MaxScore over the postings
    same_ranking(through_blocks, by_maxscore)


async def test_a_rebuild_committing_during_a_search_does_not_mix_two_numberings(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    athlete, messages = await with_blocks(archive, 120, seed=35)
    async with archive.pool.connection() as conn:  # the first ordinals shift at the next build
        await conn.execute("DELETE FROM messages WHERE id = ANY(%s::uuid[])", ([m.id for m in messages[:3]],))
    score = posting_blocks._score

    def rebuilt_meanwhile(*args: Any) -> Any:  # between the search's reads of the blocks and of their ids
        with psycopg.connect(get_settings().database_url) as other, other.transaction():
            for statement in BUILD_BLOCKS_SQL:
                other.execute(statement, {"athlete_id": athlete})
        return score(*args)

    query = QUERIES[0]
    monkeypatch.setattr(posting_blocks, "_score", rebuilt_meanwhile)
    raced = await search_messages(archive.pool, athlete, query, k=10, params=EXACT)
    monkeypatch.undo()
    assert await changed_of(archive, athlete) == set()  # the rebuild did commit
    same_ranking(raced, await search_messages(archive.pool, athlete, query, k=10, params=EXACT))
