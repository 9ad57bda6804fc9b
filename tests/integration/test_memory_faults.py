"""Memory under faults, on private servers that the tests stop and restart (see `tests.integration.servers`).

The degradation matrix of docs/architecture.md: Redis down -> degraded:redis (writes straight to Postgres, window from the archive); Postgres
down -> degraded:postgres (window and cached facts from Redis, writes queued in the outbox, recall unavailable);
both down -> unavailable. Timings of a degraded turn are printed (run with `-s` to see them) and bounded.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from memory.athlete_store import FactChange
from memory.breakers import PG_TIMEOUT_S
from memory.conversation import ConversationMemory
from memory.db import open_memory_pool
from memory.errors import StoreUnavailableError
from memory.messages import ChatMessage, new_message_id
from memory.redis_client import open_redis
from memory.session_window import window_key
from tests.integration.servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401

pytestmark = pytest.mark.integration

MemoryFactory = Callable[..., Awaitable[ConversationMemory]]


@pytest_asyncio.fixture
async def make_memory(
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[MemoryFactory]:
    """Build ConversationMemory objects on the private servers (both running and Redis empty at the start)."""
    private_redis.ensure_running()
    private_postgres.ensure_running()
    created: list[ConversationMemory] = []

    async def factory(**overrides: Any) -> ConversationMemory:
        redis = open_redis(private_redis.url)
        pool = await open_memory_pool(private_postgres.url, max_size=4)
        options: dict[str, Any] = {"store_cap": 50, "spool_dir": tmp_path / "spool", "owns_clients": True}
        mem = ConversationMemory(redis, pool, **{**options, **overrides})
        await wait_until_healthy(mem)
        created.append(mem)
        return mem

    first = await factory()
    assert first.redis is not None
    await first.redis.flushall()
    try:
        yield factory
    finally:
        for mem in created:
            await mem.close()


def make_turn(athlete_id: str, session_id: str, i: int) -> list[ChatMessage]:
    turn_id = new_message_id()
    user = ChatMessage(new_message_id(), athlete_id, session_id, "user", f"question {i}", datetime.now(UTC), turn_id)
    tool = ChatMessage(
        new_message_id(), athlete_id, session_id, "tool", "{}", datetime.now(UTC), turn_id, tool_name="get_plan"
    )
    answer = ChatMessage(
        new_message_id(), athlete_id, session_id, "assistant", f"answer {i}", datetime.now(UTC), turn_id
    )
    return [user, tool, answer]


async def wait_until_healthy(mem: ConversationMemory, timeout_s: float = 10.0) -> float:
    """Probe until both servers answer (a restarted server may take a pool reconnect cycle); return the ms."""
    started = time.perf_counter()
    while await mem.check_health() != "ok":
        assert time.perf_counter() - started < timeout_s, f"still {mem.status()} after {timeout_s} s"
        await asyncio.sleep(0.05)
    return (time.perf_counter() - started) * 1000


async def timed(coro: Awaitable[Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - started) * 1000


def summary(name: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"{name}: n={len(ms)} median={statistics.median(ms):.2f} ms p95={p95:.2f} ms max={max(ms):.2f} ms"


async def test_redis_down_mid_conversation(
    make_memory: MemoryFactory,
    private_redis: PrivateRedis,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory()
    assert mem.archive is not None and mem.redis is not None
    for i in range(3):
        assert await mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", i)) == "ok"
    await mem.drain_outbox()

    await private_redis.astop()
    loaded, first_ms = await timed(mem.load(athlete_id, "s"))
    assert loaded.status == "degraded:redis"
    assert "question 2" in loaded.window_block  # the window comes from the archive
    timings = []
    for i in range(3, 8):
        status, ms = await timed(mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", i)))
        timings.append(ms)
        assert status == "degraded:redis"
    assert await mem.archive.count(athlete_id, "s") == 8 * 3  # written straight to Postgres
    loaded = await mem.load(athlete_id, "s")
    assert loaded.status == "degraded:redis" and "question 7" in loaded.window_block
    print("\n" + summary("Redis down: save_turn (straight to Postgres)", timings), f"first load {first_ms:.1f} ms")

    # Redis returns with its AOF: the old window (3 turns) is back, stale; it is rebuilt from the archive.
    await private_redis.astart()
    assert await mem.redis.llen(window_key(athlete_id, "s")) == 6  # type: ignore[misc]
    await wait_until_healthy(mem)
    loaded = await mem.load(athlete_id, "s")
    assert loaded.status == "ok"
    assert [line[5:] for line in loaded.window_block.splitlines()[1:]] == [
        text for i in range(2, 8) for text in (f"question {i}", f"answer {i}")
    ]
    assert await mem.redis.llen(window_key(athlete_id, "s")) == 16  # type: ignore[misc]
    assert not mem.stale_sessions


async def test_redis_recovery_is_noticed_without_an_explicit_check(
    make_memory: MemoryFactory,
    private_redis: PrivateRedis,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory(breaker_open_s=0.2)
    await private_redis.astop()
    assert (await mem.load(athlete_id, "s")).status == "degraded:redis"
    await private_redis.astart()
    deadline = time.monotonic() + 5
    while (await mem.load(athlete_id, "s")).status != "ok":  # background probes, at most every 0.2 s
        assert time.monotonic() < deadline, "Redis recovery not noticed"
        await asyncio.sleep(0.05)


async def test_postgres_down_serves_window_and_cached_facts(
    make_memory: MemoryFactory,
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory()
    assert mem.archive is not None
    await mem.set_facts(athlete_id, [FactChange("ftp_w", 255)], source="user")
    for i in range(3):
        await mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", i))
    assert (await mem.load(athlete_id, "s")).facts["ftp_w"]["value"] == 255  # cached now
    await mem.drain_outbox()

    await private_postgres.astop()
    # Nothing on the reply path needs Postgres now: this turn still says "ok"; the drain it starts in the
    # background finds Postgres down (within the pool's 1 s checkout timeout) and later turns say so.
    status, save_ms = await timed(mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", 3)))
    assert status == "ok"
    started = time.perf_counter()
    while mem.status() == "ok":
        assert time.perf_counter() - started < 5, "the outage was not noticed"
        await asyncio.sleep(0.01)
    detect_ms = (time.perf_counter() - started) * 1000
    loaded = await mem.load(athlete_id, "s")
    assert loaded.status == "degraded:postgres"
    assert "question 3" in loaded.window_block and "question 0" in loaded.window_block
    assert loaded.facts["ftp_w"]["value"] == 255
    assert (await mem.current_facts(athlete_id))["ftp_w"]["value"] == 255
    with pytest.raises(StoreUnavailableError):
        await mem.search(athlete_id, "question")
    with pytest.raises(StoreUnavailableError):
        await mem.current_facts(f"{athlete_id}-cold")  # not cached, Postgres down
    with pytest.raises(StoreUnavailableError):
        await mem.set_facts(athlete_id, [FactChange("ftp_w", 260)], source="user")
    cold, cold_ms = await timed(mem.load(f"{athlete_id}-cold", "s"))  # cache miss + window miss: no wait
    assert cold.status == "degraded:postgres" and cold.facts == {} and cold.window_block == ""

    turn_ms = []
    for i in range(4, 54):
        started = time.perf_counter()
        loaded = await mem.load(athlete_id, "s")
        status = await mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", i))
        turn_ms.append((time.perf_counter() - started) * 1000)
        assert loaded.status == status == "degraded:postgres"
    print(
        "\n" + summary("Postgres down: load+save_turn", turn_ms),
        f"| outage noticed by the background drain after {detect_ms:.0f} ms,",
        f"cold-athlete load {cold_ms:.2f} ms, first save {save_ms:.2f} ms",
    )
    # No call waits for a dead server's timeout (PG_TIMEOUT_S = 1 s): the bound is far below it and far above a
    # loaded machine's turn time, so it tells "fails fast" from "waits" without timing the machine.
    assert max(turn_ms) < PG_TIMEOUT_S * 1000 * 0.8
    assert cold_ms < PG_TIMEOUT_S * 1000 * 0.8
    assert await mem.pending_writes() == 51 * 3

    await private_postgres.astart()
    await wait_until_healthy(mem)
    assert await mem.drain_outbox() == 51 * 3
    assert await mem.archive.count(athlete_id, "s") == 54 * 3


async def test_first_contact_with_a_dead_postgres_costs_one_timeout_then_nothing(
    make_memory: MemoryFactory,
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory()  # pg_timeout_s = 1 s
    await private_postgres.astop()
    # A new athlete and session: window miss and facts miss both need Postgres, which nobody knows is down.
    first, first_ms = await timed(mem.load(athlete_id, "s"))
    assert first.status == "degraded:postgres" and first_ms < 1500
    later_ms = []
    for i in range(20):
        loaded, ms = await timed(mem.load(f"{athlete_id}-{i}", "s"))  # every one a cache miss
        later_ms.append(ms)
        assert loaded.status == "degraded:postgres"
    print(f"\nfirst load against a dead Postgres {first_ms:.0f} ms; " + summary("later cold loads", later_ms))
    assert max(later_ms) < PG_TIMEOUT_S * 1000 * 0.8


async def test_thousand_turns_while_postgres_is_down_are_archived_exactly_once(
    make_memory: MemoryFactory,
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory()
    assert mem.archive is not None and mem.pool is not None
    await private_postgres.astop()
    assert await mem.check_health() == "degraded:postgres"
    expected_ids: set[str] = set()
    turn_ms = []
    for i in range(1000):
        messages = make_turn(athlete_id, "s", i)
        messages = [messages[0], messages[2]]  # user + assistant
        expected_ids |= {m.id for m in messages}
        started = time.perf_counter()
        loaded = await mem.load(athlete_id, "s")
        status = await mem.save_turn(athlete_id, "s", messages)
        turn_ms.append((time.perf_counter() - started) * 1000)
        assert loaded.status == status == "degraded:postgres"
    print("\n" + summary("Postgres down, 1000 turns: load+save_turn", turn_ms))
    assert statistics.median(turn_ms) < PG_TIMEOUT_S * 1000 * 0.8
    assert await mem.pending_writes() == 2000

    await private_postgres.astart()
    recover_ms = await wait_until_healthy(mem)
    moved, drain_ms = await timed(mem.drain_outbox())
    print(f"Postgres back: health check {recover_ms:.0f} ms, drain of {moved} messages {drain_ms:.0f} ms")
    assert moved == 2000
    assert await mem.pending_writes() == 0
    assert await mem.archive.count(athlete_id) == 2000
    assert await mem.archive.count(athlete_id, roles=("user", "assistant")) == 2000
    async with mem.pool.connection() as conn:
        cur = await conn.execute("SELECT id::text AS id FROM messages WHERE athlete_id = %s", (athlete_id,))
        assert {r["id"] for r in await cur.fetchall()} == expected_ids
    assert await mem.drain_outbox() == 0  # a second drain writes nothing


async def test_both_down_is_unavailable_and_spools(
    make_memory: MemoryFactory,
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory()
    assert mem.archive is not None and mem.spool is not None
    await mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", 0))
    await mem.drain_outbox()
    await asyncio.gather(private_redis.astop(), private_postgres.astop())
    assert await mem.check_health() == "unavailable"
    loaded, load_ms = await timed(mem.load(athlete_id, "s"))
    assert (loaded.status, loaded.window_block, loaded.facts) == ("unavailable", "", {})
    status, save_ms = await timed(mem.save_turn(athlete_id, "s", make_turn(athlete_id, "s", 1)))
    assert status == "unavailable"
    print(f"\nboth down: load {load_ms:.2f} ms, save_turn (spooled) {save_ms:.2f} ms")
    assert load_ms < PG_TIMEOUT_S * 1000 * 0.8 and save_ms < PG_TIMEOUT_S * 1000 * 0.8
    assert await mem.spool.pending() == 3

    await asyncio.gather(private_redis.astart(), private_postgres.astart())
    await wait_until_healthy(mem)
    assert await mem.drain_outbox() == 3  # the spooled turn reaches the archive
    assert await mem.spool.pending() == 0
    assert await mem.archive.count(athlete_id, "s") == 6
    loaded = await mem.load(athlete_id, "s")  # the window missed the spooled turn: rebuilt from the archive
    assert "question 1" in loaded.window_block and loaded.status == "ok"


async def test_spool_is_drained_by_another_process_later(
    make_memory: MemoryFactory,
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    crashed = await make_memory()
    await asyncio.gather(private_redis.astop(), private_postgres.astop())
    await crashed.check_health()
    await crashed.save_turn(athlete_id, "s", make_turn(athlete_id, "s", 0))
    await crashed.close()  # the process dies with a spooled turn
    await asyncio.gather(private_redis.astart(), private_postgres.astart())
    successor = await make_memory()  # same spool directory
    assert await successor.drain_outbox() == 3
    assert successor.archive is not None and await successor.archive.count(athlete_id) == 3


async def test_concurrent_turns_of_one_session_are_never_lost_nor_interleaved(
    make_memory: MemoryFactory, athlete_id: str
) -> None:
    mem = await make_memory(store_cap=1000)
    assert mem.window is not None and mem.archive is not None
    for round_no in range(100):
        a, b = make_turn(athlete_id, "s", 2 * round_no), make_turn(athlete_id, "s", 2 * round_no + 1)
        statuses = await asyncio.gather(mem.save_turn(athlete_id, "s", a), mem.save_turn(athlete_id, "s", b))
        assert statuses == ["ok", "ok"]
    entries = await mem.window.read(athlete_id, "s")
    assert len(entries) == 400
    for user, answer in zip(entries[::2], entries[1::2], strict=True):
        assert user.role == "user" and answer.role == "assistant"
        assert user.content.removeprefix("question ") == answer.content.removeprefix("answer ")
    await mem.drain_outbox()
    assert await mem.archive.count(athlete_id, "s") == 600
    hydrated = await mem.archive.recent(athlete_id, "s", 1000)
    for user, answer in zip(hydrated[::2], hydrated[1::2], strict=True):
        assert user.turn_id == answer.turn_id and user.role == "user" and answer.role == "assistant"


async def test_postgres_restart_does_not_hand_out_dead_connections(
    make_memory: MemoryFactory,
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    mem = await make_memory()
    await mem.set_facts(athlete_id, [FactChange("goal", "sub-5 h century")], source="user")
    await private_postgres.astop()
    await private_postgres.astart()
    # The pooled connection died with the server; the pool's check replaces it instead of failing the call.
    assert (await mem.current_facts(athlete_id))["goal"]["value"] == "sub-5 h century"
    hits = await mem.search(athlete_id, "anything")
    assert hits == [] and mem.status() == "ok"
