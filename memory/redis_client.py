"""The Redis client of the memory layer: short timeouts, no retries, so a dead server costs milliseconds.

redis-py's default retry policy (10 retries with exponential backoff up to 1 s, `redis._defaults`) would turn a
dead server into seconds of waiting per call; the memory layer has its own circuit breaker
(`memory.conversation`), so the client fails fast instead. Retries are also unsafe for the window's MULTI/EXEC
append: a retry after a lost EXEC reply would push the turn twice.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memory.errors import StoreUnavailableError

REDIS_TIMEOUT_S = 0.5
"""Default connect and socket timeout of the memory layer's Redis calls, seconds."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError (server still loading its AOF)
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)
"""Exceptions that mean "Redis cannot be reached right now" (as opposed to a bug in a command)."""


try:  # redis-py >= 7: its "auto" maintenance notifications skip the dead-connection check after a restart
    from redis.maint_notifications import MaintNotificationsConfig

    _NO_MAINT_NOTIFICATIONS: dict[str, Any] = {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}
except ImportError:  # older redis-py has no such feature
    _NO_MAINT_NOTIFICATIONS = {}


def open_redis(url: str, *, timeout_s: float = REDIS_TIMEOUT_S, max_connections: int = 50) -> Redis:
    """Create an asyncio Redis client; no I/O happens until the first command (see `probe_redis`).

    Args:
        url: a `redis://host:port/db` URL.
        timeout_s: connect and socket timeout, seconds (default 0.5 s).
        max_connections: size of the client's connection pool; when all are busy a call waits up to
            `timeout_s` for one (a `BlockingConnectionPool`), then raises `redis.exceptions.ConnectionError`.

    Returns:
        A `redis.asyncio.Redis` with `decode_responses=True` (str in, str out) and no retries; `aclose()` closes
        its pool too.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=max_connections,
        timeout=timeout_s,
        health_check_interval=0,
        **_NO_MAINT_NOTIFICATIONS,
    )
    return Redis.from_pool(pool)


async def probe_redis(client: Redis) -> None:
    """Send one PING.

    Raises:
        StoreUnavailableError: the server did not answer within the client's timeouts.
    """
    try:
        await client.ping()
    except REDIS_ERRORS as exc:
        kwargs = client.connection_pool.connection_kwargs
        where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        raise StoreUnavailableError(f"Redis at {where} is not reachable ({exc}); run `make services`") from exc
