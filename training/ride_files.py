"""Read ride files (FIT, TCX, GPX; optionally gzipped) into 1 Hz samples.

This module holds the :class:`Ride` type, the size caps and :func:`read_ride`, which checks a file's size and
hands it to its format's reader: :mod:`training.fit_reader` (``fitdecode``, with its CRC checks) or
:mod:`training.xml_readers` (``tcxreader`` for TCX, ``gpxpy`` for GPX). Each reader produces raw per-record
arrays; :func:`training.samples.resample_to_1hz` puts them on the 1 Hz grid. Errors are
:class:`training.ride_errors.RideFileError` (importable from here too).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np

from training.fit_reader import read_fit
from training.ride_errors import ERROR_CODES, RideFileError, one_line
from training.samples import RideSamples, resample_to_1hz
from training.xml_readers import read_gpx, read_tcx

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_XML_BYTES",
    "ERROR_CODES",
    "MAX_RECORDS",
    "RIDE_FILE_SUFFIXES",
    "Ride",
    "RideFileError",
    "RideSamples",
    "find_ride_files",
    "gunzipped_size",
    "read_ride",
]

RIDE_FILE_SUFFIXES = (".fit", ".fit.gz", ".tcx", ".tcx.gz", ".gpx", ".gpx.gz")
"""File name endings (case-insensitive) recognised as ride files when expanding folders."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Default cap of a ride file's data (after gunzip), bytes: `Settings.ride_max_bytes` (a 10-hour 1 Hz FIT file
is a few MB)."""

DEFAULT_MAX_XML_BYTES = 64 * 1024 * 1024
"""Default cap of a TCX or GPX document (after gunzip), bytes, checked before parsing: `Settings.ride_max_xml_bytes`
(a 24-hour 1 Hz TCX is about 30 MB)."""

MAX_RECORDS = 2_000_000
"""Most timestamped records read from one file (23 days at 1 Hz): past it the file is ``'file_too_large'``, so that a
small file of tiny FIT records cannot fill the memory with rows."""

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of a gzip file (RFC 1952)."""
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, eq=False)
class Ride:
    """A ride read from a file.

    Attributes:
        file_path: the path as given to :func:`read_ride`.
        file_sha256: SHA-256 hex digest of the file's bytes as stored (before any gunzip): the ride's identity.
        file_format: ``'fit'``, ``'tcx'`` or ``'gpx'``.
        sport: sport from the file where given (``'cycling'``, ``'running'``, or the file's own lower-case
            name), else ``'cycling'``.
        start_time: timezone-aware UTC time of the first sample (rounded to the second).
        samples: the 1 Hz samples.
        n_records: number of records (trackpoints) in the file that carry a timestamp, before resampling.
    """

    file_path: str
    file_sha256: str
    file_format: str
    sport: str
    start_time: datetime
    samples: RideSamples
    n_records: int = 0

    @property
    def ride_id(self) -> str:
        """Stable ride identifier: the first 32 hex characters (128 bits) of ``file_sha256``."""
        return self.file_sha256[:32]


def read_ride(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_xml_bytes: int = DEFAULT_MAX_XML_BYTES,
) -> Ride:
    """Read a FIT, TCX or GPX ride file (optionally gzipped) into 1 Hz samples.

    The format comes from the file name: ``.fit``, ``.tcx``, ``.gpx``, each optionally followed by ``.gz``
    (case-insensitive). Gzip is also detected from the content, so a gzipped file named ``.fit`` reads too.

    Sizes are checked before anything is parsed: a gzip is first decompressed as a stream into nothing, counting
    its bytes (memory: one 1 MB chunk), and refused as soon as the count passes the cap; a FIT file is then
    decoded from the decompressing stream, never held whole in memory.

    Args:
        path: the ride file.
        max_bytes: largest data (after gunzip) read, bytes.
        max_xml_bytes: largest TCX or GPX document (after gunzip) parsed, bytes.

    Returns:
        The ride, with samples resampled per :func:`training.samples.resample_to_1hz`.

    Raises:
        RideFileError: ``'not_a_file'`` (missing, a folder, or unreadable), ``'unsupported_format'`` (unknown
            extension), ``'empty_file'`` (0 bytes, or an empty gzip), ``'file_too_large'`` (data past
            ``max_bytes``, an XML document past ``max_xml_bytes``, or more than ``MAX_RECORDS`` records),
            ``'corrupt_file'`` (FIT header/CRC/EOF errors, malformed XML, bad gzip), ``'no_samples'`` (no record
            with a timestamp), ``'no_power_or_hr'`` (neither power nor heart rate in the file).
    """
    file_path = Path(path)
    name = file_path.name
    if not file_path.is_file():
        what = "is a folder, not a file" if file_path.is_dir() else "does not exist"
        raise RideFileError("not_a_file", f"{path}: {what}")
    file_format = format_from_name(name)
    if file_format is None:
        raise RideFileError(
            "unsupported_format", f"{name}: unsupported file type (expected .fit, .tcx or .gpx, optionally .gz)"
        )
    limit = max_bytes if file_format == "fit" else min(max_bytes, max_xml_bytes)
    try:
        with open(file_path, "rb") as fh:
            size_bytes = os.fstat(fh.fileno()).st_size
            if size_bytes == 0:
                raise RideFileError("empty_file", f"{name}: the file is empty")
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
            fh.seek(0)
            gzipped = fh.read(2) == GZIP_MAGIC
            fh.seek(0)
            if gzipped:
                data_bytes = gunzipped_size(fh, limit, name, _what(file_format))
                fh.seek(0)
                stream: io.BufferedIOBase | BinaryIO = gzip.GzipFile(fileobj=fh, mode="rb")
            else:
                data_bytes = size_bytes
                stream = fh
            if data_bytes > limit:
                raise _too_large(name, file_format, limit)
            if file_format == "fit":
                sport, timestamps_s, channels = read_fit(stream, name, MAX_RECORDS)
            elif file_format == "tcx":
                sport, timestamps_s, channels = read_tcx(stream.read(), name)
            else:
                sport, timestamps_s, channels = read_gpx(stream.read(), name)
    except OSError as exc:
        raise RideFileError("not_a_file", f"{path}: cannot read ({exc.strerror or exc})") from exc
    if timestamps_s.size > MAX_RECORDS:
        raise RideFileError("file_too_large", f"{name}: more than {MAX_RECORDS} records")

    resampled = resample_to_1hz(timestamps_s, channels)
    if resampled is None:
        raise RideFileError("no_samples", f"{name}: no records with a timestamp")
    start_epoch_s, samples = resampled
    if samples.power_w is None and samples.hr_bpm is None:
        raise RideFileError("no_power_or_hr", f"{name}: the file has neither power nor heart rate")
    return Ride(
        file_path=str(path),
        file_sha256=sha256,
        file_format=file_format,
        sport=sport,
        start_time=datetime.fromtimestamp(start_epoch_s, tz=UTC),
        samples=samples,
        n_records=int(np.count_nonzero(~np.isnan(timestamps_s))),
    )


def gunzipped_size(fh: BinaryIO, limit_bytes: int, name: str, what: str = "ride data") -> int:
    """Size of a gzip's content, decompressed as a stream and discarded, stopping past ``limit_bytes``.

    Memory stays at one chunk (1 MB) whatever the content's size: a gzip bomb is refused after ``limit_bytes``
    of decompression, never held. Multi-member gzip files are read whole, as ``gzip.decompress`` does.

    Args:
        fh: the gzip file, positioned at its start (left at an unspecified position).
        limit_bytes: the cap, bytes.
        name: the file's name, for the messages.
        what: what the content is, for the message.

    Returns:
        The content's size, bytes (at most ``limit_bytes``).

    Raises:
        RideFileError: ``'file_too_large'`` past ``limit_bytes``; ``'corrupt_file'`` for damaged or truncated
            gzip data; ``'empty_file'`` for an empty content.
    """
    total = 0
    try:
        with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                total += len(chunk)
                if total > limit_bytes:
                    raise RideFileError(
                        "file_too_large",
                        f"{name}: the {what} in the gzip is larger than {_mb(limit_bytes)} (the limit)",
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise RideFileError("corrupt_file", f"{name}: damaged gzip data ({one_line(exc)})") from exc
    if total == 0:
        raise RideFileError("empty_file", f"{name}: the gzip holds an empty file")
    return total


def _too_large(name: str, file_format: str, limit_bytes: int) -> RideFileError:
    return RideFileError(
        "file_too_large", f"{name}: the {_what(file_format)} is larger than {_mb(limit_bytes)} (the limit)"
    )


def _what(file_format: str) -> str:
    return "ride data" if file_format == "fit" else f"{file_format.upper()} document"


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):g} MB" if size_bytes >= 1024 * 1024 else f"{size_bytes} bytes"


def find_ride_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand paths into ride files.

    A folder expands (non-recursively, sorted by name) to the files in it whose names end with one of
    ``RIDE_FILE_SUFFIXES`` (case-insensitive). A path that is a file is returned as is, whatever its extension
    (:func:`read_ride` then reports ``'unsupported_format'``). Order of ``paths`` is kept; duplicates are
    removed.

    Args:
        paths: files and folders.

    Returns:
        The ride files.

    Raises:
        RideFileError: ``'not_a_file'`` for a path that does not exist; ``'no_ride_files'`` for a folder with
            no ride files in it.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            in_folder = sorted(p for p in path.iterdir() if p.is_file() and _is_ride_file_name(p.name))
            if not in_folder:
                raise RideFileError("no_ride_files", f"{given}: no .fit, .tcx or .gpx files in this folder")
            found.extend(in_folder)
        elif path.exists():
            found.append(path)
        else:
            raise RideFileError("not_a_file", f"{given}: does not exist")
    return list(dict.fromkeys(found))


def _is_ride_file_name(name: str) -> bool:
    return name.lower().endswith(RIDE_FILE_SUFFIXES)


def format_from_name(name: str) -> str | None:
    """The format a file name says: ``'fit'``, ``'tcx'`` or ``'gpx'`` (a ``.gz`` ending allowed), else None."""
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    for file_format in ("fit", "tcx", "gpx"):
        if lower.endswith("." + file_format):
            return file_format
    return None
