"""The coach's part of the API server (`langgraph.json` → `"http": {"app": "./coach/server.py:app"}`).

The LangGraph server mounts this Starlette app beside its own routes and runs its lifespan with its own:

- **warm-up**: what the first turn would otherwise load inside the event loop is loaded in a thread first;
- **connections**: Postgres and Redis (`tools.deps`: the conversation memory, the athlete store, the plans) are
  opened once per server process at start-up and closed at shutdown; the graphs share them;
- **ride upload**: `PUT /inbox/{file_name}` (the body is the ride file) stores the file in the authenticated
  athlete's inbox folder (`coach.inbox`); the scheduled debrief (`pending_debriefs`) then picks it up. The route
  goes through the same authentication as the rest of the API (`enable_custom_route_auth`);
- **closed routes**: the development server's unauthenticated routes (`/internal/*`, `/deploy*`: 404;
  `/metrics`: 401/403) are answered by `coach.closed_routes.ClosedRoutesMiddleware`, which wraps every request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coach.closed_routes import ClosedRoutesMiddleware
from coach.inbox import MAX_UPLOAD_BYTES, InvalidUploadError, file_ride_id, inbox_root, save_upload
from coach.settings import get_settings
from tools.deps import close_process_deps, get_coach_deps
from training.dates import find_day_in_text, known_timezones

logger = logging.getLogger(__name__)


def _warm_up() -> None:
    """Load, outside the event loop, what the first turns would otherwise load inside it.

    Date parsing (`training.dates`, used by the offline responder and the tools) reads the machine's time zone
    from the file system (`tzlocal`) the first time it meets a relative phrase; once read it is cached. In a
    node that first read would block the event loop (the dev server refuses it: `BlockingError`).
    """
    get_settings()
    known_timezones()  # the time-zone names every run's context is checked against (a folder walk)
    find_day_in_text("what did we discuss last time, and last Thursday?", tz="UTC")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the coach's connections before the first request; close them when the server stops."""
    await asyncio.to_thread(_warm_up)
    inbox = await asyncio.to_thread(inbox_root)
    deps = await get_coach_deps()  # tolerates Postgres or Redis being down: turns then report it
    logger.info("coach memory opened (status %s); ride inbox %s", deps.memory.status(), inbox)
    try:
        yield
    finally:
        await close_process_deps()
        logger.info("coach memory closed")


async def upload_ride(request: Request) -> JSONResponse:
    """Store a ride file in the athlete's inbox: 201 with its path and ride id, 400 for a bad name or size."""
    athlete_id = request.user.identity
    file_name = request.path_params["file_name"]
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_UPLOAD_BYTES:
            return JSONResponse({"detail": f"the file is larger than {MAX_UPLOAD_BYTES} bytes"}, status_code=413)
    try:
        path = await asyncio.to_thread(save_upload, athlete_id, file_name, bytes(body))
    except InvalidUploadError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    ride_id = await asyncio.to_thread(file_ride_id, path)
    return JSONResponse({"file": path.name, "ride_id": ride_id, "status": "pending"}, status_code=201)


app = Starlette(
    routes=[Route("/inbox/{file_name}", upload_ride, methods=["PUT"])],
    middleware=[Middleware(ClosedRoutesMiddleware)],  # the server makes it wrap every request, its own routes too
    lifespan=lifespan,
)
