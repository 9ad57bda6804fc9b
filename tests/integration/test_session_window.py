"""The Redis session window on the shared Redis: atomic appends, cap, TTL, replace (hydration), keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from config.settings import get_settings
from memory.errors import InvalidAthleteIdError
from memory.redis_client import open_redis, probe_redis
from memory.session_window import SessionWindow, WindowEntry, window_key

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = open_redis(get_settings().redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def pair(i: int) -> list[WindowEntry]:
    return [
        WindowEntry.make(str(uuid.uuid4()), "user", f"question {i}", T0 + timedelta(seconds=2 * i)),
        WindowEntry.make(str(uuid.uuid4()), "assistant", f"answer {i}", T0 + timedelta(seconds=2 * i + 1)),
    ]


async def test_probe_and_key_format(redis_client: Redis, athlete_id: str) -> None:
    await probe_redis(redis_client)
    assert window_key(athlete_id, "s-1") == f"session:{{{athlete_id}}}:s-1"
    with pytest.raises(InvalidAthleteIdError):
        window_key("bad}id", "s-1")


async def test_append_read_round_trip(redis_client: Redis, athlete_id: str) -> None:
    window = SessionWindow(redis_client, store_cap=50, ttl_s=3600)
    assert await window.read(athlete_id, "s") == []  # a miss
    first, second = pair(0), pair(1)
    assert await window.append_turn(athlete_id, "s", first) == 2
    assert await window.append_turn(athlete_id, "s", second) == 4
    assert await window.read(athlete_id, "s") == first + second
    assert await window.read(athlete_id, "s", limit=2) == second
    other = await window.read(athlete_id, "other-session")
    assert other == []
    await window.delete(athlete_id, "s")


async def test_cap_keeps_newest_and_ttl_is_set(redis_client: Redis, athlete_id: str) -> None:
    window = SessionWindow(redis_client, store_cap=10, ttl_s=600)
    for i in range(12):
        await window.append_turn(athlete_id, "s", pair(i))
    key = window_key(athlete_id, "s")
    assert await redis_client.llen(key) == 10  # type: ignore[misc]
    entries = await window.read(athlete_id, "s")
    assert [e.content for e in entries[:2]] == ["question 7", "answer 7"]
    assert entries[-1].content == "answer 11"
    assert 590 <= await redis_client.ttl(key) <= 600
    await window.delete(athlete_id, "s")


async def test_concurrent_appends_never_interleave(athlete_id: str) -> None:
    # What is tested is atomicity, not speed: 200 appends at once open up to 50 authenticated connections, which
    # can take longer than the memory layer's 0.5 s fail-fast connect timeout on a busy machine.
    client = open_redis(get_settings().redis_url, timeout_s=10.0)
    try:
        window = SessionWindow(client, store_cap=1000, ttl_s=600)
        await asyncio.gather(*(window.append_turn(athlete_id, "s", pair(i)) for i in range(200)))
        entries = await window.read(athlete_id, "s")
        assert len(entries) == 400
        for user, assistant in zip(entries[::2], entries[1::2], strict=True):
            assert user.role == "user" and assistant.role == "assistant"
            assert user.content.removeprefix("question ") == assistant.content.removeprefix("answer ")
        await window.delete(athlete_id, "s")
    finally:
        await client.aclose()


async def test_replace_hydrates_and_sets_ttl(redis_client: Redis, athlete_id: str) -> None:
    window = SessionWindow(redis_client, store_cap=4, ttl_s=900)
    await window.append_turn(athlete_id, "s", pair(0))
    fresh = pair(1) + pair(2) + pair(3)
    await window.replace(athlete_id, "s", fresh)
    assert await window.read(athlete_id, "s") == fresh[-4:]  # capped on replace too
    assert 890 <= await redis_client.ttl(window_key(athlete_id, "s")) <= 900
    await window.replace(athlete_id, "s", [])
    assert await redis_client.exists(window_key(athlete_id, "s")) == 0


async def test_corrupt_entries_are_skipped(redis_client: Redis, athlete_id: str) -> None:
    window = SessionWindow(redis_client, store_cap=10, ttl_s=60)
    good = pair(0)
    await window.append_turn(athlete_id, "s", good[:1])
    await redis_client.rpush(window_key(athlete_id, "s"), "{not json", '{"role": "system"}')  # type: ignore[misc]
    await window.append_turn(athlete_id, "s", good[1:])
    assert await window.read(athlete_id, "s") == good
    await window.delete(athlete_id, "s")
