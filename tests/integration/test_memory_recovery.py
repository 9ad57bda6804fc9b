"""`memory_status` after an outage, and the API server's outbox drainer (issue 9, item 6).

Both private servers are stopped and restarted. Without any turn, the drainer that the server's lifespan starts
notices both servers and empties the outbox and the local spool within 5 s; the first turn after a recovery
re-probes a tier whose circuit breaker is still open instead of reporting it down, and a reply that reads the
athlete's facts never carries the "memory is unavailable" notice.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from redis.exceptions import RedisError

from config.settings import get_settings
from graphs.chat import UNAVAILABLE_NOTICE
from memory.athlete_store import FactChange
from memory.outbox import DEFAULT_SPOOL_ROOT
from records.stores import Stores, get_stores
from server.app import app, lifespan
from tests.chat_helpers import Chat, ScriptedModel, call
from tests.integration.chat_fault_fixtures import (  # noqa: F401
    archived,
    fault_deps,
    fault_settings,
    turns_by_id,
    wait_drained,
    wait_healthy,
)
from tests.integration.servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401

pytestmark = pytest.mark.integration

GOAL = "a sub-5 h century"
RECOVERY_BUDGET_S = 5.0


@pytest.fixture
def server_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
) -> Iterator[None]:
    """The server process's settings pointing at the private servers (read afresh; restored afterwards).

    Embeddings are off so that the drain's timing does not include loading an embedding model.
    """
    monkeypatch.setenv("DATABASE_URL", private_postgres.url)
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    monkeypatch.setenv("EMBEDDING_PROVIDER", "none")
    monkeypatch.setenv("INBOX_DIR", str(tmp_path / "inbox"))
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()
        digest = hashlib.sha256(private_postgres.url.encode()).hexdigest()[:16]
        shutil.rmtree(DEFAULT_SPOOL_ROOT / digest, ignore_errors=True)


async def pending_or_none(deps: Stores) -> int | None:
    """Messages waiting in the outbox and the spool; None while Redis does not answer."""
    try:
        return await deps.memory.pending_writes()
    except (RedisError, OSError):
        return None


async def test_server_lifespan_drains_the_outbox_and_recovers_without_a_turn(
    server_env: None,
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    await asyncio.gather(private_redis.astart(), private_postgres.astart())
    async with lifespan(app):
        deps = await get_stores()
        assert deps.memory.pool is not None and deps.memory.pool.conninfo.endswith(f":{private_postgres.port}/coach")
        await wait_healthy(deps)
        await deps.memory.set_facts(athlete_id, [FactChange("goal", GOAL)], source="user")
        chat = Chat(deps, athlete_id)  # the offline responder
        out = await chat.say("remind me my current goal")  # the facts are cached in Redis now
        assert out["memory_status"] == "ok" and GOAL in out["reply"]

        outage = ["hello during the Postgres outage", "and again", "one more"]
        await private_postgres.astop()
        try:
            for message in outage:
                await chat.say(message)
            assert await deps.memory.pending_writes() >= 2 * len(outage)  # queued in the Redis outbox
            await private_redis.astop()
            out = await chat.say("hello while both are down")
            assert out["memory_status"] == "unavailable"  # spooled to the local file
        finally:
            await asyncio.gather(private_redis.astart(), private_postgres.astart())
        restarted = time.monotonic()

        # No turn from here on: the drainer the lifespan started notices both servers and empties the outbox.
        while deps.memory.status() != "ok" or await pending_or_none(deps) != 0:
            waited = time.monotonic() - restarted
            assert waited < RECOVERY_BUDGET_S, (
                f"after {waited:.1f} s the memory is {deps.memory.status()} with "
                f"{await pending_or_none(deps)} messages waiting"
            )
            await asyncio.sleep(0.1)
        recovered_s = time.monotonic() - restarted

        out = await chat.say("remind me my current goal")
        assert out["memory_status"] == "ok"
        assert GOAL in out["reply"] and UNAVAILABLE_NOTICE not in out["reply"]
        assert time.monotonic() - restarted < RECOVERY_BUDGET_S
        print(f"\nboth servers restarted: outbox empty and status ok after {recovered_s:.2f} s without a turn")

        await wait_drained(deps)
        by_turn = turns_by_id(await archived(deps, athlete_id))
        assert [group[0]["content"] for group in by_turn.values()] == [
            "remind me my current goal",
            *outage,
            "hello while both are down",
            "remind me my current goal",
        ]
        assert Counter(r["id"] for g in by_turn.values() for r in g).most_common(1)[0][1] == 1
        drainer = deps.memory.drainer.loop_task
        assert drainer is not None and not drainer.done()
    # Shutdown cancels the drainer cleanly.
    assert drainer.cancelled() or drainer.done()


async def test_first_turn_after_both_tiers_return_reads_facts_without_the_notice(
    fault_deps: Stores,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    """No drainer, no health check: the turn itself re-probes the tiers whose breakers are open."""
    await fault_deps.memory.set_facts(athlete_id, [FactChange("goal", GOAL)], source="user")
    chat = Chat(fault_deps, athlete_id)  # the offline responder lists the facts from `get_pinned_facts`
    assert GOAL in (await chat.say("remind me my current goal"))["reply"]
    await wait_drained(fault_deps)
    await asyncio.gather(private_redis.astop(), private_postgres.astop())
    try:
        out = await chat.say("hello coach")
        assert out["memory_status"] == "unavailable" and out["reply"].endswith(UNAVAILABLE_NOTICE)
    finally:
        await asyncio.gather(private_redis.astart(), private_postgres.astart())

    started = time.perf_counter()
    out = await chat.say("remind me my current goal")
    turn_ms = (time.perf_counter() - started) * 1000
    assert out["memory_status"] == "ok"
    assert GOAL in out["reply"] and UNAVAILABLE_NOTICE not in out["reply"]
    print(f"\nfirst turn after both servers returned: {turn_ms:.0f} ms")
    await wait_drained(fault_deps)
    by_turn = turns_by_id(await archived(fault_deps, athlete_id))
    assert [g[0]["content"] for g in by_turn.values()] == [
        "remind me my current goal",
        "hello coach",
        "remind me my current goal",
    ]


class GatedModel(ScriptedModel):
    """A scripted model that signals `entered` and waits for `gate` before each answer."""

    entered: ClassVar[asyncio.Event | None] = None
    gate: ClassVar[asyncio.Event | None] = None

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.entered is not None and self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def test_memory_back_during_the_turn_no_notice_on_a_reply_that_read_the_facts(
    fault_deps: Stores,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    """The turn starts with both servers down; they return while the model thinks; its tool reads the facts.

    The reply then lists facts the athlete can see are there: it must not claim that memory is unavailable,
    and the turn (saved normally) is `ok`.
    """
    await fault_deps.memory.set_facts(athlete_id, [FactChange("goal", GOAL)], source="user")
    assert (await fault_deps.memory.current_facts(athlete_id))["goal"]["value"] == GOAL  # cached
    reply = f"Your goal on file: {GOAL}."
    chat = Chat(fault_deps, athlete_id, GatedModel(messages=iter([call("get_pinned_facts"), AIMessage(reply)])))
    entered, gate = asyncio.Event(), asyncio.Event()
    GatedModel.entered, GatedModel.gate = entered, gate
    try:
        await asyncio.gather(private_redis.astop(), private_postgres.astop())
        try:
            turn = asyncio.create_task(chat.say("what is my goal?"))
            await asyncio.wait_for(entered.wait(), 10)  # the turn loaded its memory while both were down
        finally:
            await asyncio.gather(private_redis.astart(), private_postgres.astart())
        await wait_healthy(fault_deps)
        gate.set()
        out = await asyncio.wait_for(turn, 10)
    finally:
        GatedModel.entered = GatedModel.gate = None
    [facts] = (await chat.tool_results())["get_pinned_facts"]
    assert facts["facts"]["goal"]["value"] == GOAL
    assert out["reply"] == reply and UNAVAILABLE_NOTICE not in out["reply"]
    assert out["memory_status"] == "ok"
