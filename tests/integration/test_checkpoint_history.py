"""Bounded checkpoint history (`CoachPostgresSaver(keep=N)`) on the real Postgres, with the chat graph.

Each checkpoint write keeps the thread's `keep` latest checkpoints and deletes the rest, their pending writes and
the blobs only they used, in the write's transaction. The state read after the prune is the state read before it,
the last `keep` checkpoints stay reachable (time travel), and an interrupted run still resumes.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import Command

from graphs.chat import build_graph
from graphs.context import Context, thread_id
from memory.checkpointer import CoachPostgresSaver, open_checkpointer
from records.stores import Stores

pytestmark = pytest.mark.integration

KEEP = 3

COUNTS_SQL = """
SELECT
  (SELECT count(*) FROM checkpoints WHERE thread_id = %(t)s) AS checkpoints,
  (SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %(t)s) AS blobs,
  (SELECT count(*) FROM checkpoint_writes WHERE thread_id = %(t)s) AS writes,
  (SELECT count(*) FROM checkpoint_writes w WHERE w.thread_id = %(t)s AND NOT EXISTS (
     SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
       AND c.checkpoint_id = w.checkpoint_id)) AS orphan_writes,
  (SELECT count(*) FROM checkpoint_blobs b WHERE b.thread_id = %(t)s AND NOT EXISTS (
     SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
       AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)) AS orphan_blobs,
  (SELECT count(*) FROM checkpoints c WHERE c.thread_id = %(t)s AND c.parent_checkpoint_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM checkpoints p WHERE p.thread_id = c.thread_id
       AND p.checkpoint_ns = c.checkpoint_ns AND p.checkpoint_id = c.parent_checkpoint_id)) AS dangling_parents
"""


async def counts(deps: Stores, thread: str) -> dict[str, int]:
    """Row counts of the thread's checkpoint tables, and of rows no kept checkpoint needs."""
    async with deps.athlete_store.pool.connection() as conn:
        cur = await conn.execute(COUNTS_SQL, {"t": thread})
        row = await cur.fetchone()
    assert row is not None
    return {k: int(v) for k, v in row.items()}


class Thread:
    """One chat thread of an athlete on a saver."""

    def __init__(self, deps: Stores, saver: CoachPostgresSaver, athlete_id: str, session_id: str) -> None:
        self.graph = build_graph(checkpointer=saver, stores=deps, model=None)  # the offline responder
        self.id = thread_id("chat", athlete_id, session_id)
        self.config: dict[str, Any] = {"configurable": {"thread_id": self.id}}
        self.context = Context(athlete_id=athlete_id, session_id=session_id, confirm_facts_inline=True)

    async def say(self, message: str, durability: str = "async") -> dict[str, Any]:
        out: dict[str, Any] = await self.graph.ainvoke(
            {"message": message}, config=self.config, context=self.context, durability=durability
        )
        return out

    async def resume(self, answer: Any) -> dict[str, Any]:
        out: dict[str, Any] = await self.graph.ainvoke(
            Command(resume=answer), config=self.config, context=self.context, durability="exit"
        )
        return out

    async def history(self) -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
        """(checkpoint id, values, next nodes) of every checkpoint the thread still has, newest first."""
        return [
            (s.config["configurable"]["checkpoint_id"], s.values, s.next)
            async for s in self.graph.aget_state_history(self.config)
        ]


@pytest.mark.parametrize("durability", ["exit", "async"])
async def test_twelve_turns_keep_three_checkpoints_and_no_orphans(
    deps: Stores, athlete_id: str, durability: str
) -> None:
    saver = await open_checkpointer(deps.athlete_store.pool, keep=KEEP)
    chat = Thread(deps, saver, athlete_id, f"bounded-{durability}")
    for turn in range(1, 13):
        out = await chat.say(f"turn {turn}: how should I ride tomorrow?", durability)
        assert out["reply"]
        rows = await counts(deps, chat.id)
        assert 1 <= rows["checkpoints"] <= KEEP, (turn, rows)
        assert rows["orphan_writes"] == rows["orphan_blobs"] == rows["dangling_parents"] == 0, (turn, rows)
    history = await chat.history()
    assert 1 <= len(history) <= KEEP
    assert "turn 12:" in str(history[0][1]["messages"])
    # Time travel: every kept checkpoint can be read back by id.
    for checkpoint_id, values, _ in history:
        snapshot = await chat.graph.aget_state({"configurable": {"thread_id": chat.id, "checkpoint_id": checkpoint_id}})
        assert snapshot.values == values


async def test_state_after_the_prune_equals_the_state_before(deps: Stores, athlete_id: str) -> None:
    keep_all = CoachPostgresSaver(conn=deps.athlete_store.pool)  # keep=None: the library's unbounded history
    await keep_all.setup()
    chat = Thread(deps, keep_all, athlete_id, "before-after")
    for turn in range(1, 13):
        await chat.say(f"turn {turn}: my legs feel heavy")
    before = await chat.history()
    rows = await counts(deps, chat.id)
    assert rows["checkpoints"] == len(before) > KEEP  # the library keeps every checkpoint
    state_before = await chat.graph.aget_state(chat.config)

    # The latest checkpoint written again through the bounded saver (an upsert: the state itself is unchanged).
    bounded = CoachPostgresSaver(conn=deps.athlete_store.pool, keep=KEEP)
    head = await bounded.aget_tuple(chat.config)
    assert head is not None and head.parent_config is not None
    await bounded.aput(head.parent_config, head.checkpoint, head.metadata, {})

    rows = await counts(deps, chat.id)
    assert rows["checkpoints"] == KEEP, rows
    assert rows["orphan_writes"] == rows["orphan_blobs"] == rows["dangling_parents"] == 0, rows
    assert rows["blobs"] > 0
    after = await chat.history()
    assert [(i, v, n) for i, v, n in after] == before[:KEEP]
    state_after = await chat.graph.aget_state(chat.config)
    assert state_after.values == state_before.values and state_after.next == state_before.next


@pytest.mark.parametrize("keep", [1, KEEP])
async def test_interrupted_fact_proposal_resumes_after_other_threads_wrote(
    deps: Stores, athlete_id: str, keep: int
) -> None:
    saver = await open_checkpointer(deps.athlete_store.pool, keep=keep)
    proposing = Thread(deps, saver, athlete_id, "proposal")
    await proposing.say("turn 1: hello coach")
    proposed = await proposing.say("my goal is to ride the Étape du Tour in under 9 hours")
    assert "__interrupt__" in proposed
    assert proposed["__interrupt__"][0].value["proposals"][0]["key"] == "goal"
    paused = await proposing.graph.aget_state(proposing.config)
    assert paused.next and paused.interrupts

    other = Thread(deps, saver, athlete_id, "other")
    for turn in range(1, 6):
        await other.say(f"turn {turn}: what is planned for tomorrow?")
    assert (await counts(deps, other.id))["checkpoints"] <= keep
    rows = await counts(deps, proposing.id)
    assert rows["checkpoints"] <= keep and rows["writes"] > 0  # the interrupt's pending writes are kept

    confirmed = await proposing.resume(True)
    assert confirmed["proposals"][0]["status"] == "accepted"
    facts = await deps.memory.current_facts(athlete_id)
    assert facts["goal"]["value"] == "to ride the Étape du Tour in under 9 hours"
    rows = await counts(deps, proposing.id)
    assert rows["checkpoints"] <= keep and rows["orphan_writes"] == rows["orphan_blobs"] == 0, rows


async def test_keep_below_one_is_refused(deps: Stores) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CoachPostgresSaver(conn=deps.athlete_store.pool, keep=0)
