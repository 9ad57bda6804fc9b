"""Read the records of a FIT file with ``fitdecode``: timestamps, channels and the sport.

fitdecode runs with its default CRC checks (header and file CRC), so a truncated or damaged file is an error and
never a silent partial ride. :func:`training.ride_files.read_ride` checks sizes first and resamples the result.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import fitdecode
import numpy as np

from training.ride_errors import RideFileError, one_line
from training.ride_fields import DEFAULT_SPORT, RawRide, normalise_sport

__all__ = ["FIT_EPOCH_S", "FIT_MIN_ABSOLUTE_TIME", "frame_value", "read_fit"]

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

FIT_EPOCH_S = 631_065_600
"""1989-12-31T00:00:00Z, the FIT epoch, in Unix seconds (FIT SDK, ``date_time`` type)."""

FIT_MIN_ABSOLUTE_TIME = 0x10000000
"""FIT SDK: ``date_time`` values below this are relative times (seconds since a device reset), not absolute ones."""


def read_fit(stream: io.BufferedIOBase | BinaryIO, name: str, max_records: int) -> RawRide:
    """Decode FIT ``record`` messages (timestamp and channels) and the sport from ``sport``/``session``.

    fitdecode's base data processor is used: timestamps stay raw FIT ``date_time`` seconds and are converted
    here, which spares a datetime object per record (about a quarter of the decoding time). ``stream`` is read as
    fitdecode goes (a file, or a decompressing gzip stream), never held whole.

    Args:
        stream: the FIT data, positioned at its start.
        name: the file's name, for the messages.
        max_records: most records read; one more stops the read.

    Returns:
        The raw ride (``training.ride_fields.RawRide``): the sport is the ``sport`` message's, else the
        ``session``'s, else ``'cycling'``; a record without an absolute time has a NaN timestamp.

    Raises:
        RideFileError: ``'corrupt_file'`` for FIT header, CRC or EOF errors; ``'file_too_large'`` past
            ``max_records`` records.
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
                            if value >= FIT_MIN_ABSOLUTE_TIME:
                                row[n_channels] = float(value) + FIT_EPOCH_S
                        elif rank < ranks[index]:
                            row[index] = float(value)
                            ranks[index] = rank
                    rows.append(row)
                    if len(rows) > max_records:
                        raise RideFileError("file_too_large", f"{name}: more than {max_records} records")
                elif frame.name == "sport" and sport is None:
                    sport = normalise_sport(frame_value(frame, "sport"))
                elif frame.name == "session" and session_sport is None:
                    session_sport = normalise_sport(frame_value(frame, "sport"))
    except fitdecode.FitError as exc:
        raise RideFileError("corrupt_file", f"{name}: not a valid FIT file ({one_line(exc)})") from exc
    except (ValueError, TypeError, struct.error, EOFError) as exc:
        raise RideFileError("corrupt_file", f"{name}: unreadable FIT data ({one_line(exc)})") from exc
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), n_channels + 1)
    channels = {channel: table[:, index] for index, channel in enumerate(_FIT_FIELDS)}
    return sport or session_sport or DEFAULT_SPORT, table[:, n_channels], channels


def frame_value(frame: Any, field_name: str) -> Any:
    """A field's value in a fitdecode data message, or None when the message lacks the field."""
    return frame.get_value(field_name, fallback=None) if frame.has_field(field_name) else None
