"""Raw field values of ride files made uniform for the readers: sport names, times and numbers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import numpy as np

__all__ = ["DEFAULT_SPORT", "RawRide", "epoch_s", "floats", "normalise_sport", "to_float"]

DEFAULT_SPORT = "cycling"
"""The sport of a ride whose file names none (or only a catch-all)."""

RawRide: TypeAlias = tuple[str, np.ndarray, dict[str, np.ndarray]]
"""``(sport, timestamps_s, channels)``: the sport, Unix seconds per trackpoint (NaN where missing), and one
float64 array per channel (``power_w``, ``hr_bpm``, ``cadence_rpm``, ``speed_m_s``, ``distance_m``,
``altitude_m``; NaN where missing), all of one length."""

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


def normalise_sport(value: Any) -> str | None:
    """This project's name of a sport as a file writes it.

    Args:
        value: the file's sport (a FIT enum name, a TCX ``Sport`` attribute, a GPX track type), or None.

    Returns:
        ``'cycling'`` or ``'running'`` for their known aliases, the file's own lower-case name for other sports,
        None for no value, a catch-all (``generic``, ``all``, ``other``) or an unknown numeric code.
    """
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


def epoch_s(value: Any) -> float:
    """Unix seconds of a datetime; a naive datetime is taken as UTC (TCX/GPX times are UTC by schema).

    Args:
        value: a datetime, or anything else (a missing time).

    Returns:
        The time in Unix seconds, NaN when ``value`` is not a datetime.
    """
    if not isinstance(value, datetime):
        return float("nan")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def to_float(value: Any) -> float:
    """A field's value as a float: NaN for None, booleans and what does not convert."""
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def floats(values: Iterable[Any]) -> np.ndarray:
    """Field values as a float64 array, per :func:`to_float` (NaN where missing)."""
    return np.array([to_float(value) for value in values], dtype=np.float64)
