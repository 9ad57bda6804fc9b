"""The one write path of athlete facts: a transaction whose commit drops the Redis facts cache (docs/architecture.md).

Every fact write (a fact the athlete states or confirms, a debrief's facts, an audit's facts and cleared pattern
facts) runs inside `facts_transaction`: the caller writes its own rows on `tx.conn` and the facts with
`tx.apply`, the transaction commits, and then, if a fact changed, `on_changed(athlete_id)` runs: the conversation
memory's `FactsTier.invalidate`, which drops the athlete's cached facts (or remembers to, while Redis is down).
The invalidation comes after the commit, so a cache fill cannot read the old facts after it (the fill's
generation check in `memory.facts_cache` covers a fill that read them before). No caller invalidates by hand.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from memory.db import DictPool
from training.records import FactChange, FactSource

FactsInvalidator = Callable[[str], Awaitable[None]]
"""Called with the athlete id after a commit that changed the athlete's facts (never raises for an outage)."""


class FactsTransaction:
    """An open transaction that may write one athlete's facts (see `facts_transaction`).

    Attributes:
        conn: the connection, inside the transaction: write the rows the facts come from on it.
        athlete_id: whose facts.
        changed: the fact keys changed so far.
    """

    def __init__(self, conn: AsyncConnection[DictRow], athlete_id: str) -> None:
        """Wrap a connection inside a transaction; nothing is written."""
        self.conn = conn
        self.athlete_id = athlete_id
        self.changed: list[str] = []

    async def apply(
        self,
        changes: Sequence[FactChange],
        source: FactSource,
        *,
        source_session_id: str | None = None,
        source_ride_id: str | None = None,
    ) -> list[str]:
        """Write fact changes in this transaction.

        For each change that still applies (see `FactChange`), the current row of its key is closed (`valid_to`)
        and the new value inserted; an unchanged value writes nothing.

        Args:
            changes: the candidate changes.
            source: `user`, `debrief_coach` or `training_load_auditor`.
            source_session_id: the session the facts came from, if any.
            source_ride_id: the ride the facts came from, if any.

        Returns:
            The keys that changed.

        Raises:
            ValueError: a value is a non-finite number.
        """
        changed: list[str] = []
        for change in changes:
            if isinstance(change.value, float) and not math.isfinite(change.value):
                raise ValueError(f"fact {change.key!r}: {change.value} is not a finite number")
            cur = await self.conn.execute(
                """SELECT id, value FROM athlete_facts
                   WHERE athlete_id = %s AND fact_key = %s AND valid_to IS NULL FOR UPDATE""",
                (self.athlete_id, change.key),
            )
            current = await cur.fetchone()
            if current is not None:
                old = current["value"]
                if old == change.value:
                    continue
                if change.only_if_higher and _is_number(old) and not change.value > old:
                    continue
                await self.conn.execute(
                    "UPDATE athlete_facts SET valid_to = clock_timestamp() WHERE id = %s", (current["id"],)
                )
            await self.conn.execute(
                """INSERT INTO athlete_facts
                       (athlete_id, fact_key, value, source, source_session_id, source_ride_id)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (self.athlete_id, change.key, Jsonb(change.value), source, source_session_id, source_ride_id),
            )
            changed.append(change.key)
        self.changed += changed
        return changed

    def note_changed(self, keys: Iterable[str]) -> None:
        """Record facts changed by the caller's own SQL on `conn` (the Auditor closing pattern facts)."""
        self.changed += [k for k in keys if k not in self.changed]


@asynccontextmanager
async def facts_transaction(
    pool: DictPool, athlete_id: str, on_changed: FactsInvalidator | None
) -> AsyncIterator[FactsTransaction]:
    """Open a transaction that writes the athlete's facts; after its commit, `on_changed(athlete_id)` if any changed.

    Args:
        pool: the athlete store's pool.
        athlete_id: whose facts (validated by the caller).
        on_changed: the facts cache's invalidation; None only for a store without a cache (nothing to drop).

    Yields:
        The transaction; an exception rolls it back and skips the invalidation.
    """
    async with pool.connection() as conn, conn.transaction():
        tx = FactsTransaction(conn, athlete_id)
        yield tx
    if tx.changed and on_changed is not None:
        await on_changed(athlete_id)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
