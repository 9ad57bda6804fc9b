"""Every route of both servers, called as a stranger: nothing but the health checks answers without a token.

The sweep reads the server's own `/openapi.json` (with A's token: it is closed too) and calls every path with every
method, path parameters filled with the ids of a thread, run, cron and store item that athlete A made, twice: with
no token, and with athlete B's token. It also calls the coach's own routes, the development server's own routes by
name (`/internal/truncate`, `/internal/debug/thread/{id}`, `/deploy`, `/metrics`), and the routes the
configuration turns off (`/mcp`, `/a2a`, `/ui`). It runs against `langgraph dev` and GraphHarbor (`make
serve-prod`), each a server of its own (a wiping `/internal/truncate`, if it were open, would empty the session's
server), and ends by checking that A's thread, cron and store item are still there.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.e2e.conftest import SERVER_KINDS, CoachServer, running_server

pytestmark = pytest.mark.integration

PUBLIC = {"/ok", "/", "/ready", "/live"}
"""What may answer without a token: the health checks (`/ok`, `/`; GraphHarbor's `/ready` and `/live`)."""

COACH_ROUTES = [("PUT", "/inbox/{file_name}"), ("DELETE", "/athletes/me"), ("GET", "/athletes/me/export")]
"""The coach's own routes (`server.app`), which GraphHarbor's `/openapi.json` does not list."""

NO_OP_FOR_OTHERS = {
    ("graphharbor", "DELETE", "/runs/crons/{cron_id}"),
    ("graphharbor", "DELETE", "/threads/{thread_id}/runs/{run_id}"),
}
"""GraphHarbor answers 204 to deleting any cron or run id, existing or not, and deletes only the athlete's own (A's
cron and run are still there at the end): the answer tells B nothing."""

CLOSED = [
    ("POST", "/internal/truncate"),
    ("GET", "/internal/debug/thread/{thread_id}"),
    ("GET", "/deploy"),
    ("POST", "/deploy"),
    ("GET", "/deploy/{operation_id}/stream"),
]
"""The development server's routes that must not exist (404) for anybody, with or without a token."""

OFF_BY_CONFIG = [
    ("POST", "/mcp"),
    ("GET", "/mcp"),
    ("POST", "/a2a/chat"),
    ("GET", "/.well-known/agent-card.json"),
    ("POST", "/ui/chat"),
    ("GET", "/profile"),
]
"""Routes `langgraph.json` turns off (`disable_mcp`, `disable_a2a`, `disable_ui`) or the server leaves out."""

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Made:
    """What athlete A made before the sweep."""

    thread_id: str
    run_id: str
    cron_id: str
    namespace: tuple[str, ...]
    key: str

    def secrets(self, athlete_id: str) -> list[str]:
        """Strings that must not appear in what B is answered."""
        return [self.thread_id, self.run_id, self.cron_id, athlete_id, self.key]


@pytest.fixture(scope="module", params=SERVER_KINDS)
def sweep_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoachServer]:
    """A server for this module only, so nothing the sweep reaches can touch the session's server."""
    kind = "prod" if request.param == "graphharbor" else "dev"
    with running_server(tmp_path_factory.mktemp(f"sweep-{kind}"), kind=kind) as server:
        yield server


@pytest.fixture
async def made(sweep_server: CoachServer) -> AsyncIterator[Made]:
    """A's thread (with one finished run), a thread-less cron (never due during the test) and a store item."""
    a = get_client(url=sweep_server.url, headers=sweep_server.a.headers)
    thread = await a.threads.create()
    run = await a.runs.create(thread["thread_id"], "chat", input={"message": "hello coach"})
    await a.runs.join(thread["thread_id"], run["run_id"])
    cron = await a.crons.create("pending_debriefs", schedule="0 3 1 1 *")
    namespace = (sweep_server.a.athlete_id, "sweep")
    key = f"item-{uuid.uuid4().hex[:8]}"
    await a.store.put_item(namespace, key, {"note": "A's"})
    yield Made(thread["thread_id"], run["run_id"], cron["cron_id"], namespace, key)


def _fill(path: str, made: Made) -> str:
    """The path with its parameters replaced by A's ids (or a dummy id where A has nothing of that kind)."""
    values = {
        "thread_id": made.thread_id,
        "run_id": made.run_id,
        "cron_id": made.cron_id,
        "assistant_id": "chat",
        "graph_id": "chat",
        "checkpoint_id": str(uuid.uuid4()),
        "operation_id": str(uuid.uuid4()),
        "namespace": "x",
        "file_name": "sweep.fit",
    }
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


def _request_kwargs(method: str, path: str, made: Made) -> dict[str, Any]:
    """A plausible body or query: A's store item on the store routes, `{}` for other writes."""
    if path.startswith("/store/"):
        item = {"namespace": list(made.namespace), "key": made.key}
        if method in ("GET", "DELETE"):
            return {"params": {"namespace": ".".join(made.namespace), "key": made.key}, "json": item}
        return {"json": {**item, "value": {"note": "B's"}, "namespace_prefix": list(made.namespace)}}
    if path.startswith("/inbox/"):
        return {"content": b"not a ride"}
    if method in ("POST", "PUT", "PATCH"):
        return {"json": {}}
    return {}


_SSE_ERROR = re.compile(r"^event: error\r?\ndata: .*\b(40[134])\b")


async def _call(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, str]:
    """The status and the start of the body; a stream is read up to its first event, never waited for.

    An event stream sends its status (200) before it looks at the thread; one whose first event is an error
    with 401, 403 or 404 counts as that status (the server's streams refuse another athlete that way).
    """
    request = http.build_request(method, path, headers=headers, **kwargs)
    response = await http.send(request, stream=True)
    try:
        body = b""
        if response.status_code < 300:
            is_stream = "text/event-stream" in response.headers.get("content-type", "")
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES or (is_stream and b"\n\n" in body):
                    break
        text = body.decode("utf-8", "replace")
        refused = _SSE_ERROR.match(text)
        return (int(refused.group(1)) if refused else response.status_code), text
    finally:
        await response.aclose()


async def _openapi_routes(http: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, str]]:
    spec = (await http.get("/openapi.json", headers=headers)).json()
    methods = {"get", "post", "put", "patch", "delete"}
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops if m in methods]


async def test_no_route_answers_a_stranger(
    sweep_server: CoachServer, made: Made, request: pytest.FixtureRequest
) -> None:
    a, b = sweep_server.a, sweep_server.b
    kind = request.node.callspec.params["sweep_server"]
    async with httpx.AsyncClient(base_url=sweep_server.url, timeout=20) as http:
        assert (await http.get("/openapi.json")).status_code == 401
        routes = await _openapi_routes(http, a.headers)
        assert len(routes) > 40, routes  # the sweep really covers the API
        assert {p for _, p in routes} >= {"/threads/{thread_id}", "/runs/crons/{cron_id}", "/store/items"}

        refused_without_token = 0
        open_without_token: list[str] = []
        open_to_b: list[str] = []
        for method, path in dict.fromkeys([*routes, *COACH_ROUTES, *CLOSED, *OFF_BY_CONFIG]):
            url = _fill(path, made)
            kwargs = _request_kwargs(method, path, made)
            status, _ = await _call(http, method, url, {}, **kwargs)
            refused_without_token += status == 401
            if status < 300 and path not in PUBLIC:
                open_without_token.append(f"{method} {path} -> {status}")
            status, body = await _call(http, method, url, b.headers, **kwargs)
            names_a = any(p in path for p in ("{thread_id}", "{run_id}", "{cron_id}")) or path.startswith("/store/")
            leaked = [s for s in made.secrets(a.athlete_id) if s in body]
            no_op = (kind, method, path) in NO_OP_FOR_OTHERS and not leaked
            if (
                status < 300
                and not no_op
                and (names_a or leaked or path in {p for _, p in CLOSED} or path == "/metrics")
            ):
                open_to_b.append(f"{method} {path} -> {status} (shows {leaked})")
        assert refused_without_token >= len(routes) - len(PUBLIC) - len(CLOSED)  # by auth, not as unknown paths
        report = ["without a token:", *open_without_token, "to another athlete:", *open_to_b]
        assert not open_without_token and not open_to_b, "\n".join(report)

        # The development server's own routes are gone for everybody, A included, whatever the path's spelling.
        for method, path in CLOSED:
            url = _fill(path, made)
            for headers in ({}, b.headers, a.headers, {**a.headers, "Origin": "http://localhost"}):
                status, _ = await _call(http, method, url, headers)
                assert status == 404, (method, url, status)
        for spelling in ("/internal/truncate/", "//internal/truncate", "/internal//truncate", "/INTERNAL/truncate"):
            status, _ = await _call(http, "POST", spelling, a.headers)
            assert status in (404, 405), (spelling, status)
            assert status != 307, spelling  # no redirect towards the real route either

        # Metrics are server-wide: 401 without a valid token, 403 for any athlete.
        assert (await _call(http, "GET", "/metrics", {}))[0] == 401
        assert (await _call(http, "GET", "/metrics", {"Authorization": "Bearer not-a-token-here-at-all"}))[0] == 401
        assert (await _call(http, "GET", "/metrics?format=json", a.headers))[0] == 403
        assert (await _call(http, "GET", "/ok", {}))[0] == 200

    # Nothing of A's was wiped, changed or cancelled by the sweep.
    sdk = get_client(url=sweep_server.url, headers=a.headers)
    state = await sdk.threads.get_state(made.thread_id)
    assert state["values"]["reply"].startswith("[offline coach]")
    assert (await sdk.threads.get(made.thread_id))["metadata"]["owner"] == a.athlete_id
    assert [r["run_id"] for r in await sdk.runs.list(made.thread_id)] == [made.run_id]
    assert [c["cron_id"] for c in await sdk.crons.search()] == [made.cron_id]
    item = await sdk.store.get_item(made.namespace, made.key)
    assert item is not None and item["value"] == {"note": "A's"}
    assert not list((Path(sweep_server.inbox_dir) / a.athlete_id).rglob("sweep.fit"))  # B uploads to B's inbox
