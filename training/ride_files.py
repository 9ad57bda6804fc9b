"""Read ride files (FIT, TCX, GPX; optionally gzipped) into 1 Hz samples.

Parsing uses the format libraries: ``fitdecode`` (FIT, with its default CRC checks, so a truncated or damaged
file is an error and never a silent partial ride), ``tcxreader`` (TCX, with ``only_gps=False`` so indoor rides
keep their samples) and ``gpxpy`` (GPX, with power, heart rate and cadence from the trackpoint extensions).
Each reader produces raw per-record arrays; :func:`training.samples.resample_to_1hz` puts them on the 1 Hz grid.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import fitdecode
import gpxpy
import gpxpy.gpx
import numpy as np
from gpxpy.geo import EARTH_RADIUS as EARTH_RADIUS_M
from tcxreader.tcxreader import TCXReader

from training.samples import RideSamples, resample_to_1hz

__all__ = [
    "RIDE_FILE_SUFFIXES",
    "Ride",
    "RideFileError",
    "RideSamples",
    "find_ride_files",
    "read_ride",
]

ERROR_CODES = frozenset(
    {
        "empty_file",
        "corrupt_file",
        "unsupported_format",
        "not_a_file",
        "no_samples",
        "no_power_or_hr",
        "no_ride_files",
        "file_too_large",
    }
)
"""Codes carried by :class:`RideFileError`."""

RIDE_FILE_SUFFIXES = (".fit", ".fit.gz", ".tcx", ".tcx.gz", ".gpx", ".gpx.gz")
"""File name endings (case-insensitive) recognised as ride files when expanding folders."""

DEFAULT_SPORT = "cycling"

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Default cap of a ride file's data (after gunzip), bytes: `Settings.ride_max_bytes` (a 10-hour 1 Hz FIT file
is a few MB)."""

DEFAULT_MAX_XML_BYTES = 64 * 1024 * 1024
"""Default cap of a TCX or GPX document (after gunzip), bytes, checked before parsing: `Settings.ride_max_xml_bytes`
(a 24-hour 1 Hz TCX is about 30 MB)."""

MAX_RECORDS = 2_000_000
"""Most timestamped records read from one file (23 days at 1 Hz): past it the file is ``'file_too_large'``, so that a
small file of tiny FIT records cannot fill the memory with rows."""

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1024 * 1024

# Sport names as written by devices and apps, mapped to this project's names.
_SPORT_ALIASES = {
    "biking": "cycling",
    "bike": "cycling",
    "ride": "cycling",
    "cycling": "cycling",
    "road_biking": "cycling",
    "virtualride": "cycling",
    "virtual_ride": "cycling",
    "ebikeride": "cycling",
    "mountain_biking": "cycling",
    "1": "cycling",  # Strava GPX export: activity type 1 is Ride
    "running": "running",
    "run": "running",
    "9": "running",  # Strava GPX export: activity type 9 is Run
}
_UNINFORMATIVE_SPORTS = frozenset({"generic", "all", "other"})  # FIT and TCX catch-all values


class RideFileError(Exception):
    """A ride file that cannot be read, with a machine-readable code and a one-line message.

    ``str(error)`` is the message; the code is for programs (and tests).

    Attributes:
        code: one of ``ERROR_CODES``: ``'empty_file'``, ``'corrupt_file'``, ``'unsupported_format'``,
            ``'not_a_file'``, ``'no_samples'``, ``'no_power_or_hr'``, ``'no_ride_files'``, ``'file_too_large'``.
        message: a one-line explanation naming the file.
    """

    def __init__(self, code: str, message: str):
        """Create the error.

        Args:
            code: one of ``ERROR_CODES``.
            message: a one-line explanation naming the file.

        Raises:
            ValueError: if ``code`` is not one of ``ERROR_CODES``.
        """
        if code not in ERROR_CODES:
            raise ValueError(f"unknown RideFileError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


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
    file_format = _format_from_name(name)
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
            gzipped = fh.read(2) == _GZIP_MAGIC
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
                sport, timestamps_s, channels = _read_fit(stream, name)
            elif file_format == "tcx":
                sport, timestamps_s, channels = _read_tcx(stream.read(), name)
            else:
                sport, timestamps_s, channels = _read_gpx(stream.read(), name)
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
        raise RideFileError("corrupt_file", f"{name}: damaged gzip data ({_one_line(exc)})") from exc
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


def _format_from_name(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    for file_format in ("fit", "tcx", "gpx"):
        if lower.endswith("." + file_format):
            return file_format
    return None


def _normalise_sport(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if not text:
        return None
    if text in _SPORT_ALIASES:
        return _SPORT_ALIASES[text]
    if text in _UNINFORMATIVE_SPORTS or text.isdigit():  # catch-alls and unknown numeric codes
        return None
    return text


# --- FIT -------------------------------------------------------------------------------------------------------

# FIT record fields read into each channel, in order of preference (the enhanced 32-bit fields first).
_FIT_FIELDS: dict[str, tuple[str, ...]] = {
    "power_w": ("power",),
    "hr_bpm": ("heart_rate",),
    "cadence_rpm": ("cadence",),
    "speed_m_s": ("enhanced_speed", "speed"),
    "distance_m": ("distance",),
    "altitude_m": ("enhanced_altitude", "altitude"),
}
# Field name -> (channel index, preference rank); index -1 is the timestamp.
_FIT_WANTED: dict[str, tuple[int, int]] = {"timestamp": (-1, 0)} | {
    field_name: (index, rank)
    for index, field_names in enumerate(_FIT_FIELDS.values())
    for rank, field_name in enumerate(field_names)
}
_FIT_EPOCH_S = 631_065_600  # 1989-12-31T00:00:00Z, the FIT epoch, in Unix seconds (FIT SDK, date_time type)
_FIT_MIN_ABSOLUTE_TIME = 0x10000000  # FIT SDK: smaller date_time values are relative, not absolute times


def _read_fit(stream: io.BufferedIOBase | BinaryIO, name: str) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """Decode FIT ``record`` messages (timestamp and channels) and the sport from ``sport``/``session``.

    fitdecode runs with its default CRC checks (header and file CRC), so a truncated or damaged file raises.
    Its base data processor is used: timestamps stay raw FIT ``date_time`` seconds and are converted here,
    which spares a datetime object per record (about a quarter of the decoding time). ``stream`` is read as
    fitdecode goes (a file, or a decompressing gzip stream); more than ``MAX_RECORDS`` records stop the read.
    """
    n_channels = len(_FIT_FIELDS)
    nan = float("nan")
    rows: list[list[float]] = []
    sport: str | None = None
    session_sport: str | None = None
    try:
        with fitdecode.FitReader(stream, processor=fitdecode.DataProcessorBase()) as reader:
            for frame in reader:
                if frame.frame_type != fitdecode.FIT_FRAME_DATA:
                    continue
                if frame.name == "record":
                    row = [nan] * (n_channels + 1)  # channels, then the timestamp
                    ranks = [99] * n_channels
                    for field in frame.fields:
                        wanted = _FIT_WANTED.get(field.name)
                        value = field.value
                        if wanted is None or value is None or not isinstance(value, int | float):
                            continue
                        index, rank = wanted
                        if index < 0:
                            if value >= _FIT_MIN_ABSOLUTE_TIME:
                                row[n_channels] = float(value) + _FIT_EPOCH_S
                        elif rank < ranks[index]:
                            row[index] = float(value)
                            ranks[index] = rank
                    rows.append(row)
                    if len(rows) > MAX_RECORDS:
                        raise RideFileError("file_too_large", f"{name}: more than {MAX_RECORDS} records")
                elif frame.name == "sport" and sport is None:
                    sport = _normalise_sport(_frame_value(frame, "sport"))
                elif frame.name == "session" and session_sport is None:
                    session_sport = _normalise_sport(_frame_value(frame, "sport"))
    except fitdecode.FitError as exc:
        raise RideFileError("corrupt_file", f"{name}: not a valid FIT file ({_one_line(exc)})") from exc
    except (ValueError, TypeError, struct.error, EOFError) as exc:
        raise RideFileError("corrupt_file", f"{name}: unreadable FIT data ({_one_line(exc)})") from exc
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), n_channels + 1)
    channels = {channel: table[:, index] for index, channel in enumerate(_FIT_FIELDS)}
    return sport or session_sport or DEFAULT_SPORT, table[:, n_channels], channels


def _frame_value(frame: Any, field_name: str) -> Any:
    return frame.get_value(field_name, fallback=None) if frame.has_field(field_name) else None


# --- TCX -------------------------------------------------------------------------------------------------------


def _read_tcx(data: bytes, name: str) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """Read TCX trackpoints with tcxreader (``only_gps=False``: indoor rides have no positions)."""
    try:
        # tcxreader hands the source to ElementTree.parse, which takes a file object as well as a path.
        exercise = TCXReader().read(io.BytesIO(data), only_gps=False)
    except ET.ParseError as exc:
        raise RideFileError("corrupt_file", f"{name}: malformed XML ({_one_line(exc)})") from exc
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as exc:
        raise RideFileError("corrupt_file", f"{name}: unreadable TCX data ({_one_line(exc)})") from exc
    points = list(exercise.trackpoints or [])
    timestamps = np.array([_epoch_s(tp.time) for tp in points], dtype=np.float64)
    channels = {
        "power_w": _floats(tp.tpx_ext.get("Watts") for tp in points),
        "hr_bpm": _floats(tp.hr_value for tp in points),
        "cadence_rpm": _floats(tp.cadence for tp in points),
        "speed_m_s": _floats(tp.tpx_ext.get("Speed") for tp in points),
        "distance_m": _floats(tp.distance for tp in points),
        "altitude_m": _floats(tp.elevation for tp in points),
    }
    sport = _normalise_sport(getattr(exercise, "activity_type", None)) or DEFAULT_SPORT
    return sport, timestamps, channels


# --- GPX -------------------------------------------------------------------------------------------------------

# Local names (namespace stripped, lower case) of trackpoint extension elements read into each channel.
_GPX_EXTENSION_NAMES: dict[str, frozenset[str]] = {
    "power_w": frozenset({"power", "powerinwatts", "watts"}),
    "hr_bpm": frozenset({"hr", "heartrate"}),
    "cadence_rpm": frozenset({"cad", "cadence"}),
    "speed_m_s": frozenset({"speed"}),
}


def _read_gpx(data: bytes, name: str) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """Read GPX track points with gpxpy; distance is derived from the positions."""
    try:
        gpx = gpxpy.parse(data.decode("utf-8-sig", errors="replace"))
    except (gpxpy.gpx.GPXException, ET.ParseError, ValueError) as exc:
        raise RideFileError("corrupt_file", f"{name}: malformed GPX ({_one_line(exc)})") from exc

    timestamps: list[float] = []
    latitudes: list[float] = []
    longitudes: list[float] = []
    altitudes: list[float] = []
    extension_columns: dict[str, list[float]] = {channel: [] for channel in _GPX_EXTENSION_NAMES}
    sport: str | None = None
    for track in gpx.tracks:
        sport = sport or _normalise_sport(track.type)
        for segment in track.segments:
            for point in segment.points:
                timestamps.append(_epoch_s(point.time))
                latitudes.append(point.latitude)
                longitudes.append(point.longitude)
                altitudes.append(float("nan") if point.elevation is None else float(point.elevation))
                found = _gpx_extension_values(point.extensions)
                for channel, column in extension_columns.items():
                    column.append(found.get(channel, float("nan")))

    channels = {channel: np.asarray(column, dtype=np.float64) for channel, column in extension_columns.items()}
    channels["altitude_m"] = np.asarray(altitudes, dtype=np.float64)
    channels["distance_m"] = _cumulative_distance_m(
        np.asarray(timestamps, dtype=np.float64),
        np.asarray(latitudes, dtype=np.float64),
        np.asarray(longitudes, dtype=np.float64),
    )
    return sport or DEFAULT_SPORT, np.asarray(timestamps, dtype=np.float64), channels


def _gpx_extension_values(extensions: list[ET.Element]) -> dict[str, float]:
    found: dict[str, float] = {}
    for root in extensions:
        for element in root.iter():
            local = element.tag.rsplit("}", 1)[-1].lower()
            for channel, names in _GPX_EXTENSION_NAMES.items():
                if local in names and channel not in found:
                    number = _to_float(element.text)
                    if not np.isnan(number):
                        found[channel] = number
    return found


def _cumulative_distance_m(timestamps_s: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Cumulative haversine distance (m) along the points in time order, 0 at the first point.

    Source: the haversine great-circle formula, a vectorised ``gpxpy.geo.haversine_distance`` (sphere of
    gpxpy's ``EARTH_RADIUS``, the WGS-84 equatorial radius).
    """
    if lat_deg.size == 0:
        return np.zeros(0)
    order = np.argsort(np.where(np.isnan(timestamps_s), np.inf, timestamps_s), kind="stable")
    lat = np.radians(lat_deg[order])
    lon = np.radians(lon_deg[order])
    dlat = np.diff(lat)
    dlon = np.diff(lon)
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(dlon / 2) ** 2
    step_m = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    cumulative = np.concatenate(([0.0], np.cumsum(np.nan_to_num(step_m))))
    distance_m = np.empty_like(cumulative)
    distance_m[order] = cumulative
    return distance_m


# --- helpers ---------------------------------------------------------------------------------------------------


def _epoch_s(value: Any) -> float:
    """Unix seconds of a datetime; a naive datetime is taken as UTC (TCX/GPX times are UTC by schema)."""
    if not isinstance(value, datetime):
        return float("nan")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def _to_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _floats(values: Iterable[Any]) -> np.ndarray:
    return np.array([_to_float(value) for value in values], dtype=np.float64)


def _one_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
