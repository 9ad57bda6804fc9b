"""The facade the chat graph calls: both memory tiers, the outbox and graceful degradation (docs/architecture.md).

`ConversationMemory.load` gives a turn its recent-turns block and the athlete's current facts; `save_turn` appends
the exchange to the window and queues it for the archive. Each server sits behind a `CircuitBreaker`: after a
failure it is considered down and the reply path stops calling it; a background probe tries it again at most once
per `breaker_open_s` (default 1 s). So a dead server costs the reply path at most one timeout per outage (the
first call that needs it: up to `pg_timeout_s` = 1 s for Postgres, the 0.5 s socket timeouts for Redis, a few ms
when the port refuses), then only the re-probe: `load` and `save_turn` first ping every server whose breaker is
open (`refresh_health`, `memory.probes`: about 1 ms when the port refuses, at most `probe_timeout_s` = 0.25 s),
so the first turn after a server returns uses it and says so. `start_background_drainer` (the API server starts
it in its lifespan) re-probes and drains the outbox once a second without any traffic.

| Redis | Postgres | load | save_turn | status |
|---|---|---|---|---|
| up | up | window from Redis (hydrated from the archive on a miss), facts cache then Postgres | window + outbox | ok |
| down | up | window and facts from Postgres | straight to Postgres | degraded:redis |
| up | down | window and cached facts from Redis | window + outbox (drained later) | degraded:postgres |
| down | down | nothing | local spool file if configured, else lost | unavailable |

`status` is the last known health of each server: an outage is noticed by the first call that needs the server
(a turn whose window and facts are in Redis does not touch Postgres; the background drain it starts does).

A queued message that Postgres refuses (not for an outage: for its content) goes to the outbox's dead-letter
stream. That happens in the drain after the reply, so the session's next `load` reports `degraded:dead_letter`
once (when the servers are otherwise fine), and the drain logs it at ERROR; `coach doctor` lists the stream.

Turns written around Redis (Redis down) leave the Redis window stale when Redis returns with its AOF: this process
remembers those sessions (`stale_sessions`) and rebuilds their windows from the archive on their next load. Fact
invalidations that could not reach Redis are remembered (`pending_invalidations`) and replayed when Redis returns;
meanwhile the athlete's cache is bypassed. Both memories are per process: another process serving the same
session does not know them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.settings import Settings, get_settings
from memory.archive import (
    Archive,
    ChatMessage,
    ImportResult,
    SearchHit,
    SearchResult,
    validate_session_id,
    warn_once,
)
from memory.athlete_store import AthleteStore, FactChange, FactSource, validate_athlete_id
from memory.db import CONNECTION_KWARGS, DictPool
from memory.embeddings import ArchiveEmbedder, get_embedder
from memory.errors import StoreUnavailableError
from memory.facts_cache import Facts, FactsCache
from memory.outbox import OUTBOX_STREAM, PG_DOWN_ERRORS, LocalSpool, Outbox
from memory.probes import PROBE_TIMEOUT_S, REPROBE_INTERVAL_S, ping_postgres, ping_redis
from memory.redis_client import REDIS_ERRORS, REDIS_TIMEOUT_S, open_redis
from memory.schema import asetup
from memory.session_window import SessionWindow, WindowEntry, render_window_block
from memory.text import validate_text

logger = logging.getLogger(__name__)

MemoryStatus = Literal["ok", "degraded:dead_letter", "degraded:redis", "degraded:postgres", "unavailable"]
PG_TIMEOUT_S = 1.0
"""Default longest wait for Postgres on the reply path (pool checkout and query), seconds."""
BREAKER_OPEN_S = 1.0
"""Default time a server is left alone after a failure before it is tried again, seconds."""
PG_RECONNECT_TIMEOUT_S = 1.0
"""psycopg_pool's `reconnect_timeout` for `open_memory_pool`: its default (300 s) backs off exponentially while
Postgres is down, so the pool could take a minute to notice it is back; 1 s keeps recovery within about a second."""
DEFAULT_SPOOL_ROOT = Path(tempfile.gettempdir()) / "endurance-coach-spool"
"""Root of `from_settings`' default spool directories (one subdirectory per database URL)."""

T = TypeVar("T")


DRAIN_DELAY_S = 0.05
"""Delay before the background archive drain a turn asks for starts, seconds (off the reply path)."""
DRAIN_INTERVAL_S = 1.0
"""Default period of `start_background_drainer` (re-probe, then drain the outbox and the spool), seconds."""


class _Down(Exception):
    """A server was skipped or failed; the caller degrades."""


class CircuitBreaker:
    """Health of one server, as seen by this process.

    `healthy` is the outcome of the last call (True until a failure). After a failure, `probe_due()` is False for
    `open_s` seconds; then it grants one trial (and is False again for `open_s`) until a success closes it.

    Args:
        name: the server's name, for logs.
        open_s: how long a failed server is left alone, seconds.
        clock: monotonic clock, seconds (injectable for tests).
    """

    def __init__(self, name: str, *, open_s: float = BREAKER_OPEN_S, clock: Callable[[], float] = time.monotonic):
        """Start closed (healthy)."""
        self.name = name
        self.open_s = open_s
        self._clock = clock
        self.healthy = True
        self._retry_at = 0.0
        self.failures = 0

    def probe_due(self) -> bool:
        """Whether a trial call may be made now; granting one postpones the next by `open_s`."""
        if self.healthy:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.open_s
        return True

    def success(self) -> None:
        """Record a successful call: the server is healthy."""
        if not self.healthy:
            logger.info("%s is reachable again", self.name)
        self.healthy = True
        self._retry_at = 0.0

    def failure(self, exc: BaseException | None = None) -> None:
        """Record a failed call: the server is down for at least `open_s`."""
        if self.healthy:
            logger.warning("%s unreachable (%s): degrading for at least %.1f s", self.name, exc, self.open_s)
        self.healthy = False
        self.failures += 1
        self._retry_at = self._clock() + self.open_s


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


async def open_memory_pool(
    url: str,
    *,
    max_size: int = 10,
    timeout_s: float = PG_TIMEOUT_S,
    reconnect_timeout_s: float = PG_RECONNECT_TIMEOUT_S,
) -> DictPool:
    """Open a pool for the memory layer without waiting for Postgres (it may be down; the pool keeps trying).

    Same connection settings as `memory.db.open_pool` (autocommit, dict rows), plus a checkout `timeout` of
    `timeout_s` and a short `reconnect_timeout` (see `PG_RECONNECT_TIMEOUT_S`). No `check` on checkout:
    psycopg_pool sleeps about 1 s after the second failed check, so after a Postgres restart the first caller
    would wait a second; `ConversationMemory` instead runs `pool.check()` once on a connection error and retries.

    Returns:
        An open `AsyncConnectionPool` (connections are made in the background).
    """
    pool: DictPool = AsyncConnectionPool(
        url,
        connection_class=psycopg.AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        timeout=timeout_s,
        reconnect_timeout=reconnect_timeout_s,
        kwargs={**CONNECTION_KWARGS, "connect_timeout": 2},
        open=False,
    )
    await pool.open(wait=False)
    return pool


def _stale_connection_error(exc: BaseException | None) -> bool:
    """Whether `exc` may come from a pooled connection that died with a Postgres restart (worth one retry)."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout)


def entry_from_message(m: ChatMessage) -> WindowEntry:
    """Return the window entry mirroring a user or assistant message."""
    if m.role not in ("user", "assistant"):
        raise ValueError(f"only user and assistant messages go to the window, not {m.role!r}")
    return WindowEntry.make(m.id, m.role, m.content, m.created_at)


class ConversationMemory:
    """Session window, facts cache, archive and outbox behind one object, degrading gracefully.

    Args:
        redis: a client from `memory.redis_client.open_redis` (short timeouts, no retries), or None (no Redis).
        pool: a pool from `open_memory_pool` (short checkout timeout and reconnect timeout), or None.
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
        embedder: embeds archived messages (in the outbox drain and imports, never on the reply path) and search
            queries, for hybrid recall; None: recall ranks by full text alone.

    A pool from `memory.db.open_pool` works too, but its 300 s `reconnect_timeout` can delay noticing a Postgres
    restart by a minute or more.
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
        self.probe_timeout_s = probe_timeout_s
        self.redis_breaker = CircuitBreaker("Redis", open_s=breaker_open_s)
        self.pg_breaker = CircuitBreaker("Postgres", open_s=breaker_open_s)
        if redis is None:
            self.redis_breaker.healthy = False
        if pool is None:
            self.pg_breaker.healthy = False
        self.window = SessionWindow(redis, store_cap=store_cap, ttl_s=window_ttl_s) if redis is not None else None
        self.facts_cache = FactsCache(redis, ttl_s=facts_ttl_s) if redis is not None else None
        self.outbox = Outbox(redis, stream=outbox_stream) if redis is not None else None
        self.embedder = embedder
        self.archive = Archive(pool, timeout_s=pg_timeout_s, embedder=embedder) if pool is not None else None
        self.store = AthleteStore(pool) if pool is not None else None
        self.spool = LocalSpool(spool_dir) if spool_dir is not None else None
        self.stale_sessions: set[tuple[str, str]] = set()
        """Sessions whose Redis window misses turns written around Redis; rebuilt from the archive on load."""
        self.pending_invalidations: set[str] = set()
        """Athletes whose facts changed while Redis was down; their cache is bypassed until invalidated."""
        self.dead_lettered_sessions: dict[tuple[str, str], int] = {}
        """Messages per (athlete, session) dead-lettered by this process's drains and not yet reported."""
        self._ensure_schema = ensure_schema
        self._owns_clients = owns_clients
        self._tasks: set[asyncio.Task[Any]] = set()
        self._probes: dict[str, asyncio.Task[Any]] = {}
        self._refreshes: dict[str, asyncio.Task[Any]] = {}
        self._refreshed_at: dict[str, float] = {}
        self._drain_task: asyncio.Task[Any] | None = None
        self._drain_requested = False
        self._drainer: asyncio.Task[Any] | None = None

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

        Applies the schema migrations once Postgres answers, and probes both servers once, so that `status()` is
        right from the first turn (this costs up to `pg_timeout_s` when Postgres is down).

        Args:
            settings: the process settings (default `get_settings()`).
            spool_dir: the last-resort spool directory; "default" is `DEFAULT_SPOOL_ROOT/<hash of database_url>`,
                None disables the spool.
            pg_timeout_s: see the class.
            redis_timeout_s: connect and socket timeout of Redis calls, seconds.

        Returns:
            A memory that owns its clients (`close()` closes them).
        """
        settings = settings or get_settings()
        if spool_dir == "default":
            digest = hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]
            spool_dir = DEFAULT_SPOOL_ROOT / digest
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
            pg_timeout_s=pg_timeout_s,
            spool_dir=spool_dir,
            ensure_schema=True,
            owns_clients=True,
            embedder=get_embedder(settings),
        )
        await memory.check_health()
        await memory._warn_unless_appendonly()
        return memory

    async def _warn_unless_appendonly(self) -> None:
        """Log a warning when Redis runs without AOF: the outbox would not survive a Redis restart."""
        if self.redis is None or not self.redis_breaker.healthy:
            return
        try:
            config = await self.redis.config_get("appendonly")
        except RedisError:  # CONFIG may be disabled (managed Redis)
            return
        if config.get("appendonly") != "yes":
            logger.warning("Redis runs without appendonly: queued archive writes are lost if Redis restarts")

    # ----- health ------------------------------------------------------------------------------------------

    def status(self) -> MemoryStatus:
        """Return the memory status from the last known health of both servers."""
        redis_ok, pg_ok = self.redis_breaker.healthy, self.pg_breaker.healthy
        if redis_ok and pg_ok:
            return "ok"
        if pg_ok:
            return "degraded:redis"
        if redis_ok:
            return "degraded:postgres"
        return "unavailable"

    async def check_health(self) -> MemoryStatus:
        """Probe both servers now (PING, `SELECT 1`; at most `pg_timeout_s`) and return the status."""
        await asyncio.gather(self._probe_redis(), self._probe_pg())
        return self.status()

    async def _probe_redis(self) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except REDIS_ERRORS as exc:
            self.redis_breaker.failure(exc)
            return
        self.redis_breaker.success()
        for athlete_id in list(self.pending_invalidations):
            await self._invalidate_quietly(athlete_id)

    async def _probe_pg(self) -> None:
        if self.pool is None:
            return
        try:
            async with asyncio.timeout(self.pg_timeout_s):
                await self.pool.check()  # drop connections that died with the server
                async with self.pool.connection(timeout=self.pg_timeout_s) as conn:
                    await conn.execute("SELECT 1")
        except PG_DOWN_ERRORS as exc:
            self.pg_breaker.failure(exc)
            return
        self.pg_breaker.success()
        if self._ensure_schema:
            try:
                async with self.pool.connection(timeout=self.pg_timeout_s) as conn:
                    await asetup(conn)
                self._ensure_schema = False
            except psycopg.Error:
                logger.exception("applying the athlete store's migrations failed (will retry on the next probe)")

    async def refresh_health(self) -> MemoryStatus:
        """Re-probe now, ignoring the breakers' cool-down, every server last seen down; return the status.

        Each such server gets a cheap ping (`memory.probes`, at most `probe_timeout_s`); one that answers then
        goes through its full probe (Postgres: `pool.check()` and `SELECT 1` through the pool, migrations;
        Redis: replay of pending invalidations). Servers believed healthy cost nothing. Concurrent callers
        share one re-probe per server, and a server re-probed less than `REPROBE_INTERVAL_S` (0.1 s) ago is
        not pinged again (a busy server makes at most 10 connection attempts a second to a dead one; the load
        and the save of one fast turn ping once). Never raises for an outage.
        """
        checks = []
        if self.redis is not None and not self.redis_breaker.healthy:
            checks.append(self._shared_refresh("redis", self._refresh_redis))
        if self.pool is not None and not self.pg_breaker.healthy:
            checks.append(self._shared_refresh("pg", self._refresh_pg))
        if checks:
            await asyncio.gather(*checks)
        return self.status()

    async def _shared_refresh(self, name: str, refresh: Callable[[], Awaitable[None]]) -> None:
        task = self._refreshes.get(name)
        if task is None or task.done():
            now = time.monotonic()
            if now - self._refreshed_at.get(name, -REPROBE_INTERVAL_S) < REPROBE_INTERVAL_S:
                return
            self._refreshed_at[name] = now
            task = self._refreshes[name] = self._spawn(refresh())
        await asyncio.shield(task)

    async def _refresh_redis(self) -> None:
        assert self.redis is not None
        error = await ping_redis(self.redis, timeout_s=self.probe_timeout_s)
        if error is not None:
            self.redis_breaker.failure(error)
            return
        await self._probe_redis()

    async def _refresh_pg(self) -> None:
        assert self.pool is not None
        error = await ping_postgres(self.pool, timeout_s=self.probe_timeout_s)
        if error is not None:
            self.pg_breaker.failure(error)
            return
        await self._probe_pg()

    def _schedule_probes(self) -> None:
        """Start a background probe of each unhealthy server whose breaker allows a trial."""
        for name, breaker, probe in (
            ("redis", self.redis_breaker, self._probe_redis),
            ("pg", self.pg_breaker, self._probe_pg),
        ):
            if (name == "redis" and self.redis is None) or (name == "pg" and self.pool is None):
                continue
            running = self._probes.get(name)
            if breaker.healthy or (running is not None and not running.done()) or not breaker.probe_due():
                continue
            self._probes[name] = self._spawn(probe())

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _redis_call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis operation on the reply path; raise `_Down` if Redis is down or fails."""
        if self.redis is None or not self.redis_breaker.healthy:
            raise _Down("redis")
        try:
            result = await fn()
        except REDIS_ERRORS as exc:
            self.redis_breaker.failure(exc)
            raise _Down("redis") from exc
        self.redis_breaker.success()
        return result

    async def _pg_call(self, fn: Callable[[], Awaitable[T]], *, explicit: bool = False) -> T:
        """Run a Postgres operation; raise `_Down` if Postgres is down or fails.

        Reply-path calls (default) are skipped while the breaker says down and cut at `pg_timeout_s`. `explicit`
        calls (a fact write, an import: the caller waits for the outcome) are tried even then, without the cut
        (the pool's checkout timeout still applies).
        """
        pool = self.pool
        if pool is None or not (self.pg_breaker.healthy or explicit):
            raise _Down("postgres")
        try:
            async with asyncio.timeout(None if explicit else self.pg_timeout_s):
                try:
                    result = await fn()
                except psycopg.OperationalError as exc:
                    if not _stale_connection_error(exc):
                        raise
                    # Pooled connections died with a Postgres restart: drop them all, then retry once (every
                    # operation of the memory layer is idempotent or transactional).
                    await pool.check()
                    result = await fn()
        except PG_DOWN_ERRORS as exc:
            self.pg_breaker.failure(exc)
            raise _Down("postgres") from exc
        self.pg_breaker.success()
        return result

    # ----- the turn ----------------------------------------------------------------------------------------

    async def load(self, athlete_id: str, session_id: str) -> LoadedMemory:
        """Load a turn's memory: the recent-turns block and the current facts. Never raises for an outage.

        First re-probes every server last seen down (`refresh_health`): a server that is back is used at once.

        Window: from Redis; on a miss (key absent) or for a stale session, hydrated from the archive (last
        `store_cap` user/assistant messages) and written back to Redis; with Redis down, from the archive.
        Facts: from the cache; else from Postgres (then cached); with Postgres down, the cache only.

        Returns:
            `LoadedMemory`; its `status` says which tier was missing.

        Raises:
            InvalidAthleteIdError, InvalidSessionIdError: invalid ids.
        """
        validate_athlete_id(athlete_id)
        validate_session_id(session_id)
        await self.refresh_health()
        need = 2 * self.window_turns + 2
        entries = await self._load_window(athlete_id, session_id, need)
        facts = await self._load_facts(athlete_id)
        entries = entries[-need:]
        block, ids = render_window_block(entries, self.window_turns, self.window_token_budget)
        self._schedule_probes()
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
        if status == "ok" and self.take_dead_letters(athlete_id, session_id):
            return "degraded:dead_letter"
        return status

    def take_dead_letters(self, athlete_id: str, session_id: str) -> int:
        """Return and forget the number of the session's messages dead-lettered since the last call."""
        return self.dead_lettered_sessions.pop((athlete_id, session_id), 0)

    def _note_dead_letters(self, outbox: Outbox) -> None:
        """Remember which sessions lost messages to the dead-letter stream in the last drain, and log it."""
        for dead in outbox.dead_lettered:
            if dead.message is None:
                continue
            key = (dead.message.athlete_id, dead.message.session_id)
            self.dead_lettered_sessions[key] = self.dead_lettered_sessions.get(key, 0) + 1
        if outbox.dead_lettered:
            logger.error(
                "%d queued message(s) could not be archived and went to %s (see `coach doctor`)",
                len(outbox.dead_lettered),
                outbox.dead_stream,
            )

    async def _load_window(self, athlete_id: str, session_id: str, need: int) -> list[WindowEntry]:
        window = self.window
        entries: list[WindowEntry] | None = None
        stale = (athlete_id, session_id) in self.stale_sessions
        # Only the newest `need` entries reach the prompt; a stale window is read whole, to merge it.
        read_n = self.store_cap if stale else min(need, self.store_cap)
        if window is not None:
            with contextlib.suppress(_Down):
                entries = await self._redis_call(lambda: window.read(athlete_id, session_id, read_n))
        if entries and not stale:
            return entries
        archive = self.archive
        if archive is None:
            return entries or []
        try:
            messages = await self._pg_call(lambda: archive.recent(athlete_id, session_id, self.store_cap))
        except _Down:
            return entries or []
        hydrated = [entry_from_message(m) for m in messages]
        if stale and entries:
            # Turns saved to this stale window may still wait in the outbox: keep those the archive lacks.
            known = {e.id for e in hydrated}
            newest = hydrated[-1].ts if hydrated else None
            hydrated += [e for e in entries if e.id not in known and (newest is None or e.ts >= newest)]
            hydrated = hydrated[-self.store_cap :]
        if entries is not None and window is not None and (hydrated or stale):
            try:
                await self._redis_call(lambda: window.replace(athlete_id, session_id, hydrated))
                self.stale_sessions.discard((athlete_id, session_id))
            except _Down:
                pass
        return hydrated

    async def _load_facts(self, athlete_id: str) -> Facts | None:
        cache, store = self.facts_cache, self.store
        generation: str | None = None
        if cache is not None and athlete_id not in self.pending_invalidations:
            try:
                cached, generation = await self._redis_call(lambda: cache.get(athlete_id))
                if cached is not None:
                    return cached
            except _Down:
                pass
        if store is None:
            return None
        try:
            facts = await self._pg_call(lambda: store.current_facts(athlete_id))
        except _Down:
            return None
        if cache is not None and generation is not None:
            with contextlib.suppress(_Down):
                await self._redis_call(lambda: cache.put(athlete_id, facts, generation))
        return facts

    async def save_turn(self, athlete_id: str, session_id: str, messages: Sequence[ChatMessage]) -> MemoryStatus:
        """Save a turn: window append and archive, never waiting for Postgres when Redis is up.

        First re-probes every server last seen down (`refresh_health`), then:

        1. Redis up: XADD every message (user, tool, assistant) to the outbox, then append the user and assistant
           messages to the window (each one MULTI/EXEC); a drain to Postgres is started in the background.
        2. Redis down: write every message straight to the archive (at most `pg_timeout_s`; the embeddings are
           computed afterwards in the background); the session's Redis window is marked stale and rebuilt from
           the archive when Redis returns.
        3. Both down: the turn cannot be saved to memory. With a `spool_dir`, it is appended to a local JSONL
           spool file that the next `drain_outbox` moves to Postgres; without one it is lost (logged).

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
                await self._redis_call(lambda: outbox.enqueue(messages))
                queued = True
                await self._redis_call(lambda: window.append_turn(athlete_id, session_id, entries))
            except _Down:
                self.stale_sessions.add(key)
        saved = queued
        archive = self.archive
        if not saved and archive is not None:
            with contextlib.suppress(_Down):
                await self._pg_call(lambda: archive.write(messages))
                saved = True
                if self.embedder is not None:  # written without vectors: embed them in the background
                    self._spawn(self._embed_quietly([m.id for m in messages]))
        if not saved and self.spool is not None:
            try:
                await self.spool.append(messages)
                saved = True
                logger.warning("both servers down: turn of %s/%s spooled to %s", athlete_id, session_id, self.spool)
            except OSError as exc:
                logger.error("spool write failed: %s", exc)
        if not saved:
            logger.error("memory unavailable: turn of %s/%s (%d messages) not saved", *key, len(messages))
        if queued and self.pg_breaker.healthy:
            self._kick_drain()
        self._schedule_probes()
        return self.status()

    # ----- outbox ------------------------------------------------------------------------------------------

    async def drain_outbox(self, batch: int = 500) -> int:
        """Move queued messages to the archive now: the local spool, then the Redis outbox.

        Tries both servers even when their breakers say down (an explicit drain is also a probe) and updates
        their health. Runs one at a time.

        Returns:
            The number of messages moved to Postgres by this call.
        """
        moved = 0
        archive = self.archive
        if archive is None:
            return 0
        try:
            if self.spool is not None:
                moved += await self.spool.drain(archive)
                if self.spool.last_error is not None:
                    self.pg_breaker.failure(self.spool.last_error)
                    return moved
            if self.outbox is not None:
                try:
                    moved += await self.outbox.drain(archive, batch=batch)
                    self._note_dead_letters(self.outbox)
                    if _stale_connection_error(self.outbox.last_error) and self.pool is not None:
                        await self.pool.check()
                        moved += await self.outbox.drain(archive, batch=batch)
                        self._note_dead_letters(self.outbox)
                except REDIS_ERRORS as exc:
                    self.redis_breaker.failure(exc)
                    return moved
                self.redis_breaker.success()
                if self.outbox.last_error is not None:
                    self.pg_breaker.failure(self.outbox.last_error)
                    return moved
            if moved:  # Postgres was written to (an empty drain proves nothing about it)
                self.pg_breaker.success()
            return moved
        finally:
            self._schedule_probes()

    def _kick_drain(self) -> None:
        """Ask for a background drain; start one unless one is running (which then runs once more)."""
        self._drain_requested = True
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = self._spawn(self._drain_after_reply())

    async def _drain_after_reply(self) -> None:
        """Let the turn finish (reply, checkpoint) before the drain competes with it for the event loop."""
        await asyncio.sleep(DRAIN_DELAY_S)
        await self._drain_while_requested()

    async def _drain_while_requested(self) -> None:
        while self._drain_requested and self.pg_breaker.healthy:
            self._drain_requested = False
            await self._drain_quietly()

    async def _drain_quietly(self) -> int:
        try:
            return await self.drain_outbox()
        except Exception:  # a background task must not die silently
            logger.exception("background drain failed")
            return 0

    def start_background_drainer(self, interval_s: float = DRAIN_INTERVAL_S) -> None:
        """Re-probe and drain every `interval_s` seconds in a background task (idempotent); the API server's lifespan.

        Each round re-probes the servers last seen down (`refresh_health`), then, when Postgres is up, drains
        the local spool and the Redis outbox (`drain_outbox`). So a recovery is noticed, and the queued turns
        archived, within about `interval_s` of the servers' return, without any turn. `stop_background_drainer`
        (or `close`) cancels it.
        """
        if self._drainer is not None and not self._drainer.done():
            return

        async def loop() -> None:
            while True:
                try:
                    await self.refresh_health()
                    if self.pg_breaker.healthy:
                        await self.drain_outbox()
                except Exception:  # a background task must not die silently
                    logger.exception("background drain round failed")
                await asyncio.sleep(interval_s)

        self._drainer = self._spawn(loop())

    async def stop_background_drainer(self) -> None:
        """Stop the background drainer (waits for it to end)."""
        task, self._drainer = self._drainer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def pending_writes(self) -> int:
        """Return the number of messages waiting in the Redis outbox and the local spool.

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
        """
        n = await self.outbox.pending() if self.outbox is not None else 0
        return n + (await self.spool.pending() if self.spool is not None else 0)

    # ----- recall and facts --------------------------------------------------------------------------------

    async def search(
        self, athlete_id: str, query: str, *, k: int = 3, exclude_ids: Iterable[str] = ()
    ) -> list[SearchHit]:
        """Search the athlete's archive: the hits of `recall`.

        Raises:
            StoreUnavailableError: Postgres is down (recall is unavailable).
        """
        return (await self.recall(athlete_id, query, k=k, exclude_ids=exclude_ids)).hits

    async def recall(self, athlete_id: str, query: str, *, k: int = 3, exclude_ids: Iterable[str] = ()) -> SearchResult:
        """Search the athlete's archive (see `Archive.search_ranked`) and say how the hits were ranked.

        The query is embedded first (the embedder's model loads on the first call of the process), outside the
        Postgres timeout; then one SQL statement ranks. The ranking is `full_text` (BM25 alone) when there is no
        embedder, no pgvector, or the query could not be embedded; each of those is logged once per process.

        Raises:
            StoreUnavailableError: Postgres is down (recall is unavailable).
            InvalidTextError: the query holds NUL or a lone surrogate (`memory.text`).
        """
        validate_text(query, "query")
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        try:
            vectors = await self._pg_call(archive.vectors_enabled)
            vector = await self._query_embedding(query) if vectors else None
            return await self._pg_call(
                lambda: archive.search_ranked(athlete_id, query, k=k, exclude_ids=exclude_ids, query_embedding=vector)
            )
        except _Down as exc:
            self._schedule_probes()
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc

    async def _query_embedding(self, query: str) -> list[float] | None:
        if self.embedder is None:
            warn_once("no_embedder", "no embedding model configured: conversation recall uses full-text ranking only")
            return None
        if not query.strip():
            return None
        try:
            return await self.embedder.embed_query(query)
        except Exception as exc:  # noqa: BLE001 - any model failure: rank by full text, say so
            warn_once(f"query_embedding:{type(exc).__name__}", f"query embedding failed ({exc}): full-text recall")
            return None

    async def reindex(
        self,
        athlete_id: str | None = None,
        *,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Embed the archived messages that lack an embedding of the current model (`coach reindex`).

        Runs the schema's vector setup first, so a pgvector installed after `setup()` gets its column and index.

        Args:
            athlete_id: one athlete's messages; None: every athlete's.
            force: re-embed the messages that already have a vector of the current model too.
            progress: called as `progress(done, total)`, see `Archive.embed_pending`.

        Returns:
            The number of messages embedded; 0 when there is no pgvector or no embedder (see `vectors_enabled`).

        Raises:
            StoreUnavailableError: Postgres is down.
        """
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        try:
            await self._pg_call(archive.ensure_vectors, explicit=True)
            return await self._pg_call(
                lambda: archive.embed_pending(athlete_id=athlete_id, force=force, progress=progress), explicit=True
            )
        except _Down as exc:
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc

    async def _embed_quietly(self, message_ids: list[str]) -> None:
        """Embed messages written without vectors (a background task: failures are logged, `reindex` repairs)."""
        archive = self.archive
        if archive is None:
            return
        try:
            await archive.embed_pending(message_ids=message_ids)
        except Exception:  # a background task must not die silently
            logger.exception("embedding %d archived messages failed (run `coach reindex`)", len(message_ids))

    async def replies_to(self, athlete_id: str, message_ids: Sequence[str]) -> dict[str, ChatMessage]:
        """The coach's reply to each given user message (see `Archive.replies_to`).

        Raises:
            StoreUnavailableError: Postgres is down.
        """
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        try:
            return await self._pg_call(lambda: archive.replies_to(athlete_id, message_ids))
        except _Down as exc:
            self._schedule_probes()
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc

    async def current_facts(self, athlete_id: str) -> Facts:
        """Return the athlete's current facts: cache, else Postgres (then cached).

        Returns:
            `{key: {"value", "source", "source_session_id", "source_ride_id", "updated_at"}}`.

        Raises:
            StoreUnavailableError: Postgres is down and the facts are not cached.
        """
        validate_athlete_id(athlete_id)
        facts = await self._load_facts(athlete_id)
        self._schedule_probes()
        if facts is None:
            raise StoreUnavailableError("the athlete's facts are unavailable (Postgres down, nothing cached)")
        return facts

    async def set_facts(
        self,
        athlete_id: str,
        changes: Sequence[FactChange],
        *,
        source: FactSource,
        source_session_id: str | None = None,
        source_ride_id: str | None = None,
    ) -> list[str]:
        """Write facts through `AthleteStore.set_facts`, then invalidate the athlete's cached facts.

        Returns:
            The keys that changed.

        Raises:
            StoreUnavailableError: Postgres is down (nothing written).
        """
        store = self.store
        if store is None:
            raise StoreUnavailableError("the athlete store is not configured")
        try:
            changed = await self._pg_call(
                lambda: store.set_facts(
                    athlete_id,
                    changes,
                    source=source,
                    source_session_id=source_session_id,
                    source_ride_id=source_ride_id,
                ),
                explicit=True,
            )
        except _Down as exc:
            self._schedule_probes()
            raise StoreUnavailableError("the athlete store (Postgres) is unavailable; no fact was written") from exc
        await self.invalidate_facts(athlete_id)
        return changed

    async def invalidate_facts(self, athlete_id: str) -> None:
        """Drop the athlete's cached facts; call after any fact write made elsewhere (Debrief Coach, Auditor).

        With Redis down, the invalidation is remembered and replayed when Redis returns; meanwhile this
        process reads the athlete's facts from Postgres. Never raises for an outage.
        """
        validate_athlete_id(athlete_id)
        self.pending_invalidations.add(athlete_id)
        await self._invalidate_quietly(athlete_id)
        self._schedule_probes()

    async def _invalidate_quietly(self, athlete_id: str) -> None:
        cache = self.facts_cache
        if cache is None:
            return
        with contextlib.suppress(_Down):
            await self._redis_call(lambda: cache.invalidate(athlete_id))
            self.pending_invalidations.discard(athlete_id)

    async def import_transcript(
        self, athlete_id: str, session_id: str, records: Iterable[Mapping[str, Any]]
    ) -> ImportResult:
        """Import a transcript into the archive (see `Archive.import_transcript`), then drop the session's window.

        Raises:
            StoreUnavailableError: Postgres is down.
            InvalidTranscriptError: a record is invalid (nothing written).
        """
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        records = list(records)
        try:
            result = await self._pg_call(
                lambda: archive.import_transcript(athlete_id, session_id, records), explicit=True
            )
        except _Down as exc:
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc
        window = self.window
        try:
            if window is None:
                raise _Down("redis")
            await self._redis_call(lambda: window.delete(athlete_id, session_id))
        except _Down:
            self.stale_sessions.add((athlete_id, session_id))
        return result

    # ----- lifecycle ---------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop background work; close Redis and the pool when this object opened them (`from_settings`)."""
        await self.stop_background_drainer()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_clients:
            if self.redis is not None:
                await self.redis.aclose()
            if self.pool is not None:
                await self.pool.close()
