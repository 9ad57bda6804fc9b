"""GraphHarbor's API processes (`server.prod_app`) open the coach's stores for the routes, and leave the outbox
drainer to the executors (`server.prod_worker` runs `server.app.lifespan`, which starts it)."""

from __future__ import annotations

import pytest

from records.stores import get_stores
from server.app import app as coach_app
from server.app import lifespan
from server.prod_app import api_lifespan, app

pytestmark = pytest.mark.integration


async def test_the_api_process_opens_the_stores_and_runs_no_drainer() -> None:
    async with api_lifespan(app):
        stores = await get_stores()
        assert await stores.memory.pending_writes() >= 0  # Redis answers through the opened stores
        assert stores.memory.drainer.loop_task is None
    async with lifespan(coach_app):  # the executors' lifespan: the drainer runs there
        assert (await get_stores()).memory.drainer.loop_task is not None
