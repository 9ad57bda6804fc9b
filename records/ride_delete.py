"""Delete one ride of an athlete and what was derived from it: `coach delete-ride RIDE_ID --athlete ID`.

For a ride uploaded by mistake (another rider's file, a test recording). In one Postgres transaction, on the
athlete's rows only:

1. the ride's row and its debrief;
2. the dated values read from its file (source ``device``, evidence ``ride_id``) and the pending proposals whose
   evidence is this ride (a stale FTP it disproved, an FTP it suggested);
3. a recording of the same activity linked to it (`records.rides.link_same_activity`) becomes primary again (the
   richest of them when several), so the activity still counts once;
4. the kept all-time best curve is rebuilt (`records.best_curve.rebuild_best_curve`), the fitted CP/W′ of the
   windows that held the ride are refitted (`records.fitted_model.refresh_fitted_cp`) and the rides from its start
   on are re-scored with the values valid now (`records.athlete_values.recompute_scores`): the Auditor's load
   follows.

Then the ride's files are removed from the athlete's inbox (found by content, `records.inbox.file_ride_id`), so
that a later inbox scan does not debrief it again. Kept: facts the debrief changed (their history names the ride as
their source, `coach facts` shows them) and the conversations that mention the ride.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memory.athlete_store import validate_athlete_id
from memory.errors import MemoryError_
from records.athlete_values import recompute_scores
from records.best_curve import rebuild_best_curve
from records.fitted_model import refresh_fitted_cp
from records.inbox import file_ride_id, inbox_files
from records.rides import RIDE_COLUMNS, link_same_activity
from records.stores import Stores
from training.records import RideRecord


class RideNotFoundError(MemoryError_, LookupError):
    """The athlete has no ride of that id (another athlete's ride is not found either)."""

    code = "ride_not_found"


@dataclass(frozen=True)
class RideDeletion:
    """What `delete_ride` removed and changed.

    Attributes:
        ride_id: the deleted ride.
        file_name: its file's name.
        start_time: its start (timezone-aware).
        promoted_ride_id: the linked recording of the same activity that became primary, if any.
        device_values: dated values read from its file, removed.
        proposals: pending proposals with this ride as evidence, removed.
        rescored: the rides whose figures changed (`recompute_scores`' rows).
        inbox_files: files of the ride removed from the athlete's inbox.
    """

    ride_id: str
    file_name: str
    start_time: datetime
    promoted_ride_id: str | None
    device_values: int
    proposals: int
    rescored: list[dict[str, Any]] = field(default_factory=list)
    inbox_files: int = 0


def _remove_inbox_files(athlete_id: str, ride_id: str, inbox_dir: Path | None) -> int:
    removed = 0
    for path in inbox_files(athlete_id, inbox_dir):
        if file_ride_id(path) == ride_id:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


async def delete_ride(stores: Stores, athlete_id: str, ride_id: str, *, inbox_dir: Path | None = None) -> RideDeletion:
    """Delete the athlete's ride ``ride_id`` and what was derived from it (see the module docstring).

    Args:
        stores: the open stores.
        athlete_id: the owner.
        ride_id: the ride's id (`coach debrief --json` shows it; also the SHA-256 prefix of its file).
        inbox_dir: the ride inbox root (default `Settings.inbox_dir`).

    Returns:
        The `RideDeletion`.

    Raises:
        InvalidAthleteIdError: an invalid athlete id.
        RideNotFoundError: the athlete has no such ride (nothing is written).
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached (nothing is written).
    """
    validate_athlete_id(athlete_id)
    async with stores.athlete_store.facts_transaction(athlete_id) as tx:
        conn = tx.conn
        cur = await conn.execute(
            "SELECT file_name, start_time FROM rides WHERE athlete_id = %s AND ride_id = %s FOR UPDATE",
            (athlete_id, ride_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise RideNotFoundError(f"athlete {athlete_id} has no ride {ride_id}")
        await conn.execute("DELETE FROM debriefs WHERE athlete_id = %s AND ride_id = %s", (athlete_id, ride_id))
        cur = await conn.execute(
            """DELETE FROM athlete_values WHERE athlete_id = %s AND source = 'device' AND evidence ->> 'ride_id' = %s
               RETURNING key""",
            (athlete_id, ride_id),
        )
        device_values = len(await cur.fetchall())
        cur = await conn.execute(
            """DELETE FROM fact_proposals WHERE athlete_id = %s AND status = 'pending'
                 AND evidence ->> 'ride_id' = %s RETURNING id""",
            (athlete_id, ride_id),
        )
        proposals = len(await cur.fetchall())
        cur = await conn.execute(
            f"""UPDATE rides SET primary_ride_id = NULL WHERE athlete_id = %s AND primary_ride_id = %s
                RETURNING {RIDE_COLUMNS}""",
            (athlete_id, ride_id),
        )
        copies = [RideRecord(**r) for r in await cur.fetchall()]
        await conn.execute("DELETE FROM rides WHERE athlete_id = %s AND ride_id = %s", (athlete_id, ride_id))
        promoted = None
        if copies:
            promoted = await link_same_activity(conn, athlete_id, copies[0]) or copies[0].ride_id
        await rebuild_best_curve(conn, athlete_id)
        await refresh_fitted_cp(conn, athlete_id, row["start_time"])
        rescored = await recompute_scores(conn, athlete_id, row["start_time"])
    removed = await asyncio.to_thread(_remove_inbox_files, athlete_id, ride_id, inbox_dir)
    return RideDeletion(
        ride_id, row["file_name"], row["start_time"], promoted, device_values, proposals, rescored, removed
    )
