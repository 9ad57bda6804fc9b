"""The athlete's current facts as the conversation memory reads and writes them (docs/architecture.md).

One read path: `FactsTier.load` reads the Redis facts cache (`memory.facts_cache`), else Postgres (then caches
what it read); with Postgres down, the cache only. One write path: every fact write runs in the athlete store's
`facts_transaction` (`memory.fact_writes`), whose commit calls `FactsTier.invalidate`, wired here as the store's
`on_facts_changed`. With Redis down an invalidation is remembered (`pending_invalidations`) and replayed when
Redis returns (`replay_pending`, run by the Redis probe); meanwhile the athlete's cache is bypassed. That memory
is per process: another process serving the same athlete does not know it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from memory.athlete_store import AthleteStore, FactChange, FactSource, validate_athlete_id
from memory.breakers import ServerDown, ServerHealth
from memory.db import DictPool
from memory.errors import StoreUnavailableError
from memory.facts_cache import Facts, FactsCache


class FactsTier:
    """Cached reads and self-invalidating writes of athlete facts, degrading with the servers' health.

    Args:
        pool: the memory's Postgres pool, or None (no store: facts come from the cache only).
        cache: the facts cache, or None (no Redis).
        health: the memory's server health, whose guarded calls every read and invalidation goes through.

    Attributes:
        store: the athlete store on `pool`, wired to invalidate this cache after each fact write (None without
            a pool).
        pending_invalidations: athletes whose facts changed while Redis was down.
    """

    def __init__(self, pool: DictPool | None, cache: FactsCache | None, health: ServerHealth) -> None:
        """Wire the store to this tier's invalidation; no I/O."""
        self.cache = cache
        self.health = health
        self.store = AthleteStore(pool, on_facts_changed=self.invalidate) if pool is not None else None
        self.pending_invalidations: set[str] = set()

    async def load(self, athlete_id: str) -> Facts | None:
        """Return the athlete's current facts (cache, else Postgres, then cached), or None when unknown.

        Returns:
            `{key: {"value", "source", "source_session_id", "source_ride_id", "updated_at"}}`; None when
            Postgres is down and nothing is cached. Never raises for an outage.
        """
        cache, store = self.cache, self.store
        generation: str | None = None
        if cache is not None and athlete_id not in self.pending_invalidations:
            try:
                cached, generation = await self.health.redis_call(lambda: cache.get(athlete_id))
                if cached is not None:
                    return cached
            except ServerDown:
                pass
        if store is None:
            return None
        try:
            facts = await self.health.pg_call(lambda: store.current_facts(athlete_id))
        except ServerDown:
            return None
        if cache is not None and generation is not None:
            with contextlib.suppress(ServerDown):
                await self.health.redis_call(lambda: cache.put(athlete_id, facts, generation))
        return facts

    async def current(self, athlete_id: str) -> Facts:
        """Return the athlete's current facts (see `load`).

        Raises:
            InvalidAthleteIdError: invalid athlete id.
            StoreUnavailableError: Postgres is down and the facts are not cached.
        """
        validate_athlete_id(athlete_id)
        facts = await self.load(athlete_id)
        self.health.schedule_probes()
        if facts is None:
            raise StoreUnavailableError("the athlete's facts are unavailable (Postgres down, nothing cached)")
        return facts

    async def write(
        self,
        athlete_id: str,
        changes: Sequence[FactChange],
        *,
        source: FactSource,
        source_session_id: str | None = None,
        source_ride_id: str | None = None,
    ) -> list[str]:
        """Write facts through `AthleteStore.set_facts` (tried even while Postgres's breaker is open).

        The store's commit runs `invalidate`, so the next `load` reads the new facts.

        Returns:
            The keys that changed.

        Raises:
            StoreUnavailableError: Postgres is down (nothing written).
        """
        store = self.store
        if store is None:
            raise StoreUnavailableError("the athlete store is not configured")
        try:
            return await self.health.pg_call(
                lambda: store.set_facts(
                    athlete_id,
                    changes,
                    source=source,
                    source_session_id=source_session_id,
                    source_ride_id=source_ride_id,
                ),
                explicit=True,
            )
        except ServerDown as exc:
            self.health.schedule_probes()
            raise StoreUnavailableError("the athlete store (Postgres) is unavailable; no fact was written") from exc

    async def invalidate(self, athlete_id: str) -> None:
        """Drop the athlete's cached facts (the store runs this after each commit that changed them).

        With Redis down, the invalidation is remembered and replayed when Redis returns; meanwhile this
        process reads the athlete's facts from Postgres. Never raises for an outage.

        Raises:
            InvalidAthleteIdError: invalid athlete id.
        """
        validate_athlete_id(athlete_id)
        self.pending_invalidations.add(athlete_id)
        await self._invalidate_quietly(athlete_id)
        self.health.schedule_probes()

    async def replay_pending(self) -> None:
        """Retry the invalidations that could not reach Redis (after a successful Redis probe)."""
        for athlete_id in list(self.pending_invalidations):
            await self._invalidate_quietly(athlete_id)

    async def _invalidate_quietly(self, athlete_id: str) -> None:
        cache = self.cache
        if cache is None:
            return
        with contextlib.suppress(ServerDown):
            await self.health.redis_call(lambda: cache.invalidate(athlete_id))
            self.pending_invalidations.discard(athlete_id)
