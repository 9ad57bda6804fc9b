"""Power metrics of a 1 Hz power series: rolling means, NP, IF, TSS, VI, mean-max power and FTP from 20 minutes.

All functions take 1 Hz numpy arrays (one element per recorded second, as produced by :mod:`training.samples`)
and return plain Python floats. Source: Allen, H. & Coggan, A. *Training and Racing with a Power Meter*, 2nd ed.,
VeloPress 2010 ("Allen & Coggan"): normalized power, intensity factor, training stress score, variability index
and FTP as 95 % of the best 20-minute power.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

NP_WINDOW_S = 30
"""Rolling-average window (s) of normalized power (Allen & Coggan 2010)."""

MMP_DURATIONS_S: Mapping[str, int] = {"5s": 5, "1min": 60, "5min": 300, "20min": 1200, "60min": 3600}
"""Mean-max power durations reported per ride: label → seconds."""

FTP_FROM_20MIN_FRACTION = 0.95
"""FTP ≈ 95 % of the best 20-minute mean power (Allen & Coggan 2010, 20-minute test)."""


def rolling_mean(values: npt.NDArray[np.float64], window_s: int) -> npt.NDArray[np.float64]:
    """Trailing rolling mean over full windows, computed from a cumulative sum.

    Args:
        values: float shape ``(n,)``, 1 Hz samples.
        window_s: window length in samples (seconds), ≥ 1.

    Returns:
        float64 shape ``(max(n - window_s + 1, 0),)``: element ``i`` is the mean of ``values[i:i + window_s]``.

    Raises:
        ValueError: if ``window_s`` < 1.
    """
    if window_s < 1:
        raise ValueError(f"window_s must be >= 1, got {window_s}")
    values = np.asarray(values, dtype=np.float64)
    if values.size < window_s:
        return np.zeros(0)
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    return (cumulative[window_s:] - cumulative[:-window_s]) / window_s


def normalized_power(power_w: npt.NDArray[np.float64]) -> float | None:
    """Normalized power (NP, W) of a 1 Hz power series.

    Method (Allen & Coggan 2010; Coggan's algorithm): 30-second rolling mean of power, raised to the 4th power,
    averaged, 4th root. Only full 30-second windows are used.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts (no NaN).

    Returns:
        NP in watts, or None when the series is shorter than 30 s.
    """
    rolled = rolling_mean(power_w, NP_WINDOW_S)
    if rolled.size == 0:
        return None
    return float(np.mean(rolled**4) ** 0.25)


def mean_max_power(power_w: npt.NDArray[np.float64], duration_s: int) -> float | None:
    """Mean-max power (MMP, W): the highest mean power over any ``duration_s`` consecutive samples.

    The samples must be consecutive seconds of clock time, pauses filled with 0 W
    (:func:`training.power_curve.zero_filled_power_w`, as GoldenCheetah's ``RideFileCache`` does): on a series
    with its pauses dropped, a window would join the efforts on both sides of a stop.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts on clock time (pauses zero-filled).
        duration_s: window in seconds (samples), ≥ 1.

    Returns:
        The best mean power in watts, or None when the series is shorter than ``duration_s``.

    Raises:
        ValueError: if ``duration_s`` < 1.
    """
    rolled = rolling_mean(power_w, duration_s)
    if rolled.size == 0:
        return None
    return float(rolled.max())


def mean_max_curve(
    power_w: npt.NDArray[np.float64], durations_s: Mapping[str, int] = MMP_DURATIONS_S
) -> dict[str, float]:
    """Mean-max power for several labelled durations (see :func:`mean_max_power`).

    The full curve on a log grid is :func:`training.power_curve.mean_max_power_curve`.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts on clock time (pauses zero-filled).
        durations_s: label → duration in seconds.

    Returns:
        label → MMP in watts, only for durations not longer than the series.
    """
    curve: dict[str, float] = {}
    for label, duration_s in durations_s.items():
        best = mean_max_power(power_w, duration_s)
        if best is not None:
            curve[label] = best
    return curve


def ftp_from_best_20min(best_20min_w: float) -> float:
    """Estimate FTP (W) as 95 % of the best 20-minute mean power (Allen & Coggan 2010, 20-minute test).

    Args:
        best_20min_w: best 20-minute mean power in watts.

    Returns:
        FTP estimate in watts.
    """
    return FTP_FROM_20MIN_FRACTION * float(best_20min_w)


def intensity_factor(normalized_power_w: float, ftp_w: float) -> float:
    """Intensity factor IF = NP / FTP (Allen & Coggan 2010).

    Args:
        normalized_power_w: NP in watts.
        ftp_w: functional threshold power in watts, > 0.

    Returns:
        IF (dimensionless; 1.0 is a one-hour maximal effort).

    Raises:
        ValueError: if ``ftp_w`` ≤ 0.
    """
    if ftp_w <= 0:
        raise ValueError(f"ftp_w must be > 0, got {ftp_w}")
    return float(normalized_power_w) / float(ftp_w)


def training_stress_score(duration_s: float, normalized_power_w: float, ftp_w: float) -> float:
    """Training stress score TSS = (duration_s × NP × IF) / (FTP × 3600) × 100 (Allen & Coggan 2010).

    One hour at FTP scores 100.

    Args:
        duration_s: seconds of the power series.
        normalized_power_w: NP in watts.
        ftp_w: functional threshold power in watts, > 0.

    Returns:
        TSS.

    Raises:
        ValueError: if ``ftp_w`` ≤ 0.
    """
    intensity = intensity_factor(normalized_power_w, ftp_w)
    return float(duration_s) * float(normalized_power_w) * intensity / (float(ftp_w) * 3600.0) * 100.0


def variability_index(normalized_power_w: float, avg_power_w: float) -> float | None:
    """Variability index VI = NP / average power (Allen & Coggan 2010); None when the average is 0."""
    if avg_power_w <= 0:
        return None
    return float(normalized_power_w) / float(avg_power_w)
