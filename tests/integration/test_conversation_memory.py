"""The ConversationMemory facade on the shared servers: load/save, hydration, facts cache, cap and TTL, outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from config.settings import get_settings
from memory.athlete_store import FactChange
from memory.conversation import ConversationMemory
from memory.db import open_memory_pool
from memory.facts_cache import MARKER_FIELD, FactsCache, facts_key
from memory.messages import ChatMessage, new_message_id
from memory.outbox import Outbox
from memory.redis_client import open_redis
from memory.schema import asetup
from memory.session_window import window_key

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def memory() -> AsyncIterator[ConversationMemory]:
    settings = get_settings()
    redis = open_redis(settings.redis_url)
    pool = await open_memory_pool(settings.database_url, max_size=4)
    async with pool.connection() as conn:
        await asetup(conn)
    mem = ConversationMemory(
        redis,
        pool,
        window_turns=6,
        window_token_budget=1500,
        store_cap=10,
        window_ttl_s=3600,
        facts_ttl_s=7200,
        outbox_stream=f"test:outbox:{uuid.uuid4().hex}",  # private stream: other test runs share this Redis
        owns_clients=True,
    )
    try:
        yield mem
    finally:
        assert mem.outbox is not None
        await redis.delete(mem.outbox.stream, mem.outbox.dead_stream)
        await mem.close()


def make_turn(athlete_id: str, session_id: str, i: int, *, with_tool: bool = False) -> list[ChatMessage]:
    at = datetime.now(UTC)
    turn_id = new_message_id()
    messages = [ChatMessage(new_message_id(), athlete_id, session_id, "user", f"question {i}", at, turn_id=turn_id)]
    if with_tool:
        messages.append(
            ChatMessage(
                new_message_id(), athlete_id, session_id, "tool", "{}", at, turn_id=turn_id, tool_name="get_plan"
            )
        )
    messages.append(
        ChatMessage(
            new_message_id(),
            athlete_id,
            session_id,
            "assistant",
            f"answer {i}",
            datetime.now(UTC),
            turn_id=turn_id,
        )
    )
    return messages


def redis_of(mem: ConversationMemory) -> Redis:
    assert mem.redis is not None
    return mem.redis


async def test_new_session_loads_empty(memory: ConversationMemory, athlete_id: str) -> None:
    loaded = await memory.load(athlete_id, "s")
    assert (loaded.window_block, loaded.window_message_ids, loaded.facts, loaded.status) == ("", [], {}, "ok")


async def test_save_then_load_shows_the_turn(memory: ConversationMemory, athlete_id: str) -> None:
    turn = make_turn(athlete_id, "s", 1, with_tool=True)
    assert await memory.save_turn(athlete_id, "s", turn) == "ok"
    loaded = await memory.load(athlete_id, "s")
    assert loaded.window_block == "[RECENT TURNS]\n- U: question 1\n- A: answer 1"
    assert loaded.window_message_ids == [turn[0].id, turn[2].id]  # the tool message is archived, not windowed
    await memory.drain_outbox()
    assert memory.archive is not None
    assert await memory.archive.count(athlete_id, "s") == 3
    assert await memory.pending_writes() == 0


async def test_save_turn_rejects_foreign_messages(memory: ConversationMemory, athlete_id: str) -> None:
    with pytest.raises(ValueError, match="belongs to"):
        await memory.save_turn(athlete_id, "s", make_turn(f"{athlete_id}-x", "s", 1))


@pytest.mark.parametrize("how", ["delete", "expire"])
async def test_hydration_after_the_window_is_lost(memory: ConversationMemory, athlete_id: str, how: str) -> None:
    for i in range(8):  # sequential turns: each one's timestamps follow the previous one's
        await memory.save_turn(athlete_id, "s", make_turn(athlete_id, "s", i))
    await memory.drain_outbox()
    before = await memory.load(athlete_id, "s")
    key = window_key(athlete_id, "s")
    if how == "delete":
        await redis_of(memory).delete(key)
    else:
        await redis_of(memory).pexpire(key, 1)
        await asyncio.sleep(0.01)
    assert await redis_of(memory).exists(key) == 0
    after = await memory.load(athlete_id, "s")
    assert after.status == "ok"
    assert after.window_block == before.window_block
    assert after.window_message_ids == before.window_message_ids
    assert "question 7" in after.window_block and "question 1" not in after.window_block  # 6 turns shown
    # Redis was repopulated with the last store_cap (10) messages.
    assert await redis_of(memory).llen(key) == 10  # type: ignore[misc]
    assert 3590 <= await redis_of(memory).ttl(key) <= 3600


async def test_store_cap_and_ttl(memory: ConversationMemory, athlete_id: str) -> None:
    for i in range(9):
        await memory.save_turn(athlete_id, "s", make_turn(athlete_id, "s", i))
    key = window_key(athlete_id, "s")
    assert await redis_of(memory).llen(key) == 10  # type: ignore[misc]
    assert 3590 <= await redis_of(memory).ttl(key) <= 3600
    loaded = await memory.load(athlete_id, "s")
    assert len(loaded.window_entries) == 10 and loaded.window_entries[-1].content == "answer 8"


async def test_facts_cache_filled_and_invalidated_on_write(memory: ConversationMemory, athlete_id: str) -> None:
    assert memory.store is not None
    redis = redis_of(memory)
    key = facts_key(athlete_id)
    assert await memory.set_facts(athlete_id, [FactChange("ftp_w", 250)], source="user") == ["ftp_w"]
    loaded = await memory.load(athlete_id, "s")
    assert loaded.facts["ftp_w"]["value"] == 250 and loaded.facts["ftp_w"]["source"] == "user"
    assert set(await redis.hkeys(key)) == {"ftp_w", MARKER_FIELD}  # type: ignore[misc]
    assert 7190 <= await redis.ttl(key) <= 7200
    assert (await memory.current_facts(athlete_id)) == loaded.facts  # same shape from the cache
    assert isinstance(loaded.facts["ftp_w"]["updated_at"], datetime)

    await memory.set_facts(athlete_id, [FactChange("ftp_w", 262)], source="debrief_coach")
    assert await redis.exists(key) == 0  # invalidated
    loaded = await memory.load(athlete_id, "s")
    assert loaded.facts["ftp_w"]["value"] == 262 and loaded.facts["ftp_w"]["source"] == "debrief_coach"


async def test_no_facts_is_cached_too(memory: ConversationMemory, athlete_id: str) -> None:
    assert memory.store is not None
    assert (await memory.load(athlete_id, "s")).facts == {}
    assert await redis_of(memory).hkeys(facts_key(athlete_id)) == [MARKER_FIELD]  # type: ignore[misc]
    # A write through the store, not the facade, is seen too: the store's commit drops the cache itself
    # (`memory.fact_writes`; before, every writer had to call `invalidate_facts` and this load saw {}).
    await memory.store.set_facts(athlete_id, [FactChange("goal", "gran fondo")], source="user")
    assert (await memory.load(athlete_id, "s")).facts["goal"]["value"] == "gran fondo"


async def test_a_fill_racing_an_invalidation_is_dropped(memory: ConversationMemory, athlete_id: str) -> None:
    cache = FactsCache(redis_of(memory), ttl_s=60)
    cached, generation = await cache.get(athlete_id)
    assert cached is None
    await cache.invalidate(athlete_id)  # a fact write lands between the Postgres read and the fill
    assert await cache.put(athlete_id, {"ftp_w": {"value": 1}}, generation) is False
    assert (await cache.get(athlete_id))[0] is None
    _, generation = await cache.get(athlete_id)
    assert await cache.put(athlete_id, {}, generation) is True
    assert (await cache.get(athlete_id))[0] == {}


async def test_search_excludes_the_window(memory: ConversationMemory, athlete_id: str) -> None:
    old = make_turn(athlete_id, "old", 0)
    old = [
        ChatMessage(m.id, m.athlete_id, m.session_id, m.role, f"{m.content} about saddle height", m.created_at)
        for m in old
    ]
    await memory.save_turn(athlete_id, "old", old)
    current = make_turn(athlete_id, "s", 1)
    current = [
        ChatMessage(m.id, m.athlete_id, m.session_id, m.role, f"{m.content} about saddle height", m.created_at)
        for m in current
    ]
    await memory.save_turn(athlete_id, "s", current)
    await memory.drain_outbox()
    loaded = await memory.load(athlete_id, "s")
    hits = await memory.search(athlete_id, "saddle height", k=5, exclude_ids=loaded.window_message_ids)
    assert {h.message_id for h in hits} == {m.id for m in old}


async def test_outbox_drain_is_exactly_once_even_after_a_crash(memory: ConversationMemory, athlete_id: str) -> None:
    assert memory.archive is not None and memory.redis is not None
    outbox = Outbox(memory.redis, stream=f"test:outbox:{uuid.uuid4().hex}")
    messages = [m for i in range(300) for m in make_turn(athlete_id, "s", i)]
    await outbox.enqueue(messages)
    # A drain that committed its first batch to Postgres and died before its XDEL:
    assert await memory.archive.write(messages[:250]) == 250
    assert await outbox.drain(memory.archive, batch=100) == 600
    assert await outbox.pending() == 0
    assert await memory.archive.count(athlete_id) == 600
    assert await outbox.drain(memory.archive) == 0
    await memory.redis.delete(outbox.stream)


async def test_poison_entries_are_dead_lettered(memory: ConversationMemory, athlete_id: str) -> None:
    assert memory.archive is not None and memory.redis is not None and memory.outbox is not None
    good = make_turn(athlete_id, "s", 0)
    await memory.redis.xadd(memory.outbox.stream, {"m": "{broken"})
    await memory.outbox.enqueue(good)
    assert await memory.drain_outbox() == 2
    assert await memory.archive.count(athlete_id) == 2
    assert await memory.redis.xlen(memory.outbox.dead_stream) == 1


async def test_from_settings_opens_both(athlete_id: str) -> None:
    mem = await ConversationMemory.from_settings(spool_dir=None)
    try:
        assert mem.status() == "ok"
        assert (await mem.load(athlete_id, "s")).status == "ok"
    finally:
        await mem.close()


async def test_each_deployment_drains_its_own_outbox_stream(athlete_id: str) -> None:
    """`OUTBOX_STREAM` (`Settings.outbox_stream`): two deployments sharing a Redis never drain each other's turns."""
    streams = [f"test:outbox:{uuid.uuid4().hex}" for _ in range(2)]
    mine, theirs = [
        await ConversationMemory.from_settings(get_settings().model_copy(update={"outbox_stream": s}), spool_dir=None)
        for s in streams
    ]
    try:
        assert mine.outbox is not None and theirs.outbox is not None and theirs.redis is not None
        assert (mine.outbox.stream, theirs.outbox.stream) == tuple(streams)
        await theirs.outbox.enqueue(make_turn(athlete_id, "s", 0))
        assert await mine.drain_outbox() == 0  # not its stream: the other deployment's turn stays
        assert await theirs.redis.xlen(streams[1]) == 2
        assert await theirs.drain_outbox() == 2
    finally:
        for memory in (mine, theirs):
            if memory.redis is not None:
                await memory.redis.delete(*streams)
            await memory.close()
