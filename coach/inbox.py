"""The ride inbox: ride files waiting for their debrief, one folder per athlete.

Layout (`Settings.inbox_dir`, default `./inbox`)::

    <inbox_dir>/<athlete_id>/<ride file>      .fit, .fit.gz, .tcx, .tcx.gz, .gpx, .gpx.gz

A device sync, a script or the server's upload route (`PUT /inbox/{file_name}`, `coach.server`) drops files
there; the scheduled debrief (`coach debrief --pending`, or the `pending_debriefs` graph run by a LangGraph cron)
debriefs every *pending* ride: an inbox file whose ride (identified by its content, as `read_ride` does) has no
debrief yet for that athlete, and a stored ride with no debrief. Files stay where they are: a ride already
debriefed is skipped by its content hash, so each ride is debriefed once however often the inbox is scanned, and
a file that cannot be read is reported on every scan until it is fixed or removed.

Everything here that touches the disk is synchronous and cheap; async callers run it in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from coach.settings import get_settings
from memory.athlete_store import AthleteStore, validate_athlete_id
from memory.errors import InvalidAthleteIdError
from memory.text import clean_text, find_unstorable
from training.ride_files import RIDE_FILE_SUFFIXES, peek_start_time

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
"""Largest ride file the upload route accepts (a 10-hour 1 Hz FIT file is a few MB)."""

_UPLOAD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@ ()+-]{0,199}$")


class InvalidUploadError(ValueError):
    """An uploaded file's name or size is not acceptable."""

    code = "invalid_upload"


@dataclass(frozen=True)
class PendingRide:
    """A ride waiting for its debrief: an inbox file, or a stored ride (then `ride_path` is None)."""

    ride_id: str
    ride_path: str | None
    start_time: datetime | None


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


async def pending_rides(store: AthleteStore, athlete_id: str, inbox_dir: Path | None = None) -> list[PendingRide]:
    """The athlete's rides waiting for a debrief, oldest first (unreadable files last, by name).

    Inbox files whose ride is already debriefed are left out (read by content hash); a stored ride without a
    debrief comes once, as a stored ride, even when its file is in the inbox too.
    """
    athlete_id = validate_athlete_id(athlete_id)
    stored_pending = await store.rides_without_debrief(athlete_id)
    pending = {r: PendingRide(ride_id=r, ride_path=None, start_time=None) for r in stored_pending}
    files = await asyncio.to_thread(inbox_files, athlete_id, inbox_dir)
    for path in files:
        ride_id = await asyncio.to_thread(file_ride_id, path)
        if ride_id is None:
            ride_id = f"unreadable:{path.name}"  # read_ride will report why
        elif ride_id in pending or await store.get_debrief(athlete_id, ride_id) is not None:
            continue
        start = await asyncio.to_thread(peek_start_time, path)
        pending[ride_id] = PendingRide(ride_id=ride_id, ride_path=str(path), start_time=start)
    for ride_id in stored_pending:
        record = await store.get_ride(athlete_id, ride_id)
        if record is not None:
            pending[ride_id] = PendingRide(ride_id=ride_id, ride_path=None, start_time=record.start_time)
    return sorted(
        pending.values(),
        key=lambda p: (p.start_time is None, p.start_time.timestamp() if p.start_time else 0.0, p.ride_path or ""),
    )


def save_upload(athlete_id: str, file_name: str, data: bytes, inbox_dir: Path | None = None) -> Path:
    """Write an uploaded ride file into the athlete's inbox, atomically (the scan never sees half a file).

    A file of the same name and content is kept as is; one of the same name and other content gets the
    content's hash in its name, so nothing is overwritten.

    Returns:
        The file's path in the inbox.

    Raises:
        InvalidUploadError: a name that is not a plain ride file name, an empty or oversized file.
    """
    if not _UPLOAD_NAME_RE.fullmatch(file_name) or not is_ride_file_name(file_name):
        raise InvalidUploadError(
            f"invalid file name {file_name!r}: a plain name ending in {', '.join(RIDE_FILE_SUFFIXES)}"
        )
    if not data:
        raise InvalidUploadError("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidUploadError(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    folder = athlete_inbox(athlete_id, inbox_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    digest = hashlib.sha256(data).hexdigest()
    if target.exists():
        if file_ride_id(target) == digest[:32]:
            return target
        stem, dot, rest = file_name.partition(".")
        target = folder / f"{stem}-{digest[:8]}{dot}{rest}"
        if target.exists():
            return target
    part = folder / f".upload-{uuid.uuid4().hex}.part"
    try:
        with open(part, "wb") as fh:
            fh.write(data)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target
