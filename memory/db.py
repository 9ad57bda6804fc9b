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
