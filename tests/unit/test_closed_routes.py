"""The development server's unauthenticated routes, closed by `server.closed_routes` (the e2e sweep checks it live)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from server import auth
from server.closed_routes import ClosedRoutesMiddleware, is_closed, normalized_path

TOKEN = "token-of-athlete-a-0001"


async def reached(request: Request) -> PlainTextResponse:
    return PlainTextResponse("reached")


@pytest.fixture
def client() -> Iterator[TestClient]:
    async def resolve(token: str) -> str | None:
        return "athlete-a" if token == TOKEN else None

    auth.set_token_resolver(resolve)
    routes = [Route(p, reached, methods=["GET", "POST"]) for p in ("/internal/truncate", "/deploy", "/metrics", "/ok")]
    app = Starlette(routes=routes, middleware=[Middleware(ClosedRoutesMiddleware)])
    with TestClient(app) as test_client:
        yield test_client
    auth.set_token_resolver(None)


@pytest.mark.parametrize(
    "path",
    ["/internal/truncate", "/internal", "/internal/debug/thread/x", "/deploy", "/deploy/", "/deploy/1/stream",
     "//internal/truncate", "/Internal/Truncate", "/internal//truncate/"],
)  # fmt: skip
def test_internal_and_deploy_are_closed_in_any_spelling(path: str) -> None:
    assert is_closed(path)


@pytest.mark.parametrize("path", ["/", "/ok", "/threads/internal", "/deployments", "/internals", "/inbox/deploy.fit"])
def test_other_paths_stay_open(path: str) -> None:
    assert not is_closed(path)


def test_normalized_path() -> None:
    assert normalized_path("//Internal//x/") == "/internal/x"
    assert normalized_path("/") == "/" and normalized_path("") == "/"


def test_the_middleware_answers_before_the_routes(client: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/internal/truncate", headers=bearer).status_code == 404
    assert client.get("/deploy").status_code == 404
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0000000"}).status_code == 401
    forbidden = client.get("/metrics", headers=bearer)
    assert forbidden.status_code == 403 and "athletes" in forbidden.json()["detail"]
    assert client.get("/ok").text == "reached"


def test_the_api_description_needs_a_valid_token() -> None:
    async def resolve(token: str) -> str | None:
        return "athlete-a" if token == TOKEN else None

    auth.set_token_resolver(resolve)
    paths = ("/info", "/openapi.json", "/docs", "/ok", "/ready", "/live")
    app = Starlette(routes=[Route(p, reached) for p in paths], middleware=[Middleware(ClosedRoutesMiddleware)])
    try:
        with TestClient(app) as http:
            for path in ("/info", "/openapi.json", "/docs", "/INFO/", "/openapi.json/"):
                refused = http.get(path)
                assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
                assert http.get(path, headers={"Authorization": "Bearer wrong-token-0000000"}).status_code == 401
            for path in ("/info", "/openapi.json", "/docs"):
                assert http.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).text == "reached", path
            for health in ("/ok", "/ready", "/live"):  # health checks answer without a token
                assert http.get(health).text == "reached", health
    finally:
        auth.set_token_resolver(None)
