"""The API server's checkpointer (`langgraph.json` → `"checkpointer": {"path": "./server/checkpointer.py:…"}`).

langgraph-api enters this async context manager once per server process (per thread, and the development server
runs its graphs on its one event loop: `BG_JOB_ISOLATED_LOOPS` stays off), at start-up before the app's lifespan,
and leaves it at shutdown; every run, state read and history of the served graphs then goes through the saver it
yields instead of the development server's own files (`.langgraph_api/`). The saver is the command line's
(`memory.checkpointer.CoachPostgresSaver`, bounded to `Settings.checkpoint_keep` checkpoints per thread) on the
process's shared Postgres pool (`records.stores`), so a thread's state is in Postgres whichever way it was run
and survives a restart of the server. Postgres may be down at start-up: the tables are then set up on the first
read (runs fail, with the server's error, until Postgres answers). The stores (and their pool) are opened here
and closed when the server leaves this context, after the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool

from config.settings import get_settings
from memory.checkpointer import CoachPostgresSaver
from records.stores import serve_stores

logger = logging.getLogger(__name__)


@asynccontextmanager
async def checkpointer() -> AsyncIterator[CoachPostgresSaver]:
    """Yield the coach's Postgres saver on the process's pool, its tables set up when Postgres answers."""
    async with serve_stores() as stores:  # the process's stores: opened here, shared by the app's lifespan
        keep = get_settings().checkpoint_keep
        saver = CoachPostgresSaver(conn=stores.athlete_store.pool, keep=keep)
        try:
            await saver.setup()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            logger.warning("checkpoint tables not set up yet (Postgres: %s); retried on the first read", exc)
        logger.info("threads checkpointed in Postgres (CoachPostgresSaver, %d checkpoints kept per thread)", keep)
        yield saver
