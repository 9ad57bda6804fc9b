"""The chat graph under faults, as the athlete sees it: private servers stopped and restarted mid-conversation.

The degradation matrix of docs/architecture.md, at the level of `graphs.chat` (the memory-level cases are in `test_memory_faults.py`):
Redis down -> `degraded:redis`, normal replies, turns archived, window rebuilt when Redis returns; Postgres down
-> `degraded:postgres`, window and cached facts from Redis, recall says it is unreachable, queued turns archived
exactly once when it returns; both down -> `unavailable` with the plain notice; concurrent turns of one session
neither lost nor interleaved; invalid messages rejected without a write. The graph is checkpointed in memory
(`Chat`), the memory layer is `open_stores` on the private servers. Run with `-s` to see the timings.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, ClassVar

import psycopg
import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult

from config.settings import Settings, get_settings
from graphs.chat import UNAVAILABLE_NOTICE, InvalidMessageError
from llm.prompt import MEMORY_NOTICES
from memory.athlete_store import FactChange
from memory.session_window import BLOCK_HEADER, window_key
from records.stores import Stores
from tests.chat_helpers import Chat, scripted
from tests.integration.chat_fault_fixtures import (  # noqa: F401
    EchoModel,
    Turn,
    archived,
    block_lines,
    fault_deps,
    fault_settings,
    recent_turns,
    system_prompt,
    turns_by_id,
    wait_drained,
    wait_healthy,
    window_entries,
)
from tests.integration.servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401

pytestmark = pytest.mark.integration

OFFLINE = "[offline coach]"
UNREACHABLE = "I can't reach your records right now, so I won't guess. Please ask again in a moment."
GOAL = "a sub-5 h century"


async def timed_say(chat: Chat, message: str, session_id: str = "s1") -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    out = await chat.say(message, session_id)
    return out, (time.perf_counter() - started) * 1000


def plan_question(label: str, day: str) -> str:
    """A message the offline responder answers with `get_plan`; its reply names `day`, so it can be matched."""
    return f"{label}: what is planned on {day}?"


# ----- 1. Redis stopped mid-conversation ---------------------------------------------------------------------


async def test_redis_outage_mid_conversation(
    fault_deps: Stores,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    athlete_id: str,
) -> None:
    chat = Chat(fault_deps, athlete_id)  # offline responder
    turns: list[Turn] = []
    for i in range(3):
        message = plan_question(f"before {i}", f"2025-03-0{i + 1}")
        out = await chat.say(message)
        assert out["memory_status"] == "ok"
        turns.append((message, out["reply"]))
    await wait_drained(fault_deps)

    await private_redis.astop()
    outage: list[Turn] = []
    timings = []
    try:
        for i in range(3):
            day = f"2025-04-0{i + 1}"
            message = plan_question(f"during {i}", day)
            out, ms = await timed_say(chat, message)
            timings.append(ms)
            # A normal reply, from the same tool (Postgres is up), without any memory notice.
            assert out["memory_status"] == "degraded:redis"
            assert out["reply"].startswith(OFFLINE) and "Nothing planned on" in out["reply"] and day in out["reply"]
            assert UNAVAILABLE_NOTICE not in out["reply"]
            assert out["tool_calls"] == [{"name": "get_plan", "args": {"day": day}}]
            # The window comes from the archive: every earlier turn, the ones of the outage included.
            prompt = await system_prompt(chat)
            assert recent_turns(prompt) == block_lines(turns[-6:])
            assert "[ATHLETE FACTS]" in prompt and not any(n in prompt for n in MEMORY_NOTICES.values())
            turns.append((message, out["reply"]))
            outage.append((message, out["reply"]))

        # The outage's turns were written straight to the archive: each message exactly once.
        rows = await archived(fault_deps, athlete_id)
        contents = Counter((r["role"], r["content"]) for r in rows)
        for message, reply in outage:
            assert contents[("user", message)] == 1 and contents[("assistant", reply)] == 1
        assert Counter(r["role"] for r in rows) == {"user": 6, "tool": 6, "assistant": 6}
    finally:
        await private_redis.astart()
    print(f"\nRedis down: chat turns {', '.join(f'{ms:.0f}' for ms in timings)} ms")

    # Redis is back with its AOF, holding the window as it was before the outage (stale: 3 turns).
    waited = await wait_healthy(fault_deps)
    assert [e.content for e in await window_entries(fault_deps, athlete_id)] == [x for t in turns[:3] for x in t]
    message = plan_question("after", "2025-05-01")
    out = await chat.say(message)
    assert out["memory_status"] == "ok" and "2025-05-01" in out["reply"]
    # The next turn's window has the outage's turns, and Redis holds them again (rebuilt from the archive).
    assert recent_turns(await system_prompt(chat)) == block_lines(turns[-6:])
    turns.append((message, out["reply"]))
    assert [e.content for e in await window_entries(fault_deps, athlete_id)] == [x for t in turns for x in t]
    print(f"Redis back: noticed after {waited * 1000:.0f} ms of health checks")


# ----- 2. Postgres stopped ----------------------------------------------------------------------------------


async def test_postgres_outage(
    fault_deps: Stores,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    chat = Chat(fault_deps, athlete_id, inline=True)  # offline responder; fact proposals accepted at once
    shoulder = "My left shoulder hurts after long rides, so we agreed to raise the stem by 1 cm."
    await chat.say(shoulder)
    proposed = await chat.say(f"My goal is {GOAL}")
    assert proposed["__interrupt__"][0].value["proposals"][0]["key"] == "goal"
    assert (await chat.resume(True))["proposals"][0]["status"] == "accepted"
    out = await chat.say("remind me my current goal")  # reads the facts from Postgres and caches them
    assert out["memory_status"] == "ok" and GOAL in out["reply"]
    await wait_drained(fault_deps)
    before = await archived(fault_deps, athlete_id)

    await private_postgres.astop()
    timings: dict[str, float] = {}
    try:
        # Recall needs the archive: the tool reports an error and the coach says so instead of guessing. This is
        # the first call that needs Postgres: it finds it down (at most the 1 s timeout), the turn reports it.
        out, timings["recall (outage noticed)"] = await timed_say(chat, "what did we decide about my shoulder?")
        assert out["memory_status"] == "degraded:postgres"
        assert out["tool_calls"] == [
            {"name": "search_conversation", "args": {"query": "what did we decide about my shoulder?"}}
        ]
        [result] = (await chat.tool_results())["search_conversation"]
        assert result["error"] == "memory_unavailable"
        assert out["reply"] == f"{OFFLINE} {UNREACHABLE}"
        assert "stem" not in out["reply"]
        assert f"- U: {shoulder}" in recent_turns(await system_prompt(chat))  # the window is still there

        # The goal comes from the facts cache, the window from Redis.
        out, timings["goal from the cache"] = await timed_say(chat, "remind me my current goal")
        assert out["memory_status"] == "degraded:postgres"
        assert out["reply"] == f"{OFFLINE} From your pinned facts: goal: {GOAL}."
        prompt = await system_prompt(chat)
        assert MEMORY_NOTICES["degraded:postgres"] in prompt and f"- goal: {GOAL}" in prompt
        lines = recent_turns(prompt)
        assert lines[-2:] == [
            "- U: what did we decide about my shoulder?",
            f"- A: {OFFLINE} {UNREACHABLE}",
        ]
        assert f"- U: {shoulder}" in lines

        out, timings["recall again"] = await timed_say(chat, "what did you say about my shoulder last time?")
        assert out["memory_status"] == "degraded:postgres" and out["reply"] == f"{OFFLINE} {UNREACHABLE}"
        out, timings["no tool"] = await timed_say(chat, "Thanks coach, see you tomorrow")
        assert out["memory_status"] == "degraded:postgres" and out["reply"].startswith(OFFLINE)
        # A tool that queries Postgres directly (not through the memory's breaker) waits for the pool's timeout.
        out, timings["plan (direct pool query)"] = await timed_say(chat, plan_question("outage", "2025-07-01"))
        assert out["memory_status"] == "degraded:postgres" and out["reply"] == f"{OFFLINE} {UNREACHABLE}"
        assert await fault_deps.memory.pending_writes() == 5 * 3 - 1  # 5 turns queued, one without a tool
    finally:
        await private_postgres.astart()
    print("\nPostgres down: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in timings.items()))
    assert timings["goal from the cache"] < 500 and timings["recall again"] < 500 and timings["no tool"] < 500

    await wait_healthy(fault_deps)
    await wait_drained(fault_deps)
    rows = await archived(fault_deps, athlete_id)
    assert len({r["id"] for r in rows}) == len(rows)
    new = [r for r in rows if r["id"] not in {b["id"] for b in before}]
    by_turn = turns_by_id(new)
    assert len(by_turn) == 5 and len(new) == 14  # every message of the outage, exactly once
    for group in by_turn.values():
        assert [r["role"] for r in group] in (["user", "tool", "assistant"], ["user", "assistant"])
    assert [g[0]["content"] for g in by_turn.values()] == [
        "what did we decide about my shoulder?",
        "remind me my current goal",
        "what did you say about my shoulder last time?",
        "Thanks coach, see you tomorrow",
        plan_question("outage", "2025-07-01"),
    ]
    assert await fault_deps.memory.drain_outbox() == 0  # nothing left, nothing written twice

    out = await chat.say("what did we decide about my shoulder?")  # recall is back
    assert out["memory_status"] == "ok" and "error" not in (await chat.tool_results())["search_conversation"][0]


# ----- 3. Both down ----------------------------------------------------------------------------------------


async def test_both_down_is_unavailable_and_says_so(
    fault_deps: Stores,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    await fault_deps.memory.set_facts(athlete_id, [FactChange("goal", GOAL)], source="user")
    offline = Chat(fault_deps, athlete_id)
    out = await offline.say("remind me my current goal")
    assert out["memory_status"] == "ok" and GOAL in out["reply"]  # known, and cached in Redis
    await wait_drained(fault_deps)

    await asyncio.gather(private_redis.astop(), private_postgres.astop())
    try:
        out, first_ms = await timed_say(offline, "remind me my current goal")
        assert out["memory_status"] == "unavailable"
        assert out["reply"] == f"{OFFLINE} {UNREACHABLE}\n\n{UNAVAILABLE_NOTICE}"
        assert GOAL not in out["reply"] and "sub-5" not in out["reply"]
        prompt = await system_prompt(offline)
        assert MEMORY_NOTICES["unavailable"] in prompt
        assert "[ATHLETE FACTS]" not in prompt and BLOCK_HEADER not in prompt and GOAL not in prompt

        out, later_ms = await timed_say(offline, "hello coach")
        assert out["memory_status"] == "unavailable" and out["reply"].endswith(UNAVAILABLE_NOTICE)

        # Whatever a model answers, the notice is added (once); the model saw no facts and no window.
        model_reply = "Great question! Let's keep building towards your goal."
        scripted_chat = Chat(fault_deps, athlete_id, scripted(AIMessage(model_reply), AIMessage(UNAVAILABLE_NOTICE)))
        out = await scripted_chat.say("what should I ride today?")
        assert out["memory_status"] == "unavailable"
        assert out["reply"] == f"{model_reply}\n\n{UNAVAILABLE_NOTICE}"
        prompt = await system_prompt(scripted_chat)
        assert GOAL not in prompt and BLOCK_HEADER not in prompt
        out = await scripted_chat.say("and tomorrow?")
        assert out["reply"] == UNAVAILABLE_NOTICE  # not repeated when the model already said it
    finally:
        await asyncio.gather(private_redis.astart(), private_postgres.astart())
    print(f"\nboth down: first turn {first_ms:.0f} ms, next turn {later_ms:.0f} ms")
    assert later_ms < 500

    # The turns of the outage were spooled locally; they reach the archive when the servers return.
    await wait_healthy(fault_deps)
    await wait_drained(fault_deps)
    by_turn = turns_by_id(await archived(fault_deps, athlete_id))
    assert [g[0]["content"] for g in by_turn.values()] == [
        "remind me my current goal",
        "remind me my current goal",
        "hello coach",
        "what should I ride today?",
        "and tomorrow?",
    ]
    out = await offline.say("remind me my current goal")
    assert out["memory_status"] == "ok" and GOAL in out["reply"]
    assert "- U: and tomorrow?" in recent_turns(await system_prompt(offline))


# ----- 4. Concurrent turns of one session -------------------------------------------------------------------


@pytest.mark.parametrize("responder", ["offline", "echo"])
async def test_concurrent_turns_of_one_session_are_neither_lost_nor_interleaved(
    fault_deps: Stores,  # noqa: F811
    athlete_id: str,
    responder: str,
) -> None:
    model = None if responder == "offline" else EchoModel(delay_s=0.01)
    chat = Chat(fault_deps, athlete_id, model)
    days = iter(f"2025-06-{d:02d}" for d in range(1, 31))
    expected: dict[str, str] = {}  # message -> the text its reply must contain
    replies: dict[str, str] = {}
    for round_no in range(10):
        pair = []
        for k in range(2):
            day = next(days)
            pair.append((plan_question(f"round {round_no}, turn {k}", day), day))
        outs = await asyncio.gather(*(chat.say(message) for message, _ in pair))
        for (message, day), out in zip(pair, outs, strict=True):
            assert out["memory_status"] == "ok"
            mark = day if responder == "offline" else EchoModel.reply_to(message)
            assert mark in out["reply"]
            expected[message], replies[message] = mark, out["reply"]

    def owner(reply: str) -> str:
        [message] = [m for m, mark in expected.items() if mark in reply]
        return message

    # Redis window: each user entry directly followed by its own answer.
    entries = await window_entries(fault_deps, athlete_id)
    assert len(entries) == 40
    for user, answer in zip(entries[::2], entries[1::2], strict=True):
        assert (user.role, answer.role) == ("user", "assistant")
        assert owner(answer.content) == user.content
    assert {e.content for e in entries if e.role == "user"} == set(expected)

    # The last turn's prompt shows whole turns too.
    lines = recent_turns(await system_prompt(chat))
    assert len(lines) == 12
    for u, a in zip(lines[::2], lines[1::2], strict=True):
        assert u.startswith("- U: ") and a.startswith("- A: ") and owner(a[5:]) == u[5:]

    # Archive: every message and every reply, exactly once, in its own turn.
    await wait_drained(fault_deps)
    rows = await archived(fault_deps, athlete_id)
    by_turn = turns_by_id(rows)
    assert len(by_turn) == 20
    for group in by_turn.values():
        [user] = [r for r in group if r["role"] == "user"]
        [answer] = [r for r in group if r["role"] == "assistant"]
        assert answer["content"] == replies[user["content"]]
    assert sorted(r["content"] for r in rows if r["role"] == "user") == sorted(expected)


# ----- 5. Invalid input ------------------------------------------------------------------------------------


async def test_invalid_messages_raise_and_write_nothing(
    fault_deps: Stores,  # noqa: F811
    athlete_id: str,
) -> None:
    chat = Chat(fault_deps, athlete_id, EchoModel())
    await chat.say("a first message")
    await wait_drained(fault_deps)
    redis = fault_deps.memory.redis
    assert redis is not None
    key = window_key(athlete_id, "s1")

    async def snapshot() -> tuple[Any, ...]:
        return (
            await redis.lrange(key, 0, -1),  # type: ignore[misc]
            await archived(fault_deps, athlete_id),
            await fault_deps.memory.pending_writes(),
            await redis.dbsize(),
        )

    before = await snapshot()
    limit = get_settings().max_message_chars  # what the graph enforces
    for bad in ["", "   \n\t  ", "x" * (limit + 1), "x" * (limit * 3)]:
        with pytest.raises(InvalidMessageError):
            await chat.say(bad)
    for bad_input in [{"message": None}, {"message": 42}]:
        with pytest.raises(InvalidMessageError):
            await chat.graph.ainvoke(bad_input, config=chat.config("s1"), context=chat.context("s1"))
    await asyncio.sleep(0.05)  # a background write, if any had been started, would land now
    assert await snapshot() == before

    # The conversation goes on; a message of exactly the limit is accepted.
    longest = "y" * limit
    out = await chat.say(longest)
    assert out["reply"] == EchoModel.reply_to(longest) and out["memory_status"] == "ok"
    out = await chat.say("and after that?")
    lines = recent_turns(await system_prompt(chat))
    assert lines[0] == "- U: a first message" and len(lines) == 4  # no trace of the rejected messages
    await wait_drained(fault_deps)
    assert [r["content"] for r in await archived(fault_deps, athlete_id) if r["role"] == "user"] == [
        "a first message",
        longest,
        "and after that?",
    ]


# ----- a turn queued while the window is stale must survive the rebuild ------------------------------------


class GatedEcho(EchoModel):
    """An echo model that signals `entered` and then waits for `gate` before answering (when both are set)."""

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


async def test_turn_saved_to_a_stale_window_survives_its_rebuild(
    fault_deps: Stores,  # noqa: F811
    fault_settings: Settings,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    athlete_id: str,
) -> None:
    """Redis returns while a turn is running: that turn goes to the outbox and to the (stale) Redis window.

    The next turn rebuilds the stale window from the archive; the outbox has not reached it yet (here: the
    drain waits on a row lock, as under load), so the rebuild must not drop the turn that only Redis has.
    """
    chat = Chat(fault_deps, athlete_id, GatedEcho())
    await chat.say("turn 0")
    await wait_drained(fault_deps)
    lock = await psycopg.AsyncConnection.connect(fault_settings.database_url)
    entered, gate = asyncio.Event(), asyncio.Event()
    try:
        await private_redis.astop()
        try:
            assert (await chat.say("turn 1"))["memory_status"] == "degraded:redis"  # archived directly; stale
            await lock.execute("BEGIN")
            await lock.execute(
                "SELECT 1 FROM conversations WHERE athlete_id = %s AND session_id = %s FOR UPDATE",
                (athlete_id, "s1"),
            )
            GatedEcho.entered, GatedEcho.gate = entered, gate
            turn2 = asyncio.create_task(chat.say("turn 2"))
            await asyncio.wait_for(entered.wait(), 10)  # turn 2 loaded its window without Redis
        finally:
            await private_redis.astart()
        # Redis answers again before turn 2 saves (on a loaded machine a just-restarted Redis can miss the save's
        # quick re-probe, and the save would then go straight to the locked Postgres instead).
        await wait_healthy(fault_deps)
        gate.set()  # Redis is back: turn 2's save re-probes it and writes to the outbox and the stale window
        out = await asyncio.wait_for(turn2, 10)
        GatedEcho.entered = GatedEcho.gate = None
        assert out["memory_status"] == "degraded:redis"  # its window came from the archive
        assert await fault_deps.memory.pending_writes() == 2  # turn 2 is in the outbox, its drain waits
        await chat.say("turn 3")
        turn3_window = recent_turns(await system_prompt(chat))
    finally:
        GatedEcho.entered = GatedEcho.gate = None
        await lock.execute("ROLLBACK")
        await lock.close()
    await wait_drained(fault_deps)
    await chat.say("turn 4")
    turn4_window = recent_turns(await system_prompt(chat))
    await wait_drained(fault_deps)
    assert [r["content"] for r in await archived(fault_deps, athlete_id) if r["role"] == "user"] == [
        f"turn {i}" for i in range(5)
    ]
    expected3 = block_lines([(f"turn {i}", EchoModel.reply_to(f"turn {i}")) for i in range(3)])
    assert turn3_window == expected3
    assert turn4_window == block_lines([(f"turn {i}", EchoModel.reply_to(f"turn {i}")) for i in range(4)])


# ----- facts that cannot be read are not "none on file" ------------------------------------------------------


async def test_uncached_facts_with_postgres_down_are_not_shown_as_none(
    fault_deps: Stores,  # noqa: F811
    private_postgres: PrivatePostgres,  # noqa: F811
    athlete_id: str,
) -> None:
    """The goal was just written (so its cache entry was invalidated) when Postgres goes down.

    The model must not be told that the athlete has no facts: they exist, they are unreachable.
    """
    chat = Chat(fault_deps, athlete_id, EchoModel())
    await chat.say("hello coach")
    await fault_deps.memory.set_facts(athlete_id, [FactChange("goal", GOAL)], source="debrief_coach")
    await wait_drained(fault_deps)
    await private_postgres.astop()
    try:
        out = await chat.say("what's my goal again?")
        prompt = await system_prompt(chat)
    finally:
        await private_postgres.astart()
    assert out["memory_status"] == "degraded:postgres"
    assert "- U: hello coach" in recent_turns(prompt)  # the window still comes from Redis
    assert "(none on file yet)" not in prompt
    assert "[ATHLETE FACTS]" in prompt and GOAL not in prompt


# ----- Redis restarted: the client's pooled connections died with it ----------------------------------------


async def test_turns_after_a_redis_restart_are_ok_once_redis_answers(
    fault_deps: Stores,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    athlete_id: str,
) -> None:
    """Once the memory has seen Redis answer again, the next turns are `ok`, even several at a time."""
    chat = Chat(fault_deps, athlete_id, EchoModel(delay_s=0.01))
    sessions = [f"s{i}" for i in range(4)]
    outs = await asyncio.gather(*(chat.say("before", s) for s in sessions))  # the client now pools connections
    assert {o["memory_status"] for o in outs} == {"ok"}
    await wait_drained(fault_deps)
    await private_redis.astop()
    try:
        assert (await chat.say("during", "s0"))["memory_status"] == "degraded:redis"
    finally:
        await private_redis.astart()
    await wait_healthy(fault_deps)
    outs = await asyncio.gather(*(chat.say("after", s) for s in sessions))
    statuses = [o["memory_status"] for o in outs]
    assert statuses == ["ok"] * 4
