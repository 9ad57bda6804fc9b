"""Per-ride metrics from 1 Hz samples: power (NP, IF, TSS, MMP, zones), heart rate (TRIMP, hrTSS, zones).

All functions take 1 Hz numpy arrays (one element per recorded second, as produced by
:mod:`training.samples`) and return plain Python floats. Sources:

* Allen, H. & Coggan, A. *Training and Racing with a Power Meter*, 2nd ed., VeloPress 2010 ("Allen & Coggan"):
  normalized power, intensity factor, training stress score, variability index, the seven power levels,
  the heart-rate levels by LTHR, and FTP as 95 % of the best 20-minute power.
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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training.ride_files import Ride
from training.samples import RideSamples

NP_WINDOW_S = 30
"""Rolling-average window (s) of normalized power (Allen & Coggan 2010)."""

MMP_DURATIONS_S: Mapping[str, int] = {"5s": 5, "1min": 60, "5min": 300, "20min": 1200, "60min": 3600}
"""Mean-max power durations reported per ride: label → seconds."""

FTP_FROM_20MIN_FRACTION = 0.95
"""FTP ≈ 95 % of the best 20-minute mean power (Allen & Coggan 2010, 20-minute test)."""

POWER_ZONE_UPPER_FRACTIONS = (0.55, 0.75, 0.90, 1.05, 1.20, 1.50)
"""Upper bounds of Coggan power levels 1-6 as fractions of FTP (Allen & Coggan 2010); level 7 is above 150 %.

Z1 active recovery ≤ 55 %, Z2 endurance ≤ 75 %, Z3 tempo ≤ 90 %, Z4 lactate threshold ≤ 105 %,
Z5 VO2max ≤ 120 %, Z6 anaerobic capacity ≤ 150 %, Z7 neuromuscular power > 150 %.
"""

HR_ZONE_UPPER_FRACTIONS = (0.68, 0.83, 0.94, 1.05)
"""Upper bounds of Coggan heart-rate levels 1-4 as fractions of LTHR (Allen & Coggan 2010); level 5 above.

Z1 active recovery ≤ 68 %, Z2 endurance 69-83 %, Z3 tempo 84-94 %, Z4 lactate threshold 95-105 %,
Z5 VO2max and above ≥ 106 %. A value between two printed bands (e.g. 68.5 %) goes to the higher zone.
"""

MOVING_SPEED_M_S = 1.0
"""Speed (m/s, 3.6 km/h) above which a second counts as moving.

A walking-pace threshold of our choosing; like Strava ("Moving Time, Speed, and Pace Calculations",
support.strava.com), moving time for a ride is decided from speed, not from the timer.
"""

DEFAULT_RESTING_HR_BPM = 60.0
"""Resting heart rate (bpm) assumed when the athlete's is unknown (a typical adult value)."""

LTHR_FROM_20MIN_HR_FRACTION = 1.0
"""LTHR ≈ best 20-minute mean heart rate (Friel's 30-minute test: average HR of its last 20 minutes)."""

TRIMP_WEIGHTING = {"male": (0.64, 1.92), "female": (0.86, 1.67)}
"""Banister (1991) TRIMP weighting y = a·e^(b·x) per sex: (a, b)."""


@dataclass(frozen=True)
class RideMetrics:
    """Metrics of one ride.

    Power figures are computed on the 1 Hz power series of the seconds where power was recorded
    (``RideSamples.recorded_power_w``: gaps ≤ 10 s held, pauses and dropouts dropped); heart-rate figures on
    the seconds with a heart rate. A figure is ``None`` when the ride lacks the data for it.

    Attributes:
        elapsed_s: seconds from the first to the last sample, pauses included.
        moving_s: recorded seconds in motion (see :func:`moving_mask`).
        distance_m: distance ridden in metres (from the recorded distance, else integrated speed), or None.
        work_kj: mechanical work in kilojoules (sum of power × 1 s / 1000).
        avg_power_w: average power in watts INCLUDING zeros (coasting counts), over recorded power seconds.
        avg_power_nonzero_w: average power in watts EXCLUDING zero samples (as some head units show it).
        normalized_power_w: normalized power (NP), see :func:`normalized_power`.
        variability_index: NP / average power (including zeros).
        intensity_factor: IF = NP / FTP used.
        tss: training stress score from NP, IF and the recorded power duration.
        mmp_w: mean-max power by duration label (``MMP_DURATIONS_S``); a label is absent when the power
            series is shorter than its duration.
        best_20min_w: best 20-minute mean power (same as ``mmp_w['20min']``), or None.
        ftp_estimate_w: 0.95 × best 20 minutes (Allen & Coggan), or None.
        ftp_used_w: FTP used for IF, TSS and power zones: the athlete's, else this ride's estimate.
        ftp_source: ``'athlete'``, ``'estimated'`` or None (no FTP available).
        avg_hr_bpm: average heart rate (bpm).
        max_hr_bpm: highest heart rate recorded in the ride (bpm).
        trimp: Banister TRIMP (arbitrary units; minutes × weighted heart-rate reserve), male weighting.
        hr_tss: hrTSS: TRIMP relative to one hour at LTHR × 100.
        aerobic_decoupling_pct: Pw:HR decoupling in percent (positive: heart rate drifted up relative to power).
        efficiency_factor: EF = NP / average heart rate (W/bpm).
        power_zones_s: seconds in Coggan power zones ``'Z1'``..``'Z7'`` by the FTP used; empty without FTP.
        hr_zones_s: seconds in Coggan heart-rate zones ``'Z1'``..``'Z5'`` by LTHR; empty without LTHR.
        hr_params: the heart-rate parameters used: ``resting_hr_bpm``, ``max_hr_bpm``, ``lthr_bpm`` and, for
            each, ``*_source`` = ``'athlete'`` (given), ``'default'`` or ``'estimated'`` (from this ride).
            Empty when the ride has no heart rate.
    """

    elapsed_s: float
    moving_s: float
    distance_m: float | None
    work_kj: float | None
    avg_power_w: float | None
    avg_power_nonzero_w: float | None
    normalized_power_w: float | None
    variability_index: float | None
    intensity_factor: float | None
    tss: float | None
    mmp_w: dict[str, float] = field(default_factory=dict)
    best_20min_w: float | None = None
    ftp_estimate_w: float | None = None
    ftp_used_w: float | None = None
    ftp_source: str | None = None
    avg_hr_bpm: float | None = None
    max_hr_bpm: float | None = None
    trimp: float | None = None
    hr_tss: float | None = None
    aerobic_decoupling_pct: float | None = None
    efficiency_factor: float | None = None
    power_zones_s: dict[str, float] = field(default_factory=dict)
    hr_zones_s: dict[str, float] = field(default_factory=dict)
    hr_params: dict[str, float | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as a JSON-ready dict (plain floats, strings, None and nested dicts)."""
        return asdict(self)


# --- power -----------------------------------------------------------------------------------------------------


def rolling_mean(values: np.ndarray, window_s: int) -> np.ndarray:
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


def normalized_power(power_w: np.ndarray) -> float | None:
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


def mean_max_power(power_w: np.ndarray, duration_s: int) -> float | None:
    """Mean-max power (MMP, W): the highest mean power over any ``duration_s`` consecutive samples.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts.
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


def mean_max_curve(power_w: np.ndarray, durations_s: Mapping[str, int] = MMP_DURATIONS_S) -> dict[str, float]:
    """Mean-max power for several durations.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts.
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


def power_zone_bounds_w(ftp_w: float) -> np.ndarray:
    """Upper bounds (W) of Coggan power zones Z1..Z6 for an FTP, shape ``(6,)``; Z7 lies above the last."""
    return np.asarray(POWER_ZONE_UPPER_FRACTIONS) * float(ftp_w)


# --- zones -----------------------------------------------------------------------------------------------------


def time_in_zones(values: np.ndarray, upper_bounds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Seconds spent in each zone of a 1 Hz series.

    Zone ``Zk`` (k = 1..len(upper_bounds)+1) holds values ``upper_bounds[k-2] < v <= upper_bounds[k-1]``; the
    first zone has no lower bound and the last no upper bound. NaN samples are not counted.

    Args:
        values: float shape ``(n,)``, 1 Hz samples (e.g. power in W or heart rate in bpm).
        upper_bounds: increasing upper bounds, shape ``(z - 1,)`` for ``z`` zones.

    Returns:
        ``{'Z1': seconds, ..., 'Zz': seconds}``, every zone present.

    Raises:
        ValueError: if the bounds are not strictly increasing.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    if bounds.size > 1 and np.any(np.diff(bounds) <= 0):
        raise ValueError("upper_bounds must be strictly increasing")
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    zone_index = np.searchsorted(bounds, values, side="left")
    counts = np.bincount(zone_index, minlength=bounds.size + 1)
    return {f"Z{k + 1}": float(counts[k]) for k in range(bounds.size + 1)}


def hr_zone_bounds_bpm(lthr_bpm: float) -> np.ndarray:
    """Upper bounds (bpm) of Coggan heart-rate zones Z1..Z4 for an LTHR, shape ``(4,)``; Z5 above the last."""
    return np.asarray(HR_ZONE_UPPER_FRACTIONS) * float(lthr_bpm)


# --- heart rate ------------------------------------------------------------------------------------------------


def trimp(
    hr_bpm: np.ndarray, *, resting_hr_bpm: float, max_hr_bpm: float, sex: str = "male", sample_s: float = 1.0
) -> float:
    """Banister TRIMP of a heart-rate series (Banister 1991).

    TRIMP = Σ Δt_min × x × a·e^(b·x), with heart-rate reserve fraction x = (HR − rest) / (max − rest) clipped to
    [0, 1] and (a, b) = (0.64, 1.92) for men, (0.86, 1.67) for women.

    Args:
        hr_bpm: float shape ``(n,)``, heart rate in bpm at ``sample_s`` intervals; NaN samples are skipped.
        resting_hr_bpm: resting heart rate in bpm.
        max_hr_bpm: maximum heart rate in bpm, > ``resting_hr_bpm``.
        sex: ``'male'`` or ``'female'`` (weighting constants).
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
    hr_bpm: np.ndarray,
    *,
    resting_hr_bpm: float,
    max_hr_bpm: float,
    lthr_bpm: float,
    sex: str = "male",
    sample_s: float = 1.0,
) -> float:
    """Heart-rate training stress score (hrTSS): the ride's TRIMP relative to one hour at LTHR, × 100.

    TrainingPeaks defines hrTSS so that one hour at LTHR scores 100; this is the TRIMP-based form ("HRSS" of
    the Elevate app) using the Banister (1991) weighting, so a ride at constant LTHR scores
    100 × hours.

    Args:
        hr_bpm: float shape ``(n,)``, heart rate in bpm; NaN samples are skipped.
        resting_hr_bpm: resting heart rate in bpm.
        max_hr_bpm: maximum heart rate in bpm, > ``resting_hr_bpm``.
        lthr_bpm: lactate threshold heart rate in bpm, > ``resting_hr_bpm``.
        sex: ``'male'`` or ``'female'``.
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


def estimate_lthr_bpm(hr_bpm: np.ndarray) -> float | None:
    """Estimate LTHR (bpm) as the best 20-minute mean heart rate of the ride (Friel's 30-minute test rule).

    Only as good as the ride's hardest 20 minutes: an easy ride underestimates LTHR (and so overstates hrTSS).

    Args:
        hr_bpm: float shape ``(n,)``, 1 Hz heart rate in bpm; NaN samples are dropped first.

    Returns:
        The estimate in bpm, or None when fewer than 20 minutes of heart rate were recorded.
    """
    hr = np.asarray(hr_bpm, dtype=np.float64)
    rolled = rolling_mean(hr[~np.isnan(hr)], MMP_DURATIONS_S["20min"])
    return None if rolled.size == 0 else LTHR_FROM_20MIN_HR_FRACTION * float(rolled.max())


def efficiency_factor(normalized_power_w: float, avg_hr_bpm: float) -> float | None:
    """Efficiency factor EF = NP / average heart rate (W/bpm; TrainingPeaks after Friel); None if HR is 0."""
    if avg_hr_bpm <= 0:
        return None
    return float(normalized_power_w) / float(avg_hr_bpm)


def aerobic_decoupling(power_w: np.ndarray, hr_bpm: np.ndarray) -> float | None:
    """Aerobic decoupling Pw:HR in percent (Friel; TrainingPeaks help article 204071724).

    The series is split into two halves of equal sample count; EF = NP / average HR in each half;
    decoupling = (EF_first − EF_second) / EF_first × 100. Positive values mean heart rate rose relative to
    power (Friel reads < 5 % on a long steady ride as good aerobic endurance).

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts.
        hr_bpm: float shape ``(n,)``, heart rate in bpm on the same seconds as ``power_w`` (no NaN).

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
        ef = efficiency_factor(np_w, float(np.mean(hr[part])))
        if ef is None or ef <= 0:
            return None
        halves_ef.append(ef)
    first, second = halves_ef
    return (first - second) / first * 100.0


def _hr_reserve_fraction(hr_bpm: np.ndarray, resting_hr_bpm: float, max_hr_bpm: float) -> np.ndarray:
    if max_hr_bpm <= resting_hr_bpm:
        raise ValueError(f"max_hr_bpm ({max_hr_bpm}) must exceed resting_hr_bpm ({resting_hr_bpm})")
    hr = np.asarray(hr_bpm, dtype=np.float64)
    hr = hr[~np.isnan(hr)]
    return np.clip((hr - resting_hr_bpm) / (max_hr_bpm - resting_hr_bpm), 0.0, 1.0)


def _trimp_weighting(sex: str) -> tuple[float, float]:
    try:
        return TRIMP_WEIGHTING[sex]
    except KeyError:
        raise ValueError(f"sex must be 'male' or 'female', got {sex!r}") from None


# --- time and distance -----------------------------------------------------------------------------------------


def moving_mask(samples: RideSamples) -> np.ndarray:
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


def _speed_from_distance(elapsed_s: np.ndarray, distance_m: np.ndarray) -> np.ndarray:
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


# --- the whole ride --------------------------------------------------------------------------------------------


def compute_metrics(
    ride: Ride,
    *,
    ftp_w: float | None = None,
    lthr_bpm: float | None = None,
    max_hr_bpm: float | None = None,
    resting_hr_bpm: float | None = None,
) -> RideMetrics:
    """Compute all per-ride metrics.

    With ``ftp_w`` None, IF, TSS and power zones use this ride's own FTP estimate (0.95 × best 20 min) and
    ``ftp_source`` is ``'estimated'``; a ride shorter than 20 minutes then has no IF/TSS/zones. A ride without
    power has no power figures (None, empty dicts) but gets TRIMP and hrTSS from heart rate.

    Heart-rate parameters not given are filled in and recorded in ``hr_params``: resting HR 60 bpm
    (``'default'``), max HR = the ride's highest heart rate (``'estimated'``, raised to LTHR if below it),
    LTHR = the ride's best 20-minute mean heart rate (``'estimated'``, Friel; none for rides with less than
    20 minutes of heart rate, which then have no hrTSS or heart-rate zones).

    Args:
        ride: the ride.
        ftp_w: the athlete's FTP in watts, if known.
        lthr_bpm: the athlete's lactate threshold heart rate in bpm, if known.
        max_hr_bpm: the athlete's maximum heart rate in bpm, if known.
        resting_hr_bpm: the athlete's resting heart rate in bpm, if known.

    Returns:
        The metrics.

    Raises:
        ValueError: if a given parameter is not positive, or a given max HR or LTHR does not exceed the resting
            heart rate used.
    """
    for name, value in (
        ("ftp_w", ftp_w),
        ("lthr_bpm", lthr_bpm),
        ("max_hr_bpm", max_hr_bpm),
        ("resting_hr_bpm", resting_hr_bpm),
    ):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    samples = ride.samples
    power = _power_metrics(samples, ftp_w)
    heart = _hr_metrics(samples, lthr_bpm=lthr_bpm, max_hr_bpm=max_hr_bpm, resting_hr_bpm=resting_hr_bpm)
    np_w = power.get("normalized_power_w")
    avg_hr = heart.get("avg_hr_bpm")
    paired = _power_and_hr_paired(samples)
    return RideMetrics(
        elapsed_s=float(samples.total_elapsed_s),
        moving_s=float(np.count_nonzero(moving_mask(samples))),
        distance_m=ride_distance_m(samples),
        efficiency_factor=None if np_w is None or avg_hr is None else efficiency_factor(np_w, avg_hr),
        aerobic_decoupling_pct=None if paired is None else aerobic_decoupling(*paired),
        **power,
        **heart,
    )


def _power_metrics(samples: RideSamples, ftp_w: float | None) -> dict[str, Any]:
    power = samples.recorded_power_w
    empty: dict[str, Any] = {
        "work_kj": None,
        "avg_power_w": None,
        "avg_power_nonzero_w": None,
        "normalized_power_w": None,
        "variability_index": None,
        "intensity_factor": None,
        "tss": None,
        "mmp_w": {},
        "best_20min_w": None,
        "ftp_estimate_w": None,
        "ftp_used_w": None,
        "ftp_source": None,
        "power_zones_s": {},
    }
    if power is None or power.size == 0:
        return empty
    nonzero = power[power > 0]
    avg_w = float(np.mean(power))
    np_w = normalized_power(power)
    mmp = mean_max_curve(power)
    best_20 = mmp.get("20min")
    ftp_estimate = None if best_20 is None else ftp_from_best_20min(best_20)
    if ftp_w is not None:
        ftp_used, ftp_source = float(ftp_w), "athlete"
    elif ftp_estimate is not None and ftp_estimate > 0:
        ftp_used, ftp_source = ftp_estimate, "estimated"
    else:
        ftp_used, ftp_source = None, None
    out = dict(empty)
    out.update(
        work_kj=float(np.sum(power)) / 1000.0,
        avg_power_w=avg_w,
        avg_power_nonzero_w=float(np.mean(nonzero)) if nonzero.size else None,
        normalized_power_w=np_w,
        variability_index=None if np_w is None else variability_index(np_w, avg_w),
        mmp_w=mmp,
        best_20min_w=best_20,
        ftp_estimate_w=ftp_estimate,
        ftp_used_w=ftp_used,
        ftp_source=ftp_source,
    )
    if ftp_used is not None:
        out["power_zones_s"] = time_in_zones(power, power_zone_bounds_w(ftp_used))
        if np_w is not None:
            out["intensity_factor"] = intensity_factor(np_w, ftp_used)
            out["tss"] = training_stress_score(power.size, np_w, ftp_used)
    return out


def _hr_metrics(
    samples: RideSamples,
    *,
    lthr_bpm: float | None,
    max_hr_bpm: float | None,
    resting_hr_bpm: float | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "avg_hr_bpm": None,
        "max_hr_bpm": None,
        "trimp": None,
        "hr_tss": None,
        "hr_zones_s": {},
        "hr_params": {},
    }
    hr = samples.hr_bpm
    if hr is None:
        return out
    hr = hr[~np.isnan(hr)]
    if hr.size == 0:
        return out
    ride_max = float(hr.max())
    out.update(avg_hr_bpm=float(hr.mean()), max_hr_bpm=ride_max)

    params: dict[str, float | str] = {}
    if resting_hr_bpm is not None:
        rest, params["resting_hr_source"] = float(resting_hr_bpm), "athlete"
    else:
        rest, params["resting_hr_source"] = DEFAULT_RESTING_HR_BPM, "default"
    params["resting_hr_bpm"] = rest
    lthr: float | None
    if lthr_bpm is not None:
        lthr = float(lthr_bpm)
        if lthr <= rest:
            raise ValueError(f"lthr_bpm ({lthr}) must exceed the resting heart rate ({rest} bpm)")
        params["lthr_source"] = "athlete"
    else:
        lthr = estimate_lthr_bpm(hr)
        if lthr is not None and lthr <= rest:
            lthr = None  # a heart-rate trace below resting: no usable estimate
        if lthr is not None:
            params["lthr_source"] = "estimated"
    if lthr is not None:
        params["lthr_bpm"] = lthr
    if max_hr_bpm is not None:
        hr_max = float(max_hr_bpm)
        if hr_max <= rest:
            raise ValueError(f"max_hr_bpm ({hr_max}) must exceed the resting heart rate ({rest} bpm)")
        params["max_hr_source"] = "athlete"
    else:
        hr_max = max(ride_max, lthr or 0.0)
        params["max_hr_source"] = "estimated"
    params["max_hr_bpm"] = hr_max
    out["hr_params"] = dict(sorted(params.items()))

    if hr_max > rest:
        out["trimp"] = trimp(hr, resting_hr_bpm=rest, max_hr_bpm=hr_max)
        if lthr is not None:
            out["hr_tss"] = hr_tss(hr, resting_hr_bpm=rest, max_hr_bpm=hr_max, lthr_bpm=lthr)
    if lthr is not None:
        out["hr_zones_s"] = time_in_zones(hr, hr_zone_bounds_bpm(lthr))
    return out


def _power_and_hr_paired(samples: RideSamples) -> tuple[np.ndarray, np.ndarray] | None:
    """Power and heart rate on the seconds where both were recorded, or None if the ride lacks either."""
    if samples.power_w is None or samples.hr_bpm is None:
        return None
    both = ~np.isnan(samples.hr_bpm)
    if samples.power_recorded is not None:
        both &= samples.power_recorded
    return samples.power_w[both], samples.hr_bpm[both]
