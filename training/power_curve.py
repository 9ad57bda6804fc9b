"""Power-duration data of one ride: the mean-max power curve on a log-spaced grid, with pauses zero-filled.

A mean-max (MMP) value is the highest mean power over any window of a given duration. A window is a span of
*clock time*: when the rider stops (a pause, auto-pause, a power dropout), the seconds of the stop count as 0 W,
so a window never joins the efforts on both sides of a stop as if they were consecutive.

Sources:

* GoldenCheetah, ``src/FileIO/RideFileCache.cpp`` (``MeanMaxComputer::run``, GPL-2.0, read for the method only):
  gaps in the recording are filled with 0 W samples before the mean-max search ("fill in any gaps in recording"),
  except a gap of more than an hour, which becomes one 0 W sample; the search integrates the series once
  (cumulative energy) so that a window's energy is one subtraction (Mark Rages' algorithm in the same file).
* Allen, H. & Coggan, A. *Training and Racing with a Power Meter*, 2nd ed., VeloPress 2010: mean-max power and
  the power-duration curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from training.power import NP_WINDOW_S, rolling_mean
from training.samples import RideSamples

MAX_ZERO_FILL_S = 3600
"""A pause longer than this (s) is filled with one 0 W second, not with its length (GoldenCheetah RideFileCache:
"gap more than an hour" → one sample), so a ride with an overnight stop does not grow to days of zeros."""

GRID_POINTS_PER_DECADE = 24
"""Points per factor of ten of the log-spaced duration grid (1 s … 10 s … 100 s … : 24 per decade, about 10 %
apart; every whole second below 10 s)."""


def zero_filled_power_w(
    elapsed_s: npt.NDArray[np.int64],
    power_w: npt.NDArray[np.float64],
    power_recorded: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """Put a ride's power on every second of clock time, with 0 W in pauses and dropouts.

    Method (GoldenCheetah ``RideFileCache.cpp``, ``MeanMaxComputer::run``): the seconds missing between two
    recorded seconds (a pause) are filled with 0 W; a pause longer than ``MAX_ZERO_FILL_S`` (1 h) is filled with
    a single 0 W second. Seconds where ``power_recorded`` is False (a power dropout while other channels kept
    recording) are 0 W too.

    Args:
        elapsed_s: int shape ``(n,)``, strictly increasing seconds since the ride's start (``RideSamples.elapsed_s``).
        power_w: float shape ``(n,)``, power in watts on those seconds (NaN is read as 0 W).
        power_recorded: bool shape ``(n,)``, True where power was recorded; None means every second was.

    Returns:
        float64 shape ``(m,)`` with ``m >= n``: power in watts, one element per second of clock time from the
        first sample to the last (pauses of more than an hour shortened to one second).

    Raises:
        ValueError: if the shapes differ or ``elapsed_s`` is not strictly increasing.
    """
    elapsed = np.asarray(elapsed_s, dtype=np.int64)
    power = np.nan_to_num(np.asarray(power_w, dtype=np.float64), nan=0.0)
    if power.shape != elapsed.shape or (power_recorded is not None and np.shape(power_recorded) != elapsed.shape):
        raise ValueError(f"elapsed_s shape {elapsed.shape}, power_w {power.shape} and power_recorded must match")
    if elapsed.size == 0:
        return np.zeros(0)
    steps = np.diff(elapsed)
    if np.any(steps <= 0):
        raise ValueError("elapsed_s must be strictly increasing")
    if power_recorded is not None:
        power = np.where(np.asarray(power_recorded, dtype=bool), power, 0.0)
    # A gap of g seconds between samples leaves g - 1 empty seconds; more than an hour of them becomes one.
    empty = steps - 1
    steps = np.where(empty > MAX_ZERO_FILL_S, 2, steps)
    position = np.concatenate(([0], np.cumsum(steps)))
    filled = np.zeros(int(position[-1]) + 1)
    filled[position] = power
    return filled


ANCHOR_DURATIONS_S = (
    5,
    10,
    15,
    30,
    60,
    120,
    180,
    240,
    300,
    360,
    480,
    600,
    720,
    900,
    1200,
    1800,
    2400,
    3600,
    5400,
    7200,
)
"""Durations (s) always on the grid (when not longer than the ride): the usual reporting points (5 s, 1, 5, 20,
60 min, …) and the CP model's windows (2–5 and 12–20 min), so these bests are exact, never interpolated."""


def log_duration_grid(max_duration_s: int, points_per_decade: int = GRID_POINTS_PER_DECADE) -> npt.NDArray[np.int64]:
    """Whole-second durations from 1 s to ``max_duration_s``, spaced evenly on a log scale.

    Args:
        max_duration_s: the longest duration (s), e.g. the ride's length; ≥ 1.
        points_per_decade: grid points per factor of ten (before rounding to whole seconds), ≥ 1.

    Returns:
        int64 shape ``(k,)``: sorted unique durations in seconds, starting at 1 and ending at ``max_duration_s``,
        with the ``ANCHOR_DURATIONS_S`` up to ``max_duration_s``.

    Raises:
        ValueError: if ``max_duration_s`` < 1 or ``points_per_decade`` < 1.
    """
    if max_duration_s < 1 or points_per_decade < 1:
        raise ValueError(
            f"need max_duration_s >= 1 and points_per_decade >= 1, got {max_duration_s}, {points_per_decade}"
        )
    n_points = int(np.ceil(np.log10(max_duration_s) * points_per_decade)) + 1
    grid = np.rint(np.logspace(0.0, np.log10(max_duration_s), max(n_points, 1))).astype(np.int64)
    anchors = [d for d in ANCHOR_DURATIONS_S if d <= max_duration_s]
    return np.unique(np.concatenate((grid, [1, max_duration_s], anchors)))


def mean_max_power_curve(
    power_w: npt.NDArray[np.float64], durations_s: npt.NDArray[np.int64] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Mean-max power at each duration of a grid: the highest mean over any window of that many seconds.

    The series must already be on clock time with pauses zero-filled (:func:`zero_filled_power_w`), as
    GoldenCheetah's ``RideFileCache`` does. Method: one cumulative sum (energy, J), then for each duration ``d``
    the maximum of ``E[i + d] - E[i]``: O(n) per duration, O(n·k) in all for ``k`` durations (k ≈ 24 per decade,
    so about 100 for a 6-hour ride).

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts on clock time (no NaN).
        durations_s: int shape ``(k,)``, durations in seconds, each ≥ 1; None means
            ``log_duration_grid(n)`` (1 s to the ride's length).

    Returns:
        ``(durations_s, power_w)``: int64 shape ``(j,)`` the durations not longer than the series (sorted, unique),
        and float64 shape ``(j,)`` the mean-max power in watts at each. Both empty for an empty series.

    Raises:
        ValueError: if a duration is < 1 or ``power_w`` holds NaN.
    """
    power = np.asarray(power_w, dtype=np.float64)
    if np.isnan(power).any():
        raise ValueError("power_w holds NaN: zero-fill missing seconds first (zero_filled_power_w)")
    n = power.size
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    grid = log_duration_grid(n) if durations_s is None else np.unique(np.asarray(durations_s, dtype=np.int64))
    if grid.size and grid[0] < 1:
        raise ValueError(f"durations must be >= 1 s, got {int(grid[0])}")
    grid = grid[grid <= n]
    energy_j = np.concatenate(([0.0], np.cumsum(power)))
    best = np.array([float(np.max(energy_j[d:] - energy_j[:-d])) / float(d) for d in grid])
    return grid, best


def best_window(power_w: npt.NDArray[np.float64], duration_s: int) -> tuple[int, float] | None:
    """Where the best ``duration_s`` window of a clock-time power series starts, and its mean power.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts on clock time (pauses zero-filled).
        duration_s: window length in seconds, ≥ 1.

    Returns:
        ``(start_index, mean_w)`` of the first best window, or None when the series is shorter than the window.

    Raises:
        ValueError: if ``duration_s`` < 1.
    """
    if duration_s < 1:
        raise ValueError(f"duration_s must be >= 1, got {duration_s}")
    means_w = rolling_mean(np.asarray(power_w, dtype=np.float64), duration_s)
    if means_w.size == 0:
        return None
    start = int(np.argmax(means_w))
    return start, float(means_w[start])


def power_at(durations_s: npt.NDArray[np.int64], power_w: npt.NDArray[np.float64], duration_s: int) -> float | None:
    """The curve's mean-max power at exactly ``duration_s``, or None when the curve does not hold that duration."""
    hits = np.flatnonzero(np.asarray(durations_s) == duration_s)
    return None if hits.size == 0 else float(np.asarray(power_w)[hits[0]])


def ride_power_curve(samples: RideSamples) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
    """A ride's mean-max power curve from 1 s to its length on the log grid, pauses and dropouts at 0 W.

    Args:
        samples: the ride's 1 Hz samples.

    Returns:
        ``(durations_s, power_w)`` as :func:`mean_max_power_curve`, or None when the ride has no power.
    """
    if samples.power_w is None or samples.n_samples == 0:
        return None
    filled = zero_filled_power_w(samples.elapsed_s, samples.power_w, samples.power_recorded)
    return mean_max_power_curve(filled)


def best_of_curves(
    curves: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The envelope of several curves (e.g. an athlete's rides over 42 or 90 days): the best power per duration.

    Args:
        curves: ``(durations_s, power_w)`` pairs (shapes ``(k_i,)``), e.g. from :func:`ride_power_curve`.

    Returns:
        ``(durations_s, power_w, source)``: int64 shape ``(k,)`` every duration of any curve (sorted), float64
        shape ``(k,)`` the best power in watts at it, and int64 shape ``(k,)`` the index in ``curves`` of the
        curve it came from (the first on a tie), so each point can name its ride and date.
    """
    durations = np.unique(np.concatenate([np.asarray(d, dtype=np.int64) for d, _ in curves] or [np.zeros(0, np.int64)]))
    best = np.full(durations.size, -np.inf)
    source = np.full(durations.size, -1, dtype=np.int64)
    for index, (d, p) in enumerate(curves):
        at = np.searchsorted(durations, np.asarray(d, dtype=np.int64))
        power = np.asarray(p, dtype=np.float64)
        better = power > best[at]
        best[at[better]] = power[better]
        source[at[better]] = index
    return durations, best, source


def best_normalized_power(power_w: npt.NDArray[np.float64], duration_s: int) -> float | None:
    """The highest normalized power (W) over any ``duration_s`` window of a 1 Hz power series.

    NP of a window (Allen & Coggan 2010): the 30-s rolling means fully inside it, raised to the 4th power,
    averaged, 4th root. The best 60-minute NP is the power an hour-long ride of that shape scores IF 1.0 with,
    so it is the lowest FTP such a ride supports (used by :func:`training.scoring.ftp_for_ride`). On the series NP
    itself uses (``RideSamples.recorded_power_w``) a whole ride's NP never exceeds its best-hour NP by more than
    the edge effect of the 30-s windows.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts (no NaN).
        duration_s: window length in seconds, ≥ 30.

    Returns:
        The best NP in watts, or None when the series is shorter than the window.

    Raises:
        ValueError: if ``duration_s`` < 30.
    """
    if duration_s < NP_WINDOW_S:
        raise ValueError(f"duration_s must be >= {NP_WINDOW_S}, got {duration_s}")
    power = np.asarray(power_w, dtype=np.float64)
    if power.size < duration_s:
        return None
    fourth = rolling_mean(power, NP_WINDOW_S) ** 4
    return float(np.max(rolling_mean(fourth, duration_s - NP_WINDOW_S + 1)) ** 0.25)
