"""Durable outboxes of archive writes, so that a write never blocks the reply nor gets lost (docs/architecture.md).

`Outbox`: a Redis Stream (`outbox:archive`). The reply path only XADDs; `drain` later moves the entries to
Postgres with `Archive.write` (idempotent by message id; with the messages' embeddings, computed here, off the
reply path) and XDELs them. A crash between the Postgres commit and
the XDEL rewrites the same ids, which the archive skips: each message is archived exactly once. The stream is only
as durable as Redis: run Redis with `appendonly yes`.

`LocalSpool`: the last resort when Redis and Postgres are both down: JSON lines appended to a local file, picked
up by a later drain. It lives on the local disk of one machine, so it survives a process restart there, but not
the loss of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from redis.asyncio import Redis

from memory.archive import Archive
from memory.messages import ChatMessage

logger = logging.getLogger(__name__)

OUTBOX_STREAM = "outbox:archive"
"""Default Redis Stream of pending archive writes."""
PG_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # includes psycopg_pool.PoolTimeout
    psycopg_pool.PoolTimeout,
    TimeoutError,
    OSError,
)
"""Exceptions that mean "Postgres cannot be reached right now"."""
DEFAULT_SPOOL_ROOT = Path(tempfile.gettempdir()) / "endurance-coach-spool"
"""Root of the default spool directories (one subdirectory per database, see `default_spool_dir`)."""
SPOOL_DIR_MODE = 0o700
"""Permissions of spool directories: the spool holds the athletes' messages, so only the owner may list it."""
SPOOL_FILE_MODE = 0o600
"""Permissions of spool files: readable and writable by the owner only."""
_FIELD = "m"
_REASON_MAX_CHARS = 300


@dataclass(frozen=True)
class DeadLetter:
    """An outbox entry moved to the dead-letter stream instead of the archive.

    Attributes:
        entry_id: its id in the outbox stream.
        reason: why (the parse error, or the error Postgres gave), one line.
        message: the message, when the entry parsed (Postgres refused it); None when it did not parse.
    """

    entry_id: str
    reason: str
    message: ChatMessage | None = None


def _reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:_REASON_MAX_CHARS]


class Outbox:
    """A Redis Stream of messages waiting to be archived.

    Args:
        redis: a client with `decode_responses=True`.
        stream: the stream's key (one per deployment; tests use their own).

    `enqueue` and `drain` raise redis-py's `ConnectionError`/`TimeoutError` when Redis cannot be reached.
    Entries that cannot be parsed or that Postgres rejects as invalid (not as unreachable) are moved to the
    stream `<stream>:dead` rather than blocking the outbox forever, each with a `reason` field and its
    `origin_id`, and logged at ERROR; `dead_lettered` lists those of the last `drain`, so that the caller can
    tell the athlete (`ConversationMemory` turns them into the status `degraded:dead_letter`). `coach doctor`
    shows the stream.
    """

    def __init__(self, redis: Redis, *, stream: str = OUTBOX_STREAM) -> None:
        """Keep the client and the stream's key."""
        self.redis = redis
        self.stream = stream
        self.dead_stream = f"{stream}:dead"
        self.last_error: BaseException | None = None
        """The Postgres error that stopped the last `drain`, or None when it ran to the end."""
        self.dead_lettered: list[DeadLetter] = []
        """The entries the last `drain` moved to the dead-letter stream."""
        self._lock = asyncio.Lock()

    async def enqueue(self, messages: Sequence[ChatMessage]) -> list[str]:
        """XADD each message's JSON (field `m`), in one MULTI/EXEC pipeline: all of them or none.

        Returns:
            The stream entry ids, in order.
        """
        if not messages:
            return []
        async with self.redis.pipeline(transaction=True) as pipe:
            for m in messages:
                pipe.xadd(self.stream, {_FIELD: m.to_json()})
            return [str(i) for i in await pipe.execute()]

    async def pending(self) -> int:
        """Return the number of entries waiting in the stream."""
        return int(await self.redis.xlen(self.stream))

    async def drain(self, archive: Archive, batch: int = 500) -> int:
        """Move every waiting entry to the archive, oldest first, `batch` entries per Postgres transaction.

        Loop: XRANGE the oldest `batch` entries, `archive.write` them, XDEL them; until the stream is empty.
        When Postgres cannot be reached, stop and leave the remaining entries for the next drain. Drains of one
        `Outbox` object run one at a time; concurrent drains in other processes are safe (writes are
        idempotent) but duplicate work.

        Returns:
            The number of entries moved to the archive by this call (including ones already archived by an
            interrupted earlier drain; excluding dead-lettered ones).

        Raises:
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError: Redis cannot be reached.
        """
        moved = 0
        async with self._lock:
            self.last_error = None
            self.dead_lettered = []
            while True:
                entries = await self.redis.xrange(self.stream, "-", "+", count=batch)
                if not entries:
                    return moved
                entry_ids = [str(entry_id) for entry_id, _ in entries]
                good: list[tuple[str, ChatMessage]] = []
                bad: list[tuple[dict[str, str], DeadLetter]] = []
                for entry_id, raw_fields in entries:
                    fields = {str(k): str(v) for k, v in (raw_fields or {}).items()}
                    try:
                        good.append((str(entry_id), ChatMessage.from_json(fields[_FIELD])))
                    except (KeyError, ValueError) as exc:
                        logger.error("outbox entry %s is not a message (%s): dead-lettered", entry_id, exc)
                        bad.append((fields, DeadLetter(str(entry_id), _reason(exc))))
                try:
                    await archive.write([m for _, m in good], embed=True)
                except PG_DOWN_ERRORS as exc:
                    logger.warning("outbox drain stopped, Postgres unreachable: %s", exc)
                    self.last_error = exc
                    return moved
                except (psycopg.Error, UnicodeEncodeError) as exc:  # a row Postgres rejects: find it, one by one
                    logger.error("outbox batch rejected (%s): retrying entry by entry", exc)
                    rejected = await self._write_one_by_one(archive, good)
                    if rejected is None:
                        return moved
                    bad += [({_FIELD: d.message.to_json()}, d) for d in rejected if d.message is not None]
                    good = [(i, m) for i, m in good if i not in {d.entry_id for d in rejected}]
                if bad:
                    await self._dead_letter(bad)
                await self.redis.xdel(self.stream, *entry_ids)
                moved += len(good)

    async def _write_one_by_one(self, archive: Archive, good: list[tuple[str, ChatMessage]]) -> list[DeadLetter] | None:
        """Write entries singly; return the rejected ones, or None when Postgres became unreachable."""
        rejected = []
        for entry_id, m in good:
            try:
                await archive.write([m], embed=True)
            except PG_DOWN_ERRORS as exc:
                self.last_error = exc
                return None
            except (psycopg.Error, UnicodeEncodeError) as exc:
                logger.error(
                    "outbox entry %s (%s message of %s/%s) rejected by Postgres (%s): dead-lettered",
                    entry_id,
                    m.role,
                    m.athlete_id,
                    m.session_id,
                    exc,
                )
                rejected.append(DeadLetter(entry_id, _reason(exc), m))
        return rejected

    async def _dead_letter(self, entries: list[tuple[dict[str, str], DeadLetter]]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for fields, dead in entries:
                record: dict[Any, Any] = {**fields, "origin_id": dead.entry_id, "reason": dead.reason}
                pipe.xadd(self.dead_stream, record)
            await pipe.execute()
        self.dead_lettered += [dead for _, dead in entries]


def default_spool_dir(database_url: str) -> Path:
    """Return the default spool directory of a database: `DEFAULT_SPOOL_ROOT/<16 hex of its URL's hash>`.

    The hash is of the URL without its password (libpq conninfo, `password` dropped), so a password change
    does not orphan the turns spooled before it. An unparseable URL is hashed as it is.
    """
    try:
        info = psycopg.conninfo.conninfo_to_dict(database_url)
    except psycopg.ProgrammingError:
        key = database_url
    else:
        info.pop("password", None)
        key = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in sorted(info.items())})
    return DEFAULT_SPOOL_ROOT / hashlib.sha256(key.encode()).hexdigest()[:16]


def _make_private_dir(directory: Path) -> None:
    """Create `directory` and its missing parents with mode `SPOOL_DIR_MODE`; tighten it if it exists wider."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=SPOOL_DIR_MODE)
    if directory.stat().st_mode & 0o777 != SPOOL_DIR_MODE and directory.stat().st_uid == os.getuid():
        directory.chmod(SPOOL_DIR_MODE)


class LocalSpool:
    """Last-resort outbox on local disk: one JSONL file per process in `directory`.

    The directory is made mode 0700 and the files 0600 (they hold messages). `append` writes under an exclusive
    `flock` and reopens the file if a drain has claimed (unlinked) it;
    `drain` archives every `*.jsonl` file of the directory it can lock (its own and those of dead processes),
    then unlinks it. File I/O runs in a worker thread, off the event loop.

    Args:
        directory: where spool files live (created if missing).
    """

    def __init__(self, directory: Path) -> None:
        """Choose this process's spool file; nothing is created until the first append."""
        self.directory = Path(directory)
        self.path = self.directory / f"archive-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.last_error: BaseException | None = None
        """The Postgres error that stopped the last `drain`, or None."""
        self._lock = asyncio.Lock()

    async def append(self, messages: Sequence[ChatMessage]) -> None:
        """Append the messages as JSON lines (fsync'd).

        Raises:
            OSError: the file cannot be written.
        """
        if messages:
            lines = "".join(m.to_json() + "\n" for m in messages)
            async with self._lock:
                await asyncio.to_thread(self._append_sync, lines)

    def _append_sync(self, lines: str) -> None:
        _make_private_dir(self.directory)
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, SPOOL_FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink == 0:  # a drain claimed this file after we opened it: start a new one
                    continue
                if os.fstat(fd).st_mode & 0o777 != SPOOL_FILE_MODE:
                    os.fchmod(fd, SPOOL_FILE_MODE)
                os.write(fd, lines.encode("utf-8"))
                os.fsync(fd)
                return
            finally:
                os.close(fd)

    async def pending(self) -> int:
        """Return the number of spooled messages waiting in the directory."""
        return await asyncio.to_thread(self._pending_sync)

    def _pending_sync(self) -> int:
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.glob("*.jsonl"):
            try:
                with path.open("rb") as f:
                    total += sum(1 for line in f if line.strip())
            except FileNotFoundError:
                continue
        return total

    async def drain(self, archive: Archive) -> int:
        """Archive every spooled message, then delete the spool files; stop at the first Postgres failure.

        Returns:
            The number of messages moved to the archive (lines that do not parse are logged and dropped).
        """
        moved = 0
        async with self._lock:
            self.last_error = None
            if not await asyncio.to_thread(self.directory.is_dir):
                return 0
            paths = await asyncio.to_thread(lambda: sorted(self.directory.glob("*.jsonl")))
            for path in paths:
                claimed = await asyncio.to_thread(_claim, path)
                if claimed is None:
                    continue  # another process holds it
                fd, lines = claimed
                try:
                    messages = []
                    for n, line in enumerate(lines, start=1):
                        try:
                            messages.append(ChatMessage.from_json(line))
                        except ValueError as exc:
                            logger.error("spool %s line %d is not a message (%s): dropped", path, n, exc)
                    try:
                        await archive.write(messages, embed=True)
                    except PG_DOWN_ERRORS as exc:
                        logger.warning("spool drain stopped, Postgres unreachable: %s", exc)
                        self.last_error = exc
                        return moved
                    await asyncio.to_thread(path.unlink, True)
                    moved += len(messages)
                finally:
                    await asyncio.to_thread(os.close, fd)
        return moved


def _claim(path: Path) -> tuple[int, list[str]] | None:
    """Lock a spool file without waiting and read its lines; None if it is locked or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    with os.fdopen(os.dup(fd), "r", encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return fd, lines
