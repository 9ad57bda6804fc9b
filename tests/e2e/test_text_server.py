"""Text Postgres cannot store, sent to the `langgraph dev` server (issue 9, item 4).

A NUL in a chat message was answered `ok` while the user's half of the turn went to the dead-letter stream;
now the run fails with `invalid_text` before anything is saved, and the thread goes on.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from config.settings import get_settings
from memory.redis_client import open_redis
from tests.e2e.conftest import CoachServer

pytestmark = pytest.mark.integration


async def _state_of_memory(athlete_id: str, thread_id: str, outbox_stream: str) -> tuple[Any, ...]:
    redis = open_redis(get_settings().redis_url)
    try:
        window = await redis.lrange(f"session:{{{athlete_id}}}:{thread_id}", 0, -1)  # type: ignore[misc]
        dead = await redis.xrange(f"{outbox_stream}:dead", "-", "+")
        return window, [i for i, f in dead if athlete_id in f.get("m", "")]
    finally:
        await redis.aclose()


@pytest.mark.parametrize("bad", ["half \x00 a turn", "lone \ud800 surrogate"])
async def test_unstorable_message_fails_the_run_with_invalid_text_and_saves_nothing(
    coach_server: CoachServer, bad: str
) -> None:
    a = get_client(url=coach_server.url, headers=coach_server.a.headers)
    thread = await a.threads.create()
    tid = thread["thread_id"]
    first = await a.runs.wait(tid, "chat", input={"message": "hello coach"})
    assert first["memory_status"] == "ok"
    before = await _state_of_memory(coach_server.a.athlete_id, tid, coach_server.outbox_stream)

    # Sent as a JSON client would: "\u0000" and "\ud800" escapes (the SDK's encoder refuses a lone surrogate).
    body = json.dumps({"assistant_id": "chat", "input": {"message": bad}}).encode("ascii")
    async with httpx.AsyncClient(base_url=coach_server.url, timeout=60) as http:
        response = await http.post(
            f"/threads/{tid}/runs/wait",
            content=body,
            headers={**coach_server.a.headers, "Content-Type": "application/json"},
        )
    out = response.json()
    assert "reply" not in out, out
    if "\x00" in bad:  # JSON carries it: the chat graph's first node refuses it
        assert out["__error__"]["error"] == "InvalidTextError" and "cannot be stored" in out["__error__"]["message"]
    else:  # the server's JSON decoder already refuses a lone surrogate
        assert response.status_code == 422, out
    assert await _state_of_memory(coach_server.a.athlete_id, tid, coach_server.outbox_stream) == before

    after = await a.runs.wait(tid, "chat", input={"message": "still there?"})
    assert after["memory_status"] == "ok" and after["reply"]
