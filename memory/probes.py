"""Cheap pings of the memory's servers, for re-probing a tier whose circuit breaker is open.

`ConversationMemory.refresh_health` calls these at the start of a turn (and the background drainer once per
round) for each server that was last seen down, instead of waiting for the breaker's cool-down: a server that is
back is then used, and reported, by the very turn that follows its return.

The Postgres ping opens one new connection outside the pool: a pool whose server was down waits its whole
checkout timeout (1 s) for a connection, while a refused port answers in about a millisecond. Only when the ping
succeeds does the caller go through the pool (`pool.check()`, `SELECT 1`).
"""

from __future__ import annotations

import asyncio
import math

import psycopg
from redis.asyncio import Redis

from memory.db import DictPool
from memory.outbox import PG_DOWN_ERRORS
from memory.redis_client import REDIS_ERRORS

PROBE_TIMEOUT_S = 0.25
"""Default longest wait of a re-probe on the reply path, seconds (a refused port answers in about 1 ms)."""
REPROBE_INTERVAL_S = 0.1
"""Shortest time between two re-probes of one server by `ConversationMemory.refresh_health`, seconds."""


async def ping_redis(redis: Redis, *, timeout_s: float = PROBE_TIMEOUT_S) -> BaseException | None:
    """Send one PING, cut at `timeout_s` seconds.

    Returns:
        None when Redis answered; else the error (one of `memory.redis_client.REDIS_ERRORS`). Never raises
        for an outage.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
    except REDIS_ERRORS as exc:
        return exc
    return None


async def ping_postgres(pool: DictPool, *, timeout_s: float = PROBE_TIMEOUT_S) -> BaseException | None:
    """Open one connection to the pool's server (outside the pool), run `SELECT 1`, close it; cut at `timeout_s`.

    Args:
        pool: the memory's pool; its `conninfo` and connection `kwargs` are used.
        timeout_s: longest wait, seconds.

    Returns:
        None when Postgres answered; else the error (one of `memory.outbox.PG_DOWN_ERRORS`). Never raises
        for an outage.

    Raises:
        TypeError: the pool was opened with a callable conninfo or kwargs (the memory layer's never are).
    """
    conninfo, pool_kwargs = pool.conninfo, pool.kwargs or {}
    if not isinstance(conninfo, str) or not isinstance(pool_kwargs, dict):
        raise TypeError("ping_postgres needs a pool opened with a static conninfo and kwargs")
    kwargs = {**pool_kwargs, "connect_timeout": max(1, math.ceil(timeout_s))}
    try:
        async with asyncio.timeout(timeout_s):
            conn = await psycopg.AsyncConnection.connect(conninfo, **kwargs)
            try:
                await conn.execute("SELECT 1")
            finally:
                await conn.close()
    except PG_DOWN_ERRORS as exc:
        return exc
    return None
