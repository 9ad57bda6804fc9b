"""Heart-rate metrics of a 1 Hz series: Banister TRIMP, hrTSS, LTHR estimate, efficiency factor, Pw:HR decoupling.

All functions take 1 Hz numpy arrays (one element per recorded second, as produced by :mod:`training.samples`)
and return plain Python floats. Sources:

* Banister, E. W. "Modeling elite athletic performance", in MacDougall, Wenger & Green (eds.), *Physiological
  Testing of the High-Performance Athlete*, 2nd ed., Human Kinetics 1991: TRIMP with the 0.64·e^(1.92·x) (men)
  / 0.86·e^(1.67·x) (women) weighting.
* TrainingPeaks help, "Aerobic Decoupling (Pw:Hr) and Efficiency Factor (EF)" (help.trainingpeaks.com,
  article 204071724), after Joe Friel: EF = NP / average HR; Pw:HR = change in EF from the first to the
  second half of the ride.
* TrainingPeaks hrTSS: heart-rate TSS normalised so that one hour at LTHR scores 100; computed here as the
  ride's TRIMP over the TRIMP of one hour at LTHR (the "HRSS" formulation of the Elevate app).
* Friel, J., "Determining your LTHR" (joefrielsblog.com, April 2011): the average heart rate over the last
  20 minutes of a solo 30-minute all-out effort approximates LTHR.

A heart rate of 0 bpm (or below) is a dropout of the strap, not a reading: every function here treats it as
missing, like NaN (:func:`valid_hr_bpm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from training.power import MMP_DURATIONS_S, normalized_power, rolling_mean

DEFAULT_RESTING_HR_BPM = 60.0
"""Resting heart rate (bpm) assumed when the athlete's is unknown (a typical adult value)."""

LTHR_FROM_20MIN_HR_FRACTION = 1.0
"""LTHR ≈ best 20-minute mean heart rate (Friel's 30-minute test: average HR of its last 20 minutes)."""

TRIMP_WEIGHTING = {"male": (0.64, 1.92), "female": (0.86, 1.67)}
"""Banister (1991) TRIMP weighting y = a·e^(b·x) per sex: (a, b)."""

DEFAULT_TRIMP_SEX = "male"
"""The weighting used when the athlete's sex is unknown (``sex=None``): the male constants, as before sex could
be given (Banister's original weighting was derived for men)."""

SUSTAINED_HR_DURATIONS_S = (1200, 3600)
"""Window lengths (s) over which a ride's highest sustained heart rate is sought: 20 to 60 minutes."""

SUSTAINED_HR_STEP_S = 60
"""Step (s) between the window lengths tried (20, 21, … 60 min)."""

MAX_HR_WINDOW_S = 5
"""The ride's max heart rate estimate is its best 5-second mean, so that a single spike of the strap is ignored."""


def valid_hr_bpm(hr_bpm: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The heart-rate readings of a series: NaN and 0 bpm (a strap dropout, not a reading) removed.

    Args:
        hr_bpm: float shape ``(n,)``, heart rate in bpm.

    Returns:
        float64 shape ``(k,)``, ``k <= n``: the readings > 0 bpm, in order.
    """
    hr = np.asarray(hr_bpm, dtype=np.float64)
    return hr[np.isfinite(hr) & (hr > 0)]


@dataclass(frozen=True)
class HrEstimate:
    """A heart-rate figure estimated from a ride, with its evidence.

    Attributes:
        value_bpm: the estimate (bpm).
        duration_s: length of the window it is the mean of (s).
        start_index: index, in the ride's heart-rate readings (:func:`valid_hr_bpm`), where that window starts.
        method: how it was estimated (one sentence).
    """

    value_bpm: float
    duration_s: int
    start_index: int
    method: str


def trimp(
    hr_bpm: npt.NDArray[np.float64],
    *,
    resting_hr_bpm: float,
    max_hr_bpm: float,
    sex: str | None = None,
    sample_s: float = 1.0,
) -> float:
    """Banister TRIMP of a heart-rate series (Banister 1991).

    TRIMP = Σ Δt_min × x × a·e^(b·x), with heart-rate reserve fraction x = (HR − rest) / (max − rest) clipped to
    [0, 1] and (a, b) = (0.64, 1.92) for men, (0.86, 1.67) for women.

    Args:
        hr_bpm: float shape ``(n,)``, heart rate in bpm at ``sample_s`` intervals; NaN and 0 bpm samples
            (dropouts) are skipped.
        resting_hr_bpm: resting heart rate in bpm.
        max_hr_bpm: maximum heart rate in bpm, > ``resting_hr_bpm``.
        sex: ``'male'`` or ``'female'`` (weighting constants); None (unknown) uses the male constants
            (``DEFAULT_TRIMP_SEX``).
        sample_s: seconds per sample (1 for 1 Hz).

    Returns:
        TRIMP (weighted minutes).

    Raises:
        ValueError: if ``max_hr_bpm`` ≤ ``resting_hr_bpm`` or ``sex`` is unknown.
    """
    fraction = _hr_reserve_fraction(hr_bpm, resting_hr_bpm, max_hr_bpm)
    a, b = _trimp_weighting(sex)
    return float(np.sum(fraction * a * np.exp(b * fraction)) * sample_s / 60.0)


def hr_tss(
    hr_bpm: npt.NDArray[np.float64],
    *,
    resting_hr_bpm: float,
    max_hr_bpm: float,
    lthr_bpm: float,
    sex: str | None = None,
    sample_s: float = 1.0,
) -> float:
    """Heart-rate training stress score (hrTSS): the ride's TRIMP relative to one hour at LTHR, × 100.

    TrainingPeaks defines hrTSS so that one hour at LTHR scores 100; this is the TRIMP-based form ("HRSS" of
    the Elevate app) using the Banister (1991) weighting, so a ride at constant LTHR scores
    100 × hours.

    Args:
        hr_bpm: float shape ``(n,)``, heart rate in bpm; NaN and 0 bpm samples (dropouts) are skipped.
        resting_hr_bpm: resting heart rate in bpm.
        max_hr_bpm: maximum heart rate in bpm, > ``resting_hr_bpm``.
        lthr_bpm: lactate threshold heart rate in bpm, > ``resting_hr_bpm``.
        sex: ``'male'``, ``'female'`` or None (unknown: the male constants).
        sample_s: seconds per sample.

    Returns:
        hrTSS.

    Raises:
        ValueError: if ``max_hr_bpm`` or ``lthr_bpm`` ≤ ``resting_hr_bpm``, or ``sex`` is unknown.
    """
    if lthr_bpm <= resting_hr_bpm:
        raise ValueError(f"lthr_bpm ({lthr_bpm}) must exceed resting_hr_bpm ({resting_hr_bpm})")
    ride = trimp(hr_bpm, resting_hr_bpm=resting_hr_bpm, max_hr_bpm=max_hr_bpm, sex=sex, sample_s=sample_s)
    a, b = _trimp_weighting(sex)
    x_lt = (lthr_bpm - resting_hr_bpm) / (max_hr_bpm - resting_hr_bpm)  # not clipped: LTHR may exceed a low max
    one_hour_at_lthr = 60.0 * x_lt * a * math.exp(b * x_lt)
    return ride / one_hour_at_lthr * 100.0


def estimate_lthr_bpm(hr_bpm: npt.NDArray[np.float64]) -> float | None:
    """Estimate LTHR (bpm) as the best 20-minute mean heart rate of the ride (Friel's 30-minute test rule).

    Only as good as the ride's hardest 20 minutes: an easy ride underestimates LTHR (and so overstates hrTSS).

    Args:
        hr_bpm: float shape ``(n,)``, 1 Hz heart rate in bpm; NaN and 0 bpm samples (dropouts) are dropped first.

    Returns:
        The estimate in bpm, or None when fewer than 20 minutes of heart rate were recorded.
    """
    rolled = rolling_mean(valid_hr_bpm(hr_bpm), MMP_DURATIONS_S["20min"])
    return None if rolled.size == 0 else LTHR_FROM_20MIN_HR_FRACTION * float(rolled.max())


def efficiency_factor(normalized_power_w: float, avg_hr_bpm: float) -> float | None:
    """Efficiency factor EF = NP / average heart rate (W/bpm; TrainingPeaks after Friel); None if HR is 0."""
    if avg_hr_bpm <= 0:
        return None
    return float(normalized_power_w) / float(avg_hr_bpm)


def aerobic_decoupling(power_w: npt.NDArray[np.float64], hr_bpm: npt.NDArray[np.float64]) -> float | None:
    """Aerobic decoupling Pw:HR in percent (Friel; TrainingPeaks help article 204071724).

    The series is split into two halves of equal sample count; EF = NP / average HR in each half;
    decoupling = (EF_first − EF_second) / EF_first × 100. Positive values mean heart rate rose relative to
    power (Friel reads < 5 % on a long steady ride as good aerobic endurance).

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts.
        hr_bpm: float shape ``(n,)``, heart rate in bpm on the same seconds as ``power_w``; NaN and 0 bpm
            (dropouts) are left out of each half's average heart rate.

    Returns:
        Decoupling in percent, or None when a half is shorter than 30 s or has zero NP or HR.

    Raises:
        ValueError: if the shapes differ.
    """
    power = np.asarray(power_w, dtype=np.float64)
    hr = np.asarray(hr_bpm, dtype=np.float64)
    if power.shape != hr.shape:
        raise ValueError(f"power_w shape {power.shape} differs from hr_bpm shape {hr.shape}")
    half = power.size // 2
    halves_ef = []
    for part in (slice(0, half), slice(half, 2 * half)):
        np_w = normalized_power(power[part])
        if np_w is None:
            return None
        readings = valid_hr_bpm(hr[part])
        if readings.size == 0:
            return None
        ef = efficiency_factor(np_w, float(np.mean(readings)))
        if ef is None or ef <= 0:
            return None
        halves_ef.append(ef)
    first, second = halves_ef
    return (first - second) / first * 100.0


def _hr_reserve_fraction(
    hr_bpm: npt.NDArray[np.float64], resting_hr_bpm: float, max_hr_bpm: float
) -> npt.NDArray[np.float64]:
    if max_hr_bpm <= resting_hr_bpm:
        raise ValueError(f"max_hr_bpm ({max_hr_bpm}) must exceed resting_hr_bpm ({resting_hr_bpm})")
    hr = valid_hr_bpm(hr_bpm)
    return np.clip((hr - resting_hr_bpm) / (max_hr_bpm - resting_hr_bpm), 0.0, 1.0)


def _trimp_weighting(sex: str | None) -> tuple[float, float]:
    try:
        return TRIMP_WEIGHTING[DEFAULT_TRIMP_SEX if sex is None else sex]
    except KeyError:
        raise ValueError(f"sex must be 'male', 'female' or None, got {sex!r}") from None


def sustained_hr_estimate(hr_bpm: npt.NDArray[np.float64]) -> HrEstimate | None:
    """The ride's highest sustained heart rate: the best mean over any window of 20 to 60 minutes.

    The LTHR evidence a ride gives (Friel: the mean heart rate of a 20-minute part of a 30-minute all-out effort
    approximates LTHR; an hour-long all-out effort is held near LTHR). Window lengths 20, 21, … 60 min
    (``SUSTAINED_HR_DURATIONS_S``, ``SUSTAINED_HR_STEP_S``) are tried on the readings (dropouts removed), and
    the highest mean wins (the longer window on a tie, the stronger evidence). Only as good as the ride's
    hardest part: an easy ride gives a low figure, so the athlete's LTHR is the highest such figure across rides.

    Args:
        hr_bpm: float shape ``(n,)``, 1 Hz heart rate in bpm; NaN and 0 bpm (dropouts) are removed first.

    Returns:
        The estimate with its window's length and start, or None with fewer than 20 minutes of readings.
    """
    readings = valid_hr_bpm(hr_bpm)
    low_s, high_s = SUSTAINED_HR_DURATIONS_S
    best: HrEstimate | None = None
    for duration_s in range(low_s, min(high_s, readings.size) + 1, SUSTAINED_HR_STEP_S):
        rolled = rolling_mean(readings, duration_s)
        start = int(np.argmax(rolled))
        if best is None or float(rolled[start]) >= best.value_bpm:
            best = HrEstimate(
                value_bpm=float(rolled[start]),
                duration_s=duration_s,
                start_index=start,
                method="highest mean heart rate over 20-60 min windows of the ride",
            )
    return best


def max_hr_estimate(hr_bpm: npt.NDArray[np.float64]) -> HrEstimate | None:
    """The ride's highest heart rate held for 5 seconds (``MAX_HR_WINDOW_S``), ignoring one-sample spikes.

    A lower bound of the athlete's max heart rate (reached only in an all-out effort).

    Args:
        hr_bpm: float shape ``(n,)``, 1 Hz heart rate in bpm; NaN and 0 bpm (dropouts) are removed first.

    Returns:
        The estimate with its window, or None with fewer than 5 readings.
    """
    rolled = rolling_mean(valid_hr_bpm(hr_bpm), MAX_HR_WINDOW_S)
    if rolled.size == 0:
        return None
    start = int(np.argmax(rolled))
    return HrEstimate(
        value_bpm=float(rolled[start]),
        duration_s=MAX_HR_WINDOW_S,
        start_index=start,
        method="highest 5-second mean heart rate of the ride",
    )
