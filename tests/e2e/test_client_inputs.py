"""Bad client input through the API: refused with 422 and its code before a run exists, or asked again.

An unknown time zone in a run's context (or in `config.configurable`), a `max_rides` that is not a number, and
the same in a cron's payload: 422 with `invalid_timezone` / `invalid_max_rides`, and no run is made. A resume
that cannot be read leaves the thread waiting on the same question, which a valid answer then settles.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.conftest import CoachServer

pytestmark = pytest.mark.integration


async def _refused(request: Any) -> tuple[int, str]:
    with pytest.raises(httpx.HTTPStatusError) as exc:
        await request
    return exc.value.response.status_code, exc.value.response.text


async def test_bad_time_zones_and_max_rides_are_refused_with_422(coach_server: CoachServer) -> None:
    a = get_client(url=coach_server.url, headers=coach_server.a.headers)
    thread = await a.threads.create()
    tid = thread["thread_id"]
    for tz in ("../../etc/passwd", "Mars/Olympus"):
        status, body = await _refused(
            a.runs.wait(tid, "chat", input={"message": "what is my load?"}, context={"timezone": tz})
        )
        assert status == 422 and "invalid_timezone" in body, body
    config = {"configurable": {"timezone": "Mars/Olympus"}}
    status, body = await _refused(a.runs.wait(tid, "chat", input={"message": "hello"}, config=config))
    assert status == 422 and "invalid_timezone" in body
    status, body = await _refused(a.runs.wait(None, "pending_debriefs", input={"max_rides": "abc"}))
    assert status == 422 and "invalid_max_rides" in body
    status, body = await _refused(
        a.crons.create("pending_debriefs", schedule="0 3 1 1 *", input={}, context={"timezone": "Mars/Olympus"})
    )
    assert status == 422 and "invalid_timezone" in body
    assert await a.runs.list(tid) == []  # nothing ran

    # A known zone runs, relative dates and the load tool included (nothing blocks the server's event loop).
    ok = await a.runs.wait(
        tid, "chat", input={"message": "what is my training load?"}, context={"timezone": "Asia/Tokyo"}
    )
    assert ok["reply"].startswith("[offline coach]") and ok["memory_status"] == "ok", coach_server.log_tail()
    done = await a.runs.wait(None, "pending_debriefs", input={"max_rides": 2})
    assert done["errors"] == [], coach_server.log_tail()


async def test_a_bad_resume_asks_again_and_a_valid_one_confirms(coach_server: CoachServer) -> None:
    a = get_client(url=coach_server.url, headers=coach_server.a.headers)
    tid = (await a.threads.create())["thread_id"]
    paused = await a.runs.wait(tid, "chat", input={"message": "my level is cat 3"})
    (first,) = paused["__interrupt__"]

    again = await a.runs.wait(tid, "chat", command={"resume": {"abc": True}})
    (question,) = again["__interrupt__"]
    assert question["value"]["proposals"] == first["value"]["proposals"]
    assert question["value"]["error"]["code"] == "invalid_answer"
    assert (await a.threads.get(tid))["status"] == "interrupted"
    assert [r["status"] for r in await a.runs.list(tid)] == ["success"] * 2  # no run failed

    done = await a.runs.wait(tid, "chat", command={"resume": "yes"})
    assert done["proposals"][0]["status"] == "accepted"
    assert (await a.threads.get(tid))["status"] == "idle"
