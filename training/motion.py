"""Time in motion and distance of a ride's 1 Hz samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from training.samples import RideSamples

MOVING_SPEED_M_S = 1.0
"""Speed (m/s, 3.6 km/h) above which a second counts as moving.

A walking-pace threshold of our choosing; like Strava ("Moving Time, Speed, and Pace Calculations",
support.strava.com), moving time for a ride is decided from speed, not from the timer.
"""


def moving_mask(samples: RideSamples) -> npt.NDArray[np.bool_]:
    """Which recorded seconds are moving, shape ``(n,)`` bool.

    Rule: where speed is known, moving means speed > ``MOVING_SPEED_M_S`` (1 m/s); speed is the recorded speed,
    else derived from recorded distance (a GPX track), as Strava decides moving time from GPS speed. Where no
    speed is known (a trainer ride without speed, a speed dropout), moving means power > 0 W or cadence > 0 rpm.
    Seconds dropped as pauses (gaps > 10 s) are never moving.

    Args:
        samples: the ride's 1 Hz samples.

    Returns:
        Boolean mask aligned with ``samples.elapsed_s``.
    """
    n = samples.n_samples
    speed = samples.speed_m_s
    if speed is None and samples.distance_m is not None:
        speed = _speed_from_distance(samples.elapsed_s, samples.distance_m)
    pedalling = np.zeros(n, dtype=bool)
    if samples.power_w is not None:
        pedalling |= samples.power_w > 0
    if samples.cadence_rpm is not None:
        pedalling |= np.nan_to_num(samples.cadence_rpm) > 0
    if speed is None:
        return pedalling
    known = ~np.isnan(speed)
    return np.where(known, np.nan_to_num(speed) > MOVING_SPEED_M_S, pedalling)


def _speed_from_distance(
    elapsed_s: npt.NDArray[np.int64], distance_m: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Speed (m/s) into each second from cumulative distance; NaN at the first sample and after pauses.

    Distance held across a smart-recording gap would read as standing still, so distance is first linearly
    interpolated in time between the samples where it changes.
    """
    speed = np.full(distance_m.shape, np.nan)
    valid = ~np.isnan(distance_m)
    if np.count_nonzero(valid) < 2:
        return speed
    t_s = elapsed_s[valid].astype(np.float64)
    d_m = distance_m[valid]
    changes = np.ones(d_m.size, dtype=bool)
    changes[1:] = d_m[1:] != d_m[:-1]
    changes[-1] = True
    interpolated = np.interp(elapsed_s.astype(np.float64), t_s[changes], d_m[changes])
    step_s = np.diff(elapsed_s)
    speed[1:] = np.where(step_s == 1, np.diff(interpolated), np.nan)
    speed[~valid] = np.nan
    return speed


def ride_distance_m(samples: RideSamples) -> float | None:
    """Distance ridden (m): recorded cumulative distance (max − min), else speed integrated over 1 s samples.

    Args:
        samples: the ride's 1 Hz samples.

    Returns:
        Distance in metres, or None without distance and speed.
    """
    distance = samples.distance_m
    if distance is not None and not np.all(np.isnan(distance)):
        return float(np.nanmax(distance) - np.nanmin(distance))
    if samples.speed_m_s is not None:
        return float(np.nansum(samples.speed_m_s))
    return None
