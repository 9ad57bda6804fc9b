"""Postgres connection settings (those of langgraph-checkpoint-postgres), the pool type, and a reachability probe.

The one pool of a process is opened by `records.stores.open_stores` (through the conversation memory).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from memory.errors import StoreUnavailableError

# The connection settings langgraph-checkpoint-postgres asks of a pool (its README, "Usage" with a pool).
CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
CONNECT_TIMEOUT_S = 5
MEMORY_PG_TIMEOUT_S = 1.0
"""Default checkout timeout of `open_memory_pool`, seconds (the reply path's longest wait for Postgres)."""
PG_RECONNECT_TIMEOUT_S = 1.0
"""psycopg_pool's `reconnect_timeout` for `open_memory_pool`: its default (300 s) backs off exponentially while
Postgres is down, so the pool could take a minute to notice it is back; 1 s keeps recovery within about a second."""


def describe_url(url: str) -> str:
    """Return `host:port/db` of a libpq URL, without the password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable DATABASE_URL>"
    return f"{info.get('host', 'localhost')}:{info.get('port', '5432')}/{info.get('dbname', '')}"


DictPool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]
"""A pool whose connections return rows as dicts."""


async def aprobe(url: str) -> None:
    """Connect once and disconnect.

    Raises:
        StoreUnavailableError: with the host, port and the driver's reason, when the connection fails.
    """
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "failed" in ln), lines[0] if lines else type(exc).__name__)
        raise StoreUnavailableError(
            f"Postgres at {describe_url(url)} is not reachable ({reason}); run `make services` or set DATABASE_URL"
        ) from exc
    await conn.close()


POOL_MIN_SIZE = 2
"""Connections a pool keeps open even when idle: two, so that a lone search of a large archive runs its lexical and
vector sides at once (`memory.recall_large.search_large` takes a second connection only when one is free)."""


async def open_memory_pool(
    url: str,
    *,
    max_size: int = 10,
    timeout_s: float = MEMORY_PG_TIMEOUT_S,
    reconnect_timeout_s: float = PG_RECONNECT_TIMEOUT_S,
) -> DictPool:
    """Open a pool for the conversation memory without waiting for Postgres (it may be down; the pool keeps trying).

    The connection settings langgraph-checkpoint-postgres asks of a pool (autocommit, dict rows), plus a checkout
    `timeout` of `timeout_s` and a short `reconnect_timeout` (see `PG_RECONNECT_TIMEOUT_S`). No `check` on
    checkout: psycopg_pool sleeps about 1 s after the second failed check, so after a Postgres restart the first
    caller would wait a second;
    `memory.breakers.ServerHealth` instead runs `pool.check()` once on a connection error and retries.

    Returns:
        An open `AsyncConnectionPool` (connections are made in the background).
    """
    pool: DictPool = AsyncConnectionPool(
        url,
        connection_class=psycopg.AsyncConnection[DictRow],
        min_size=POOL_MIN_SIZE,
        max_size=max_size,
        timeout=timeout_s,
        reconnect_timeout=reconnect_timeout_s,
        kwargs={**CONNECTION_KWARGS, "connect_timeout": 2},
        open=False,
    )
    await pool.open(wait=False)
    return pool
