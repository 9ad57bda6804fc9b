"""All metrics of one ride: the `RideMetrics` record and `compute_metrics`, which assembles it.

The figures come from :mod:`training.power` (NP, IF, TSS, VI, mean-max power, FTP estimate),
:mod:`training.heart_rate` (TRIMP, hrTSS, LTHR estimate, EF, Pw:HR decoupling), :mod:`training.zones`
(time in Coggan power and heart-rate zones) and :mod:`training.motion` (moving time, distance); their
docstrings give the sources. This module decides which parameters to use (the athlete's, a default or this
ride's estimate) and records that choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from training.heart_rate import (
    DEFAULT_RESTING_HR_BPM,
    aerobic_decoupling,
    efficiency_factor,
    estimate_lthr_bpm,
    hr_tss,
    max_hr_estimate,
    sustained_hr_estimate,
    trimp,
    valid_hr_bpm,
)
from training.motion import moving_mask, ride_distance_m
from training.power import (
    MMP_DURATIONS_S,
    ftp_from_best_20min,
    intensity_factor,
    mean_max_curve,
    normalized_power,
    training_stress_score,
    variability_index,
)
from training.power_curve import best_normalized_power, zero_filled_power_w
from training.ride_files import Ride
from training.samples import RideSamples
from training.scoring import STALE_DURATION_S
from training.zones import hr_zone_bounds_bpm, power_zone_bounds_w, time_in_zones

__all__ = ["MMP_DURATIONS_S", "RideMetrics", "compute_metrics"]


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
        mmp_w: mean-max power by duration label (``MMP_DURATIONS_S``), over windows of clock time with pauses
            and power dropouts at 0 W (:func:`training.power_curve.zero_filled_power_w`, as GoldenCheetah's
            RideFileCache); a label is absent when the ride is shorter than its duration.
        best_20min_w: best 20-minute mean power (same as ``mmp_w['20min']``), or None.
        ftp_estimate_w: 0.95 × best 20 minutes (Allen & Coggan), or None: shown, never used to score the ride.
        ftp_used_w: FTP used for IF, TSS and power zones: the one given (the athlete's value valid at the ride's
            start, `training.scoring.ftp_for_ride`), else None (no IF, TSS or power zones).
        ftp_source: ``'athlete'`` (given) or None; the Debrief Coach replaces it by the value's source.
        tss_status: ``'ok'``, ``'no_ftp'`` (power but no FTP: TSS None) or ``'no_power'``.
        power_s: seconds of the power series NP and TSS are computed on, or None.
        best_60min_np_w: the best 60-minute normalized power (W; `best_normalized_power`), or None.
        avg_hr_bpm: average heart rate (bpm) over the readings: 0 bpm is a dropout, not a reading.
        max_hr_bpm: highest heart rate recorded in the ride (bpm).
        trimp: Banister TRIMP (arbitrary units; minutes × weighted heart-rate reserve), male weighting (the
            when the athlete's sex is unknown, else the athlete's (:func:`training.heart_rate.trimp`).
        hr_estimates: this ride's evidence for the athlete's LTHR and max HR: ``lthr_bpm`` (highest 20-60 min
            mean, :func:`training.heart_rate.sustained_hr_estimate`) and ``max_hr_bpm`` (best 5 s).
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
    tss_status: str = "no_power"
    power_s: float | None = None
    best_60min_np_w: float | None = None
    avg_hr_bpm: float | None = None
    max_hr_bpm: float | None = None
    trimp: float | None = None
    hr_tss: float | None = None
    aerobic_decoupling_pct: float | None = None
    efficiency_factor: float | None = None
    power_zones_s: dict[str, float] = field(default_factory=dict)
    hr_zones_s: dict[str, float] = field(default_factory=dict)
    hr_params: dict[str, float | str] = field(default_factory=dict)
    hr_estimates: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as a JSON-ready dict (plain floats, strings, None and nested dicts)."""
        return asdict(self)


# --- the whole ride --------------------------------------------------------------------------------------------


def compute_metrics(
    ride: Ride,
    *,
    ftp_w: float | None = None,
    lthr_bpm: float | None = None,
    max_hr_bpm: float | None = None,
    resting_hr_bpm: float | None = None,
    sex: str | None = None,
) -> RideMetrics:
    """Compute all per-ride metrics.

    With ``ftp_w`` None, a power ride has no IF, TSS or power zones (``tss_status='no_ftp'``): the ride's own
    20-minute best never scores it (issue 11, B1). A ride without power has no power figures (None, empty dicts)
    but gets TRIMP and hrTSS from heart rate.

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
        sex: ``'male'``, ``'female'`` or None (TRIMP's weighting; None: the male constants).

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
    heart = _hr_metrics(samples, lthr_bpm=lthr_bpm, max_hr_bpm=max_hr_bpm, resting_hr_bpm=resting_hr_bpm, sex=sex)
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
        "tss_status": "no_power",
        "power_s": None,
        "best_60min_np_w": None,
        "power_zones_s": {},
    }
    if power is None or samples.power_w is None or power.size == 0:
        return empty
    nonzero = power[power > 0]
    avg_w = float(np.mean(power))
    np_w = normalized_power(power)
    # Mean-max windows run on clock time, pauses and dropouts at 0 W (GoldenCheetah RideFileCache), never joining
    # the efforts on both sides of a stop; the other power figures use the recorded seconds only.
    mmp = mean_max_curve(zero_filled_power_w(samples.elapsed_s, samples.power_w, samples.power_recorded))
    best_20 = mmp.get("20min")
    ftp_estimate = None if best_20 is None else ftp_from_best_20min(best_20)
    ftp_used, ftp_source = (float(ftp_w), "athlete") if ftp_w is not None else (None, None)
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
        tss_status="no_ftp" if ftp_used is None else "ok",
        power_s=float(power.size),
        best_60min_np_w=best_normalized_power(power, STALE_DURATION_S),
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
    sex: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "avg_hr_bpm": None,
        "max_hr_bpm": None,
        "trimp": None,
        "hr_tss": None,
        "hr_zones_s": {},
        "hr_params": {},
        "hr_estimates": {},
    }
    hr = samples.hr_bpm
    if hr is None:
        return out
    hr = valid_hr_bpm(hr)  # NaN and 0 bpm (dropouts) are not readings
    if hr.size == 0:
        return out
    ride_max = float(hr.max())
    out.update(avg_hr_bpm=float(hr.mean()), max_hr_bpm=ride_max)
    sustained, peak = sustained_hr_estimate(hr), max_hr_estimate(hr)
    out["hr_estimates"] = {
        **({} if sustained is None else {"lthr_bpm": sustained.value_bpm}),
        **({} if peak is None else {"max_hr_bpm": peak.value_bpm}),
    }

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
        out["trimp"] = trimp(hr, resting_hr_bpm=rest, max_hr_bpm=hr_max, sex=sex)
        if lthr is not None:
            out["hr_tss"] = hr_tss(hr, resting_hr_bpm=rest, max_hr_bpm=hr_max, lthr_bpm=lthr, sex=sex)
    if lthr is not None:
        out["hr_zones_s"] = time_in_zones(hr, hr_zone_bounds_bpm(lthr))
    return out


def _power_and_hr_paired(samples: RideSamples) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Power and heart rate on the seconds where both were recorded, or None if the ride lacks either."""
    if samples.power_w is None or samples.hr_bpm is None:
        return None
    both = np.isfinite(samples.hr_bpm) & (samples.hr_bpm > 0)
    if samples.power_recorded is not None:
        both &= samples.power_recorded
    return samples.power_w[both], samples.hr_bpm[both]
