"""Helpers for chat-graph tests: a scripted fake chat model, turn runners, and ride/plan fixtures in the store."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.chat import build_graph
from graphs.context import Context, thread_id
from records.plans import PlanRow
from records.rides import RideStore
from records.stores import Stores
from training.records import RideRecord


class ScriptedModel(GenericFakeChatModel):
    """The LangChain fake chat model, able to carry tool calls (bind_tools returns self)."""

    disable_streaming: bool = True

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def scripted(*messages: AIMessage) -> ScriptedModel:
    """A model answering with these messages in order (each message object once: ids must not repeat)."""
    return ScriptedModel(messages=iter(messages))


def call(name: str, args: dict[str, Any] | None = None, content: str = "") -> AIMessage:
    return AIMessage(content, tool_calls=[{"name": name, "args": args or {}, "id": f"call-{uuid.uuid4().hex[:8]}"}])


class Chat:
    """One athlete's conversation with the chat graph (an in-memory checkpointer keeps the sticky context)."""

    def __init__(self, deps: Stores, athlete_id: str, model: Any = None, *, inline: bool = False) -> None:
        self.deps = deps
        self.athlete_id = athlete_id
        self.graph = build_graph(checkpointer=InMemorySaver(), stores=deps, model=model)
        self.inline = inline

    def context(self, session_id: str) -> Context:
        return Context(athlete_id=self.athlete_id, session_id=session_id, confirm_facts_inline=self.inline)

    def config(self, session_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id("chat", self.athlete_id, session_id)}}

    async def say(self, message: str, session_id: str = "s1") -> dict[str, Any]:
        return await self.graph.ainvoke(
            {"message": message}, config=self.config(session_id), context=self.context(session_id)
        )

    async def resume(self, answer: Any, session_id: str = "s1") -> dict[str, Any]:
        return await self.graph.ainvoke(
            Command(resume=answer), config=self.config(session_id), context=self.context(session_id)
        )

    async def tool_results(self, session_id: str = "s1") -> dict[str, list[dict[str, Any]]]:
        """This session's last turn's tool results by tool name (parsed JSON)."""
        state = await self.graph.aget_state(self.config(session_id))
        out: dict[str, list[dict[str, Any]]] = {}
        for m in state.values.get("messages", []):
            if isinstance(m, ToolMessage):
                out.setdefault(str(m.name), []).append(json.loads(str(m.content)))
        return out


def last_weekday(today: date, weekday: int) -> date:
    """The most recent day before `today` with this weekday (Monday = 0)."""
    delta = (today.weekday() - weekday) % 7 or 7
    return today - timedelta(days=delta)


async def insert_ride(
    store: RideStore,
    athlete_id: str,
    day: date,
    *,
    moving_s: float = 5400,
    tss: float | None = 80.0,
    normalized_power_w: float | None = 220.0,
    distance_m: float = 45000.0,
    hour_utc: int = 9,
) -> str:
    """A debriefed ride on `day` (stored directly, as the Debrief Coach would)."""
    ride_id = uuid.uuid4().hex
    start = datetime.combine(day, time(hour_utc), tzinfo=UTC)
    metrics = {
        "moving_s": moving_s,
        "elapsed_s": moving_s + 300,
        "distance_m": distance_m,
        "normalized_power_w": normalized_power_w,
        "tss": tss,
        "avg_power_w": 190.0,
        "intensity_factor": 0.8,
        "avg_hr_bpm": 140.0,
        "ftp_source": "athlete",
        "mmp_w": {},
    }
    record = RideRecord(
        ride_id=ride_id,
        file_name=f"test-{day}.fit",
        file_format="fit",
        sport="cycling",
        start_time=start,
        elapsed_s=moving_s + 300,
        moving_s=moving_s,
        distance_m=distance_m,
        normalized_power_w=normalized_power_w,
        tss=tss,
        hr_tss=None,
        metrics=metrics,
    )
    changed = await store.save_debriefed_ride(athlete_id, record, [], "test ride", "test")
    assert changed == []
    return ride_id


def plan_rows(rows: Iterable[tuple[date, str, float, float, str]]) -> Sequence[PlanRow]:
    return [PlanRow(date=d, kind=k, duration_s=dur, tss=tss, description=desc) for d, k, dur, tss, desc in rows]
