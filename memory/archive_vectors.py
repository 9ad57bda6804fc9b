"""Embeddings of archived messages: whether pgvector is there, vectors for a write, and the backfill.

`ArchiveVectors` is the part of the conversation archive (`memory.archive.Archive`, which composes it) that
deals with the `embedding` column (`memory.schema.VECTOR_SETUP`): a write embeds its new user and assistant
messages first (`for_write`), and `coach reindex` fills in what is missing (`embed_pending`). Without pgvector
or without an embedder nothing is embedded and recall ranks by full text (docs/architecture.md, the memory tiers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from memory.archive_context import refresh_context_statement
from memory.athlete_store import validate_athlete_id
from memory.db import DictPool
from memory.embeddings import ArchiveEmbedder, vector_literal
from memory.messages import ChatMessage, as_uuid
from memory.schema import VECTOR_SETUP
from memory.vector_index import VECTOR_INDEX_SETUP

logger = logging.getLogger(__name__)

EMBED_BATCH_ROWS = 256
"""Messages per embedding call and per UPDATE transaction of `ArchiveVectors.embed_pending`."""


class ArchiveVectors:
    """The archive's message embeddings, through a psycopg pool (autocommit, dict rows).

    Args:
        pool: an open pool, see `records.stores.open_stores`.
        timeout_s: longest wait for a pooled connection, seconds; None uses the pool's own `timeout`.
        embedder: computes the embeddings; None: nothing is embedded.
    """

    def __init__(self, pool: DictPool, *, timeout_s: float | None = None, embedder: ArchiveEmbedder | None = None):
        """Wrap an open pool; no I/O."""
        self.pool = pool
        self.timeout_s = timeout_s
        self.embedder = embedder
        self._vectors: bool | None = None

    async def vectors_enabled(self) -> bool:
        """Whether `messages` has the `embedding` column (pgvector installed); checked once, then remembered.

        Logs a warning when it finds no column (once per `Archive`): recall then ranks by full text alone.

        Raises:
            psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
        """
        if self._vectors is None:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                cur = await conn.execute(
                    """SELECT EXISTS (SELECT 1 FROM pg_attribute
                                      WHERE attrelid = 'messages'::regclass AND attname = 'embedding'
                                        AND NOT attisdropped) AS ok"""
                )
                row = await cur.fetchone()
            self._vectors = bool(row and row["ok"])
            if not self._vectors:
                logger.warning("pgvector is not installed: conversation recall uses full-text ranking only")
        return self._vectors

    async def ensure_vectors(self) -> bool:
        """Run the schema's vector setup again (a pgvector installed after `setup()`); see `vectors_enabled`.

        That is `VECTOR_SETUP`, then `memory.vector_index.VECTOR_INDEX_SETUP` (the partial HNSW index).
        """
        async with self.pool.connection(timeout=self.timeout_s) as conn:
            await conn.execute(VECTOR_SETUP)
            await conn.execute(VECTOR_INDEX_SETUP)
        self._vectors = None
        return await self.vectors_enabled()

    async def for_write(self, messages: Sequence[ChatMessage]) -> dict[str, str]:
        """Embeddings (pgvector text) of the user and assistant messages; {} when there is no vector support.

        A model failure is logged and gives {}: the messages are archived without vectors (`embed_pending`
        fills them in later), never held back.
        """
        wanted = [m for m in messages if m.role in ("user", "assistant") and m.content.strip()]
        if self.embedder is None or not wanted or not await self.vectors_enabled():
            return {}
        async with self.pool.connection(timeout=self.timeout_s) as conn:  # a retried write: embed only new ones
            cur = await conn.execute(
                "SELECT id::text AS id FROM messages WHERE id = ANY(%s::uuid[])", ([m.id for m in wanted],)
            )
            archived = {r["id"] for r in await cur.fetchall()}
        wanted = [m for m in wanted if m.id not in archived]
        if not wanted:
            return {}
        try:
            vectors = await self.embedder.embed_documents([m.content for m in wanted])
        except Exception as exc:  # noqa: BLE001 - any model failure: archive now, embed later
            logger.warning("embedding %d messages failed (%s): archived without vectors", len(wanted), exc)
            return {}
        literals = await asyncio.to_thread(_literals, vectors)  # ~0.1 ms each: off the event loop
        return {m.id: text for m, text in zip(wanted, literals, strict=True)}

    async def embed_pending(
        self,
        *,
        athlete_id: str | None = None,
        message_ids: Sequence[str] | None = None,
        force: bool = False,
        batch: int = EMBED_BATCH_ROWS,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Compute the missing embeddings of user and assistant messages (the backfill of `coach reindex`).

        A message needs one when it has no vector or a vector of another model than the embedder's (`force`:
        every message). Works in batches of `batch` messages in id order (embed, then one UPDATE transaction
        that also refreshes the contextual index of the batch and its neighbours, `memory.archive_context`),
        so an interrupted run keeps what it did and a rerun goes on from there.

        Args:
            athlete_id: only this athlete's messages (None: every athlete's).
            message_ids: only these messages.
            force: re-embed messages that already have a vector of the current model too.
            batch: messages per batch.
            progress: called as `progress(done, total)` after each batch (and once with 0 done at the start).

        Returns:
            The number of messages embedded; 0 without an embedder or without pgvector.

        Raises:
            psycopg.OperationalError, psycopg_pool.PoolTimeout: Postgres cannot be reached.
            Exception: the embedding model failed.
        """
        if athlete_id is not None:
            validate_athlete_id(athlete_id)
        if self.embedder is None or not await self.vectors_enabled():
            return 0
        model = self.embedder.model_id
        where = ["role IN ('user', 'assistant')"]
        params: dict[str, Any] = {"model": model}
        if not force:
            where.append("(embedding IS NULL OR embedding_model IS DISTINCT FROM %(model)s)")
        if athlete_id is not None:
            where.append("athlete_id = %(athlete_id)s")
            params["athlete_id"] = athlete_id
        if message_ids is not None:
            where.append("id = ANY(%(ids)s::uuid[])")
            params["ids"] = [i for i in (as_uuid(x) for x in message_ids) if i is not None]
        condition = " AND ".join(where)
        async with self.pool.connection(timeout=self.timeout_s) as conn:
            cur = await conn.execute(f"SELECT count(*) AS n FROM messages WHERE {condition}", params)  # noqa: S608
            row = await cur.fetchone()
        total = int(row["n"]) if row else 0
        if progress is not None:
            progress(0, total)
        done, last_id = 0, None
        while done < total:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                cur = await conn.execute(
                    f"""SELECT id::text AS id, content FROM messages
                        WHERE {condition} AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
                        ORDER BY id LIMIT %(batch)s""",  # noqa: S608
                    {**params, "after": last_id, "batch": batch},
                )
                rows = await cur.fetchall()
            if not rows:
                break
            vectors = await self.embedder.embed_documents([r["content"] for r in rows])
            literals = await asyncio.to_thread(_literals, vectors)
            async with self.pool.connection(timeout=self.timeout_s) as conn, conn.transaction():
                async with conn.cursor() as ucur:
                    await ucur.executemany(
                        "UPDATE messages SET embedding = %s::vector, embedding_model = %s WHERE id = %s",
                        [(text, model, r["id"]) for r, text in zip(rows, literals, strict=True)],
                    )
                    context = refresh_context_statement(message_ids=[r["id"] for r in rows])
                    if context is not None:
                        await ucur.execute(*context)
            done += len(rows)
            last_id = rows[-1]["id"]
            if progress is not None:
                progress(done, total)
        return done


def _literals(vectors: list[list[float]]) -> list[str]:
    return [vector_literal(v) for v in vectors]
