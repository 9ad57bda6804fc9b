"""Read the trackpoints of TCX (``tcxreader``) and GPX (``gpxpy``) documents: timestamps, channels and the sport.

TCX is read with ``only_gps=False`` so indoor rides keep their samples; GPX power, heart rate, cadence and speed
come from the trackpoint extensions and its distance from the positions. :func:`training.ride_files.read_ride`
checks the document's size before handing it here, and resamples the result.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import gpxpy
import gpxpy.gpx
import numpy as np
from gpxpy.geo import EARTH_RADIUS as EARTH_RADIUS_M
from tcxreader.tcxreader import TCXReader

from training.ride_errors import RideFileError, one_line
from training.ride_fields import DEFAULT_SPORT, RawRide, epoch_s, floats, normalise_sport, to_float

__all__ = ["read_gpx", "read_tcx"]


def read_tcx(data: bytes, name: str) -> RawRide:
    """Read TCX trackpoints with tcxreader (``only_gps=False``: indoor rides have no positions).

    Args:
        data: the TCX document.
        name: the file's name, for the messages.

    Returns:
        The raw ride (``training.ride_fields.RawRide``); the sport is the activity's ``Sport``, else ``'cycling'``.

    Raises:
        RideFileError: ``'corrupt_file'`` for malformed XML or unreadable TCX data.
    """
    try:
        # tcxreader hands the source to ElementTree.parse, which takes a file object as well as a path.
        exercise = TCXReader().read(io.BytesIO(data), only_gps=False)
    except ET.ParseError as exc:
        raise RideFileError("corrupt_file", f"{name}: malformed XML ({one_line(exc)})") from exc
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as exc:
        raise RideFileError("corrupt_file", f"{name}: unreadable TCX data ({one_line(exc)})") from exc
    points = list(exercise.trackpoints or [])
    timestamps = np.array([epoch_s(tp.time) for tp in points], dtype=np.float64)
    channels = {
        "power_w": floats(tp.tpx_ext.get("Watts") for tp in points),
        "hr_bpm": floats(tp.hr_value for tp in points),
        "cadence_rpm": floats(tp.cadence for tp in points),
        "speed_m_s": floats(tp.tpx_ext.get("Speed") for tp in points),
        "distance_m": floats(tp.distance for tp in points),
        "altitude_m": floats(tp.elevation for tp in points),
    }
    sport = normalise_sport(getattr(exercise, "activity_type", None)) or DEFAULT_SPORT
    return sport, timestamps, channels


# Local names (namespace stripped, lower case) of trackpoint extension elements read into each channel.
_GPX_EXTENSION_NAMES: dict[str, frozenset[str]] = {
    "power_w": frozenset({"power", "powerinwatts", "watts"}),
    "hr_bpm": frozenset({"hr", "heartrate"}),
    "cadence_rpm": frozenset({"cad", "cadence"}),
    "speed_m_s": frozenset({"speed"}),
}


def read_gpx(data: bytes, name: str) -> RawRide:
    """Read GPX track points with gpxpy; distance is derived from the positions.

    Args:
        data: the GPX document (UTF-8, a byte-order mark allowed).
        name: the file's name, for the messages.

    Returns:
        The raw ride (``training.ride_fields.RawRide``); the sport is the first track's ``type``, else ``'cycling'``.

    Raises:
        RideFileError: ``'corrupt_file'`` for a malformed document.
    """
    try:
        gpx = gpxpy.parse(data.decode("utf-8-sig", errors="replace"))
    except (gpxpy.gpx.GPXException, ET.ParseError, ValueError) as exc:
        raise RideFileError("corrupt_file", f"{name}: malformed GPX ({one_line(exc)})") from exc

    timestamps: list[float] = []
    latitudes: list[float] = []
    longitudes: list[float] = []
    altitudes: list[float] = []
    extension_columns: dict[str, list[float]] = {channel: [] for channel in _GPX_EXTENSION_NAMES}
    sport: str | None = None
    for track in gpx.tracks:
        sport = sport or normalise_sport(track.type)
        for segment in track.segments:
            for point in segment.points:
                timestamps.append(epoch_s(point.time))
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
                    number = to_float(element.text)
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
