"""The start time of a ride file, read from its first bytes, for ordering files before they are debriefed.

Ordering a folder of rides (``coach debrief``, the inbox scan of ``records.inbox.pending_rides``) needs only each
file's first timestamp. The peek reads the file as a stream (gunzipping it as a stream when it is a gzip) and
stops at the first timestamped record, and after at most ``PEEK_MAX_BYTES`` of data in any case: a FIT file is
decoded by ``fitdecode`` up to its first ``record`` message; a TCX or GPX document is read by ElementTree's
incremental parser (``iterparse``) up to the first trackpoint's time. Neither the whole file nor the whole document
is ever decompressed or parsed here; :func:`training.ride_files.read_ride` checks the whole file afterwards.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import xml.etree.ElementTree as ET
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import fitdecode

from training.fit_reader import FIT_EPOCH_S, FIT_MIN_ABSOLUTE_TIME, frame_value
from training.ride_files import GZIP_MAGIC, format_from_name

__all__ = ["PEEK_MAX_BYTES", "peek_start_time"]

PEEK_MAX_BYTES = 4 * 1024 * 1024
"""Most data (after gunzip) the peek reads, bytes; a file whose first timestamp lies further gets None."""

# Local element names (namespace stripped) of a trackpoint, and of its time, in TCX and GPX.
_XML_POINT_TIME = {"tcx": ("Trackpoint", "Time"), "gpx": ("trkpt", "time")}


class _PeekLimitReached(Exception):
    """The peek read ``PEEK_MAX_BYTES`` without finding a timestamp."""


class _CappedReader(io.RawIOBase):
    """A read-only stream over another that fails once more than ``limit_bytes`` have been read.

    Attributes:
        bytes_read: bytes handed out so far.
    """

    def __init__(self, inner: io.BufferedIOBase | BinaryIO, limit_bytes: int) -> None:
        self._inner = inner
        self._limit_bytes = limit_bytes
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.bytes_read >= self._limit_bytes:
            raise _PeekLimitReached
        size = min(len(buffer), self._limit_bytes - self.bytes_read)
        data = self._inner.read(size)
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


def peek_start_time(path: str | os.PathLike[str], *, max_bytes: int = PEEK_MAX_BYTES) -> datetime | None:
    """Start time of a ride file, read from as few bytes as it takes.

    Args:
        path: a ``.fit``, ``.tcx`` or ``.gpx`` file, optionally gzipped (detected from the content).
        max_bytes: most data (after gunzip) read before giving up, bytes.

    Returns:
        The timezone-aware UTC time of the first timestamped record (TCX/GPX: of the first trackpoint with a
        time), or None when it is not within the first ``max_bytes`` or the file cannot be read (the full read,
        :func:`training.ride_files.read_ride`, then reports why).
    """
    file_path = Path(path)
    file_format = format_from_name(file_path.name)
    if file_format is None:
        return None
    try:
        with open(file_path, "rb") as fh:
            gzipped = fh.read(2) == GZIP_MAGIC
            fh.seek(0)
            source: io.BufferedIOBase | BinaryIO = gzip.GzipFile(fileobj=fh, mode="rb") if gzipped else fh
            stream = io.BufferedReader(_CappedReader(source, max_bytes))
            if file_format == "fit":
                return _peek_fit(stream)
            return _peek_xml(stream, *_XML_POINT_TIME[file_format])
    except (_PeekLimitReached, OSError, EOFError, zlib.error, fitdecode.FitError, ET.ParseError):
        return None
    except (ValueError, TypeError, struct.error):
        return None


def _peek_fit(stream: io.BufferedIOBase) -> datetime | None:
    """The first ``record`` timestamp, CRC checks off (the full read checks them)."""
    with fitdecode.FitReader(
        stream, processor=fitdecode.DataProcessorBase(), check_crc=fitdecode.CrcCheck.DISABLED
    ) as reader:
        for frame in reader:
            if frame.frame_type == fitdecode.FIT_FRAME_DATA and frame.name == "record":
                value = frame_value(frame, "timestamp")
                if isinstance(value, int) and value >= FIT_MIN_ABSOLUTE_TIME:
                    return datetime.fromtimestamp(value + FIT_EPOCH_S, tz=UTC)
    return None


def _peek_xml(stream: io.BufferedIOBase, point_tag: str, time_tag: str) -> datetime | None:
    """The text of the first ``time_tag`` element inside a ``point_tag`` element, as a UTC datetime."""
    depth_in_point = 0
    for event, element in ET.iterparse(stream, events=("start", "end")):
        local = element.tag.rsplit("}", 1)[-1]
        if local == point_tag:
            depth_in_point += 1 if event == "start" else -1
        elif event == "end" and local == time_tag and depth_in_point > 0 and element.text:
            moment = datetime.fromisoformat(element.text.strip())
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None
