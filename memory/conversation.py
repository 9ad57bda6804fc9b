"""The facade the chat graph calls: the reply path over both memory tiers (docs/architecture.md, memory tiers).

`load` gives a turn its recent-turns block and the athlete's current facts; `save_turn` appends the exchange to
the window and queues it for the archive; `recall` searches it; facts are read and written through `memory.facts`.
Beside it: server health and circuit breakers (`memory.breakers`, `memory.probes`), the drains (`memory.drainer`),
the guarded archive and window hydration (`memory.archive_access`), the ranked search (`memory.recall`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from redis.asyncio import Redis

from config.settings import Settings, get_settings
from memory.archive import Archive, ImportResult
from memory.archive_access import GuardedArchive
from memory.athlete_store import FactChange, FactSource, validate_athlete_id
from memory.breakers import BREAKER_OPEN_S, PG_TIMEOUT_S, BackgroundTasks, MemoryStatus, ServerDown, ServerHealth
from memory.db import DictPool, open_memory_pool
from memory.drainer import DRAIN_INTERVAL_S, Drainer
from memory.embeddings import ArchiveEmbedder, get_embedder
from memory.facts import FactsTier
from memory.facts_cache import Facts, FactsCache
from memory.messages import ChatMessage, validate_session_id
from memory.outbox import OUTBOX_STREAM, LocalSpool, Outbox, default_spool_dir
from memory.probes import PROBE_TIMEOUT_S
from memory.recall import SearchHit, SearchResult
from memory.redis_client import REDIS_TIMEOUT_S, open_redis
from memory.session_window import SessionWindow, WindowEntry, entry_from_message, render_window_block

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedMemory:
    """What `ConversationMemory.load` gives a turn.

    Attributes:
        window_block: the `[RECENT TURNS]` block ("" when there is no earlier turn or no memory).
        window_message_ids: archive ids of the messages in the block (pass to `search` as `exclude_ids`).
        window_entries: the newest window entries read (up to `2 * window_turns + 2`), oldest first.
        facts: current facts `{key: {"value", "source", "source_session_id", "source_ride_id", "updated_at"}}`
            ({} when unknown: see `facts_available`).
        facts_available: False when the facts could not be read (Postgres down and nothing cached): `facts`
            is then empty because it is unknown, not because the athlete has none.
        status: `ok`, `degraded:dead_letter` (a message of this session was dead-lettered since the last load),
            `degraded:redis`, `degraded:postgres` or `unavailable`.
    """

    window_block: str
    window_message_ids: list[str]
    window_entries: list[WindowEntry] = field(default_factory=list)
    facts: Facts = field(default_factory=dict)
    facts_available: bool = True
    status: MemoryStatus = "ok"


class ConversationMemory:
    """Session window, facts cache, archive and outbox behind one object, degrading gracefully.

    Args:
        redis: a client from `memory.redis_client.open_redis` (short timeouts, no retries), or None (no Redis).
        pool: a pool from `memory.db.open_memory_pool` (short checkout timeout and reconnect timeout), or None.
        window_turns: most turn pairs in the recent-turns block.
        window_token_budget: token budget of that block.
        store_cap: most messages kept per session window in Redis, and hydrated from the archive.
        window_ttl_s: TTL of a session window, seconds.
        facts_ttl_s: TTL of the facts cache, seconds.
        pg_timeout_s: longest wait for Postgres on the reply path, seconds.
        breaker_open_s: how long a failed server is left alone by background probes, seconds.
        probe_timeout_s: longest wait of `refresh_health`'s re-probe of a server whose breaker is open, seconds.
        outbox_stream: Redis Stream of pending archive writes.
        spool_dir: directory of the last-resort local spool (both servers down); None: such turns are lost.
        ensure_schema: apply the athlete store's migrations on the first successful Postgres probe.
        owns_clients: whether `close()` closes `redis` and `pool` (True for `from_settings`).
        embedder: embeds archived messages (drain and imports, never the reply path) and queries; None: full text.
    """

    def __init__(
        self,
        redis: Redis | None,
        pool: DictPool | None,
        *,
        window_turns: int = 6,
        window_token_budget: int = 1500,
        store_cap: int = 50,
        window_ttl_s: int = 24 * 3600,
        facts_ttl_s: int = 30 * 24 * 3600,
        pg_timeout_s: float = PG_TIMEOUT_S,
        breaker_open_s: float = BREAKER_OPEN_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        outbox_stream: str = OUTBOX_STREAM,
        spool_dir: Path | None = None,
        ensure_schema: bool = False,
        owns_clients: bool = False,
        embedder: ArchiveEmbedder | None = None,
    ) -> None:
        """Wire the tiers; no I/O."""
        self.redis = redis
        self.pool = pool
        self.window_turns = window_turns
        self.window_token_budget = window_token_budget
        self.store_cap = store_cap
        self.pg_timeout_s = pg_timeout_s
        self.tasks = BackgroundTasks()
        self.health = ServerHealth(
            redis,
            pool,
            tasks=self.tasks,
            pg_timeout_s=pg_timeout_s,
            breaker_open_s=breaker_open_s,
            probe_timeout_s=probe_timeout_s,
            ensure_schema=ensure_schema,
        )
        self.redis_breaker = self.health.redis_breaker
        self.pg_breaker = self.health.pg_breaker
        self.window = SessionWindow(redis, store_cap=store_cap, ttl_s=window_ttl_s) if redis is not None else None
        self.facts_cache = FactsCache(redis, ttl_s=facts_ttl_s) if redis is not None else None
        self.facts_tier = FactsTier(pool, self.facts_cache, self.health)
        self.health.on_redis_up = self.facts_tier.replay_pending  # invalidations Redis missed
        self.store = self.facts_tier.store
        self.outbox = Outbox(redis, stream=outbox_stream) if redis is not None else None
        self.embedder = embedder
        self.archive = Archive(pool, timeout_s=pg_timeout_s, embedder=embedder) if pool is not None else None
        self.spool = LocalSpool(spool_dir) if spool_dir is not None else None
        self.drainer = Drainer(self.archive, self.outbox, self.spool, pool, self.health, self.tasks)
        self.stale_sessions: set[tuple[str, str]] = set()
        """Sessions whose Redis window misses turns written around Redis; rebuilt from the archive on load."""
        self.archive_access = GuardedArchive(
            self.archive, self.health, self.window, self.stale_sessions, embedder, self.tasks, self.spool
        )
        self._owns_clients = owns_clients

    @property
    def pending_invalidations(self) -> set[str]:
        """Athletes whose facts changed while Redis was down; their cache is bypassed until invalidated."""
        return self.facts_tier.pending_invalidations

    @classmethod
    async def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        spool_dir: Path | None | Literal["default"] = "default",
        pg_timeout_s: float = PG_TIMEOUT_S,
        redis_timeout_s: float = REDIS_TIMEOUT_S,
    ) -> ConversationMemory:
        """Open Redis and Postgres from the settings, tolerating either (or both) being down.

        Applies the migrations once Postgres answers, and probes both servers once: `status()` is right from the
        first turn (this costs up to `pg_timeout_s` when Postgres is down). The outbox is `settings.outbox_stream`.

        Args:
            settings: the process settings (default `get_settings()`).
            spool_dir: the last-resort spool directory; "default" is `memory.outbox.default_spool_dir` of the
                database URL (named after the URL without its password), None disables the spool.
            pg_timeout_s: see the class.
            redis_timeout_s: connect and socket timeout of Redis calls, seconds.

        Returns:
            A memory that owns its clients (`close()` closes them).
        """
        settings = settings or get_settings()
        if spool_dir == "default":
            spool_dir = default_spool_dir(settings.database_url)
        redis = open_redis(settings.redis_url, timeout_s=redis_timeout_s)
        pool = await open_memory_pool(settings.database_url, max_size=settings.db_pool_max_size, timeout_s=pg_timeout_s)
        memory = cls(
            redis,
            pool,
            window_turns=settings.window_turns,
            window_token_budget=settings.window_token_budget,
            store_cap=settings.window_store_cap,
            window_ttl_s=settings.window_ttl_s,
            facts_ttl_s=settings.facts_cache_ttl_s,
            outbox_stream=settings.outbox_stream,
            pg_timeout_s=pg_timeout_s,
            spool_dir=spool_dir,
            ensure_schema=True,
            owns_clients=True,
            embedder=get_embedder(settings),
        )
        await memory.check_health()
        await memory.health.warn_unless_appendonly()
        return memory

    def status(self) -> MemoryStatus:
        """Return the memory status from the last known health of both servers."""
        return self.health.status()

    async def check_health(self) -> MemoryStatus:
        """Probe both servers now (PING, `SELECT 1`; at most `pg_timeout_s`) and return the status."""
        return await self.health.check()

    async def refresh_health(self) -> MemoryStatus:
        """Re-probe now every server last seen down and return the status (`ServerHealth.refresh`)."""
        return await self.health.refresh()

    async def load(self, athlete_id: str, session_id: str) -> LoadedMemory:
        """Load a turn's memory: the recent-turns block and the current facts. Never raises for an outage.

        First re-probes every server last seen down (`refresh_health`): a server that is back is used at once.
        Window: Redis, hydrated from the archive on a miss (`GuardedArchive.load_window`). Facts: the cache, else
        Postgres (`FactsTier.load`).

        Returns:
            `LoadedMemory`; its `status` says which tier was missing.

        Raises:
            InvalidAthleteIdError, InvalidSessionIdError: invalid ids.
        """
        validate_athlete_id(athlete_id)
        validate_session_id(session_id)
        await self.refresh_health()
        need = 2 * self.window_turns + 2
        entries = await self.archive_access.load_window(athlete_id, session_id, need, self.store_cap)
        facts = await self.facts_tier.load(athlete_id)
        entries = entries[-need:]
        block, ids = render_window_block(entries, self.window_turns, self.window_token_budget)
        self.health.schedule_probes()
        return LoadedMemory(
            window_block=block,
            window_message_ids=ids,
            window_entries=entries,
            facts=facts if facts is not None else {},
            facts_available=facts is not None,
            status=self._status_for(athlete_id, session_id),
        )

    def _status_for(self, athlete_id: str, session_id: str) -> MemoryStatus:
        """The status, or `degraded:dead_letter` once after a message of this session was dead-lettered."""
        status = self.status()
        if status == "ok" and self.drainer.take_dead_letters(athlete_id, session_id):
            return "degraded:dead_letter"
        return status

    async def save_turn(self, athlete_id: str, session_id: str, messages: Sequence[ChatMessage]) -> MemoryStatus:
        """Save a turn: window append and archive, never waiting for Postgres when Redis is up.

        First re-probes every server last seen down (`refresh_health`), then:

        1. Redis up: XADD every message to the outbox, then append the user and assistant messages to the
           window (each one MULTI/EXEC); a drain to Postgres starts in the background (`Drainer.kick`).
        2. Redis down: every message straight to the archive, else (both down) to the local spool, else lost
           (logged) (`GuardedArchive.write_now`); the session's Redis window is marked stale.

        Args:
            athlete_id: the athlete.
            session_id: the session.
            messages: the turn's messages in order, all of this athlete and session.

        Returns:
            The memory status after the save (`unavailable` when both servers are down, spooled or not).

        Raises:
            ValueError: a message belongs to another athlete or session.
        """
        validate_athlete_id(athlete_id)
        validate_session_id(session_id)
        for m in messages:
            if m.athlete_id != athlete_id or m.session_id != session_id:
                raise ValueError(f"message {m.id} belongs to {m.athlete_id}/{m.session_id}, not this session")
        if not messages:
            return self.status()
        await self.refresh_health()
        key = (athlete_id, session_id)
        entries = [entry_from_message(m) for m in messages if m.role in ("user", "assistant")]
        queued = False
        outbox, window = self.outbox, self.window
        if outbox is not None and window is not None:
            try:
                await self.health.redis_call(lambda: outbox.enqueue(messages))
                queued = True
                await self.health.redis_call(lambda: window.append_turn(athlete_id, session_id, entries))
            except ServerDown:
                self.stale_sessions.add(key)
        saved = queued or await self.archive_access.write_now(messages)
        if not saved:
            logger.error("memory unavailable: turn of %s/%s (%d messages) not saved", *key, len(messages))
        if queued and self.pg_breaker.healthy:
            self.drainer.kick()
        self.health.schedule_probes()
        return self.status()

    async def drain_outbox(self, batch: int = 500) -> int:
        """Move queued messages to the archive now (spool, then outbox; `Drainer.drain`); returns how many."""
        return await self.drainer.drain(batch)

    def start_background_drainer(self, interval_s: float = DRAIN_INTERVAL_S) -> None:
        """Re-probe and drain every `interval_s` s in the background (idempotent; the server's lifespan)."""
        self.drainer.start(interval_s)

    async def stop_background_drainer(self) -> None:
        """Stop the background drainer (waits for it to end)."""
        await self.drainer.stop()

    async def pending_writes(self) -> int:
        """Return the number of messages waiting in the outbox and the spool (raises redis' ConnectionError)."""
        return await self.drainer.pending()

    def take_dead_letters(self, athlete_id: str, session_id: str) -> int:
        """Return and forget the number of the session's messages dead-lettered since the last call."""
        return self.drainer.take_dead_letters(athlete_id, session_id)

    async def search(
        self, athlete_id: str, query: str, *, k: int = 3, exclude_ids: Iterable[str] = ()
    ) -> list[SearchHit]:
        """Search the athlete's archive: the hits of `recall`.

        Raises:
            StoreUnavailableError: Postgres is down (recall is unavailable).
        """
        return (await self.recall(athlete_id, query, k=k, exclude_ids=exclude_ids)).hits

    async def recall(self, athlete_id: str, query: str, *, k: int = 3, exclude_ids: Iterable[str] = ()) -> SearchResult:
        """Search the athlete's archive and say how the hits were ranked (`GuardedArchive.recall`).

        Raises:
            StoreUnavailableError: Postgres is down (recall is unavailable).
            InvalidTextError: the query holds NUL or a lone surrogate (`memory.text`).
        """
        return await self.archive_access.recall(athlete_id, query, k=k, exclude_ids=exclude_ids)

    async def replies_to(self, athlete_id: str, message_ids: Sequence[str]) -> dict[str, ChatMessage]:
        """The coach's reply to each given user message (`GuardedArchive.replies_to`).

        Raises:
            StoreUnavailableError: Postgres is down.
        """
        return await self.archive_access.replies_to(athlete_id, message_ids)

    async def current_facts(self, athlete_id: str) -> Facts:
        """Return the athlete's current facts, the one read path: cache, else Postgres (`FactsTier.current`).

        Raises:
            StoreUnavailableError: Postgres is down and the facts are not cached.
        """
        return await self.facts_tier.current(athlete_id)

    async def set_facts(
        self,
        athlete_id: str,
        changes: Sequence[FactChange],
        *,
        source: FactSource,
        source_session_id: str | None = None,
        source_ride_id: str | None = None,
    ) -> list[str]:
        """Write facts; the commit drops the athlete's cached facts (`FactsTier.write`). Returns the changed keys.

        Raises:
            StoreUnavailableError: Postgres is down (nothing written).
        """
        return await self.facts_tier.write(
            athlete_id, changes, source=source, source_session_id=source_session_id, source_ride_id=source_ride_id
        )

    async def invalidate_facts(self, athlete_id: str) -> None:
        """Drop the athlete's cached facts (fact writes already do; for repairs). Never raises for an outage."""
        await self.facts_tier.invalidate(athlete_id)

    async def reindex(
        self,
        athlete_id: str | None = None,
        *,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Embed the archived messages lacking a vector of the current model (`coach reindex`; `GuardedArchive`).

        Raises:
            StoreUnavailableError: Postgres is down.
        """
        return await self.archive_access.reindex(athlete_id, force=force, progress=progress)

    async def import_transcript(
        self, athlete_id: str, session_id: str, records: Iterable[Mapping[str, Any]]
    ) -> ImportResult:
        """Import a transcript into the archive, then drop the session's window (`GuardedArchive`).

        Raises:
            StoreUnavailableError: Postgres is down.
            InvalidTranscriptError: a record is invalid (nothing written).
        """
        return await self.archive_access.import_transcript(athlete_id, session_id, records)

    async def close(self) -> None:
        """Stop background work; close Redis and the pool when this object opened them (`from_settings`)."""
        await self.stop_background_drainer()
        await self.tasks.cancel_all()
        if self._owns_clients:
            if self.redis is not None:
                await self.redis.aclose()
            if self.pool is not None:
                await self.pool.close()
