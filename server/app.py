"""The coach's part of the API server (`langgraph.json` → `"http": {"app": "./server/app.py:app"}`).

The LangGraph server mounts this Starlette app beside its own routes and runs its lifespan with its own:

- **warm-up**: what the first turn would otherwise load inside the event loop is loaded in a thread first, the
  embedding model of recall included (`memory.embeddings`: loaded and run once, its ONNX export made if missing);
- **connections**: Postgres and Redis (`records.stores.serve_stores`: the conversation memory, the athlete store, the
  plans, the audits) are opened once per server process at start-up and closed at shutdown; the graphs share them
  (`records.stores.get_stores`);
- **ride upload**: `PUT /inbox/{file_name}` (the body is the ride file) stores the file in the authenticated
  athlete's inbox folder (`records.inbox`); the scheduled debrief (`pending_debriefs`) then picks it up. The route
  goes through the same authentication as the rest of the API (`enable_custom_route_auth`);
- **forget and export**: `DELETE /athletes/me` erases the authenticated athlete everywhere and
  `GET /athletes/me/export` streams their export zip (`server.privacy`); the athlete comes from the token only;
- **closed routes**: the development server's unauthenticated routes (`/internal/*`, `/deploy*`: 404;
  `/metrics`: 401/403) are answered by `server.closed_routes.ClosedRoutesMiddleware`, which wraps every request.
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

from config.settings import get_settings
from memory.embeddings import get_embedder
from records.inbox import inbox_root
from records.stores import serve_stores
from records.uploads import InboxUpload, InvalidUploadError
from server.closed_routes import ClosedRoutesMiddleware
from server.privacy import delete_me, export_me
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
    embedder = get_embedder(get_settings())
    if embedder is not None:  # a failure is logged: recall is then full-text until the model loads
        embedder.warm_up()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the coach's connections and start the outbox drainer; stop and close them when the server stops.

    The drainer (`ConversationMemory.start_background_drainer`) re-probes a server last seen down and moves the
    outbox and the local spool to Postgres once a second, so that the archive and `memory_status` catch up
    after an outage without waiting for a turn.
    """
    await asyncio.to_thread(_warm_up)
    inbox = await asyncio.to_thread(inbox_root)
    # Tolerates Postgres or Redis being down: turns then report it. The graphs find the bundle with `get_stores`.
    async with serve_stores() as stores:
        stores.memory.start_background_drainer()
        logger.info(
            "coach memory opened (status %s); outbox drainer started; ride inbox %s", stores.memory.status(), inbox
        )
        try:
            yield
        finally:
            await stores.memory.stop_background_drainer()
    logger.info("coach memory closed")


async def upload_ride(request: Request) -> JSONResponse:
    """Store a ride file (the body) in the athlete's inbox, streamed to disk (`records.uploads.InboxUpload`).

    Answers: 201 `{file, ride_id, size_bytes, status: "pending"}` when stored; 200 with `status: "duplicate"` and
    the file already holding the same bytes (nothing stored twice); 400 (a bad name, an empty body), 413 (larger
    than `Settings.inbox_max_file_bytes`) and 507 (the athlete's inbox would pass `Settings.inbox_quota_bytes`),
    each `{detail, code}` (`invalid_upload`, `file_too_large`, `inbox_quota_exceeded`). A declared
    `Content-Length` past a limit is refused before the body is read.
    """
    athlete_id = request.user.identity
    file_name = request.path_params["file_name"]
    try:
        upload = await asyncio.to_thread(InboxUpload, athlete_id, file_name)
    except InvalidUploadError as exc:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.http_status)
    try:
        declared = request.headers.get("content-length", "")
        if declared.isdigit():
            await asyncio.to_thread(upload.check_declared_size, int(declared))
        buffer = bytearray()
        async for chunk in request.stream():
            buffer.extend(chunk)
            if len(buffer) >= _UPLOAD_WRITE_BYTES:
                await asyncio.to_thread(upload.write, bytes(buffer))
                buffer.clear()
        await asyncio.to_thread(upload.write, bytes(buffer))
        stored = await asyncio.to_thread(upload.commit)
    except InvalidUploadError as exc:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.http_status)
    finally:
        await asyncio.to_thread(upload.discard)
    body = {"file": stored.path.name, "ride_id": stored.ride_id, "size_bytes": stored.size_bytes}
    if stored.duplicate:
        return JSONResponse({**body, "status": "duplicate"}, status_code=200)
    return JSONResponse({**body, "status": "pending"}, status_code=201)


_UPLOAD_WRITE_BYTES = 1024 * 1024
"""The upload route writes the body to disk in pieces of about this size (one thread hop each)."""


app = Starlette(
    routes=[
        Route("/inbox/{file_name}", upload_ride, methods=["PUT"]),
        Route("/athletes/me", delete_me, methods=["DELETE"]),
        Route("/athletes/me/export", export_me, methods=["GET"]),
    ],
    middleware=[Middleware(ClosedRoutesMiddleware)],  # the server makes it wrap every request, its own routes too
    lifespan=lifespan,
)
