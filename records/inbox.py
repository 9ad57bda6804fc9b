"""The ride inbox: ride files waiting for their debrief, one folder per athlete.

Layout (`Settings.inbox_dir`, default `./inbox`)::

    <inbox_dir>/<athlete_id>/<ride file>      .fit, .fit.gz, .tcx, .tcx.gz, .gpx, .gpx.gz

A device sync, a script or the server's upload route (`PUT /inbox/{file_name}`, `server.app`) drops files
there; the scheduled debrief (`coach debrief --pending`, or the `pending_debriefs` graph run by a LangGraph cron)
debriefs every *pending* ride: an inbox file whose ride (identified by its content, as `read_ride` does) has no
debrief yet for that athlete, and a stored ride with no debrief. Files stay where they are: a ride already
debriefed is skipped by its content hash, so each ride is debriefed once however often the inbox is scanned. A file
that cannot be read is reported once: its failure is remembered by content (`memory.failed_files`) and later scans
list it as skipped without reading it again (`coach debrief FILE --athlete ID` still reads it).

Uploads (`InboxUpload`) are streamed to a hidden temporary file and renamed into place, so a scan never sees half
a file; one copy is kept per content (the same bytes under another name answer with the file already there); one
file may hold at most `Settings.inbox_max_file_bytes` and an athlete's folder at most `Settings.inbox_quota_bytes`.
Folders the inbox creates are mode 0700 and the files it writes 0600 (only the server's user reads them).

Everything here that touches the disk is synchronous; async callers run it in a thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from config.settings import get_settings
from memory.athlete_store import validate_athlete_id
from memory.errors import InvalidAthleteIdError
from memory.failed_files import failed_files
from memory.text import clean_text, find_unstorable
from records.rides import RideStore
from training.ride_files import RIDE_FILE_SUFFIXES
from training.ride_peek import peek_start_time

REMEMBERED_ERROR_CODES = frozenset(
    {"empty_file", "corrupt_file", "unsupported_format", "no_samples", "no_power_or_hr", "file_too_large"}
)
"""`RideFileError` codes that depend on the file's content alone: the scan remembers them and does not retry."""

logger = logging.getLogger(__name__)

_UPLOAD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@ ()+-]{0,199}$")
_LOCK_NAME = ".inbox.lock"


class InvalidUploadError(ValueError):
    """An uploaded file's name or content is not acceptable (HTTP 400)."""

    code = "invalid_upload"
    http_status = 400


class UploadTooLargeError(InvalidUploadError):
    """An uploaded file is larger than `Settings.inbox_max_file_bytes` (HTTP 413)."""

    code = "file_too_large"
    http_status = 413


class InboxQuotaError(InvalidUploadError):
    """Storing an upload would take the athlete's inbox past `Settings.inbox_quota_bytes` (HTTP 507)."""

    code = "inbox_quota_exceeded"
    http_status = 507


@dataclass(frozen=True)
class PendingRide:
    """A ride waiting for its debrief: an inbox file, or a stored ride (then `ride_path` is None)."""

    ride_id: str
    ride_path: str | None
    start_time: datetime | None


@dataclass(frozen=True)
class SkippedFile:
    """An inbox file not read again: its content failed before (see `memory.failed_files`)."""

    ride_id: str
    ride_path: str
    code: str
    message: str
    failed_at: datetime


@dataclass(frozen=True)
class InboxScan:
    """What a scan of an athlete's rides found: rides to debrief, oldest first, and files skipped."""

    pending: list[PendingRide]
    skipped: list[SkippedFile]


@dataclass(frozen=True)
class StoredUpload:
    """An upload kept in the inbox.

    Attributes:
        path: the file in the athlete's inbox folder.
        ride_id: its content id (first 32 hex characters of the SHA-256 of its bytes, as `read_ride` gives).
        size_bytes: its size.
        duplicate: True when the same bytes were already there (`path` is that file; nothing was written).
    """

    path: Path
    ride_id: str
    size_bytes: int
    duplicate: bool


def inbox_root(inbox_dir: Path | None = None) -> Path:
    """The inbox folder (absolute): `inbox_dir`, else `Settings.inbox_dir`."""
    return Path(inbox_dir if inbox_dir is not None else get_settings().inbox_dir).absolute()


def athlete_inbox(athlete_id: str, inbox_dir: Path | None = None) -> Path:
    """The athlete's inbox folder (which may not exist yet).

    Raises:
        InvalidAthleteIdError: the id is not a valid athlete id (so it cannot name a folder outside the inbox).
    """
    return inbox_root(inbox_dir) / validate_athlete_id(athlete_id)


def inbox_athletes(inbox_dir: Path | None = None) -> list[str]:
    """The athletes that have an inbox folder, sorted; folders whose names are not athlete ids are ignored."""
    root = inbox_root(inbox_dir)
    if not root.is_dir():
        return []
    athletes = []
    for child in sorted(root.iterdir()):
        try:
            if child.is_dir():
                athletes.append(validate_athlete_id(child.name))
        except InvalidAthleteIdError:
            continue
    return athletes


def is_in_athlete_inbox(path: str | os.PathLike[str], athlete_id: str, inbox_dir: Path | None = None) -> bool:
    """Whether `path`, symbolic links resolved, lies inside the athlete's inbox folder."""
    try:
        folder = athlete_inbox(athlete_id, inbox_dir).resolve()
        target = Path(path).resolve()
    except (InvalidAthleteIdError, OSError, RuntimeError, ValueError):
        return False
    return target != folder and target.is_relative_to(folder)


def is_ride_file_name(name: str) -> bool:
    """A ride file's name: one of `RIDE_FILE_SUFFIXES`, not hidden (uploads in progress start with a dot)."""
    return not name.startswith(".") and name.lower().endswith(RIDE_FILE_SUFFIXES)


def inbox_files(athlete_id: str, inbox_dir: Path | None = None) -> list[Path]:
    """The ride files in the athlete's inbox folder (not recursive), sorted by name.

    A file whose name is not UTF-8 text (Python reads its bytes as lone surrogates, which Postgres cannot store)
    is left out with a WARNING naming it: rename it to have it debriefed.
    """
    folder = athlete_inbox(athlete_id, inbox_dir)
    if not folder.is_dir():
        return []
    files = []
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and is_ride_file_name(p.name)):
            continue
        if find_unstorable(str(p)) is not None:
            logger.warning("inbox file %r skipped: its name is not UTF-8 text; rename it", clean_text(str(p)))
            continue
        files.append(p)
    return files


def file_ride_id(path: str | os.PathLike[str]) -> str | None:
    """The ride id `training.ride_files.read_ride` gives this file (SHA-256 prefix), or None if unreadable."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None
    return digest[:32]


async def pending_rides(store: RideStore, athlete_id: str, inbox_dir: Path | None = None) -> list[PendingRide]:
    """The athlete's rides waiting for a debrief, oldest first: `scan_inbox(...).pending`."""
    return (await scan_inbox(store, athlete_id, inbox_dir)).pending


async def scan_inbox(store: RideStore, athlete_id: str, inbox_dir: Path | None = None) -> InboxScan:
    """The athlete's rides waiting for a debrief, oldest first (unreadable files last, by name), and skipped files.

    Inbox files whose ride is already debriefed are left out (read by content hash); a stored ride without a
    debrief comes once, as a stored ride, even when its file is in the inbox too; a file whose content failed
    before (`memory.failed_files`) is skipped, not read. Only each file's hash and start time are read
    (`training.ride_peek`).

    Raises:
        InvalidAthleteIdError: a malformed athlete id.
    """
    athlete_id = validate_athlete_id(athlete_id)
    stored_pending = await store.rides_without_debrief(athlete_id)
    failed = await failed_files(store.pool, athlete_id)
    pending = {r: PendingRide(ride_id=r, ride_path=None, start_time=None) for r in stored_pending}
    skipped: list[SkippedFile] = []
    files = await asyncio.to_thread(inbox_files, athlete_id, inbox_dir)
    for path in files:
        ride_id = await asyncio.to_thread(file_ride_id, path)
        if ride_id is None:
            ride_id = f"unreadable:{path.name}"  # read_ride will report why
        elif ride_id in pending or await store.get_debrief(athlete_id, ride_id) is not None:
            continue
        elif ride_id in failed:
            row = failed[ride_id]
            skipped.append(SkippedFile(ride_id, str(path), row["code"], row["message"], row["failed_at"]))
            continue
        start = await asyncio.to_thread(peek_start_time, path)
        pending[ride_id] = PendingRide(ride_id=ride_id, ride_path=str(path), start_time=start)
    for ride_id in stored_pending:
        record = await store.get_ride(athlete_id, ride_id)
        if record is not None:
            pending[ride_id] = PendingRide(ride_id=ride_id, ride_path=None, start_time=record.start_time)
    ordered = sorted(
        pending.values(),
        key=lambda p: (p.start_time is None, p.start_time.timestamp() if p.start_time else 0.0, p.ride_path or ""),
    )
    return InboxScan(pending=ordered, skipped=skipped)


def ensure_athlete_inbox(athlete_id: str, inbox_dir: Path | None = None) -> Path:
    """The athlete's inbox folder, created if needed: mode 0700 (the inbox root too, when created here).

    Raises:
        InvalidAthleteIdError: a malformed athlete id.
        OSError: the folder cannot be created.
    """
    folder = athlete_inbox(athlete_id, inbox_dir)
    root = folder.parent
    if not root.is_dir():
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)  # mkdir's mode is filtered by the umask
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


@contextmanager
def _inbox_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock (`flock` on a hidden file): one upload at a time decides on dedupe and quota."""
    fd = os.open(folder / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _ride_files_with_sizes(folder: Path) -> list[tuple[Path, int]]:
    found = []
    for entry in os.scandir(folder):
        if is_ride_file_name(entry.name) and entry.is_file(follow_symlinks=False):
            found.append((Path(entry.path), entry.stat(follow_symlinks=False).st_size))
    return sorted(found)


def inbox_usage_bytes(athlete_id: str, inbox_dir: Path | None = None) -> int:
    """Bytes of ride files in the athlete's inbox folder (what `Settings.inbox_quota_bytes` bounds)."""
    folder = athlete_inbox(athlete_id, inbox_dir)
    return sum(size for _, size in _ride_files_with_sizes(folder)) if folder.is_dir() else 0


class InboxUpload:
    """An upload in progress into an athlete's inbox: `write` its chunks, then `commit` (or `discard`).

    The bytes go to a hidden temporary file (mode 0600) in the athlete's folder, hashed as they come; `commit`
    then, holding the folder's lock, answers with the file already there when the same bytes are (one copy per
    content), refuses an upload that would pass the quota, and renames the file into place (atomic: the scan
    never sees half a file). A file of the same name and other content gets the content's hash in its name, so
    nothing is overwritten. Used as a context manager, an exception discards the upload.

    Attributes:
        folder: the athlete's inbox folder.
        size_bytes: bytes written so far.
    """

    def __init__(
        self,
        athlete_id: str,
        file_name: str,
        *,
        inbox_dir: Path | None = None,
        max_file_bytes: int | None = None,
        quota_bytes: int | None = None,
    ) -> None:
        """Check the name, create the folder (0700) and open the temporary file.

        Args:
            athlete_id: the uploading athlete.
            file_name: the name the file gets (a plain ride file name, `RIDE_FILE_SUFFIXES`).
            inbox_dir: the inbox root (default `Settings.inbox_dir`).
            max_file_bytes: the largest file (default `Settings.inbox_max_file_bytes`).
            quota_bytes: the most the athlete's folder may hold (default `Settings.inbox_quota_bytes`).

        Raises:
            InvalidUploadError: a name that is not a plain ride file name.
            InvalidAthleteIdError: a malformed athlete id.
        """
        if not _UPLOAD_NAME_RE.fullmatch(file_name) or not is_ride_file_name(file_name):
            raise InvalidUploadError(
                f"invalid file name {file_name!r}: a plain name ending in {', '.join(RIDE_FILE_SUFFIXES)}"
            )
        settings = get_settings()
        self.file_name = file_name
        self.max_file_bytes = int(max_file_bytes if max_file_bytes is not None else settings.inbox_max_file_bytes)
        self.quota_bytes = int(quota_bytes if quota_bytes is not None else settings.inbox_quota_bytes)
        self.folder = ensure_athlete_inbox(athlete_id, inbox_dir)
        self.size_bytes = 0
        self._sha256 = hashlib.sha256()
        self._part = self.folder / f".upload-{uuid.uuid4().hex}.part"
        self._fh = os.fdopen(os.open(self._part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def __enter__(self) -> InboxUpload:
        """The upload itself."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Discard the upload unless it was committed."""
        self.discard()

    def check_declared_size(self, size_bytes: int) -> None:
        """Refuse early, before reading the body, a size the client declares (`Content-Length`).

        Raises:
            UploadTooLargeError: larger than the largest file.
            InboxQuotaError: the folder would pass the quota.
        """
        self._check_size(size_bytes)
        self._check_quota(size_bytes, inbox_usage_bytes(self.folder.name, self.folder.parent))

    def write(self, chunk: bytes) -> None:
        """Append a chunk of the body.

        Raises:
            UploadTooLargeError: the body passed the largest file (nothing is kept).
        """
        self._check_size(self.size_bytes + len(chunk))
        self._sha256.update(chunk)
        self._fh.write(chunk)
        self.size_bytes += len(chunk)

    def commit(self) -> StoredUpload:
        """Keep the upload: the file already holding these bytes, or this one renamed into place (mode 0600).

        Raises:
            InvalidUploadError: an empty body.
            InboxQuotaError: the folder would pass the quota (nothing is kept).
        """
        self._fh.close()
        if self.size_bytes == 0:
            raise InvalidUploadError("the file is empty")
        digest = self._sha256.hexdigest()
        with _inbox_lock(self.folder):
            files = _ride_files_with_sizes(self.folder)
            for path, size in files:
                if size == self.size_bytes and _sha256_of(path) == digest:
                    self.discard()
                    return StoredUpload(path=path, ride_id=digest[:32], size_bytes=size, duplicate=True)
            self._check_quota(self.size_bytes, sum(size for _, size in files))
            target = self.folder / self.file_name
            if target.exists():
                stem, dot, rest = self.file_name.partition(".")
                target = self.folder / f"{stem}-{digest[:8]}{dot}{rest}"
            os.replace(self._part, target)
        return StoredUpload(path=target, ride_id=digest[:32], size_bytes=self.size_bytes, duplicate=False)

    def discard(self) -> None:
        """Drop the temporary file (nothing happens after a commit)."""
        self._fh.close()
        self._part.unlink(missing_ok=True)

    def _check_size(self, size_bytes: int) -> None:
        if size_bytes > self.max_file_bytes:
            raise UploadTooLargeError(f"the file is larger than {self.max_file_bytes} bytes (the limit)")

    def _check_quota(self, size_bytes: int, used_bytes: int) -> None:
        if used_bytes + size_bytes > self.quota_bytes:
            raise InboxQuotaError(
                f"the inbox holds {used_bytes} bytes of ride files: {size_bytes} more would pass its quota of "
                f"{self.quota_bytes} bytes (debriefed files can be removed from it)"
            )


def save_upload(
    athlete_id: str, file_name: str, data: bytes, inbox_dir: Path | None = None, **limits: Any
) -> StoredUpload:
    """Store a whole body in the athlete's inbox (see `InboxUpload`; `limits`: its size keyword arguments).

    Raises:
        InvalidUploadError: a bad name, an empty body; `UploadTooLargeError`, `InboxQuotaError` past the limits.
    """
    with InboxUpload(athlete_id, file_name, inbox_dir=inbox_dir, **limits) as upload:
        upload.write(data)
        return upload.commit()


def _sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None
