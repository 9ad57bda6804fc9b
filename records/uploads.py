"""Uploads into the ride inbox (`records.inbox`): streamed to disk, one copy per content, size and quota limits.

Uploads (`InboxUpload`, `save_upload`; the server's `PUT /inbox/{file_name}`, `server.app`) are streamed to a hidden
temporary file and renamed into place, so a scan never sees half a file; one copy is kept per content (the same
bytes under another name answer with the file already there); one file may hold at most
`Settings.inbox_max_file_bytes` and an athlete's folder at most `Settings.inbox_quota_bytes`. Folders are mode 0700
(`records.inbox.ensure_athlete_inbox`) and the files written 0600 (only the server's user reads them).

Everything here is synchronous disk work; async callers run it in a thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from config.settings import get_settings
from records.inbox import athlete_inbox, ensure_athlete_inbox, is_ride_file_name
from training.ride_files import RIDE_FILE_SUFFIXES

__all__ = [
    "InboxQuotaError",
    "InboxUpload",
    "InvalidUploadError",
    "StoredUpload",
    "UploadTooLargeError",
    "inbox_usage_bytes",
    "save_upload",
]

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
