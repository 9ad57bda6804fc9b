"""The Postgres athlete store: durable facts with history, rides and debriefs.

Every method takes the athlete id and every query filters by it. Writes of one ride (the ride row, the facts it
changes and its debrief) happen in one transaction, so a failure leaves nothing half written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from psycopg.types.json import Jsonb

from memory.db import DictPool
from memory.errors import InvalidAthleteIdError, InvalidFactError, ProposalNotFoundError
from memory.fact_writes import FactsInvalidator, FactsTransaction, facts_transaction
from memory.schema import asetup
from training.records import FactChange, FactSource, RideRecord

__all__ = ["AthleteStore", "FactChange", "FactSource", "RideRecord", "validate_athlete_id"]

_ATHLETE_ID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def validate_athlete_id(athlete_id: str) -> str:
    """Return `athlete_id` when it is 1-128 characters of `[A-Za-z0-9_.@-]`.

    Raises:
        InvalidAthleteIdError: otherwise.
    """
    if not isinstance(athlete_id, str) or not _ATHLETE_ID_RE.fullmatch(athlete_id):
        raise InvalidAthleteIdError(
            f"invalid athlete id {athlete_id!r}: use 1-128 characters of letters, digits, '_', '.', '@', '-'"
        )
    return athlete_id


class AthleteStore:
    """Async access to the athlete store through a psycopg pool (autocommit, dict rows).

    Args:
        pool: an open pool; see `memory.db.open_pool`.
        on_facts_changed: the facts cache's invalidation, run after every commit that changed the athlete's
            facts (`memory.fact_writes`); `ConversationMemory` wires its own. None: a store with no cache.
    """

    def __init__(self, pool: DictPool, *, on_facts_changed: FactsInvalidator | None = None) -> None:
        """Wrap an open pool; no I/O."""
        self.pool = pool
        self.on_facts_changed = on_facts_changed

    def facts_transaction(self, athlete_id: str) -> AbstractAsyncContextManager[FactsTransaction]:
        """The one way to write facts: a transaction whose commit drops the cached facts (`memory.fact_writes`).

        Raises:
            InvalidAthleteIdError: invalid athlete id.
        """
        return facts_transaction(self.pool, validate_athlete_id(athlete_id), self.on_facts_changed)

    async def setup(self) -> int:
        """Apply pending migrations (idempotent); returns how many were applied."""
        async with self.pool.connection() as conn:
            return await asetup(conn)

    # ----- facts -------------------------------------------------------------------------------------------

    async def current_facts(self, athlete_id: str) -> dict[str, dict[str, Any]]:
        """Return the athlete's current facts.

        Returns:
            `{fact_key: {"value", "source", "source_session_id", "source_ride_id", "updated_at"}}`.
        """
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT fact_key, value, source, source_session_id, source_ride_id, updated_at
                   FROM athlete_facts WHERE athlete_id = %s AND valid_to IS NULL ORDER BY fact_key""",
                (athlete_id,),
            )
            rows = await cur.fetchall()
        return {r.pop("fact_key"): r for r in rows}

    async def fact_history(self, athlete_id: str, key: str) -> list[dict[str, Any]]:
        """Return every value a fact has had, newest first, with `valid_from`/`valid_to` and provenance."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT fact_key, value, source, source_session_id, source_ride_id, valid_from, valid_to,
                          updated_at
                   FROM athlete_facts WHERE athlete_id = %s AND fact_key = %s
                   ORDER BY valid_from DESC, id DESC""",
                (athlete_id, key),
            )
            return await cur.fetchall()

    async def set_facts(
        self,
        athlete_id: str,
        changes: Sequence[FactChange],
        *,
        source: FactSource,
        source_session_id: str | None = None,
        source_ride_id: str | None = None,
    ) -> list[str]:
        """Write facts in one transaction, then drop the cached facts; returns the keys that changed (`FactChange`)."""
        async with self.facts_transaction(athlete_id) as tx:
            return await tx.apply(changes, source, source_session_id=source_session_id, source_ride_id=source_ride_id)

    # ----- rides and debriefs ------------------------------------------------------------------------------

    async def get_ride(self, athlete_id: str, ride_id: str) -> RideRecord | None:
        """Return the athlete's ride `ride_id`, or None (also when the ride belongs to another athlete)."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RIDE_COLUMNS} FROM rides WHERE athlete_id = %s AND ride_id = %s", (athlete_id, ride_id)
            )
            row = await cur.fetchone()
        return RideRecord(**row) if row else None

    async def list_rides(self, athlete_id: str, *, limit: int = 1000) -> list[RideRecord]:
        """Return the athlete's rides, most recent start first."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RIDE_COLUMNS} FROM rides WHERE athlete_id = %s ORDER BY start_time DESC LIMIT %s",
                (athlete_id, limit),
            )
            return [RideRecord(**r) for r in await cur.fetchall()]

    async def get_debrief(self, athlete_id: str, ride_id: str) -> dict[str, Any] | None:
        """Return `{"text", "writer", "facts_changed", "created_at"}` of the ride's debrief, or None."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT text, writer, facts_changed, created_at FROM debriefs
                   WHERE athlete_id = %s AND ride_id = %s""",
                (athlete_id, ride_id),
            )
            return await cur.fetchone()

    async def rides_without_debrief(self, athlete_id: str) -> list[str]:
        """Return ids of the athlete's stored rides that have no debrief yet, oldest first."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT r.ride_id FROM rides r
                   LEFT JOIN debriefs d ON d.athlete_id = r.athlete_id AND d.ride_id = r.ride_id
                   WHERE r.athlete_id = %s AND d.ride_id IS NULL ORDER BY r.start_time""",
                (athlete_id,),
            )
            return [r["ride_id"] for r in await cur.fetchall()]

    async def save_debriefed_ride(
        self,
        athlete_id: str,
        ride: RideRecord,
        fact_changes: Sequence[FactChange],
        debrief_text: str,
        writer: str,
    ) -> list[str] | None:
        """Store a ride, the facts it changes and its debrief in one transaction.

        The ride row is inserted unless it exists (an earlier upload without a debrief is fine); the debrief is
        inserted unless one exists. When the ride already has a debrief, nothing at all is written.

        Returns:
            The fact keys that changed, or None when the ride was already debriefed (nothing written).
        """
        async with self.facts_transaction(athlete_id) as tx:
            conn = tx.conn
            await conn.execute(
                _INSERT_RIDE_SQL + " ON CONFLICT (athlete_id, ride_id) DO NOTHING", _ride_params(athlete_id, ride)
            )
            cur = await conn.execute(
                """INSERT INTO debriefs (athlete_id, ride_id, text, writer) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (athlete_id, ride_id) DO NOTHING RETURNING ride_id""",
                (athlete_id, ride.ride_id, debrief_text, writer),
            )
            if await cur.fetchone() is None:
                return None  # already debriefed: the transaction commits nothing new (the ride row existed).
            changed = await tx.apply(fact_changes, "debrief_coach", source_ride_id=ride.ride_id)
            await conn.execute(
                "UPDATE debriefs SET facts_changed = %s WHERE athlete_id = %s AND ride_id = %s",
                (Jsonb(changed), athlete_id, ride.ride_id),
            )
            return changed

    async def save_replay_ride(self, athlete_id: str, ride: RideRecord, debrief_text: str) -> None:
        """Store a replayed copy of a ride (the demo's recent days), moving it if it exists already.

        The copy keeps the original's metrics and debrief; only its id and start time differ. Facts are not
        touched: the original ride already counted.
        """
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                _INSERT_RIDE_SQL + " ON CONFLICT (athlete_id, ride_id) DO UPDATE SET start_time = EXCLUDED.start_time",
                _ride_params(athlete_id, ride),
            )
            await conn.execute(
                """INSERT INTO debriefs (athlete_id, ride_id, text, writer) VALUES (%s, %s, %s, 'replay')
                   ON CONFLICT (athlete_id, ride_id) DO NOTHING""",
                (athlete_id, ride.ride_id, debrief_text),
            )

    # ----- fact proposals -----------------------------------------------------------------------------------

    async def create_proposal(
        self, athlete_id: str, key: str, value: Any, *, source_session_id: str | None = None
    ) -> dict[str, Any]:
        """Record a fact the model proposes; nothing reaches `athlete_facts` until the athlete confirms.

        A pending proposal with the same key and value is reused rather than duplicated.

        Returns:
            The proposal row: `{"id", "fact_key", "value", "status", "source_session_id", "created_at",
            "decided_at"}`.
        """
        validate_athlete_id(athlete_id)
        validate_fact(key, value)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"""SELECT {_PROPOSAL_COLUMNS} FROM fact_proposals
                    WHERE athlete_id = %s AND fact_key = %s AND value = %s AND status = 'pending'
                    ORDER BY id LIMIT 1""",
                (athlete_id, key, Jsonb(value)),
            )
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute(
                    f"""INSERT INTO fact_proposals (athlete_id, fact_key, value, source_session_id)
                        VALUES (%s, %s, %s, %s) RETURNING {_PROPOSAL_COLUMNS}""",
                    (athlete_id, key, Jsonb(value), source_session_id),
                )
                row = await cur.fetchone()
        assert row is not None
        return row

    async def list_proposals(self, athlete_id: str, *, status: str | None = "pending") -> list[dict[str, Any]]:
        """Return the athlete's proposals (by default the pending ones), oldest first."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"""SELECT {_PROPOSAL_COLUMNS} FROM fact_proposals
                    WHERE athlete_id = %s AND (%s::text IS NULL OR status = %s) ORDER BY id""",
                (athlete_id, status, status),
            )
            return await cur.fetchall()

    async def decide_proposal(self, athlete_id: str, proposal_id: int, *, confirm: bool) -> dict[str, Any]:
        """Confirm (write the fact with source `user`) or reject a pending proposal, in one transaction.

        Raises:
            ProposalNotFoundError: no pending proposal with this id for this athlete (another athlete's
                proposal is "not found" too).
        """
        async with self.facts_transaction(athlete_id) as tx:
            conn = tx.conn
            cur = await conn.execute(
                f"""UPDATE fact_proposals SET status = %s, decided_at = now()
                    WHERE athlete_id = %s AND id = %s AND status = 'pending' RETURNING {_PROPOSAL_COLUMNS}""",
                ("confirmed" if confirm else "rejected", athlete_id, proposal_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise ProposalNotFoundError(f"no pending proposal {proposal_id} for athlete {athlete_id!r}")
            if confirm:
                await tx.apply(
                    [FactChange(row["fact_key"], row["value"])], "user", source_session_id=row["source_session_id"]
                )
        return row


_RIDE_COLUMNS = (
    "ride_id, file_name, file_format, sport, start_time, elapsed_s, moving_s, distance_m, normalized_power_w, "
    "tss, hr_tss, metrics"
)

_INSERT_RIDE_SQL = f"""INSERT INTO rides ({_RIDE_COLUMNS}, athlete_id)
    VALUES (%(ride_id)s, %(file_name)s, %(file_format)s, %(sport)s, %(start_time)s, %(elapsed_s)s, %(moving_s)s,
            %(distance_m)s, %(normalized_power_w)s, %(tss)s, %(hr_tss)s, %(metrics)s, %(athlete_id)s)"""


def _ride_params(athlete_id: str, ride: RideRecord) -> dict[str, Any]:
    return {**ride.__dict__, "metrics": Jsonb(ride.metrics), "athlete_id": athlete_id}


_PROPOSAL_COLUMNS = "id, fact_key, value, status, source_session_id, created_at, decided_at"
_FACT_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_FACT_VALUE_CHARS = 500


def validate_fact(key: str, value: Any) -> None:
    """Check a fact before it is proposed or written.

    Keys are snake_case, 1-64 characters (`goal`, `ftp_w`, `injuries`); values are a string of at most
    `MAX_FACT_VALUE_CHARS` characters, a finite number, or a boolean.

    Raises:
        InvalidFactError: with what is wrong.
    """
    if not isinstance(key, str) or not _FACT_KEY_RE.fullmatch(key):
        raise InvalidFactError(f"invalid fact key {key!r}: use snake_case, 1-64 characters, e.g. 'goal' or 'ftp_w'")
    if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
        return
    if isinstance(value, str) and value.strip() and len(value) <= MAX_FACT_VALUE_CHARS:
        return
    raise InvalidFactError(
        f"invalid value for fact {key!r}: a non-empty text of at most {MAX_FACT_VALUE_CHARS} characters, "
        "a finite number or a boolean"
    )
