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

Uploads into the inbox are written by `records.uploads`. Folders the inbox creates are mode 0700 (only the
server's user reads them).

Everything here that touches the disk is synchronous; async callers run it in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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
