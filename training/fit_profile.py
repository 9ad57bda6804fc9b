"""The athlete's values a FIT file carries, as its device had them set: FTP, threshold and max heart rate, sex, weight.

Garmin and Wahoo head units write the rider's settings into each activity file (Garmin FIT SDK, ``Profile.xlsx``):

* ``zones_target`` (message 7): ``functional_threshold_power`` (W), ``threshold_heart_rate`` (bpm),
  ``max_heart_rate`` (bpm);
* ``user_profile`` (message 3): ``gender``, ``weight`` (kg), ``resting_heart_rate``,
  ``default_max_biking_heart_rate`` and ``default_max_heart_rate`` (bpm);
* ``session`` (message 18): ``threshold_power`` (W), the FTP the device scored the ride with.

Read with ``fitdecode`` (CRC checked). A 0 is "not set" (e.g. ``resting_heart_rate = 0``) and is ignored. Where
several fields give one value the first in this order wins: FTP ``zones_target.functional_threshold_power`` >
``session.threshold_power``; max HR ``zones_target.max_heart_rate`` > ``user_profile.default_max_biking_heart_rate``
> ``user_profile.default_max_heart_rate``. Every field found is kept in ``fields`` as evidence.

The ride's local UTC offset is ``activity.local_timestamp − activity.timestamp`` (FIT SDK: "timestamp epoch
expressed in local time, used to convert activity timestamps to local time"); an offset that is not a whole
quarter hour within −12 h…+14 h (a head unit with its clock unset) is ignored.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import fitdecode

# value name → the (message, field) pairs that carry it, best first
_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "ftp_w": (("zones_target", "functional_threshold_power"), ("session", "threshold_power")),
    "lthr_bpm": (("zones_target", "threshold_heart_rate"),),
    "max_hr_bpm": (
        ("zones_target", "max_heart_rate"),
        ("user_profile", "default_max_biking_heart_rate"),
        ("user_profile", "default_max_heart_rate"),
    ),
    "resting_hr_bpm": (("user_profile", "resting_heart_rate"),),
    "weight_kg": (("user_profile", "weight"),),
    "sex": (("user_profile", "gender"),),
}
_MESSAGES = frozenset(message for pairs in _FIELDS.values() for message, _ in pairs) | {"activity"}
_OFFSET_RANGE_S = (-12 * 3600, 14 * 3600)


class FitProfileError(ValueError):
    """A file that is not a readable FIT file (its message names the file and the cause)."""


@dataclass(frozen=True)
class DeviceValues:
    """The athlete values a FIT file carries; None when absent or 0.

    Attributes:
        ftp_w: functional threshold power (W).
        lthr_bpm: threshold heart rate (bpm).
        max_hr_bpm: max heart rate (bpm).
        resting_hr_bpm: resting heart rate (bpm).
        weight_kg: body weight (kg).
        sex: ``'male'`` or ``'female'``.
        utc_offset_s: the ride's local time minus UTC (s), from the ``activity`` message, or None.
        fields: evidence, ``"message.field"`` → the value found (first occurrence of each), for every field read.
    """

    ftp_w: float | None = None
    lthr_bpm: float | None = None
    max_hr_bpm: float | None = None
    resting_hr_bpm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    utc_offset_s: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def read_device_values(path: str | Path) -> DeviceValues:
    """Read the athlete values a FIT file (``.fit`` or ``.fit.gz``) carries.

    Args:
        path: the file.

    Returns:
        The values found (all None for a file that carries none, e.g. one from an app).

    Raises:
        FitProfileError: the file is not a FIT file, or is damaged (CRC or structure).
        OSError: the file cannot be read.
    """
    path = Path(path)
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FitProfileError(f"{path.name}: not a gzip file ({exc})") from exc
    found: dict[str, Any] = {}
    try:
        with fitdecode.FitReader(io.BytesIO(data)) as reader:
            for frame in reader:
                if not isinstance(frame, fitdecode.FitDataMessage) or frame.name not in _MESSAGES:
                    continue
                for fit_field in frame.fields:
                    key = f"{frame.name}.{fit_field.name}"
                    if key not in found and fit_field.value not in (None, 0, 0.0):
                        found[key] = fit_field.value
    except fitdecode.FitError as exc:
        raise FitProfileError(f"{path.name}: not a readable FIT file ({exc})") from exc

    values: dict[str, Any] = {}
    for name, pairs in _FIELDS.items():
        for message, field_name in pairs:
            value = found.get(f"{message}.{field_name}")
            if value is None:
                continue
            if name == "sex":
                values[name] = str(value) if str(value) in ("male", "female") else None
            elif isinstance(value, int | float):
                values[name] = float(value)
            if values.get(name) is not None:
                break
    evidence = {key: found[key] for message, field_name in _all_pairs() if (key := f"{message}.{field_name}") in found}
    return DeviceValues(**values, utc_offset_s=_utc_offset_s(found), fields=evidence)


def _utc_offset_s(found: dict[str, Any]) -> int | None:
    utc, local = found.get("activity.timestamp"), found.get("activity.local_timestamp")
    if not isinstance(utc, datetime) or not isinstance(local, datetime):
        return None
    offset_s = round((local - utc).total_seconds())
    if offset_s % 900 or not _OFFSET_RANGE_S[0] <= offset_s <= _OFFSET_RANGE_S[1]:
        return None
    return offset_s


def _all_pairs() -> list[tuple[str, str]]:
    return [pair for pairs in _FIELDS.values() for pair in pairs]
