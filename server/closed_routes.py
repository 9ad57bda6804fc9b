"""Close the servers' routes that bypass authentication (ASGI middleware of `server.app.app`, `server.prod_asgi`).

`langgraph dev` (the in-memory runtime that `make serve` runs) registers routes outside the
auth handlers of `server.auth`:

- `POST /internal/truncate` (wipes every thread, run and cron of every athlete) and
  `GET /internal/debug/thread/{thread_id}` (any thread's whole state);
- `GET /deploy`, `POST /deploy` (starts `langgraph deploy` on the server) and `GET /deploy/{id}/stream`;
- `GET /metrics` (server-wide counters: runs, workers, pools);
- `GET /info`, `/openapi.json`, `/docs` (the server's description; GraphHarbor's `/metrics` too).

Middleware added to the app named in `langgraph.json` (`"http": {"app": ...}`) wraps every request the server
receives, so this closes them before the server's router sees the request:

- `/internal` and `/deploy`, and everything under them: 404 for everybody (they do not exist for clients);
- `/metrics`: 401 without a valid token (checked by `server.auth.athlete_for_authorization`, the same check as
  every API route), 403 with an athlete's token: the numbers are the whole server's, not the athlete's, so no
  athlete reads them. An operator scrapes them from a process of their own, not through the public API;
- `/info`, `/openapi.json`, `/docs`, `/redoc`: 401 without a valid token (any athlete may read them), so that
  nothing but the health checks (`/ok`; GraphHarbor's `/ready`, `/live`) answers without a token.

On GraphHarbor (`make serve-prod`) the app named in the configuration is mounted beside the server's routes, not
around them: `server.prod_asgi` wraps GraphHarbor's whole app in this middleware instead.

Paths are compared after collapsing repeated slashes, dropping a trailing slash and lower-casing, so no other
spelling of a closed path reaches the router (which would at best redirect to it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from langgraph_sdk import Auth
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth import athlete_for_authorization

CLOSED_PREFIXES = ("/internal", "/deploy")
"""Path prefixes answered 404 (the prefix itself and everything under it)."""

ATHLETE_FORBIDDEN_PATHS = ("/metrics",)
"""Paths answered 401 without a valid token and 403 with one."""

TOKEN_PATHS = ("/info", "/openapi.json", "/docs", "/redoc")
"""The servers' own description routes, which they answer without a token: 401 here unless the token is valid."""

_SLASHES = re.compile(r"/{2,}")


def normalized_path(path: str) -> str:
    """`path` with repeated slashes collapsed, no trailing slash and lower case ("//Internal/x/" → "/internal/x")."""
    return _SLASHES.sub("/", "/" + path).rstrip("/").lower() or "/"


def is_closed(path: str) -> bool:
    """Whether `path` is one of the closed development routes (`CLOSED_PREFIXES`)."""
    norm = normalized_path(path)
    return any(norm == p or norm.startswith(p + "/") for p in CLOSED_PREFIXES)


class ClosedRoutesMiddleware:
    """ASGI middleware: 404 for `CLOSED_PREFIXES`, 401/403 for `ATHLETE_FORBIDDEN_PATHS`, the rest untouched."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a closed route here; pass every other request (and lifespan events) to the app."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path") or "/")
        if is_closed(path):
            await _refuse(scope, send, 404, {"detail": "Not Found"})
            return
        norm = normalized_path(path)
        if norm in ATHLETE_FORBIDDEN_PATHS or norm in TOKEN_PATHS:
            authorization = _header(scope, b"authorization")
            try:
                await athlete_for_authorization(authorization)
            except Auth.exceptions.HTTPException as exc:
                await _refuse(scope, send, exc.status_code, {"detail": exc.detail}, exc.headers)
                return
            if norm in ATHLETE_FORBIDDEN_PATHS:
                await _refuse(scope, send, 403, {"detail": "server metrics are not available to athletes"})
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _refuse(
    scope: Scope, send: Send, status: int, body: dict[str, str], headers: Mapping[str, str] | None = None
) -> None:
    """Answer with `status` and a JSON body (a websocket is closed instead: code 1008, policy violation)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    payload = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
