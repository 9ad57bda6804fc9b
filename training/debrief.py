"""Glue between a ride's metrics and the athlete's memory: what a ride row holds and which facts it changes."""

from __future__ import annotations

from typing import Any

from training.metrics import RideMetrics
from training.records import FactChange, RideRecord
from training.ride_files import Ride

# Mean-max power durations kept as athlete facts ("power bests"), by the metrics' MMP key.
POWER_BEST_FACTS: dict[str, str] = {
    "5s": "best_5s_w",
    "1min": "best_1min_w",
    "5min": "best_5min_w",
    "20min": "best_20min_w",
    "60min": "best_60min_w",
}

# Facts read to personalise a ride's metrics, and the compute_metrics argument each feeds.
ATHLETE_PARAMETER_FACTS: dict[str, str] = {
    "ftp_w": "ftp_w",
    "lthr_bpm": "lthr_bpm",
    "max_hr_bpm": "max_hr_bpm",
    "resting_hr_bpm": "resting_hr_bpm",
}


def athlete_parameters(facts: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Return the keyword arguments of `compute_metrics` taken from the athlete's current facts.

    Args:
        facts: `AthleteStore.current_facts` output (`{key: {"value": ...}}`).

    Returns:
        `{"ftp_w", "lthr_bpm", "max_hr_bpm", "resting_hr_bpm"}`, each a positive number or None.
    """
    params: dict[str, float | None] = {}
    for fact_key, arg in ATHLETE_PARAMETER_FACTS.items():
        value = facts.get(fact_key, {}).get("value")
        params[arg] = float(value) if isinstance(value, int | float) and value > 0 else None
    return params


def ride_record(ride: Ride, metrics: RideMetrics) -> RideRecord:
    """Build the ride's store row from the parsed file and its metrics (the graph normalises its text)."""
    m = metrics.to_dict()
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
    )


def ride_fact_changes(metrics: dict[str, Any]) -> list[FactChange]:
    """Facts a debriefed ride may change, each written only if it beats the current value.

    - `ftp_w`: 95 % of the ride's best 20-minute power (Allen & Coggan, *Training and Racing with a Power
      Meter*, 2nd ed., 2010, ch. 3: the 20-minute test), rounded to the watt, when there is no FTP yet or the
      estimate is higher than the current one.
    - `best_5s_w`, `best_1min_w`, `best_5min_w`, `best_20min_w`, `best_60min_w`: the ride's mean-max power
      (MMP) at those durations, rounded to the watt, when higher than the athlete's best.

    Args:
        metrics: a `RideMetrics.to_dict()` (stored in the ride row).

    Returns:
        The candidate changes; a ride without power gives none.
    """
    changes: list[FactChange] = []
    ftp_estimate_w = metrics.get("ftp_estimate_w")
    if ftp_estimate_w:
        changes.append(FactChange("ftp_w", round(ftp_estimate_w), only_if_higher=True))
    mmp_w: dict[str, float] = metrics.get("mmp_w") or {}
    for mmp_key, fact_key in POWER_BEST_FACTS.items():
        if mmp_w.get(mmp_key):
            changes.append(FactChange(fact_key, round(mmp_w[mmp_key]), only_if_higher=True))
    return changes
