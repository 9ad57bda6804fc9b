"""Fixtures on the real Postgres and Redis started by `make services` (URLs from the environment or `.env`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from memory.athlete_store import AthleteStore
from records.stores import Stores, open_stores

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def store() -> AsyncIterator[AthleteStore]:
    """The athlete store on the real database, migrations applied."""
    async with open_stores(require_postgres=True) as stores:
        yield stores.athlete_store


@pytest.fixture
def athlete_id() -> str:
    """A fresh athlete per test, so tests never see each other's rows and can run again."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def deps() -> AsyncIterator[Stores]:
    """Memory (Redis window, facts cache, archive, outbox) and stores on the real servers, as the app opens them."""
    async with open_stores() as d:
        yield d
