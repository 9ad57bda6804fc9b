"""Every connection a process needs, opened and closed by one async context manager: `open_stores`.

The command line, the server's lifespan, the tests and the benchmarks all open their connections here (in the
style of langgraph-checkpoint-postgres's `AsyncPostgresSaver.from_conn_string`)::

    async with open_stores(settings) as stores:
        await stores.athlete_store.current_facts("a1")

On the server the lifespan enters `serve_stores`, which publishes the bundle for the graphs (`get_stores`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from config.settings import Settings, get_settings
from memory.athlete_store import AthleteStore
from memory.conversation import ConversationMemory
from memory.db import DictPool, aprobe
from records.audit_store import AuditStore
from records.plans import PlanStore
from records.rides import RideStore


@dataclass(frozen=True)
class Stores:
    """The conversation memory (Redis window, facts cache, archive, outbox) and the Postgres stores.

    All the Postgres stores share the memory's one pool, opened without waiting, so that the coach starts with
    Postgres down (the memory then reports it per turn).

    Attributes:
        memory: the two memory tiers (`memory.conversation.ConversationMemory`).
        athlete_store: facts with history, fact proposals (`memory.athlete_store`).
        rides: stored rides and their debriefs (`records.rides`).
        plans: planned workouts (`records.plans`).
        audits: the Training Load Auditor's reports and plan-change proposals (`records.audit_store`).
    """

    memory: ConversationMemory
    athlete_store: AthleteStore
    rides: RideStore
    plans: PlanStore
    audits: AuditStore

    @property
    def pool(self) -> DictPool:
        """The Postgres pool every store shares."""
        return self.athlete_store.pool


class StoresNotOpenError(RuntimeError):
    """`get_stores` was called outside `serve_stores` (the server's lifespan did not run)."""


@asynccontextmanager
async def open_stores(settings: Settings | None = None, *, require_postgres: bool = False) -> AsyncIterator[Stores]:
    """Open Redis and Postgres, yield the stores on them, and close every connection on exit.

    Args:
        settings: the process settings (default `config.settings.get_settings()`).
        require_postgres: connect to Postgres once first (`memory.db.aprobe`) and fail when it does not answer,
            then apply the schema migrations, for commands that cannot do anything without Postgres; by default
            either server may be down.

    Yields:
        The `Stores` bundle. On exit the memory finishes what it can and closes Redis and the pool.

    Raises:
        StoreUnavailableError: `require_postgres` and Postgres did not answer within
            `memory.db.CONNECT_TIMEOUT_S` seconds (nothing was opened).
    """
    settings = settings or get_settings()
    if require_postgres:
        await aprobe(settings.database_url)
    memory = await ConversationMemory.from_settings(settings)
    try:
        pool, athlete_store = memory.pool, memory.store
        assert pool is not None and athlete_store is not None  # from_settings always opens a pool
        if require_postgres:
            await athlete_store.setup()
        yield Stores(
            memory=memory,
            athlete_store=athlete_store,
            rides=RideStore(pool, athlete_store),
            plans=PlanStore(pool),
            audits=AuditStore(pool),
        )
    finally:
        await memory.close()


_process_stores: Stores | None = None


@asynccontextmanager
async def serve_stores(settings: Settings | None = None) -> AsyncIterator[Stores]:
    """`open_stores` for the server: the bundle is also the process's, found by `get_stores`.

    The first holder opens and closes the bundle; a holder entered while it is open shares it. On the API server
    the checkpointer (`server.checkpointer`, entered first and left last) opens it and the app's lifespan shares
    it; without a configured checkpointer the lifespan opens it itself.
    """
    global _process_stores
    if _process_stores is not None:
        yield _process_stores
        return
    async with open_stores(settings) as stores:
        _process_stores = stores
        try:
            yield stores
        finally:
            _process_stores = None


async def get_stores() -> Stores:
    """The stores the server's lifespan opened (`serve_stores`), for graphs built without their own.

    Raises:
        StoresNotOpenError: outside the lifespan (build the graph with `stores=` instead).
    """
    if _process_stores is None:
        raise StoresNotOpenError(
            "the coach's stores are not open: run the graph on the server (its lifespan opens them) or build it "
            "with build_graph(stores=...) inside `async with open_stores(...)`"
        )
    return _process_stores
