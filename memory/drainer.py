"""Moving queued turns to the archive off the reply path: after a reply, and once a second (docs/architecture.md).

`ConversationMemory.save_turn` queues a turn in the Redis outbox and asks for a drain (`Drainer.kick`): it starts
`DRAIN_DELAY_S` later, so that the reply and the checkpoint go first, and runs again if more turns asked
meanwhile. The API server's lifespan also starts the loop (`Drainer.start`): each round re-probes the servers
last seen down, then, when Postgres is up, drains the local spool and the outbox, so a recovery is noticed and the
queued turns archived within about a second of the servers' return, without any turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from memory.archive import Archive
from memory.breakers import BackgroundTasks, ServerHealth, stale_connection_error
from memory.db import DictPool
from memory.outbox import LocalSpool, Outbox
from memory.redis_client import REDIS_ERRORS

logger = logging.getLogger(__name__)

DRAIN_DELAY_S = 0.05
"""Delay before the background archive drain a turn asks for starts, seconds (off the reply path)."""
DRAIN_INTERVAL_S = 1.0
"""Default period of the background drainer (re-probe, then drain the outbox and the spool), seconds."""


class Drainer:
    """Moves queued messages to the archive: on demand (`drain`), once after a reply (`kick`), periodically (`start`).

    Args:
        archive: the archive, or None (nothing to drain to).
        outbox: the Redis outbox, or None (no Redis).
        spool: the local spool, or None.
        pool: the archive's pool (checked once when a drain meets a stale connection).
        health: the memory's server health, updated by each drain.
        tasks: where the background drains run.

    Attributes:
        dead_lettered_sessions: messages per (athlete, session) dead-lettered by this process's drains and not
            yet reported (`take_dead_letters`).
        loop_task: the periodic loop's task while it runs (`start`), else None.
    """

    def __init__(
        self,
        archive: Archive | None,
        outbox: Outbox | None,
        spool: LocalSpool | None,
        pool: DictPool | None,
        health: ServerHealth,
        tasks: BackgroundTasks,
    ) -> None:
        """Wire the tiers; nothing runs yet."""
        self.archive = archive
        self.outbox = outbox
        self.spool = spool
        self.pool = pool
        self.health = health
        self._tasks = tasks
        self.dead_lettered_sessions: dict[tuple[str, str], int] = {}
        self._after_reply: asyncio.Task[None] | None = None
        self._requested = False
        self.loop_task: asyncio.Task[None] | None = None

    async def drain(self, batch: int = 500) -> int:
        """Move queued messages to the archive now: the local spool, then the Redis outbox.

        Tries both servers even when their breakers say down (an explicit drain is also a probe) and updates
        their health.

        Returns:
            The number of messages moved to Postgres by this call.
        """
        moved = 0
        archive, health = self.archive, self.health
        if archive is None:
            return 0
        try:
            if self.spool is not None:
                moved += await self.spool.drain(archive)
                if self.spool.last_error is not None:
                    health.pg_breaker.failure(self.spool.last_error)
                    return moved
            if self.outbox is not None:
                try:
                    moved += await self.outbox.drain(archive, batch=batch)
                    self._note_dead_letters(self.outbox)
                    if stale_connection_error(self.outbox.last_error) and self.pool is not None:
                        await self.pool.check()
                        moved += await self.outbox.drain(archive, batch=batch)
                        self._note_dead_letters(self.outbox)
                except REDIS_ERRORS as exc:
                    health.redis_breaker.failure(exc)
                    return moved
                health.redis_breaker.success()
                if self.outbox.last_error is not None:
                    health.pg_breaker.failure(self.outbox.last_error)
                    return moved
            if moved:  # Postgres was written to (an empty drain proves nothing about it)
                health.pg_breaker.success()
            return moved
        finally:
            health.schedule_probes()

    async def pending(self) -> int:
        """Return the number of messages waiting in the Redis outbox and the local spool.

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
        """
        n = await self.outbox.pending() if self.outbox is not None else 0
        return n + (await self.spool.pending() if self.spool is not None else 0)

    def take_dead_letters(self, athlete_id: str, session_id: str) -> int:
        """Return and forget the number of the session's messages dead-lettered since the last call."""
        return self.dead_lettered_sessions.pop((athlete_id, session_id), 0)

    def _note_dead_letters(self, outbox: Outbox) -> None:
        """Remember which sessions lost messages to the dead-letter stream in the last drain, and log it."""
        for dead in outbox.dead_lettered:
            if dead.message is None:
                continue
            key = (dead.message.athlete_id, dead.message.session_id)
            self.dead_lettered_sessions[key] = self.dead_lettered_sessions.get(key, 0) + 1
        if outbox.dead_lettered:
            logger.error(
                "%d queued message(s) could not be archived and went to %s (see `coach doctor`)",
                len(outbox.dead_lettered),
                outbox.dead_stream,
            )

    def kick(self) -> None:
        """Ask for a drain after the reply; start one unless one is running (which then runs once more)."""
        self._requested = True
        if self._after_reply is None or self._after_reply.done():
            self._after_reply = self._tasks.spawn(self._drain_after_reply())

    async def settle(self) -> None:
        """Wait until a drain asked for after a reply (`kick`) has finished; nothing to wait for returns at once."""
        while self._after_reply is not None and not self._after_reply.done():
            await asyncio.wait({self._after_reply})

    async def _drain_after_reply(self) -> None:
        """Let the turn finish (reply, checkpoint) before the drain competes with it for the event loop."""
        await asyncio.sleep(DRAIN_DELAY_S)
        while self._requested and self.health.pg_breaker.healthy:
            self._requested = False
            try:
                await self.drain()
            except Exception:  # a background task must not die silently
                logger.exception("background drain failed")

    def start(self, interval_s: float = DRAIN_INTERVAL_S) -> None:
        """Re-probe and drain every `interval_s` seconds in a background task (idempotent).

        Each round re-probes the servers last seen down (`ServerHealth.refresh`), then, when Postgres is up,
        drains. `stop` cancels it.
        """
        if self.loop_task is not None and not self.loop_task.done():
            return

        async def loop() -> None:
            while True:
                try:
                    await self.health.refresh()
                    if self.health.pg_breaker.healthy:
                        await self.drain()
                except Exception:  # a background task must not die silently
                    logger.exception("background drain round failed")
                await asyncio.sleep(interval_s)

        self.loop_task = self._tasks.spawn(loop())

    async def stop(self) -> None:
        """Stop the periodic loop (waits for it to end)."""
        task, self.loop_task = self.loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
