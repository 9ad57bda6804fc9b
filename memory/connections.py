"""Process-wide connections, opened once on first use and shared by every graph run of the process."""

from __future__ import annotations

import asyncio

from coach.settings import get_settings
from memory.athlete_store import AthleteStore
from memory.db import open_pool

_store: AthleteStore | None = None
_lock = asyncio.Lock()


async def get_athlete_store() -> AthleteStore:
    """Return the process's athlete store, opening its pool and applying migrations on first use.

    Raises:
        StoreUnavailableError: Postgres cannot be reached.
    """
    global _store
    async with _lock:
        if _store is None:
            settings = get_settings()
            pool = await open_pool(settings.database_url, max_size=settings.db_pool_max_size)
            store = AthleteStore(pool)
            await store.setup()
            _store = store
    return _store


async def close_athlete_store() -> None:
    """Close the process's pool, if open (for shutdown)."""
    global _store
    async with _lock:
        if _store is not None:
            await _store.pool.close()
            _store = None
