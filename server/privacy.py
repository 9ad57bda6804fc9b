"""The API server's privacy routes: `DELETE /athletes/me` and `GET /athletes/me/export` (mounted by `server.app`).

Both act on the authenticated athlete only (`request.user.identity`, from the bearer token through
`server.auth`): there is no athlete in the path or the body, so no token can reach another athlete's data.

- `DELETE /athletes/me` first deletes the athlete's threads through the server's own API with the caller's token
  (threads whose `metadata.owner` is the athlete: this also reaches threads the development server keeps in its
  own files and those GraphHarbor keeps in its tables, with their runs), then erases everything else
  (`records.erase.erase_athlete`), and answers 200 with the report
  `{athlete_id, erased: {place: count}, total, not_erased: [...]}` (`total` 0 when the coach held nothing).
- `GET /athletes/me/export` answers the export zip (`records.export`), streamed from a temporary file, as
  `coach-export-<athlete>.zip`.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import zipfile
from collections.abc import AsyncIterator, Mapping
from typing import IO

from langgraph_sdk import get_client
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from records.erase import erase_athlete
from records.export import export_files
from records.stores import get_stores
from server.auth import OWNER_KEY

logger = logging.getLogger(__name__)

_THREAD_PAGE = 100
_MAX_THREAD_PAGES = 1000
_CHUNK_BYTES = 256 * 1024


def _own_api(request: Request) -> tuple[str, dict[str, str]]:
    """This server's own address (the socket the request came in on, not its Host header) and the caller's token."""
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in str(host) else host
    return f"{request.url.scheme}://{host}:{port}", {"Authorization": request.headers.get("authorization", "")}


async def delete_server_threads(request: Request, athlete_id: str) -> int:
    """Delete every thread of the server whose `metadata.owner` is the athlete; return how many.

    Through the server's own API, with the caller's token (so `server.auth` filters by owner as for any
    request): the same calls on `langgraph dev`, which keeps threads in its own files, and on GraphHarbor, which
    keeps them (and their runs' inputs) in its Postgres tables and has no in-process client.
    """
    url, headers = _own_api(request)
    client = get_client(url=url, headers=headers)
    deleted = 0
    for _ in range(_MAX_THREAD_PAGES):
        threads = await client.threads.search(metadata={OWNER_KEY: athlete_id}, limit=_THREAD_PAGE)
        if not threads:
            break
        for thread in threads:
            await client.threads.delete(thread["thread_id"])
            deleted += 1
    return deleted


async def delete_me(request: Request) -> JSONResponse:
    """Erase the authenticated athlete everywhere; 200 with the report (see the module docstring)."""
    athlete_id = str(request.user.identity)
    stores = await get_stores()
    try:
        threads = await delete_server_threads(request, athlete_id)
        thread_note = None
    except Exception as exc:  # the erase of everything else must not depend on the server's thread API
        logger.error("could not delete the server threads of %s: %s", athlete_id, exc)
        threads, thread_note = 0, f"server threads: not deleted ({type(exc).__name__}); retry DELETE /athletes/me"
    report = await erase_athlete(stores, athlete_id)
    report.erased["server:threads"] = threads
    report.not_erased = [n for n in report.not_erased if not n.startswith("API server threads kept")]
    if thread_note:
        report.not_erased.insert(0, thread_note)
    logger.info("athlete %s erased: %s items", athlete_id, report.total)
    return JSONResponse(report.to_dict())


def _zip_to_temp(files: Mapping[str, bytes]) -> IO[bytes]:
    f = tempfile.TemporaryFile()  # no name on disk; gone when closed
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    f.seek(0)
    return f


async def _chunks(f: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(f.read, _CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(f.close)


async def export_me(request: Request) -> StreamingResponse:
    """Stream the authenticated athlete's export zip (`application/zip`, as an attachment)."""
    athlete_id = str(request.user.identity)
    files = await export_files(await get_stores(), athlete_id)
    f = await asyncio.to_thread(_zip_to_temp, files)
    return StreamingResponse(
        _chunks(f),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="coach-export-{athlete_id}.zip"'},
    )
