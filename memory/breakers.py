"""Health of the memory's two servers: circuit breakers, probes and guarded calls (docs/architecture.md).

Each server (Redis, Postgres) sits behind a `CircuitBreaker`: after a failure it is considered down and the reply
path stops calling it; a background probe tries it again at most once per `breaker_open_s` (default 1 s). So a
dead server costs the reply path at most one timeout per outage (the first call that needs it: up to
`pg_timeout_s` = 1 s for Postgres, the 0.5 s socket timeouts for Redis, a few ms when the port refuses), then only
the re-probe: `ServerHealth.refresh` pings every server whose breaker is open (`memory.probes`: about 1 ms when
the port refuses, at most `probe_timeout_s` = 0.25 s), so the first turn after a server returns uses it and says
so. `ConversationMemory` composes one `ServerHealth` and runs every Redis and Postgres call of the reply path
through `redis_call` and `pg_call`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

import psycopg
from psycopg_pool import PoolTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from memory.db import DictPool
from memory.outbox import PG_DOWN_ERRORS
from memory.probes import PROBE_TIMEOUT_S, REPROBE_INTERVAL_S, ping_postgres, ping_redis
from memory.redis_client import REDIS_ERRORS
from memory.schema import asetup

logger = logging.getLogger(__name__)

MemoryStatus = Literal["ok", "degraded:dead_letter", "degraded:redis", "degraded:postgres", "unavailable"]
PG_TIMEOUT_S = 1.0
"""Default longest wait for Postgres on the reply path (pool checkout and query), seconds."""
BREAKER_OPEN_S = 1.0
"""Default time a server is left alone after a failure before it is tried again, seconds."""

T = TypeVar("T")


class ServerDown(Exception):
    """A server was skipped (its breaker is open) or failed; the caller degrades."""


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


class BackgroundTasks:
    """The memory's background tasks (probes, drains, embeddings), referenced until done; `cancel_all` ends them."""

    def __init__(self) -> None:
        """Start with no task."""
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `coro` as a task of the running loop and return the task."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def stale_connection_error(exc: BaseException | None) -> bool:
    """Whether `exc` may come from a pooled connection that died with a Postgres restart (worth one retry)."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout)


class ServerHealth:
    """The two breakers, their probes, and the guarded calls of the reply path.

    Args:
        redis: the memory's Redis client, or None (Redis is then always down).
        pool: the memory's Postgres pool, or None (Postgres is then always down).
        tasks: where background probes run.
        pg_timeout_s: longest wait for Postgres on the reply path, seconds.
        breaker_open_s: how long a failed server is left alone by background probes, seconds.
        probe_timeout_s: longest wait of `refresh`'s re-probe of a server whose breaker is open, seconds.
        ensure_schema: apply the migrations (`memory.schema.asetup`) on the first successful Postgres probe.
        on_redis_up: awaited after each successful Redis probe (the memory replays pending invalidations).
    """

    def __init__(
        self,
        redis: Redis | None,
        pool: DictPool | None,
        *,
        tasks: BackgroundTasks,
        pg_timeout_s: float = PG_TIMEOUT_S,
        breaker_open_s: float = BREAKER_OPEN_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        ensure_schema: bool = False,
        on_redis_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Start with both breakers closed for the servers given, open for a missing one; no I/O."""
        self.redis = redis
        self.pool = pool
        self.tasks = tasks
        self.pg_timeout_s = pg_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self.redis_breaker = CircuitBreaker("Redis", open_s=breaker_open_s)
        self.pg_breaker = CircuitBreaker("Postgres", open_s=breaker_open_s)
        if redis is None:
            self.redis_breaker.healthy = False
        if pool is None:
            self.pg_breaker.healthy = False
        self.ensure_schema = ensure_schema
        self.on_redis_up = on_redis_up
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._refreshes: dict[str, asyncio.Task[None]] = {}
        self._refreshed_at: dict[str, float] = {}

    async def warn_unless_appendonly(self) -> None:
        """Log a warning when Redis runs without AOF: the outbox would not survive a Redis restart."""
        if self.redis is None or not self.redis_breaker.healthy:
            return
        try:
            config = await self.redis.config_get("appendonly")
        except RedisError:  # CONFIG may be disabled (managed Redis)
            return
        if config.get("appendonly") != "yes":
            logger.warning("Redis runs without appendonly: queued archive writes are lost if Redis restarts")

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

    async def check(self) -> MemoryStatus:
        """Probe both servers now (PING, `SELECT 1`; at most `pg_timeout_s`) and return the status."""
        await asyncio.gather(self.probe_redis(), self.probe_pg())
        return self.status()

    async def probe_redis(self) -> None:
        """PING Redis and record the outcome; on success run `on_redis_up`."""
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except REDIS_ERRORS as exc:
            self.redis_breaker.failure(exc)
            return
        self.redis_breaker.success()
        if self.on_redis_up is not None:
            await self.on_redis_up()

    async def probe_pg(self) -> None:
        """Check the pool, `SELECT 1` through it and record the outcome; apply the migrations once if asked."""
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
        if self.ensure_schema:
            try:
                async with self.pool.connection(timeout=self.pg_timeout_s) as conn:
                    await asetup(conn)
                self.ensure_schema = False
            except psycopg.Error:
                logger.exception("applying the athlete store's migrations failed (will retry on the next probe)")

    async def refresh(self) -> MemoryStatus:
        """Re-probe now, ignoring the breakers' cool-down, every server last seen down; return the status.

        Each such server gets a cheap ping (`memory.probes`, at most `probe_timeout_s`); one that answers then
        goes through its full probe (Postgres: `pool.check()` and `SELECT 1` through the pool, migrations;
        Redis: `on_redis_up`). Servers believed healthy cost nothing. Concurrent callers share one re-probe per
        server, and a server re-probed less than `REPROBE_INTERVAL_S` (0.1 s) ago is not pinged again (a busy
        server makes at most 10 connection attempts a second to a dead one). Never raises for an outage.
        """
        checks = []
        if self.redis is not None and not self.redis_breaker.healthy:
            checks.append(self._shared_refresh("redis", self._refresh_redis))
        if self.pool is not None and not self.pg_breaker.healthy:
            checks.append(self._shared_refresh("pg", self._refresh_pg))
        if checks:
            await asyncio.gather(*checks)
        return self.status()

    async def _shared_refresh(self, name: str, refresh: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = self._refreshes.get(name)
        if task is None or task.done():
            now = time.monotonic()
            if now - self._refreshed_at.get(name, -REPROBE_INTERVAL_S) < REPROBE_INTERVAL_S:
                return
            self._refreshed_at[name] = now
            task = self._refreshes[name] = self.tasks.spawn(refresh())
        await asyncio.shield(task)

    async def _refresh_redis(self) -> None:
        assert self.redis is not None
        error = await ping_redis(self.redis, timeout_s=self.probe_timeout_s)
        if error is not None:
            self.redis_breaker.failure(error)
            return
        await self.probe_redis()

    async def _refresh_pg(self) -> None:
        assert self.pool is not None
        error = await ping_postgres(self.pool, timeout_s=self.probe_timeout_s)
        if error is not None:
            self.pg_breaker.failure(error)
            return
        await self.probe_pg()

    def schedule_probes(self) -> None:
        """Start a background probe of each unhealthy server whose breaker allows a trial."""
        for name, present, breaker, probe in (
            ("redis", self.redis is not None, self.redis_breaker, self.probe_redis),
            ("pg", self.pool is not None, self.pg_breaker, self.probe_pg),
        ):
            running = self._probes.get(name)
            if not present or breaker.healthy or (running is not None and not running.done()):
                continue
            if breaker.probe_due():
                self._probes[name] = self.tasks.spawn(probe())

    async def redis_call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis operation on the reply path.

        Raises:
            ServerDown: Redis is absent, its breaker is open, or the call failed (recorded).
        """
        if self.redis is None or not self.redis_breaker.healthy:
            raise ServerDown("redis")
        try:
            result = await fn()
        except REDIS_ERRORS as exc:
            self.redis_breaker.failure(exc)
            raise ServerDown("redis") from exc
        self.redis_breaker.success()
        return result

    async def pg_call(self, fn: Callable[[], Awaitable[T]], *, explicit: bool = False) -> T:
        """Run a Postgres operation; a stale pooled connection (Postgres restarted) gets one retry.

        Reply-path calls (default) are skipped while the breaker says down and cut at `pg_timeout_s`. `explicit`
        calls (a fact write, an import: the caller waits for the outcome) are tried even then, without the cut
        (the pool's checkout timeout still applies).

        Raises:
            ServerDown: Postgres is absent, its breaker is open (reply path), or the call failed (recorded).
        """
        pool = self.pool
        if pool is None or not (self.pg_breaker.healthy or explicit):
            raise ServerDown("postgres")
        try:
            async with asyncio.timeout(None if explicit else self.pg_timeout_s):
                try:
                    result = await fn()
                except psycopg.OperationalError as exc:
                    if not stale_connection_error(exc):
                        raise
                    # Pooled connections died with a Postgres restart: drop them all, then retry once (every
                    # operation of the memory layer is idempotent or transactional).
                    await pool.check()
                    result = await fn()
        except PG_DOWN_ERRORS as exc:
            self.pg_breaker.failure(exc)
            raise ServerDown("postgres") from exc
        self.pg_breaker.success()
        return result
