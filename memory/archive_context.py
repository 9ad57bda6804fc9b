"""Contextual index of archived messages: the words of each turn's neighbours (docs/architecture.md).

A chat turn is often unreadable alone ("Yes, last Friday!" answers the question before it), so recall also
matches a message through the turns around it (contextual indexing, as in Anthropic's "contextual retrieval",
2024, applied to dialogue turns): `messages.context_tsv` (schema v34) holds the words of the previous and the next
user or assistant message of the same session, `to_tsvector('english', ...)`; `memory.recall` counts them at half
the weight of the message's own words. It is built from rows already archived, with no model call, by the write
paths that embed (the outbox drain and imports through `Archive.write(embed=True)`, the background embedding of
direct writes and `coach reindex` through `ArchiveVectors.embed_pending`, and `fill_missing_context`), never on
the reply path. A message written between two others changes its neighbours' context too, so a refresh covers
the given messages and the ones before and after each. A message not refreshed yet (`context_tsv` NULL) is
matched by its own words only.

(A contextual vector, the mean of the neighbours' embeddings or the embedding of "previous / turn / next", was
measured too and left out: within 0.01 of the lexical field alone, see the README's recall section.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from memory.athlete_store import validate_athlete_id
from memory.db import DictPool
from memory.messages import ChatMessage, as_uuid

# The neighbours of every user/assistant message of the touched sessions (the window runs over whole sessions,
# which is cheap next to to_tsvector, computed for the targets only). Only rows whose context changed are updated:
# an update writes a new row version, with every index entry (HNSW included) and the postings again. `targets` is
# computed once: with the statistics of an empty table (a new database's first import) the planner otherwise
# recomputed the session's window for every message (10 s instead of 0.07 s for 2,000 messages).
_REFRESH_SQL = """WITH
touched AS (SELECT DISTINCT athlete_id, session_id FROM messages WHERE {touched}),
ordered AS (
    SELECT m.id, lag(m.id) OVER w AS prev_id, lead(m.id) OVER w AS next_id
    FROM messages m JOIN touched t ON t.athlete_id = m.athlete_id AND t.session_id = m.session_id
    WHERE m.role IN ('user', 'assistant')
    WINDOW w AS (PARTITION BY m.athlete_id, m.session_id ORDER BY m.created_at, m.id)
),
targets AS MATERIALIZED (
    SELECT o.id, to_tsvector('english', concat_ws(' ', p.content, n.content)) AS tsv
    FROM ordered o LEFT JOIN messages p ON p.id = o.prev_id LEFT JOIN messages n ON n.id = o.next_id
    WHERE {targets}
)
UPDATE messages m SET context_tsv = t.tsv FROM targets t
WHERE m.id = t.id AND m.context_tsv IS DISTINCT FROM t.tsv"""


def batch_context_texts(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """The neighbours' text of each user/assistant message as seen inside one write: its first `context_tsv`.

    Neighbours are taken as `_REFRESH_SQL` takes them (the previous and next user or assistant message of the same
    athlete and session, by `created_at` then id), but among `messages` only, joined as its `concat_ws(' ', ...)`
    joins them. Inserting `to_tsvector('english', text)` with the row gives every message of an imported
    transcript its final context at once; the refresh that follows the insert then rewrites only the rows this
    guess got wrong (a batch's first and last message of a session that already had messages, and their archived
    neighbours), instead of writing every row a second time.

    Args:
        messages: the messages of one write, any order, any athletes and sessions.

    Returns:
        `{message id: text}` for the user and assistant messages ("" for one without a neighbour in `messages`).
    """
    by_session: dict[tuple[str, str], list[ChatMessage]] = {}
    for m in messages:
        if m.role in ("user", "assistant"):
            by_session.setdefault((m.athlete_id, m.session_id), []).append(m)
    texts: dict[str, str] = {}
    for group in by_session.values():
        group.sort(key=lambda m: (m.created_at, UUID(m.id)))  # Postgres orders uuid values bytewise, as UUID does
        for i, m in enumerate(group):
            around = [group[j].content for j in (i - 1, i + 1) if 0 <= j < len(group)]
            texts[m.id] = " ".join(around)
    return texts


def refresh_context_statement(
    *, message_ids: Sequence[str] | None = None, athlete_id: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The statement that recomputes `context_tsv` of messages and of their neighbours.

    Args:
        message_ids: the messages just written or embedded; their previous and next messages are refreshed too.
            Non-UUIDs are ignored.
        athlete_id: with no `message_ids`, every message of this athlete; with `message_ids`, only those of
            this athlete.

    Returns:
        `(sql, params)` for `execute`, or None when there is nothing to refresh (no valid message id).

    Raises:
        ValueError: neither `message_ids` nor `athlete_id` given.
        InvalidAthleteIdError: invalid athlete id.
    """
    if message_ids is None and athlete_id is None:
        raise ValueError("refresh_context_statement needs message_ids or athlete_id")
    params: dict[str, Any] = {}
    touched, targets = [], []
    if athlete_id is not None:
        validate_athlete_id(athlete_id)
        params["athlete_id"] = athlete_id
        touched.append("athlete_id = %(athlete_id)s")
    if message_ids is not None:
        params["ids"] = [i for i in (as_uuid(x) for x in message_ids) if i is not None]
        if not params["ids"]:
            return None
        touched.append("id = ANY(%(ids)s::uuid[])")
        targets.append(
            "o.id = ANY(%(ids)s::uuid[]) OR o.prev_id = ANY(%(ids)s::uuid[]) OR o.next_id = ANY(%(ids)s::uuid[])"
        )
    sql = _REFRESH_SQL.format(touched=" AND ".join(touched), targets=" OR ".join(targets) or "TRUE")
    return sql, params


async def refresh_context(
    pool: DictPool,
    *,
    message_ids: Sequence[str] | None = None,
    athlete_id: str | None = None,
    timeout_s: float | None = None,
) -> int:
    """Run `refresh_context_statement` (same `message_ids` and `athlete_id`) on a pooled connection.

    Args:
        pool: the archive's pool (autocommit, dict rows).
        message_ids: see `refresh_context_statement`.
        athlete_id: see `refresh_context_statement`.
        timeout_s: longest wait for a pooled connection, seconds; None uses the pool's own `timeout`.

    Returns:
        The number of messages whose context changed (unchanged ones are not rewritten).

    Raises:
        ValueError, InvalidAthleteIdError: see `refresh_context_statement`.
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    statement = refresh_context_statement(message_ids=message_ids, athlete_id=athlete_id)
    if statement is None:
        return 0
    async with pool.connection(timeout=timeout_s) as conn:
        cur = await conn.execute(*statement)
        return max(cur.rowcount, 0)


async def fill_missing_context(pool: DictPool, athlete_id: str | None = None, *, timeout_s: float | None = None) -> int:
    """Fill `context_tsv` of every user/assistant message that has none, and of its neighbours (`coach reindex`).

    Args:
        pool: the archive's pool (autocommit, dict rows).
        athlete_id: only this athlete's messages (None: every athlete's, one statement per athlete).
        timeout_s: longest wait for a pooled connection, seconds; None uses the pool's own `timeout`.

    Returns:
        The number of messages whose context changed (unchanged ones are not rewritten).

    Raises:
        InvalidAthleteIdError: invalid athlete id.
        psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
    """
    if athlete_id is not None:
        validate_athlete_id(athlete_id)
    async with pool.connection(timeout=timeout_s) as conn:
        cur = await conn.execute(
            """SELECT athlete_id, array_agg(id::text) AS ids FROM messages
               WHERE role IN ('user', 'assistant') AND context_tsv IS NULL
                 AND (%(athlete_id)s::text IS NULL OR athlete_id = %(athlete_id)s)
               GROUP BY athlete_id ORDER BY athlete_id""",
            {"athlete_id": athlete_id},
        )
        rows = await cur.fetchall()
    done = 0
    for row in rows:
        done += await refresh_context(pool, message_ids=row["ids"], athlete_id=row["athlete_id"], timeout_s=timeout_s)
    return done
