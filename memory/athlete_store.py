"""The Postgres athlete store: durable facts with history, and fact proposals.

Every method takes the athlete id and every query filters by it. `apply_fact_changes` takes a connection, so that
a caller writes facts in its own transaction (`records.rides.RideStore.save_debriefed_ride`: the ride row, the
facts it changes and its debrief together, so a failure leaves nothing half written).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from psycopg.types.json import Jsonb

from memory.db import DictPool
from memory.errors import InvalidAthleteIdError, InvalidFactError
from memory.fact_writes import FactsInvalidator, FactsTransaction, facts_transaction
from memory.schema import asetup
from training.records import FactChange, FactSource, ProposalStatus

__all__ = ["AthleteStore", "FactChange", "FactSource", "validate_athlete_id"]

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
        pool: an open pool; see `records.stores.open_stores`.
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

    # ----- fact proposals -----------------------------------------------------------------------------------

    async def create_proposal(
        self, athlete_id: str, key: str, value: Any, *, source_session_id: str | None = None
    ) -> dict[str, Any]:
        """Record a fact the model proposes; nothing reaches `athlete_facts` until the athlete accepts it.

        A pending proposal with the same key and value is reused rather than duplicated.

        Returns:
            The proposal row: `{"id", "fact_key", "value", "status", "source_session_id", "created_at",
            "decided_at"}`.
        """
        validate_athlete_id(athlete_id)
        validate_fact(key, value)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"""SELECT {FACT_PROPOSAL_COLUMNS} FROM fact_proposals
                    WHERE athlete_id = %s AND fact_key = %s AND value = %s AND status = 'pending'
                    ORDER BY id LIMIT 1""",
                (athlete_id, key, Jsonb(value)),
            )
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute(
                    f"""INSERT INTO fact_proposals (athlete_id, fact_key, value, source_session_id)
                        VALUES (%s, %s, %s, %s) RETURNING {FACT_PROPOSAL_COLUMNS}""",
                    (athlete_id, key, Jsonb(value), source_session_id),
                )
                row = await cur.fetchone()
        assert row is not None
        return row

    async def list_proposals(
        self, athlete_id: str, *, status: ProposalStatus | None = "pending"
    ) -> list[dict[str, Any]]:
        """Return the athlete's proposals (by default the pending ones), oldest first.

        A proposal is decided with `records.proposals.decide_proposal` (kind ``fact``).
        """
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"""SELECT {FACT_PROPOSAL_COLUMNS} FROM fact_proposals
                    WHERE athlete_id = %s AND (%s::text IS NULL OR status = %s) ORDER BY id""",
                (athlete_id, status, status),
            )
            return await cur.fetchall()


FACT_PROPOSAL_COLUMNS = "id, fact_key, value, status, source_session_id, created_at, decided_at"
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
