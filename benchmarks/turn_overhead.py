"""Turn-overhead benchmark: the chat graph's per-turn cost over a long thread, against a naive chat graph.

Both graphs run on one thread each, with the same fake model and the same `AsyncPostgresSaver` (on the memory's
Postgres pool, as `coach chat` does), in the same process, one after the other:

- **ours**: `graphs.chat.build_graph(checkpointer=saver, stores=deps, model=fake)`, with the real memory
  (`records.stores.open_stores()`: Redis window, facts cache, Redis outbox drained to the Postgres archive in the
  background). Per-turn state: the previous turn's messages are removed at the start of each turn.
- **naive**: `StateGraph(MessagesState)` with one node that calls the model on the whole history; the history
  lives in the state (`add_messages`) and so in every checkpoint.

Turns are invoked with `durability="exit"`, the mode of `cli.chat.run_turn` (the CLI); with
`--durability both` ours also runs with LangGraph's default, `durability="async"`, on its own thread (about 45 s
more). Speed figures are printed as ratios to the naive graph (the baseline, always `durability="exit"`).

What is measured:

- turn time: wall time of `graph.ainvoke(...)`, nothing else (the CLI's extra `aget_state` is not included);
  also this process's CPU time over the same span (less sensitive to other load on the machine). After each of
  our turns the outbox is drained outside the timed region, as `coach chat` does after printing a reply; the
  background drain that `save_turn` starts still overlaps the end of its own turn (the final checkpoint write).
  `--back-to-back` skips that drain, so the background drain also overlaps the next turn.
- memory share: `ConversationMemory.load` + `assemble_prompt` + `prompt_tokens` + `ConversationMemory.save_turn`.
  Timed by wrapping the memory instance's `load`/`save_turn` (instance attributes) and the module attributes
  `graphs.chat.assemble_prompt`/`graphs.chat.prompt_tokens` (looked up at call time by the graph's nodes) with
  timers; all are restored at the end. The same way the saver's `aget_tuple`/`aput`/`aput_writes` are timed
  (checkpointer share).
- prompt tokens: ours from the turn's output `prompt_tokens`; naive: `llm.prompt.prompt_tokens` (one token
  per 4 characters, rounded up, per message) of the history sent to the model.
- checkpoint storage per thread: rows (checkpoints/blobs/writes) and KB of the thread's checkpoint tables after
  turn 10 and after the last turn; ours keeps `Settings.checkpoint_keep` checkpoints per thread (the saver of
  `coach chat` and of the server), the naive graph keeps every checkpoint (the library's default).
- storage: `pg_column_size` of this thread's rows of `checkpoints`, `checkpoint_blobs` and `checkpoint_writes`
  (on-disk row size, after TOAST compression) plus, for ours, of this session's `messages` rows (the archive,
  after an explicit `drain_outbox()`); `raw` is the uncompressed payload (`octet_length`). Indexes not counted.

A fresh athlete (`bench-<hex>`) is used per run, so repeated runs do not interfere; a few warm-up turns per graph
(on separate sessions/threads) are not counted.

Usage: ``uv run python benchmarks/turn_overhead.py [--turns N] [--naive-turns N] [--durability exit|async|both]
[--back-to-back] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import START, MessagesState, StateGraph

import graphs.chat as chat_module
from graphs.context import Context
from graphs.context import thread_id as make_thread_id
from llm.prompt import prompt_tokens
from memory.athlete_store import FactChange
from memory.checkpointer import CoachPostgresSaver, open_checkpointer
from records.stores import Stores, open_stores
from tests.chat_helpers import ScriptedModel

T = TypeVar("T")

WARMUP_TURNS = 5
TOKEN_TURNS = (10, 100, 500, 1000)
TARGET_TURN_P99_MS = 8.0
TARGET_FLAT_RATIO = 1.20
TARGET_MEMORY_P99_MS = 1.5
TARGET_TOKENS_MAX = 2000
TARGET_TOKENS_DRIFT = 0.10
TARGET_BYTES_PER_TURN = 10 * 1024

ATHLETE_MESSAGES = [
    "How did my ride this morning look? Legs felt heavy on the climbs.",
    "Can I swap tomorrow's intervals for an easy spin? Work is crazy this week and I slept badly.",
    "What should I eat before a three hour endurance ride on Saturday?",
    "My FTP test is next week. Should I taper for it or just go in as I am?",
    "Knee is a bit sore on the outside after yesterday's long climb, mostly when I push hard out of the saddle. "
    "Anything I should change on the bike or in the plan?",
    "And tomorrow? Same plan, or should I move the long ride because of the rain forecast?",
    "Is 90 rpm a good cadence target for sweet spot intervals, or should I go lower to build torque?",
    "I have only 45 minutes on Thursday. What's the most useful session I can fit in?",
    "Felt great today, held 250 W for the full 20 minutes without fading. Is that a new best for me?",
    "Should I ride the group ride on Sunday or stick to the plan? It tends to turn into a race after an hour, and "
    "I always end up going way over my zones on the sprints.",
    "How many rest days do I need this week given the big block we just did?",
    "Weather looks terrible tomorrow. Is an hour on the trainer equivalent to ninety minutes outside?",
    "What does my form look like heading into the gran fondo in three weeks?",
    "I missed Tuesday's workout entirely. Do I make it up or just move on with the week?",
    "Heart rate was unusually high at easy pace today, around 150 bpm. Should I be worried about that?",
    "Can you remind me what we said about fueling on long rides? Grams of carbs per hour, I mean.",
    "New saddle arrived. Anything to watch for the first couple of weeks while I get used to it?",
    "Thanks, that helps. I'll do the easy spin today and report back how the legs feel tonight.",
    "Plan says 4x8 min at threshold tomorrow. I'm travelling and will be on a hotel bike, any adjustments?",
    "Let's set a goal: sub five hours at the Marmotte next July. Is that realistic from where I am now, with about "
    "eight hours a week to train and a couple of training camps possible in the spring?",
]

COACH_REPLIES = [
    "Heavy legs on the climbs after the last three days is expected: your fatigue is up and form is slightly "
    "negative. Keep today's power numbers as a reference, not a verdict. Tomorrow, ride easy for an hour at "
    "endurance pace, spin a high cadence and skip the efforts. We'll look again after a rest day.",
    "Yes, swap them. Sleep and stress count as training load too, and intervals on a bad night rarely hit their "
    "targets. Do 45 to 60 minutes easy, zone 2, with a few short high-cadence spin-ups. Move the intervals to "
    "Friday if you wake up fresh; otherwise we drop them this week and keep the weekend ride.",
    "Aim for a carb-rich breakfast two to three hours before: oats or rice with fruit, about 2 g of carbs per kg, "
    "light on fat and fibre. Then 60 to 90 g of carbs per hour on the bike from the first half hour, with "
    "500 ml of fluid per hour and electrolytes if it is warm. Test it on Saturday, not on race day.",
    "Go in as you are, with two easier days before it: a test reflects your current fitness, and tapering "
    "for it inflates the number and the zones we set from it. Do the usual warm-up, pace the first five minutes "
    "conservatively and build. I'll update your zones afterwards from the 20 minute best.",
    "Outside knee pain is often the iliotibial band or cleat rotation. Check that your cleats let the heel sit "
    "naturally, and that the saddle has not dropped. Keep the next two rides easy and seated, avoid big gears. "
    "If it is still sore after a week, or sharp, see a physio before we add any intensity back.",
]

MILESTONES = (1, 10, 100, 500)
SAVER_METHODS = ("aget_tuple", "aput", "aput_writes")


def percentile(values: list[float], q: float) -> float:
    """Return the `q`-th percentile (0-100) of `values`, interpolated linearly between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def window(values: list[float], first: int, last: int) -> list[float]:
    """Return the values of turns `first`..`last` (1-based, inclusive), clipped to the run."""
    return values[max(first, 1) - 1 : min(last, len(values))]


def fake_model() -> ScriptedModel:
    """A scripted fake chat model cycling plain replies (no tool calls).

    A fresh `AIMessage` per call: a reused instance would get an id on its first use, and `add_messages` would
    then replace the earlier message with that id instead of appending (the naive history would stop growing).
    """
    return ScriptedModel(messages=(AIMessage(reply) for reply in itertools.cycle(COACH_REPLIES)))


def athlete_messages() -> Iterator[str]:
    """Cycle through 20 athlete messages (65-192 characters)."""
    return itertools.cycle(ATHLETE_MESSAGES)


class TurnTimers:
    """Seconds spent per category in the current turn, by wrapped callables."""

    def __init__(self) -> None:
        """Start with nothing recorded."""
        self.current: dict[str, float] = {}

    def take(self) -> dict[str, float]:
        """Return this turn's figures and start the next turn."""
        out, self.current = self.current, {}
        return out

    def _add(self, key: str, seconds: float, name: str) -> None:
        self.current[key] = self.current.get(key, 0.0) + seconds
        self.current["calls:" + name] = self.current.get("calls:" + name, 0.0) + 1

    def wrap_async(
        self, fn: Callable[..., Awaitable[T]], key: str, name: str | None = None
    ) -> Callable[..., Awaitable[T]]:
        """Wrap a coroutine function so that its duration is added to `key` and its calls counted as `name`."""

        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._add(key, time.perf_counter() - start, name or key)

        return timed

    def wrap_sync(self, fn: Callable[..., T], key: str) -> Callable[..., T]:
        """Wrap a function so that its duration is added to `key`."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(key, time.perf_counter() - start, key)

        return timed


@dataclass
class RunResult:
    """One graph's run."""

    name: str
    graph: str
    durability: str
    thread_id: str
    turns: int
    turn_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    """This process's CPU time during each turn (all threads, including background tasks that ran meanwhile)."""
    memory_ms: list[float] = field(default_factory=list)
    memory_parts_ms: dict[str, list[float]] = field(default_factory=dict)
    checkpointer_ms: list[float] = field(default_factory=list)
    saver_calls: dict[str, float] = field(default_factory=dict)
    """Calls of the saver's `aget_tuple`, `aput`, `aput_writes` over the run."""
    prompt_tokens: dict[int, int] = field(default_factory=dict)
    storage: dict[int, dict[str, int]] = field(default_factory=dict)
    """After turn n: {n: {checkpoints, blobs, writes, archive, total, raw (bytes), <table>_rows (row counts)}}."""
    loadavg: tuple[float, float] = (0.0, 0.0)
    """The machine's 1-minute load average before and after the run."""

    def summary(self) -> dict[str, Any]:
        """Return the printed figures."""
        n = self.turns
        last = self.storage[n]
        prev = self.storage.get(n - 1)
        out: dict[str, Any] = {
            "name": self.name,
            "graph": self.graph,
            "durability": self.durability,
            "turns": n,
            "p50_ms_turns_1_10": percentile(window(self.turn_ms, 1, 10), 50),
            "p50_ms_turns_491_500": percentile(window(self.turn_ms, 491, 500), 50) if n >= 500 else None,
            f"p50_ms_turns_{n - 9}_{n}": percentile(window(self.turn_ms, n - 9, n), 50),
            "p99_ms": percentile(self.turn_ms, 99),
            "max_ms": max(self.turn_ms),
            "cpu_p50_ms": percentile(self.cpu_ms, 50),
            "cpu_p99_ms": percentile(self.cpu_ms, 99),
            "loadavg_1min": list(self.loadavg),
            "mean_ms": sum(self.turn_ms) / n,
            "p50_ms_first_100": percentile(window(self.turn_ms, 1, 100), 50),
            "p50_ms_last_100": percentile(window(self.turn_ms, n - 99, n), 50),
            "checkpointer_p50_ms": percentile(self.checkpointer_ms, 50),
            "checkpointer_p50_ms_first_10": percentile(window(self.checkpointer_ms, 1, 10), 50),
            "checkpointer_p50_ms_last_10": percentile(window(self.checkpointer_ms, n - 9, n), 50),
            "saver_calls_per_turn": {k: v / n for k, v in self.saver_calls.items()},
            "rows_per_turn": {
                k: last[k + "_rows"] / n for k in ("checkpoint", "blob", "write", "archive") if k + "_rows" in last
            },
            "checkpointer_p99_ms": percentile(self.checkpointer_ms, 99),
            "prompt_tokens": {str(k): v for k, v in sorted(self.prompt_tokens.items())},
            "storage_bytes": {str(k): v for k, v in sorted(self.storage.items())},
            "bytes_per_turn": last["total"] / n,
            "raw_bytes_per_turn": last["raw"] / n,
            "last_turn_bytes": last["total"] - prev["total"] if prev else None,
            "last_turn_raw_bytes": last["raw"] - prev["raw"] if prev else None,
        }
        if self.memory_ms:
            out["memory_p50_ms"] = percentile(self.memory_ms, 50)
            out["memory_p99_ms"] = percentile(self.memory_ms, 99)
            out["memory_parts_p50_ms"] = {k: percentile(v, 50) for k, v in self.memory_parts_ms.items()}
            out["memory_parts_p99_ms"] = {k: percentile(v, 99) for k, v in self.memory_parts_ms.items()}
        return out


STORAGE_SQL = """
SELECT
  (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM checkpoints c WHERE c.thread_id = %(t)s) AS checkpoints,
  (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM checkpoint_blobs b WHERE b.thread_id = %(t)s) AS blobs,
  (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes w WHERE w.thread_id = %(t)s) AS writes,
  (SELECT coalesce(sum(pg_column_size(m.*)), 0) FROM messages m
     WHERE m.athlete_id = %(a)s AND m.session_id = %(s)s) AS archive,
  (SELECT count(*) FROM checkpoints c WHERE c.thread_id = %(t)s) AS checkpoint_rows,
  (SELECT count(*) FROM checkpoint_blobs b WHERE b.thread_id = %(t)s) AS blob_rows,
  (SELECT count(*) FROM checkpoint_writes w WHERE w.thread_id = %(t)s) AS write_rows,
  (SELECT count(*) FROM messages m WHERE m.athlete_id = %(a)s AND m.session_id = %(s)s) AS archive_rows,
  (SELECT coalesce(sum(octet_length(c.checkpoint::text) + octet_length(c.metadata::text)), 0)
     FROM checkpoints c WHERE c.thread_id = %(t)s)
  + (SELECT coalesce(sum(octet_length(b.blob)), 0) FROM checkpoint_blobs b WHERE b.thread_id = %(t)s)
  + (SELECT coalesce(sum(octet_length(w.blob)), 0) FROM checkpoint_writes w WHERE w.thread_id = %(t)s)
  + (SELECT coalesce(sum(octet_length(m.content)), 0) FROM messages m
     WHERE m.athlete_id = %(a)s AND m.session_id = %(s)s) AS raw
"""


async def measure_storage(deps: Stores, thread_id: str, athlete_id: str, session_id: str | None) -> dict[str, int]:
    """Bytes of a thread's checkpoint rows and (for ours) of its archived messages, after draining the outbox."""
    if session_id is not None:
        await deps.memory.drain_outbox()
    pool = deps.athlete_store.pool
    async with pool.connection() as conn:
        cur = await conn.execute(STORAGE_SQL, {"t": thread_id, "a": athlete_id, "s": session_id or ""})
        row = await cur.fetchone()
    assert row is not None
    sizes = {k: int(v) for k, v in row.items()}
    sizes["total"] = sizes["checkpoints"] + sizes["blobs"] + sizes["writes"] + sizes["archive"]
    return sizes


def naive_graph(model: ScriptedModel, saver: AsyncPostgresSaver) -> Any:
    """The baseline: the whole history in the state (`add_messages`), sent to the model every turn."""

    async def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=saver, name="naive_chat")


def sample_points(turns: int) -> set[int]:
    """Turns after which storage is measured (the last two give the last turn's own bytes)."""
    return {t for t in (*MILESTONES, turns - 1, turns) if 1 <= t <= turns}


async def run_ours(
    deps: Stores,
    saver: AsyncPostgresSaver,
    timers: TurnTimers,
    athlete_id: str,
    session_id: str,
    turns: int,
    durability: str,
    *,
    name: str,
    drain_between: bool = True,
) -> RunResult:
    """Run `turns` turns of the chat graph on one thread.

    With `drain_between`, the outbox is drained after each turn, outside the timed region, as `coach chat` does
    after printing a reply; the background drain that `save_turn` starts still overlaps the end of its own turn
    (the exit checkpoint write). Without it, that drain also overlaps the next turn (back to back).
    """
    load_before = os.getloadavg()[0]
    graph = chat_module.build_graph(checkpointer=saver, stores=deps, model=fake_model())
    thread_id = make_thread_id("chat", athlete_id, session_id)
    config = {"configurable": {"thread_id": thread_id}}
    context = Context(athlete_id=athlete_id, session_id=session_id)
    result = RunResult(name=name, graph="ours", durability=durability, thread_id=thread_id, turns=turns)
    token_turns = {t for t in TOKEN_TURNS if t <= turns} | {turns}
    samples = sample_points(turns)
    messages = athlete_messages()
    parts: dict[str, list[float]] = {"load": [], "assemble": [], "save_turn": []}
    for turn in range(1, turns + 1):
        payload = {"message": next(messages)}
        timers.take()
        cpu = time.process_time()
        start = time.perf_counter()
        out = await graph.ainvoke(payload, config=config, context=context, durability=durability)
        elapsed = time.perf_counter() - start
        result.cpu_ms.append((time.process_time() - cpu) * 1000)
        spent = timers.take()
        if drain_between:
            await deps.memory.drain_outbox()  # as `coach chat` does after printing each reply (not timed)
        if out.get("memory_status") != "ok":
            raise RuntimeError(f"turn {turn}: memory status {out.get('memory_status')!r}, expected 'ok'")
        result.turn_ms.append(elapsed * 1000)
        memory = {
            "load": spent.get("load", 0.0),
            "assemble": spent.get("assemble", 0.0) + spent.get("prompt_tokens", 0.0),
            "save_turn": spent.get("save_turn", 0.0),
        }
        for key, seconds in memory.items():
            parts[key].append(seconds * 1000)
        result.memory_ms.append(sum(memory.values()) * 1000)
        result.checkpointer_ms.append(spent.get("checkpointer", 0.0) * 1000)
        for method in SAVER_METHODS:
            result.saver_calls[method] = result.saver_calls.get(method, 0.0) + spent.get("calls:" + method, 0.0)
        if turn in token_turns:
            result.prompt_tokens[turn] = int(out["prompt_tokens"])
        if turn in samples:
            result.storage[turn] = await measure_storage(deps, thread_id, athlete_id, session_id)
    result.memory_parts_ms = parts
    result.loadavg = (load_before, os.getloadavg()[0])
    return result


async def run_naive(
    deps: Stores, saver: AsyncPostgresSaver, timers: TurnTimers, thread_id: str, turns: int, durability: str
) -> RunResult:
    """Run `turns` turns of the naive graph on one thread."""
    load_before = os.getloadavg()[0]
    graph = naive_graph(fake_model(), saver)
    config = {"configurable": {"thread_id": thread_id}}
    result = RunResult(name="naive", graph="naive", durability=durability, thread_id=thread_id, turns=turns)
    token_turns = {t for t in TOKEN_TURNS if t <= turns} | {turns}
    samples = sample_points(turns)
    messages = athlete_messages()
    for turn in range(1, turns + 1):
        payload = {"messages": [HumanMessage(next(messages))]}
        timers.take()
        cpu = time.process_time()
        start = time.perf_counter()
        out = await graph.ainvoke(payload, config=config, durability=durability)
        elapsed = time.perf_counter() - start
        result.cpu_ms.append((time.process_time() - cpu) * 1000)
        spent = timers.take()
        result.turn_ms.append(elapsed * 1000)
        result.checkpointer_ms.append(spent.get("checkpointer", 0.0) * 1000)
        for method in SAVER_METHODS:
            result.saver_calls[method] = result.saver_calls.get(method, 0.0) + spent.get("calls:" + method, 0.0)
        if turn in token_turns:
            result.prompt_tokens[turn] = prompt_tokens(out["messages"][:-1])  # what the model was sent
        if turn in samples:
            result.storage[turn] = await measure_storage(deps, thread_id, "", None)
    result.loadavg = (load_before, os.getloadavg()[0])
    return result


async def seed_facts(deps: Stores, athlete_id: str) -> None:
    """Give the athlete a realistic handful of pinned facts (they go into every prompt of ours)."""
    await deps.memory.set_facts(
        athlete_id,
        [
            FactChange("goal", "Marmotte gran fondo, July, finish under 5 h 30"),
            FactChange("ftp_w", 255),
            FactChange("weight_kg", 72),
            FactChange("injuries", "left IT band, flares after long seated climbing"),
            FactChange("equipment", "road bike with power meter (4iiii), smart trainer"),
            FactChange("schedule", "weekdays 1 h before work; long ride Saturday; Monday rest"),
        ],
        source="user",
    )


async def run(turns: int, naive_turns: int, durabilities: list[str], *, back_to_back: bool = False) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    async with open_stores() as deps:
        if deps.memory.status() != "ok":
            raise RuntimeError(f"memory status {deps.memory.status()!r}: start Postgres and Redis (`make services`)")
        return await measure(deps, turns, naive_turns, durabilities, back_to_back=back_to_back)


async def measure(
    deps: Stores, turns: int, naive_turns: int, durabilities: list[str], *, back_to_back: bool
) -> dict[str, Any]:
    """Run the benchmark on open stores and return its figures."""
    athlete_id = f"bench-{uuid.uuid4().hex[:12]}"
    timers = TurnTimers()
    memory = deps.memory
    originals = (memory.load, memory.save_turn, chat_module.assemble_prompt, chat_module.prompt_tokens)
    try:
        # Same pool, settings and bounded history as `coach chat` (autocommit, prepare_threshold=0, dict rows,
        # `Settings.checkpoint_keep`); the naive graph keeps every checkpoint (the library's way).
        saver = await open_checkpointer(deps.athlete_store.pool)
        naive_saver = CoachPostgresSaver(conn=deps.athlete_store.pool)
        await naive_saver.setup()
        for timed in (saver, naive_saver):
            for method in SAVER_METHODS:
                setattr(timed, method, timers.wrap_async(getattr(timed, method), "checkpointer", method))
        memory.load = timers.wrap_async(memory.load, "load")  # type: ignore[method-assign]
        memory.save_turn = timers.wrap_async(memory.save_turn, "save_turn")  # type: ignore[method-assign]
        chat_module.assemble_prompt = timers.wrap_sync(chat_module.assemble_prompt, "assemble")
        chat_module.prompt_tokens = timers.wrap_sync(chat_module.prompt_tokens, "prompt_tokens")
        await seed_facts(deps, athlete_id)

        # Warm-up (not counted): connections, imports, first-call caches.
        await run_ours(deps, saver, timers, athlete_id, "warmup", WARMUP_TURNS, "exit", name="warmup")
        await run_naive(deps, naive_saver, timers, f"naive:{athlete_id}:warmup", WARMUP_TURNS, "exit")

        runs: list[RunResult] = []
        for durability in durabilities:
            runs.append(
                await run_ours(
                    deps,
                    saver,
                    timers,
                    athlete_id,
                    durability,
                    turns,
                    durability,
                    name=f"ours[{durability}]",
                    drain_between=not back_to_back,
                )
            )
        runs.append(await run_naive(deps, naive_saver, timers, f"naive:{athlete_id}:main", naive_turns, "exit"))
    finally:
        memory.load, memory.save_turn, chat_module.assemble_prompt, chat_module.prompt_tokens = originals  # type: ignore[method-assign]
    return {
        "athlete_id": athlete_id,
        "checkpoint_keep": saver.keep,
        "turns": turns,
        "naive_turns": naive_turns,
        "back_to_back": back_to_back,
        "cpus": os.cpu_count(),
        "reply_chars": sorted(len(r) for r in COACH_REPLIES),
        "message_chars": [min(len(m) for m in ATHLETE_MESSAGES), max(len(m) for m in ATHLETE_MESSAGES)],
        "runs": [r.summary() for r in runs],
        "raw": {r.name: asdict(r) for r in runs},
    }


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.3f}"


def _kb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:.2f}"


def checkpoint_rows(run: dict[str, Any], turn: int) -> str:
    """`checkpoints/blobs/writes` rows of the run's thread after `turn` (`-` when not measured then)."""
    sizes = run["storage_bytes"].get(str(turn))
    if sizes is None:
        return "-"
    return f"{sizes['checkpoint_rows']}/{sizes['blob_rows']}/{sizes['write_rows']}"


def checkpoint_kb(run: dict[str, Any], turn: int) -> str:
    """KB on disk of the run's thread's checkpoint rows (checkpoints, blobs, writes) after `turn`."""
    sizes = run["storage_bytes"].get(str(turn))
    return "-" if sizes is None else _kb(sizes["checkpoints"] + sizes["blobs"] + sizes["writes"])


def _checkpoint_storage_flat(run: dict[str, Any], turn: int) -> bool:
    """Whether the thread's checkpoint rows and bytes after `turn` are within the flat ratio of turn 10's."""
    first, last = run["storage_bytes"].get("10"), run["storage_bytes"].get(str(turn))
    if first is None or last is None:
        return False
    rows = [k + "_rows" for k in ("checkpoint", "blob", "write")]
    bytes_first = first["checkpoints"] + first["blobs"] + first["writes"]
    bytes_last = last["checkpoints"] + last["blobs"] + last["writes"]
    return sum(last[k] for k in rows) <= sum(first[k] for k in rows) and bytes_last <= bytes_first * TARGET_FLAT_RATIO


def targets(ours: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Check ours (CLI durability) against the issue's targets: (target, measured, passed)."""
    n = ours["turns"]
    first = ours["p50_ms_turns_1_10"]
    last = ours[f"p50_ms_turns_{n - 9}_{n}"]
    tokens = ours["prompt_tokens"]
    t10, tn = tokens.get("10"), tokens[str(n)]
    drift = abs(tn - t10) / t10 if t10 else math.nan
    return [
        (
            f"whole turn p99 <= {TARGET_TURN_P99_MS:g} ms",
            f"{ours['p99_ms']:.2f} ms",
            ours["p99_ms"] <= TARGET_TURN_P99_MS,
        ),
        (
            f"flat: p50 turns {n - 9}-{n} within {TARGET_FLAT_RATIO - 1:.0%} of turns 1-10",
            f"{last:.2f} / {first:.2f} ms = {last / first:.3f}",
            abs(last / first - 1) <= TARGET_FLAT_RATIO - 1,
        ),
        (
            f"memory share p99 <= {TARGET_MEMORY_P99_MS:g} ms",
            f"{ours['memory_p99_ms']:.3f} ms",
            ours["memory_p99_ms"] <= TARGET_MEMORY_P99_MS,
        ),
        (
            f"prompt tokens at turn {n} within {TARGET_TOKENS_DRIFT:.0%} of turn 10 and <= {TARGET_TOKENS_MAX}",
            f"{tn} vs {t10} ({drift:+.1%})",
            t10 is not None and drift <= TARGET_TOKENS_DRIFT and tn <= TARGET_TOKENS_MAX,
        ),
        (
            f"checkpoint storage flat: rows and KB at turn {n} within {TARGET_FLAT_RATIO - 1:.0%} of turn 10",
            f"{checkpoint_rows(ours, n)} vs {checkpoint_rows(ours, 10)} rows (checkpoints/blobs/writes), "
            f"{checkpoint_kb(ours, n)} vs {checkpoint_kb(ours, 10)} KB",
            _checkpoint_storage_flat(ours, n),
        ),
        (
            f"storage <= {TARGET_BYTES_PER_TURN / 1024:g} KB per turn (checkpoints + archive)",
            f"{ours['bytes_per_turn'] / 1024:.2f} KB",
            ours["bytes_per_turn"] <= TARGET_BYTES_PER_TURN,
        ),
    ]


def print_report(result: dict[str, Any]) -> None:
    """Print the figures as tables, with the targets."""
    runs = result["runs"]
    ours, naive = runs[0], runs[-1]
    n = result["turns"]
    print(
        f"turn overhead: {n} turns per graph on one thread each (naive: {result['naive_turns']}), "
        f"CoachPostgresSaver (keyed read; ours with the bounded history, naive keeping every checkpoint), fake model"
    )
    print(
        f"athlete {result['athlete_id']}; replies {result['reply_chars'][0]}-{result['reply_chars'][-1]} chars, "
        f"athlete messages {result['message_chars'][0]}-{result['message_chars'][1]} chars; "
        f"{WARMUP_TURNS} warm-up turns per graph not counted"
    )
    drain = (
        "back to back (the background archive drain overlaps the next turn)"
        if result["back_to_back"]
        else "outbox drained after each turn, untimed, as `coach chat` does"
    )
    print(f"ours: {drain}; {result['cpus']} CPUs")
    print(f'ratios: {ours["name"]} / naive[{naive["durability"]}] (durability "exit" = coach chat\'s run_turn)\n')
    names = [r["name"] + ("" if r["graph"] == "ours" else f"[{r['durability']}]") for r in runs]
    width = max(12, *(len(x) for x in names))
    head = f"{'':34}" + "".join(f"{x:>{width + 2}}" for x in names) + f"{'ours/naive':>12}"
    print(head)
    print("-" * len(head))

    def row(label: str, values: list[str], ratio: str = "") -> None:
        print(f"{label:34}" + "".join(f"{v:>{width + 2}}" for v in values) + f"{ratio:>12}")

    for label, key in (
        ("turn p50 ms, turns 1-10", "p50_ms_turns_1_10"),
        ("turn p50 ms, turns 491-500", "p50_ms_turns_491_500"),
    ):
        row(label, [_ms(r.get(key)) for r in runs], _ratio(ours.get(key), naive.get(key)))
    key = f"p50_ms_turns_{n - 9}_{n}"
    naive_last = naive.get(key, naive[f"p50_ms_turns_{naive['turns'] - 9}_{naive['turns']}"])
    row(f"turn p50 ms, turns {n - 9}-{n}", [_ms(r.get(key)) for r in runs], _ratio(ours[key], naive_last))
    row("turn p99 ms, whole run", [_ms(r["p99_ms"]) for r in runs], _ratio(ours["p99_ms"], naive["p99_ms"]))
    row(
        "turn p50 ms, first 100 turns",
        [_ms(r["p50_ms_first_100"]) for r in runs],
        _ratio(ours["p50_ms_first_100"], naive["p50_ms_first_100"]),
    )
    row(
        "turn p50 ms, last 100 turns",
        [_ms(r["p50_ms_last_100"]) for r in runs],
        _ratio(ours["p50_ms_last_100"], naive["p50_ms_last_100"]),
    )
    row("turn max ms", [_ms(r["max_ms"]) for r in runs], _ratio(ours["max_ms"], naive["max_ms"]))
    row("turn mean ms", [_ms(r["mean_ms"]) for r in runs], _ratio(ours["mean_ms"], naive["mean_ms"]))
    row(
        "turn CPU ms p50 (this process)",
        [_ms(r["cpu_p50_ms"]) for r in runs],
        _ratio(ours["cpu_p50_ms"], naive["cpu_p50_ms"]),
    )
    row(
        "turn CPU ms p99 (this process)",
        [_ms(r["cpu_p99_ms"]) for r in runs],
        _ratio(ours["cpu_p99_ms"], naive["cpu_p99_ms"]),
    )
    row("load average before/after", [f"{r['loadavg_1min'][0]:.2f}/{r['loadavg_1min'][1]:.2f}" for r in runs])
    row("memory share p50 ms", [_ms(r.get("memory_p50_ms")) for r in runs])
    row("memory share p99 ms", [_ms(r.get("memory_p99_ms")) for r in runs])
    for part in ("load", "assemble", "save_turn"):
        row(
            f"  {part} p50 / p99 ms",
            [
                f"{_ms(r['memory_parts_p50_ms'][part])}/{_ms(r['memory_parts_p99_ms'][part])}"
                if "memory_parts_p50_ms" in r
                else "-"
                for r in runs
            ],
        )
    row(
        "checkpointer share p50 ms",
        [_ms(r["checkpointer_p50_ms"]) for r in runs],
        _ratio(ours["checkpointer_p50_ms"], naive["checkpointer_p50_ms"]),
    )
    row(
        "checkpointer share p99 ms",
        [_ms(r["checkpointer_p99_ms"]) for r in runs],
        _ratio(ours["checkpointer_p99_ms"], naive["checkpointer_p99_ms"]),
    )
    row(
        "checkpointer p50 ms, turns 1-10",
        [_ms(r["checkpointer_p50_ms_first_10"]) for r in runs],
        _ratio(ours["checkpointer_p50_ms_first_10"], naive["checkpointer_p50_ms_first_10"]),
    )
    row(
        "checkpointer p50 ms, last 10 turns",
        [_ms(r["checkpointer_p50_ms_last_10"]) for r in runs],
        _ratio(ours["checkpointer_p50_ms_last_10"], naive["checkpointer_p50_ms_last_10"]),
    )
    for method in SAVER_METHODS:
        row(f"  {method} calls per turn", [f"{r['saver_calls_per_turn'].get(method, 0):.2f}" for r in runs])
    for t in sorted({*TOKEN_TURNS, n}):
        if t > n:
            continue
        values = [r["prompt_tokens"].get(str(t)) for r in runs]
        row(
            f"prompt tokens at turn {t}",
            ["-" if v is None else str(v) for v in values],
            _ratio(values[0], values[-1]),
        )
    row(
        "storage KB/turn (avg, on disk)",
        [_kb(r["bytes_per_turn"]) for r in runs],
        _ratio(ours["bytes_per_turn"], naive["bytes_per_turn"]),
    )
    row(
        "storage KB/turn (avg, raw)",
        [_kb(r["raw_bytes_per_turn"]) for r in runs],
        _ratio(ours["raw_bytes_per_turn"], naive["raw_bytes_per_turn"]),
    )
    row(
        "last turn's own KB (on disk)",
        [_kb(r["last_turn_bytes"]) for r in runs],
        _ratio(ours["last_turn_bytes"], naive["last_turn_bytes"]),
    )
    row(
        "last turn's own KB (raw)",
        [_kb(r["last_turn_raw_bytes"]) for r in runs],
        _ratio(ours["last_turn_raw_bytes"], naive["last_turn_raw_bytes"]),
    )
    for part in ("checkpoints", "blobs", "writes", "archive"):
        row(f"  {part} KB (end of run)", [_kb(r["storage_bytes"][str(r["turns"])][part]) for r in runs])
    for part in ("checkpoint", "blob", "write", "archive"):
        row(f"  {part} rows per turn", [f"{r['rows_per_turn'][part]:.2f}" for r in runs])
    for t in sorted({10, n}):
        row(f"checkpoint rows at turn {t}", [checkpoint_rows(r, t) for r in runs])
        row(f"checkpoint KB at turn {t}", [checkpoint_kb(r, t) for r in runs])

    print(f"\nours: at most {result['checkpoint_keep']} checkpoints kept per thread (Settings.checkpoint_keep)")
    print(f"\ntargets ({ours['name']}):")
    failed = 0
    for label, measured, passed in targets(ours):
        failed += not passed
        print(f"  {'PASS' if passed else 'FAIL'}  {label}: {measured}")
    print(f"\n{'all targets met' if not failed else f'{failed} target(s) failed'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=1000, help="turns of our graph per durability (default 1000)")
    parser.add_argument("--naive-turns", type=int, help="turns of the naive graph (default: --turns)")
    parser.add_argument(
        "--durability",
        choices=("exit", "async", "both"),
        default="exit",
        help='ours: "exit" (the CLI\'s, the default, checked against the targets), "async" (LangGraph\'s '
        'default) or both ("exit" first); the naive graph always runs with "exit"',
    )
    parser.add_argument(
        "--back-to-back",
        action="store_true",
        help="ours: do not drain the outbox between turns (its background drain then overlaps the next turn)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (with per-turn times)")
    args = parser.parse_args(argv)
    naive_turns = args.naive_turns if args.naive_turns is not None else args.turns
    if args.turns < 10 or naive_turns < 10:
        parser.error("--turns and --naive-turns must be at least 10")
    durabilities = ["exit", "async"] if args.durability == "both" else [args.durability]
    result = asyncio.run(run(args.turns, naive_turns, durabilities, back_to_back=args.back_to_back))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
