"""Fixtures on the real Postgres and Redis started by `make services` (URLs from the environment or `.env`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from config.settings import get_settings
from memory.athlete_store import AthleteStore
from memory.db import open_pool
from records.stores import Stores, close_coach_deps, open_coach_deps

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def store() -> AsyncIterator[AthleteStore]:
    """The athlete store on the real database, migrations applied."""
    pool = await open_pool(get_settings().database_url, max_size=4)
    s = AthleteStore(pool)
    await s.setup()
    try:
        yield s
    finally:
        await pool.close()


@pytest.fixture
def athlete_id() -> str:
    """A fresh athlete per test, so tests never see each other's rows and can run again."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def deps() -> AsyncIterator[Stores]:
    """Memory (Redis window, facts cache, archive, outbox) and stores on the real servers, as the app opens them."""
    d = await open_coach_deps()
    try:
        yield d
    finally:
        await close_coach_deps(d)
