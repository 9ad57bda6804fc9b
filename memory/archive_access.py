"""The conversation archive behind the server-health guard: recall, replies, reindex, import (docs/architecture.md).

`ConversationMemory` composes one `GuardedArchive` and delegates `recall`, `replies_to`, `reindex` and
`import_transcript` to it. Each Postgres call goes through `ServerHealth.pg_call` (skipped while the breaker is
open on the reply path, cut at the reply-path timeout), and an outage becomes `StoreUnavailableError`. A direct
write made while Redis is down is embedded afterwards in the background (`embed_later`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from memory.archive import Archive, ImportResult
from memory.archive_context import fill_missing_context
from memory.breakers import BackgroundTasks, ServerDown, ServerHealth
from memory.embeddings import ArchiveEmbedder
from memory.errors import StoreUnavailableError
from memory.messages import ChatMessage
from memory.outbox import LocalSpool
from memory.recall import SearchResult, embed_query
from memory.session_window import SessionWindow, WindowEntry, entry_from_message
from memory.term_stats import refresh_all_due
from memory.text import validate_text

logger = logging.getLogger(__name__)


class GuardedArchive:
    """The archive's operations as the memory runs them: guarded by server health, outages as clear errors.

    Args:
        archive: the archive, or None (no Postgres configured: every call raises `StoreUnavailableError`).
        health: the memory's server health.
        window: the session window (an import drops the session's window), or None.
        stale_sessions: the memory's set of sessions whose Redis window must be rebuilt from the archive.
        embedder: embeds search queries (and, through the archive, messages); None: full-text recall.
        tasks: where background embeddings run.
        spool: the last-resort local spool (both servers down), or None.
    """

    def __init__(
        self,
        archive: Archive | None,
        health: ServerHealth,
        window: SessionWindow | None,
        stale_sessions: set[tuple[str, str]],
        embedder: ArchiveEmbedder | None,
        tasks: BackgroundTasks,
        spool: LocalSpool | None = None,
    ) -> None:
        """Wire the parts; no I/O."""
        self.spool = spool
        self.archive = archive
        self.health = health
        self.window = window
        self.stale_sessions = stale_sessions
        self.embedder = embedder
        self.tasks = tasks

    async def write_now(self, messages: Sequence[ChatMessage]) -> bool:
        """Save a turn that could not be queued in Redis: straight to the archive, else to the local spool.

        The archive write is cut at the reply-path timeout; its embeddings are computed afterwards in the
        background. With Postgres down too, the messages go to the spool (JSON lines the next drain archives).

        Returns:
            Whether the messages were saved (archived or spooled); False is logged by the caller.
        """
        archive = self.archive
        if archive is not None:
            with contextlib.suppress(ServerDown):
                await self.health.pg_call(lambda: archive.write(messages))
                self.embed_later([m.id for m in messages])
                return True
        if self.spool is not None:
            try:
                await self.spool.append(messages)
            except OSError as exc:
                logger.error("spool write failed: %s", exc)
                return False
            m = messages[0]
            logger.warning("both servers down: turn of %s/%s spooled to %s", m.athlete_id, m.session_id, self.spool)
            return True
        return False

    def embed_later(self, message_ids: list[str]) -> None:
        """Embed messages written without vectors, in the background (failures are logged; `reindex` repairs)."""
        if self.embedder is not None:
            self.tasks.spawn(self._embed_quietly(message_ids))

    async def recall(self, athlete_id: str, query: str, *, k: int = 3, exclude_ids: Iterable[str] = ()) -> SearchResult:
        """Search the athlete's archive (see `Archive.search_ranked`) and say how the hits were ranked.

        A warm in-process model (`ArchiveEmbedder.warm`) embeds the query in a task while the search reads its
        statistics and lexical side (`memory.recall.QueryVector`); a model still loading, or a remote one, embeds
        it first, outside the Postgres timeout. The ranking is `full_text` (BM25 alone) when there is no
        embedder, no pgvector, or the query could not be embedded; each of those is logged once per process.

        Raises:
            StoreUnavailableError: Postgres is down (recall is unavailable).
            InvalidTextError: the query holds NUL or a lone surrogate (`memory.text`).
        """
        validate_text(query, "query")
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        vector: list[float] | asyncio.Task[list[float] | None] | None = None
        try:
            if await self.health.pg_call(archive.vectors_enabled):
                if self.embedder is not None and self.embedder.warm:  # milliseconds: embed while the search reads
                    vector = asyncio.ensure_future(embed_query(self.embedder, query))
                else:  # a model still loading (or remote) stays out of Postgres' timeout
                    vector = await embed_query(self.embedder, query)
            return await self.health.pg_call(
                lambda: archive.search_ranked(athlete_id, query, k=k, exclude_ids=exclude_ids, query_embedding=vector)
            )
        except ServerDown as exc:
            self.health.schedule_probes()
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc
        finally:
            if isinstance(vector, asyncio.Task):
                vector.cancel()  # a search that failed before it needed the embedding: nothing else waits for it

    async def reindex(
        self,
        athlete_id: str | None = None,
        *,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Embed the archived messages that lack an embedding of the current model (`coach reindex`).

        Runs the schema's vector setup first, so a pgvector installed after `setup()` gets its column and index;
        then fills the contextual index of the messages that have none (`memory.archive_context`).

        Args:
            athlete_id: one athlete's messages; None: every athlete's.
            force: re-embed the messages that already have a vector of the current model too.
            progress: called as `progress(done, total)`, see `Archive.embed_pending`.

        Returns:
            The number of messages embedded; 0 when there is no pgvector or no embedder (see `vectors_enabled`).

        Raises:
            StoreUnavailableError: Postgres is down.
        """
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        try:
            await self.health.pg_call(archive.ensure_vectors, explicit=True)
            embedded = await self.health.pg_call(
                lambda: archive.embed_pending(athlete_id=athlete_id, force=force, progress=progress), explicit=True
            )
            await self.health.pg_call(
                lambda: fill_missing_context(archive.pool, athlete_id, timeout_s=archive.timeout_s), explicit=True
            )
            # A reindex rewrites contextual fields, so a large archive's posting blocks may be due for a rebuild.
            await self.health.pg_call(lambda: refresh_all_due(archive.pool, athlete_id), explicit=True)
            return embedded
        except ServerDown as exc:
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc

    async def _embed_quietly(self, message_ids: list[str]) -> None:
        """Embed messages written without vectors (a background task: failures are logged, `reindex` repairs)."""
        archive = self.archive
        if archive is None:
            return
        try:
            await archive.embed_pending(message_ids=message_ids)
        except Exception:  # a background task must not die silently
            logger.exception("embedding %d archived messages failed (run `coach reindex`)", len(message_ids))

    async def replies_to(self, athlete_id: str, message_ids: Sequence[str]) -> dict[str, ChatMessage]:
        """The coach's reply to each given user message (see `Archive.replies_to`).

        Raises:
            StoreUnavailableError: Postgres is down.
        """
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        try:
            return await self.health.pg_call(lambda: archive.replies_to(athlete_id, message_ids))
        except ServerDown as exc:
            self.health.schedule_probes()
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc

    async def import_transcript(
        self, athlete_id: str, session_id: str, records: Iterable[Mapping[str, Any]]
    ) -> ImportResult:
        """Import a transcript into the archive (see `Archive.import_transcript`), then drop the session's window.

        Raises:
            StoreUnavailableError: Postgres is down.
            InvalidTranscriptError: a record is invalid (nothing written).
        """
        archive = self.archive
        if archive is None:
            raise StoreUnavailableError("the conversation archive is not configured")
        records = list(records)
        try:
            result = await self.health.pg_call(
                lambda: archive.import_transcript(athlete_id, session_id, records), explicit=True
            )
        except ServerDown as exc:
            raise StoreUnavailableError("the conversation archive (Postgres) is unavailable") from exc
        window = self.window
        try:
            if window is None:
                raise ServerDown("redis")
            await self.health.redis_call(lambda: window.delete(athlete_id, session_id))
        except ServerDown:
            self.stale_sessions.add((athlete_id, session_id))
        return result

    async def load_window(self, athlete_id: str, session_id: str, need: int, store_cap: int) -> list[WindowEntry]:
        """Read the session's window: Redis; on a miss or for a stale session, hydrated from the archive.

        The archive's last `store_cap` user/assistant messages are written back to Redis (merged with a stale
        window's entries the archive lacks: turns still in the outbox); with Redis down, the archive's are
        returned. Never raises for an outage.

        Returns:
            The entries, oldest first (at least the newest `need` when there are that many).
        """
        window = self.window
        entries: list[WindowEntry] | None = None
        stale = (athlete_id, session_id) in self.stale_sessions
        # Only the newest `need` entries reach the prompt; a stale window is read whole, to merge it.
        read_n = store_cap if stale else min(need, store_cap)
        if window is not None:
            with contextlib.suppress(ServerDown):
                entries = await self.health.redis_call(lambda: window.read(athlete_id, session_id, read_n))
        if entries and not stale:
            return entries
        archive = self.archive
        if archive is None:
            return entries or []
        try:
            messages = await self.health.pg_call(lambda: archive.recent(athlete_id, session_id, store_cap))
        except ServerDown:
            return entries or []
        hydrated = [entry_from_message(m) for m in messages]
        if stale and entries:
            # Turns saved to this stale window may still wait in the outbox: keep those the archive lacks.
            known = {e.id for e in hydrated}
            newest = hydrated[-1].ts if hydrated else None
            hydrated += [e for e in entries if e.id not in known and (newest is None or e.ts >= newest)]
            hydrated = hydrated[-store_cap:]
        if entries is not None and window is not None and (hydrated or stale):
            try:
                await self.health.redis_call(lambda: window.replace(athlete_id, session_id, hydrated))
                self.stale_sessions.discard((athlete_id, session_id))
            except ServerDown:
                pass
        return hydrated
