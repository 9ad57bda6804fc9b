"""`GET /athletes/me/export` and `DELETE /athletes/me` on a running server of their own (an erase must not take
the shared test server's athletes away from the other e2e tests). The athlete is the token's, never another."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from records.stores import open_stores
from tests.conftest import RIDES_DIR
from tests.e2e.conftest import SERVER_KINDS, Athlete, CoachServer, running_server
from tests.integration.test_forget_export import rows_per_table

pytestmark = pytest.mark.integration

INDOOR = "fitparse_indoor-trainer-2011-11-02.fit"


@pytest.fixture(scope="module", params=["dev", "prod"], ids=SERVER_KINDS)
def privacy_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[CoachServer]:
    """A server of its own, `langgraph dev` and GraphHarbor (whose API processes open the stores themselves)."""
    with running_server(tmp_path_factory.mktemp("privacy-server"), kind=request.param) as server:
        yield server


async def chat_turn(server: CoachServer, athlete: Athlete, text: str) -> str:
    """One chat turn on a new thread of the athlete; returns the thread id (drained to the archive)."""
    sdk = get_client(url=server.url, headers=athlete.headers)
    thread = await sdk.threads.create()
    await sdk.runs.wait(thread["thread_id"], "chat", input={"message": text})
    return str(thread["thread_id"])


async def archived(athlete_id: str) -> dict[str, int]:
    async with open_stores(require_postgres=True) as stores:
        return await rows_per_table(stores, athlete_id)


async def wait_archived(athlete_id: str, messages: int) -> dict[str, int]:
    """The athlete's rows once the server's drainer has archived `messages` messages (up to 20 s)."""
    for _ in range(80):
        rows = await archived(athlete_id)
        if rows["messages"] >= messages:
            return rows
        await asyncio.sleep(0.25)
    raise AssertionError(f"{athlete_id}: {messages} messages not archived: {rows}")


async def test_export_and_forget_act_on_the_tokens_athlete_only(privacy_server: CoachServer) -> None:
    server, a, b = privacy_server, privacy_server.a, privacy_server.b
    a_thread = await chat_turn(server, a, "hello coach, this is a")
    b_thread = await chat_turn(server, b, "hello from b")
    ride = (RIDES_DIR / INDOOR).read_bytes()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        assert (await http.put("/inbox/indoor.fit", content=ride, headers=a.headers)).status_code == 201
        await wait_archived(a.athlete_id, 2)
        b_rows = await wait_archived(b.athlete_id, 2)

        assert (await http.get("/athletes/me/export")).status_code == 401
        assert (await http.delete("/athletes/me")).status_code == 401
        export = await http.get("/athletes/me/export", headers=a.headers)
        assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
            meta = json.loads(zf.read("athlete.json"))
            messages = [json.loads(line) for line in zf.read("messages.jsonl").splitlines()]
            assert zf.read("ride_files/indoor.fit") == ride
            assert "README.txt" in zf.namelist()
        assert meta["athlete_id"] == a.athlete_id
        assert [m["content"] for m in messages if m["role"] == "user"] == ["hello coach, this is a"]
        assert all(m["session_id"] == a_thread for m in messages)

        erased = await http.delete("/athletes/me", headers=a.headers)
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert report["athlete_id"] == a.athlete_id and report["erased"]["server:threads"] == 1
        assert (
            report["erased"]["postgres:messages"] == 2 and report["erased"]["files:inbox"] >= 1
        )  # the ride (and the upload lock file)

    assert all(n == 0 for n in (await archived(a.athlete_id)).values())
    assert not (server.inbox_dir / a.athlete_id).exists()
    a_sdk, b_sdk = get_client(url=server.url, headers=a.headers), get_client(url=server.url, headers=b.headers)
    assert await a_sdk.threads.search() == []
    # B, whose token never reached A's data and A's token never reached B's, keeps everything.
    assert await archived(b.athlete_id) == b_rows
    assert [t["thread_id"] for t in await b_sdk.threads.search()] == [b_thread]


def test_the_routes_have_no_athlete_parameter(privacy_server: CoachServer) -> None:
    """Another athlete's id in the path or the query is not a route: only `/athletes/me` exists."""
    a, b = privacy_server.a, privacy_server.b
    with httpx.Client(base_url=privacy_server.url) as http:
        assert http.delete(f"/athletes/{b.athlete_id}", headers=a.headers).status_code in (404, 405)
        answer = http.get("/athletes/me/export", params={"athlete": b.athlete_id}, headers=a.headers)
        assert answer.status_code == 200
        with zipfile.ZipFile(io.BytesIO(answer.content)) as zf:
            assert json.loads(zf.read("athlete.json"))["athlete_id"] == a.athlete_id
