"""Acknowledged turns survive a Postgres crash right after the outbox drained (issue 9, item 3).

The outbox deletes a message from Redis once Postgres acknowledged its archive write, so an acknowledged commit
that a crash loses is lost for good. With `synchronous_commit=off` (as `scripts/services.sh` used to start the
project's database) Postgres acknowledges before the WAL reaches the disk, and an immediate stop a moment after
the drain lost every turn. The test runs on a private cluster with durable commits, as `make services` starts it
now; on `PrivatePostgres(durable=False)` (the old flags) it fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from records.stores import Stores
from tests.chat_helpers import Chat
from tests.integration.chat_fault_fixtures import (  # noqa: F401
    archived,
    fault_deps,
    fault_settings,
    turns_by_id,
    wait_drained,
    wait_healthy,
)
from tests.integration.servers import PrivatePostgres, PrivateRedis, private_postgres_durable, private_redis  # noqa: F401

pytestmark = pytest.mark.integration

TURNS = 6


@pytest.fixture(scope="module")
def private_postgres(private_postgres_durable: PrivatePostgres) -> Iterator[PrivatePostgres]:  # noqa: F811
    """The fault fixtures' Postgres for this module: the durable one (crash-safe commits)."""
    assert private_postgres_durable.durable
    yield private_postgres_durable


async def test_acknowledged_turns_survive_an_immediate_stop_right_after_the_drain(
    fault_deps: Stores,  # noqa: F811
    private_postgres: PrivatePostgres,
    athlete_id: str,
) -> None:
    chat = Chat(fault_deps, athlete_id)  # offline responder
    acknowledged: list[tuple[str, str]] = []
    for i in range(TURNS):
        message = f"turn {i}: how was my week?"
        out = await chat.say(message)
        assert out["memory_status"] == "ok"
        acknowledged.append((message, out["reply"]))
    await wait_drained(fault_deps)  # the outbox deleted the messages: the archive alone holds them now
    await private_postgres.astop(mode="immediate")  # a crash: no checkpoint, no WAL flush at shutdown

    await private_postgres.astart()
    await wait_healthy(fault_deps)
    assert await fault_deps.memory.pending_writes() == 0
    turns = turns_by_id(await archived(fault_deps, athlete_id))
    found = {
        (t[0]["content"], t[-1]["content"]) for t in turns.values() if [r["role"] for r in t] == ["user", "assistant"]
    }
    lost = [message for message, reply in acknowledged if (message, reply) not in found]
    assert not lost, f"{len(lost)} of {TURNS} acknowledged turns are not in the archive after the crash: {lost}"
    assert len(turns) == TURNS
