"""Seconds per heart rate and per power value of a ride: zones, TRIMP and hrTSS for any threshold, without the file.

A ride's time in zones and its hrTSS depend on the athlete's FTP, LTHR, max HR, resting HR and sex valid at its
start, which can change after the ride is stored (issue 11, "Recompute, don't freeze"). Every one of these figures is
a sum over the ride's 1 Hz samples of a function of the sample's value alone (`training.zones.time_in_zones`,
`training.heart_rate.trimp`, `training.heart_rate.hr_tss`), so it only needs how many seconds the ride spent at each
value: the histogram kept with the ride (``rides.hr_hist_bpm``/``hr_hist_s``, ``power_hist_w``/``power_hist_s``,
`memory.schema` v35).

The histogram is exact, not binned: one entry per distinct value the ride holds (values as the device recorded them,
held across gaps of at most 10 s by `training.samples.resample_to_1hz`), so a zone bound falling between two watts
or beats is placed as the sample-based code places it. Heart rate: the readings (`training.heart_rate.valid_hr_bpm`:
0 bpm and NaN are dropouts, not readings). Power: the seconds where power was recorded
(`training.samples.RideSamples.recorded_power_w`: short gaps held, pauses and dropouts left out), the series the
power zones are computed on. A head unit records whole watts and beats: a typical ride keeps 100-200 heart-rate
values and a few hundred power values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from training.heart_rate import DEFAULT_RESTING_HR_BPM, DEFAULT_TRIMP_SEX, TRIMP_WEIGHTING, valid_hr_bpm
from training.samples import RideSamples
from training.zones import hr_zone_bounds_bpm, power_zone_bounds_w

Histogram = tuple[list[float], list[int]]
"""``(values, seconds)``: distinct values in increasing order and the seconds spent at each, same length."""


@dataclass(frozen=True)
class RideHistograms:
    """What a ride row keeps to recompute its zones and hrTSS.

    Attributes:
        hr: heart-rate readings (bpm) and their seconds; empty lists when the ride has no heart rate.
        power: recorded power (W) and its seconds; empty lists when the ride has no power.
    """

    hr: Histogram
    power: Histogram


def value_histogram(values: npt.NDArray[np.float64]) -> Histogram:
    """The seconds a 1 Hz series spends at each of its distinct finite values.

    Args:
        values: float shape ``(n,)``, one sample per second; NaN samples are left out.

    Returns:
        ``(values, seconds)``: distinct values increasing (plain floats) and their counts (plain ints).
    """
    arr = np.asarray(values, dtype=np.float64)
    distinct, counts = np.unique(arr[np.isfinite(arr)], return_counts=True)
    return [float(v) for v in distinct], [int(c) for c in counts]


def ride_histograms(samples: RideSamples) -> RideHistograms:
    """The heart-rate and power histograms of a ride (see the module docstring for the seconds counted)."""
    hr = ([], []) if samples.hr_bpm is None else value_histogram(valid_hr_bpm(samples.hr_bpm))
    power_w = samples.recorded_power_w
    power = ([], []) if power_w is None else value_histogram(power_w)
    return RideHistograms(hr=hr, power=power)


def zones_from_histogram(
    values: Sequence[float], seconds: Sequence[int], upper_bounds: Sequence[float] | npt.NDArray[np.float64]
) -> dict[str, float]:
    """Seconds in each zone from a histogram: the same figures as `training.zones.time_in_zones` on the samples.

    Zone ``Zk`` holds values ``upper_bounds[k-2] < v <= upper_bounds[k-1]``.

    Args:
        values: distinct values (any order), shape ``(k,)``.
        seconds: seconds at each value, shape ``(k,)``.
        upper_bounds: strictly increasing zone upper bounds, shape ``(z - 1,)``.

    Returns:
        ``{'Z1': seconds, ..., 'Zz': seconds}``, every zone present.

    Raises:
        ValueError: if the bounds are not strictly increasing or the two lists differ in length.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    if bounds.size > 1 and np.any(np.diff(bounds) <= 0):
        raise ValueError("upper_bounds must be strictly increasing")
    v, s = _arrays(values, seconds)
    counts = np.bincount(np.searchsorted(bounds, v, side="left"), weights=s, minlength=bounds.size + 1)
    return {f"Z{k + 1}": float(counts[k]) for k in range(bounds.size + 1)}


def trimp_from_histogram(
    values: Sequence[float], seconds: Sequence[int], *, resting_hr_bpm: float, max_hr_bpm: float, sex: str | None
) -> float:
    """Banister TRIMP from a heart-rate histogram: `training.heart_rate.trimp` on the samples, summed per value.

    Raises:
        ValueError: if ``max_hr_bpm`` ≤ ``resting_hr_bpm`` or ``sex`` is unknown.
    """
    if max_hr_bpm <= resting_hr_bpm:
        raise ValueError(f"max_hr_bpm ({max_hr_bpm}) must exceed resting_hr_bpm ({resting_hr_bpm})")
    a, b = _weighting(sex)
    v, s = _arrays(values, seconds)
    x = np.clip((v - resting_hr_bpm) / (max_hr_bpm - resting_hr_bpm), 0.0, 1.0)
    return float(np.sum(s * x * a * np.exp(b * x)) / 60.0)


def hr_tss_from_histogram(
    values: Sequence[float],
    seconds: Sequence[int],
    *,
    resting_hr_bpm: float,
    max_hr_bpm: float,
    lthr_bpm: float,
    sex: str | None,
) -> float:
    """HrTSS from a heart-rate histogram: the ride's TRIMP over one hour at LTHR × 100 (`training.heart_rate.hr_tss`).

    Raises:
        ValueError: if ``max_hr_bpm`` or ``lthr_bpm`` ≤ ``resting_hr_bpm``, or ``sex`` is unknown.
    """
    if lthr_bpm <= resting_hr_bpm:
        raise ValueError(f"lthr_bpm ({lthr_bpm}) must exceed resting_hr_bpm ({resting_hr_bpm})")
    ride = trimp_from_histogram(values, seconds, resting_hr_bpm=resting_hr_bpm, max_hr_bpm=max_hr_bpm, sex=sex)
    a, b = _weighting(sex)
    x_lt = (lthr_bpm - resting_hr_bpm) / (max_hr_bpm - resting_hr_bpm)
    return ride / (60.0 * x_lt * a * math.exp(b * x_lt)) * 100.0


def rescored_zones_and_hr(metrics: dict[str, Any], hist: RideHistograms, hr_params: dict[str, Any]) -> dict[str, Any]:
    """A stored ride's metrics with its power zones, TRIMP, hrTSS, heart-rate zones and ``hr_params`` recomputed.

    The same rules as `training.metrics.compute_metrics` (its ``_hr_metrics``), from the histograms and the figures
    the metrics keep: power zones by ``metrics['ftp_used_w']`` (none without an FTP); resting HR the athlete's or
    60 bpm; LTHR the one given (none: no hrTSS nor heart-rate zones; `training.athlete_model.hr_parameters` already
    falls back on the ride's own sustained heart rate); max HR the one given, else the ride's highest reading
    (``metrics['max_hr_bpm']``) raised to LTHR.

    Args:
        metrics: the ride's stored metrics (a `training.metrics.RideMetrics.to_dict()`, re-scored).
        hist: the ride's histograms.
        hr_params: ``{"lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "sex"}``, each None when unknown (as
            `training.athlete_model.hr_parameters` gives them).

    Returns:
        A new metrics dict; ``zones_status`` is ``'current'``.
    """
    out = {**metrics, "zones_status": "current"}
    ftp = metrics.get("ftp_used_w")
    out["power_zones_s"] = (
        {} if ftp is None or not hist.power[0] else zones_from_histogram(*hist.power, power_zone_bounds_w(ftp))
    )
    out.update(trimp=None, hr_tss=None, hr_zones_s={}, hr_params={})
    if not hist.hr[0]:
        return out
    sex = hr_params.get("sex")
    params: dict[str, float | str] = {}
    rest = hr_params.get("resting_hr_bpm")
    params["resting_hr_source"] = "default" if rest is None else "athlete"
    params["resting_hr_bpm"] = rest = DEFAULT_RESTING_HR_BPM if rest is None else float(rest)
    lthr = hr_params.get("lthr_bpm")
    if lthr is not None and float(lthr) > rest:
        params["lthr_bpm"], params["lthr_source"] = float(lthr), "athlete"
    else:
        lthr = None
    given_max = hr_params.get("max_hr_bpm")
    if given_max is not None and float(given_max) > rest:
        hr_max, params["max_hr_source"] = float(given_max), "athlete"
    else:
        hr_max, params["max_hr_source"] = max(float(metrics.get("max_hr_bpm") or 0.0), lthr or 0.0), "estimated"
    params["max_hr_bpm"] = hr_max
    out["hr_params"] = dict(sorted(params.items()))
    if hr_max > rest:
        out["trimp"] = trimp_from_histogram(*hist.hr, resting_hr_bpm=rest, max_hr_bpm=hr_max, sex=sex)
        if lthr is not None:
            out["hr_tss"] = hr_tss_from_histogram(
                *hist.hr, resting_hr_bpm=rest, max_hr_bpm=hr_max, lthr_bpm=float(lthr), sex=sex
            )
    if lthr is not None:
        out["hr_zones_s"] = zones_from_histogram(*hist.hr, hr_zone_bounds_bpm(float(lthr)))
    return out


def frozen_zones_and_hr(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a ride stored without histograms (before `memory.schema` v35), saying so.

    Its zones, TRIMP and hrTSS stay as computed at its debrief (``zones_status = 'as_debriefed'``): nothing is guessed.
    """
    return {
        **metrics,
        "zones_status": "as_debriefed",
        "zones_note": "stored before rides kept their heart-rate and power histograms: its zones, TRIMP and hrTSS "
        "are those of its debrief, with the values valid then",
    }


def _arrays(values: Sequence[float], seconds: Sequence[int]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if len(values) != len(seconds):
        raise ValueError(f"{len(values)} values but {len(seconds)} seconds")
    return np.asarray(values, dtype=np.float64), np.asarray(seconds, dtype=np.float64)


def _weighting(sex: str | None) -> tuple[float, float]:
    try:
        return TRIMP_WEIGHTING[DEFAULT_TRIMP_SEX if sex is None else sex]
    except KeyError:
        raise ValueError(f"sex must be 'male', 'female' or None, got {sex!r}") from None
