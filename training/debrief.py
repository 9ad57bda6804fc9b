"""Glue between a ride's metrics and the athlete's memory: what a ride row holds and which facts it changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from training.athlete_model import DatedCurve, choose_ftp, hr_parameters, scored_metrics, w_prime_summary
from training.metrics import RideMetrics, compute_metrics
from training.power_curve import best_normalized_power, ride_power_curve
from training.power_series import pack_power_series, power_series_w
from training.records import FactChange, RideRecord
from training.ride_files import Ride
from training.ride_histograms import ride_histograms
from training.scoring import STALE_DURATION_S, DatedValue

# Mean-max power durations kept as athlete facts ("power bests"), by the metrics' MMP key.
POWER_BEST_FACTS: dict[str, str] = {
    "5s": "best_5s_w",
    "1min": "best_1min_w",
    "5min": "best_5min_w",
    "20min": "best_20min_w",
    "60min": "best_60min_w",
}


def ride_record(ride: Ride, metrics: RideMetrics, *, utc_offset_s: int | None = None) -> RideRecord:
    """Build the ride's store row from the parsed file and its metrics (the graph normalises its text).

    The row keeps the ride's mean-max power curve (`training.power_curve.ride_power_curve`, pauses zero-filled),
    its end, its channels and samples (one ride, one load), the file's local UTC offset when known, and the seconds
    at each heart rate and power value (`training.ride_histograms`: zones and hrTSS recomputed for any threshold).
    """
    m = metrics.to_dict()
    curve = ride_power_curve(ride.samples)
    hist = ride_histograms(ride.samples)
    return RideRecord(
        ride_id=ride.ride_id,
        file_name=ride.file_path.rsplit("/", 1)[-1],
        file_format=ride.file_format,
        sport=ride.sport,
        start_time=ride.start_time,
        elapsed_s=float(metrics.elapsed_s),
        moving_s=float(metrics.moving_s),
        distance_m=metrics.distance_m,
        normalized_power_w=metrics.normalized_power_w,
        tss=metrics.tss,
        hr_tss=metrics.hr_tss,
        metrics=m,
        curve_durations_s=None if curve is None else [int(d) for d in curve[0]],
        curve_power_w=None if curve is None else [round(float(p), 2) for p in curve[1]],
        end_time=ride.start_time + timedelta(seconds=float(ride.samples.total_elapsed_s)),
        utc_offset_s=utc_offset_s,
        channels=list(ride.samples.channels),
        n_samples=int(ride.samples.n_samples),
        hr_hist_bpm=hist.hr[0],
        hr_hist_s=hist.hr[1],
        power_hist_w=hist.power[0],
        power_1hz_w=pack_power_series(power_series_w(ride.samples)),
        power_hist_s=hist.power[1],
    )


def ride_fact_changes(metrics: dict[str, Any]) -> list[FactChange]:
    """Facts a debriefed ride may change, each written only if it beats the current value.

    The FTP is not one of them: it is a dated athlete value (`records.athlete_values`), reported by a device,
    confirmed by the athlete or fitted from the rides, never 95 % of one ride's best 20 minutes (issue 11, B1).

    - `best_5s_w`, `best_1min_w`, `best_5min_w`, `best_20min_w`, `best_60min_w`: the ride's mean-max power
      (MMP) at those durations, rounded to the watt, when higher than the athlete's best.

    Args:
        metrics: a `RideMetrics.to_dict()` (stored in the ride row).

    Returns:
        The candidate changes; a ride without power gives none.
    """
    changes: list[FactChange] = []
    mmp_w: dict[str, float] = metrics.get("mmp_w") or {}
    for mmp_key, fact_key in POWER_BEST_FACTS.items():
        if mmp_w.get(mmp_key):
            changes.append(FactChange(fact_key, round(mmp_w[mmp_key]), only_if_higher=True))
    return changes


def analyse_ride(
    ride: Ride,
    values: dict[str, DatedValue | str],
    ftp_values: list[DatedValue],
    curves: list[DatedCurve],
    *,
    utc_offset_s: int | None = None,
) -> tuple[RideRecord, list[dict[str, Any]]]:
    """A ride's row scored with the athlete's values valid at its start, and what to propose to the athlete.

    Steps (rules and sources in `training.athlete_model` and `training.scoring`): heart-rate metrics with the
    athlete's LTHR, max HR, resting HR and sex (`hr_parameters`); the FTP valid at the ride's start
    (`choose_ftp`: confirmed > device > fitted eFTP, stale when the ride's best 60-min NP exceeds it); IF, TSS and
    power zones with it; the W′ balance low point when CP and W′ are known or can be fitted.

    Args:
        ride: the parsed file.
        values: the athlete's values valid at the ride's start (its own file's device values included).
        ftp_values: every dated FTP value of the athlete (its own file's device FTP included).
        curves: the power curves of the primary rides of the 90 days before the ride.
        utc_offset_s: the file's local time minus UTC (s), if known.

    Returns:
        ``(record, proposals)``; a proposal is ``{"key": "ftp_w", "value", "evidence"}`` (a stale FTP, or no FTP
        for a power ride), the evidence holding ``valid_from`` (the ride's start, ISO 8601).
    """
    samples = ride.samples
    hr = hr_parameters(values, samples)
    best_60min_np_w = None
    if samples.recorded_power_w is not None:
        best_60min_np_w = best_normalized_power(samples.recorded_power_w, STALE_DURATION_S)
    choice = choose_ftp(ftp_values, ride.start_time, best_60min_np_w, curves)
    metrics = compute_metrics(ride, ftp_w=choice.ftp_w, **hr)
    record = ride_record(ride, metrics, utc_offset_s=utc_offset_s)
    scored = scored_metrics(record.metrics, metrics.power_s, choice)
    own: list[DatedCurve] = []
    if record.curve_durations_s is not None and record.curve_power_w is not None:
        own = [
            (ride.ride_id, ride.start_time, (np.asarray(record.curve_durations_s), np.asarray(record.curve_power_w)))
        ]
    scored["zones_status"] = "current"  # zones and hrTSS follow the values (`training.ride_histograms`)
    scored["w_prime_balance"] = w_prime_summary(samples, values, curves + own)
    scored["athlete_values_used"] = values_used(values)
    proposals: list[dict[str, Any]] = []
    evidence = {**choice.evidence, "ride_id": ride.ride_id, "valid_from": ride.start_time.isoformat()}
    if choice.stale and choice.proposed_ftp_w is not None:
        proposals.append({"key": "ftp_w", "value": round(choice.proposed_ftp_w), "evidence": evidence})
    elif scored.get("tss_status") == "no_ftp":
        guess = choice.proposed_ftp_w or metrics.ftp_estimate_w
        if guess:
            evidence["rule"] = (
                "no FTP on record: the ride's best 60-min NP (a lower bound) or 95 % of its best 20 min, "
                "to confirm or correct; never used to score the ride unconfirmed"
            )
            proposals.append({"key": "ftp_w", "value": round(guess), "evidence": evidence})
    return replace(record, tss=scored.get("tss"), metrics=scored), proposals


HR_VALUE_KEYS = frozenset({"lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "sex"})
"""The values a ride's heart-rate figures (zones, TRIMP, hrTSS) are scored with (`hr_parameters`)."""
W_PRIME_VALUE_KEYS = frozenset({"cp_w", "w_prime_j"})
"""The values a ride's W′ balance is computed with."""


def values_used(values: dict[str, DatedValue | str]) -> dict[str, dict[str, Any]]:
    """The dated values a ride is scored with, as its metrics show them (``athlete_values_used``).

    Returns:
        ``{key: {"value", "source", "valid_from" (ISO 8601)}}`` for each `DatedValue` of ``values``.
    """
    return {
        k: {"value": v.value, "source": v.source, "valid_from": v.valid_from.isoformat()}
        for k, v in values.items()
        if isinstance(v, DatedValue)
    }


def refreshed_values_used(
    stored: dict[str, dict[str, Any]], values: dict[str, DatedValue | str], *, frozen: frozenset[str]
) -> dict[str, dict[str, Any]]:
    """``athlete_values_used`` after a re-score: the values valid now, except the ``frozen`` keys.

    Args:
        stored: the ride's ``athlete_values_used`` before the re-score.
        values: the athlete's values valid at the ride's start now.
        frozen: keys whose figures were not recomputed (a ride stored before it kept histograms or 1 Hz power:
            `HR_VALUE_KEYS`, `W_PRIME_VALUE_KEYS`): their stored entries stay, saying what those figures used.
    """
    fresh = values_used(values)
    return {k: v for k, v in fresh.items() if k not in frozen} | {k: v for k, v in stored.items() if k in frozen}
