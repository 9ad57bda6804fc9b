"""The served graphs checkpoint into the project's Postgres (`server/checkpointer.py`), and survive a restart.

A chat run over the API leaves its thread's checkpoints in `checkpoints` (at most `Settings.checkpoint_keep` of
them); a server started again on the same folder answers `GET /threads/{id}/state` with the last state, read
from Postgres, and the thread goes on from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client

from config.settings import get_settings
from tests.e2e.conftest import CoachServer, fresh_athletes, running_server

pytestmark = pytest.mark.integration


def checkpoint_ids(thread_id: str) -> list[str]:
    """The thread's checkpoint ids in Postgres, newest first."""
    with psycopg.connect(get_settings().database_url) as conn:
        rows = conn.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s ORDER BY checkpoint_id DESC", (thread_id,)
        ).fetchall()
    return [str(r[0]) for r in rows]


async def chat_turn(server: CoachServer, thread_id: str, message: str) -> dict[str, Any]:
    """Run one chat turn on the thread as athlete A and return the thread's state after it."""
    client = get_client(url=server.url, headers=server.a.headers)
    run = await client.runs.create(thread_id, "chat", input={"message": message})
    await client.runs.join(thread_id, run["run_id"])
    state: dict[str, Any] = await client.threads.get_state(thread_id)  # type: ignore[assignment]
    return state


async def test_server_threads_are_checkpointed_in_postgres_and_survive_a_restart(tmp_path: Path) -> None:
    athletes = fresh_athletes()
    keep = get_settings().checkpoint_keep
    with running_server(tmp_path, athletes=athletes, persistence=True) as server:
        client = get_client(url=server.url, headers=server.a.headers)
        thread_id = (await client.threads.create())["thread_id"]
        await chat_turn(server, thread_id, "hello coach")
        before = await chat_turn(server, thread_id, "how should I ride tomorrow?")
        ids = checkpoint_ids(thread_id)
        assert 1 <= len(ids) <= keep, ids
        assert before["checkpoint"]["checkpoint_id"] == ids[0]
        assert "how should I ride tomorrow?" in str(before["values"])

    with running_server(tmp_path, athletes=athletes, persistence=True) as server:
        client = get_client(url=server.url, headers=server.a.headers)
        after: dict[str, Any] = await client.threads.get_state(thread_id)  # type: ignore[assignment]
        assert after["checkpoint"] == before["checkpoint"]
        assert after["values"] == before["values"]
        again = await chat_turn(server, thread_id, "and the day after?")
        ids = checkpoint_ids(thread_id)
        assert again["checkpoint"]["checkpoint_id"] == ids[0] and len(ids) <= keep
        assert "and the day after?" in str(again["values"])
        # Another athlete still cannot read it.
        stranger = get_client(url=server.url, headers=server.b.headers)
        with pytest.raises(Exception, match="not found"):
            await stranger.threads.get_state(thread_id)
