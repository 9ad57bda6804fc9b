"""What the coach's tools and graphs read and write, opened once per process (or per command)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from config.settings import Settings
from memory.athlete_store import AthleteStore
from memory.conversation import ConversationMemory
from records.plans import PlanStore


@dataclass
class CoachDeps:
    """The conversation memory (Redis window, facts cache, archive, outbox) and the athlete store's tables.

    All three share one Postgres pool, opened without waiting so that the coach starts with Postgres down.
    """

    memory: ConversationMemory
    athlete_store: AthleteStore
    plans: PlanStore


async def open_coach_deps(settings: Settings | None = None) -> CoachDeps:
    """Open Redis and Postgres (either may be down: the memory reports it per turn)."""
    memory = await ConversationMemory.from_settings(settings)
    assert memory.pool is not None and memory.store is not None
    return CoachDeps(memory=memory, athlete_store=memory.store, plans=PlanStore(memory.pool))


async def close_coach_deps(deps: CoachDeps) -> None:
    """Finish pending archive writes where possible and close the connections."""
    await deps.memory.close()


_deps: CoachDeps | None = None
_lock = asyncio.Lock()


async def get_coach_deps() -> CoachDeps:
    """The process-wide deps (the `langgraph dev` server's), opened on first use."""
    global _deps
    async with _lock:
        if _deps is None:
            _deps = await open_coach_deps()
    return _deps


async def close_process_deps() -> None:
    """Close the process-wide deps if they were opened (the server's shutdown); a later use opens them again."""
    global _deps
    async with _lock:
        if _deps is not None:
            deps, _deps = _deps, None
            await close_coach_deps(deps)
