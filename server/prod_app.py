"""The coach's routes and lifespan for `make serve-prod` (GraphHarbor loads `app` through `server.prod_entry`).

The same routes as `server.app` (the ride upload `PUT /inbox/{file_name}`, forget and export; the closed routes are
`server.prod_asgi`'s). Its lifespan only opens the coach's connections: GraphHarbor's API processes run no graph,
so they neither warm the embedding model (an export's drain loads it on first use) nor run an outbox drainer
(the executors, `server.prod_worker`, run `server.app.lifespan` with both). One adapter: GraphHarbor authenticates
custom routes through `server.auth` but leaves the authenticated user in `scope["principal"]` (its `Principal`,
whose `subject` is the identity), where the LangGraph server sets `scope["user"]`. `PrincipalAsUser` sets
`scope["user"]` from it, so `request.user.identity` is the athlete on both servers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from records.stores import serve_stores
from server.app import app as coach_app

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrincipalUser:
    """The authenticated athlete as `request.user` (what `server.app.upload_ride` reads)."""

    identity: str

    @property
    def is_authenticated(self) -> bool:
        """Always true: only authenticated requests get one."""
        return True

    @property
    def display_name(self) -> str:
        """The athlete id."""
        return self.identity


class PrincipalAsUser:
    """ASGI middleware: `scope["user"]` from GraphHarbor's `scope["principal"].subject` when not set already."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the user of an authenticated HTTP request, then pass it on."""
        principal = scope.get("principal")
        subject = getattr(principal, "subject", None)
        if scope["type"] == "http" and "user" not in scope and isinstance(subject, str) and subject:
            scope["user"] = PrincipalUser(subject)
        await self.app(scope, receive, send)


@asynccontextmanager
async def api_lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the coach's connections for the routes (`records.stores.serve_stores`); close them at shutdown."""
    async with serve_stores():
        logger.info("coach stores opened for the API routes")
        yield
    logger.info("coach stores closed")


app = Starlette(
    routes=list(coach_app.routes),
    middleware=[Middleware(PrincipalAsUser)],  # server.prod_asgi wraps the whole server in ClosedRoutesMiddleware
    lifespan=api_lifespan,
)
