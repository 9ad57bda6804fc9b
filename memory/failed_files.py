"""Inbox files that could not be read, remembered per athlete by content, so the inbox scan skips them.

A ride file's content does not change under its hash: a file that failed with a content error (``corrupt_file``,
``file_too_large``, ...) fails the same way on every read. The scheduled debrief (`records.inbox.scan_inbox`)
records such a failure here once and leaves the file alone afterwards; it reports it as skipped. Debriefing
the file by its path (`coach debrief FILE --athlete ID`) still reads it, and a file with other content (a fixed
export) has another hash, so it is read again.

Table `failed_inbox_files` (migration v25 of `memory.schema`): one row per `(athlete_id, ride_id)`.
"""

from __future__ import annotations

from typing import Any

from memory.athlete_store import validate_athlete_id
from memory.db import DictPool


async def record_failed_file(
    pool: DictPool, athlete_id: str, ride_id: str, file_name: str, code: str, message: str
) -> None:
    """Remember that the inbox file with this content failed (a later failure of the same content replaces it).

    Args:
        pool: the athlete store's pool.
        athlete_id: the athlete whose inbox holds the file.
        ride_id: the file's content id (first 32 hex characters of its SHA-256).
        file_name: the file's name in the inbox, for the report.
        code: the `training.ride_files.RideFileError` code.
        message: the error's one-line message.

    Raises:
        InvalidAthleteIdError: a malformed athlete id.
    """
    validate_athlete_id(athlete_id)
    async with pool.connection() as conn:
        await conn.execute(
            """INSERT INTO failed_inbox_files (athlete_id, ride_id, file_name, code, message)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (athlete_id, ride_id) DO UPDATE
               SET file_name = EXCLUDED.file_name, code = EXCLUDED.code, message = EXCLUDED.message,
                   failed_at = now()""",
            (athlete_id, ride_id, file_name, code, message),
        )


async def failed_files(pool: DictPool, athlete_id: str) -> dict[str, dict[str, Any]]:
    """The athlete's remembered failures.

    Returns:
        `{ride_id: {"file_name": str, "code": str, "message": str, "failed_at": datetime}}`.

    Raises:
        InvalidAthleteIdError: a malformed athlete id.
    """
    validate_athlete_id(athlete_id)
    async with pool.connection() as conn:
        cur = await conn.execute(
            """SELECT ride_id, file_name, code, message, failed_at FROM failed_inbox_files WHERE athlete_id = %s""",
            (athlete_id,),
        )
        rows = await cur.fetchall()
    return {row.pop("ride_id"): row for row in rows}
