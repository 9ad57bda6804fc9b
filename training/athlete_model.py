"""The athlete model applied to one ride: which FTP scores it, its IF/TSS, CP and W′ and its W′ balance.

Pure functions over what the stores keep (`records.athlete_values` calls them): dated values
(`training.scoring.DatedValue`) and the power curves of the athlete's earlier rides.

* eFTP: the 2-parameter CP model (`training.cp_model.fit_critical_power`, GoldenCheetah ``PDModel``/``Estimator``,
  intervals.icu's eFTP) fitted to the envelope (`training.power_curve.best_of_curves`) of the curves of the
  primary rides of the ``FIT_WINDOW_DAYS`` (90) days before the ride, the ride itself excluded: a fitted value
  (lowest precedence), used only when the window supports a fit.
* IF = NP / FTP and TSS = duration_s · NP · IF / (FTP · 3600) · 100 (Allen & Coggan 2010) from the stored NP and
  seconds of power (`training.scoring.score_power_ride`), so a ride is re-scored without its file.
* W′ balance (`training.w_prime`, Skiba's differential form as GoldenCheetah ``WPrime.cpp``) when CP and W′ are
  known: confirmed or device values, else the model fitted to the 90 days up to and including the ride.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from training.cp_model import FIT_RANGE_S, CriticalPowerFit, NoFit, fit_critical_power
from training.fit_profile import DeviceValues
from training.heart_rate import DEFAULT_RESTING_HR_BPM, max_hr_estimate, sustained_hr_estimate
from training.power_curve import best_of_curves
from training.power_series import power_series_w
from training.samples import RideSamples
from training.scoring import SOURCE_PRECEDENCE, DatedValue, FtpChoice, ftp_for_ride, score_power_ride
from training.w_prime import summarise_w_prime_balance, w_prime_balance

FIT_WINDOW_DAYS = 90
"""The CP model (eFTP, W′) is fitted to the bests of the rides of this many days before a ride."""

Curve = tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float64]]]
"""A power curve: int64 durations (s), float64 mean-max power (W), both shape ``(k,)``."""

DatedCurve = tuple[str, datetime, Curve]
"""``(ride_id, ride start, curve)``."""


def fit_window(curves: list[DatedCurve]) -> CriticalPowerFit | NoFit:
    """The CP model fitted to some rides' curves, or why they do not support one.

    The envelope of the curves (`training.power_curve.best_of_curves`) is fitted by
    `training.cp_model.fit_critical_power`, each best dated by its ride's start day (UTC).
    """
    if not curves:
        return NoFit("no ride with power in the window")
    durations, power, source = best_of_curves([c for _, _, c in curves])
    days = np.array([np.datetime64(curves[int(i)][1].astimezone(UTC).date()) for i in source], dtype="datetime64[D]")
    return fit_critical_power(durations, power, effort_days=days)


def fit_from_curves(curves: list[DatedCurve]) -> tuple[CriticalPowerFit, dict[str, Any]] | None:
    """The CP model fitted to the envelope of some rides' curves, with its evidence, or None when unsupported."""
    if not curves:
        return None
    durations, power, source = best_of_curves([c for _, _, c in curves])
    return fit_envelope(curves, durations, power, source)


def fit_envelope(
    curves: list[DatedCurve],
    durations: npt.NDArray[np.int64],
    power: npt.NDArray[np.float64],
    source: npt.NDArray[np.int64],
    curve_days: npt.NDArray[np.datetime64] | None = None,
) -> tuple[CriticalPowerFit, dict[str, Any]] | None:
    """`fit_from_curves` given the envelope of ``curves`` (`training.power_curve.best_of_curves`' three arrays).

    ``curve_days`` (shape ``(len(curves),)``, each curve's start day in UTC) may be given when already computed.
    """
    if curve_days is None:
        curve_days = np.array([np.datetime64(c[1].astimezone(UTC).date()) for c in curves], dtype="datetime64[D]")
    fit = fit_critical_power(durations, power, effort_days=curve_days[source])
    if not isinstance(fit, CriticalPowerFit):
        return None
    in_range = (durations >= FIT_RANGE_S[0]) & (durations <= FIT_RANGE_S[1])
    used = sorted({curves[int(i)][0] for i in np.unique(source[in_range])})
    evidence = {
        "rule": f"CP model fitted to the bests (2-20 min) of the rides of the {FIT_WINDOW_DAYS} days before",
        "fit": fit.to_dict(),
        "ride_ids": used,
    }
    return fit, evidence


def choose_ftp(
    ftp_values: list[DatedValue],
    ride_start: datetime,
    best_60min_np_w: float | None,
    curves: list[DatedCurve],
) -> FtpChoice:
    """`training.scoring.ftp_for_ride` over the stored FTP values plus the eFTP fitted to ``curves`` (if any)."""
    values = list(ftp_values)
    fitted = fit_from_curves(curves)
    if fitted is not None:
        fit, evidence = fitted
        values.append(DatedValue(fit.eftp_w, "fitted", curves[-1][1], evidence))
    return ftp_for_ride(values, ride_start, best_60min_np_w)


def scored_metrics(metrics: dict[str, Any], power_s: float | None, choice: FtpChoice) -> dict[str, Any]:
    """The ride's metrics with IF, TSS and the FTP fields of ``choice`` (Coggan: IF = NP/FTP, TSS from NP·IF)."""
    np_w = metrics.get("normalized_power_w")
    if np_w is None or power_s is None:
        return {**metrics, "tss_status": "no_power" if np_w is None else metrics.get("tss_status")}
    score = score_power_ride(power_s, np_w, choice)
    return {
        **metrics,
        "ftp_used_w": score["ftp_w"],
        "ftp_source": score["ftp_source"],
        "intensity_factor": score["intensity_factor"],
        "tss": score["tss"],
        "tss_status": score["tss_status"],
        "ftp_stale": choice.stale,
        "ftp_proposed_w": choice.proposed_ftp_w,
        "ftp_evidence": choice.evidence,
    }


def w_prime_summary(
    samples: RideSamples,
    values: dict[str, DatedValue | str],
    curves: list[DatedCurve],
) -> dict[str, Any] | None:
    """The ride's W′ balance minimum and when, with the CP and W′ used and their source; None when unknown.

    Args:
        samples: the ride's 1 Hz samples (power zero-filled on clock time, as GoldenCheetah computes W′bal, and
            rounded to the watt as the row keeps it: `training.power_series`).
        values: the athlete's values valid at the ride's start (``cp_w``, ``w_prime_j`` used when both present).
        curves: the curves of the window's rides, this ride's included (a fitted CP and W′ otherwise).

    Returns:
        ``{"status", "cp_w", "w_prime_j", "source", "min_j", "min_at_s", "min_fraction"}`` or None; ``status``
        is ``model_exceeded`` when the balance went below zero (the CP and W′ used are out of date), else ``ok``.
    """
    power = power_series_w(samples)
    if power is None:
        return None
    cp, w_prime = values.get("cp_w"), values.get("w_prime_j")
    if isinstance(cp, DatedValue) and isinstance(w_prime, DatedValue):
        return w_prime_figures(power, cp.value, w_prime.value, cp.source)
    fitted = fit_from_curves(curves)
    if fitted is None:
        return None
    return w_prime_figures(power, fitted[0].cp_w, fitted[0].w_prime_j, "fitted")


def w_prime_figures(
    power: npt.NDArray[np.float64], cp_w: float, w_prime_j: float, source: str
) -> dict[str, Any] | None:
    """`w_prime_summary`'s figures for a 1 Hz power series (`training.power_series`) and a CP and W′.

    Returns:
        ``{"status", "cp_w", "w_prime_j", "source", "min_j", "min_at_s", "min_fraction"}``, or None for an empty
        series.
    """
    summary = summarise_w_prime_balance(w_prime_balance(power, cp_w, w_prime_j), w_prime_j)
    if summary is None:
        return None
    # W′ is, by the model's definition, all the work the athlete can do above CP before exhaustion: a balance that
    # falls below zero means the ride disproved the CP and W′ used (Skiba et al. 2012; GoldenCheetah marks the
    # same as a ride above the model). The low point is then not a figure to show, only the evidence.
    status = "model_exceeded" if summary.min_j < 0 else "ok"
    return {
        "status": status,
        "cp_w": cp_w,
        "w_prime_j": w_prime_j,
        "source": source,
        "min_j": summary.min_j,
        "min_at_s": summary.min_at_s,
        "min_fraction": summary.min_fraction,
    }


DEVICE_VALUE_KEYS = ("ftp_w", "lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "weight_kg", "sex")
"""The values a FIT file may carry (`training.fit_profile.DeviceValues`), recorded with source ``device``."""


def device_value_rows(device: DeviceValues, ride_start: datetime, ride_id: str, file_name: str) -> list[dict[str, Any]]:
    """The values a file's device reports, as rows for ``athlete_values`` (source ``device``, from the ride's start).

    Returns:
        ``[{"key", "value", "source": "device", "valid_from", "evidence": {"ride_id", "file", "fields"}}]``.
    """
    evidence = {"ride_id": ride_id, "file": file_name, "fields": {k: str(v) for k, v in device.fields.items()}}
    rows = []
    for key in DEVICE_VALUE_KEYS:
        value = getattr(device, key)
        if value is not None:
            rows.append(
                {"key": key, "value": value, "source": "device", "valid_from": ride_start, "evidence": evidence}
            )
    return rows


def with_device_values(values: dict[str, DatedValue | str], rows: list[dict[str, Any]]) -> dict[str, DatedValue | str]:
    """The values valid at a ride's start once its own file's device values are added (device beats fitted)."""
    out = dict(values)
    for row in rows:
        current = out.get(row["key"])
        if isinstance(row["value"], str):
            out.setdefault(row["key"], row["value"])
        elif (
            not isinstance(current, DatedValue)
            or SOURCE_PRECEDENCE[current.source] < SOURCE_PRECEDENCE["device"]
            or (current.source == "device" and current.valid_from <= row["valid_from"])
        ):
            out[row["key"]] = DatedValue(float(row["value"]), "device", row["valid_from"], row["evidence"])
    return out


def hr_parameters(values: dict[str, DatedValue | str], samples: RideSamples) -> dict[str, Any]:
    """`training.metrics.compute_metrics`'s heart-rate arguments from the athlete's values valid at the ride.

    The ride's own estimates (`sustained_hr_estimate`, `max_hr_estimate`) go to `hr_parameters_from_estimates`.

    Returns:
        ``{"lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "sex"}``, each None when unknown.
    """
    own: dict[str, float] = {}
    if samples.hr_bpm is not None:
        for key, estimate in (
            ("lthr_bpm", sustained_hr_estimate(samples.hr_bpm)),
            ("max_hr_bpm", max_hr_estimate(samples.hr_bpm)),
        ):
            if estimate is not None:
                own[key] = estimate.value_bpm
    return hr_parameters_from_estimates(values, own)


def hr_parameters_from_estimates(values: dict[str, DatedValue | str], own: dict[str, float]) -> dict[str, Any]:
    """The heart-rate parameters of a ride from the athlete's values and the ride's own estimates.

    A fitted LTHR or max HR (the highest estimate of the earlier rides) is raised to this ride's own estimate when
    that is higher (the highest across rides, this one included). A value that does not exceed the resting heart
    rate is dropped. A stored ride's estimates are its ``metrics['hr_estimates']``, so a ride is re-scored without
    its file (`records.athlete_values.recompute_scores`).

    Args:
        values: the athlete's values valid at the ride's start.
        own: the ride's ``lthr_bpm`` (highest sustained 20-60 min HR) and ``max_hr_bpm`` (best 5 s), when it has them.

    Returns:
        ``{"lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "sex"}``, each None when unknown.
    """
    out: dict[str, Any] = {}
    for key in ("lthr_bpm", "max_hr_bpm", "resting_hr_bpm"):
        value = values.get(key)
        out[key] = value.value if isinstance(value, DatedValue) and value.value > 0 else None
    for key in ("lthr_bpm", "max_hr_bpm"):
        value = values.get(key)
        fitted = isinstance(value, DatedValue) and value.source == "fitted"
        if key in own and (fitted or out[key] is None):
            out[key] = max(out[key] or 0.0, own[key])
    rest = out["resting_hr_bpm"] or DEFAULT_RESTING_HR_BPM
    if out["lthr_bpm"] is not None and out["lthr_bpm"] <= rest:
        out["lthr_bpm"] = None
    if out["max_hr_bpm"] is not None and out["max_hr_bpm"] <= max(rest, out["lthr_bpm"] or 0.0):
        out["max_hr_bpm"] = None
    sex = values.get("sex")
    out["sex"] = sex if sex in ("male", "female") else None
    return out
