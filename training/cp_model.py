"""Critical power (CP) and W′ from a power-duration curve (Monod–Scherrer), refused when the data cannot support it.

Model: P(t) = W′/t + CP, i.e. the work done in an all-out effort of t seconds is linear in t,
work(t) = P(t)·t = CP·t + W′ (Monod, H. & Scherrer, J. "The work capacity of a synergic muscular group",
*Ergonomics* 8(3), 1965). CP (W) is the slope, W′ (J) the intercept, fitted by ordinary least squares of work on
time to the curve's bests between 2 and 20 minutes.

Sources (GoldenCheetah, GPL-2.0, read for the method only):

* ``src/Metrics/PDModel.cpp`` (``PDModel::deriveCPParameters``): the classic 2-parameter model fits only the
  points between 2 and 20 min (120 s < t ≤ 1200 s for its linear regression of joules on time) "to avoid data that
  is short and rate limited or long and likely submaximal or fatigued"; its search intervals for the envelope fit
  are 2–3.3 min (anaerobic, 120–200 s) and 12–20 min (aerobic, 720–1200 s) (``CP2Model::CP2Model``); the fit is
  summarised by the RMSE (W) and R² of power.
* ``src/Metrics/Estimator.cpp`` (``Estimator::run``): an estimate is kept only when W′ > 1000 J and
  100 W < CP < 1000 W ("so long as the important model derived values are sensible").
* ``src/Metrics/PDModel.cpp`` (``MultiModel::FTP``, ``ExtendedModel::FTP``): a model's FTP is its power at
  60 minutes. Here eFTP = P(3600 s) = CP + W′/3600 (intervals.icu also defines eFTP as the power of its fitted
  power-duration model at one hour, forum.intervals.icu "Power model now complete").

* ``src/Metrics/PDModel.cpp`` (``PDModel::deriveCPParameters``, the default ``Envelope`` fit of the classic
  model): CP is the largest ``P(t) / (1 + τ/t)`` over the aerobic interval and τ = W′/CP the largest
  ``(P(t)/CP − 1)·t`` over the anaerobic one, so the model passes through one best of each interval and lies on
  or above every other: a maximal power-duration model is an envelope of the bests, never below them. A best above
  the model is an effort the model calls impossible (its W′ balance would fall below zero, Skiba et al. 2012).
* ``src/Metrics/Estimator.cpp`` fits the athlete's model to the bests of many rides (a trailing window of the
  season), never to one ride; intervals.icu's eFTP likewise takes the athlete's power curve, and its forum
  ("eFTP - how does it work?") warns that a reliable curve needs "a series of max efforts across the horizontal
  axis" (1 s … 20 min and longer), which one ride rarely holds: the short bests of a long ride are not fresh,
  its long bests are paced for the whole ride.

The rule deciding whether the data supports a fit (:func:`fit_critical_power`) is stated there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FIT_RANGE_S = (120, 1200)
"""Durations (s) whose bests the 2-parameter model is fitted to: 2 to 20 min (GoldenCheetah PDModel)."""

SHORT_EFFORT_S = (120, 300)
"""A near-maximal short effort must lie in 2–5 min (GoldenCheetah CP2Model searches 120–200 s; widened to 5 min)."""

LONG_EFFORT_S = (720, 1200)
"""A near-maximal long effort must lie in 12–20 min (GoldenCheetah CP2Model aerobic interval, 720–1200 s)."""

MIN_FIT_POINTS = 3
"""Fewest curve points in the fit range (GoldenCheetah falls back to all points below 3; here the fit is refused)."""

CP_RANGE_W = (100.0, 1000.0)
"""Plausible CP (W), exclusive bounds (GoldenCheetah Estimator: 100 < CP < 1000)."""

W_PRIME_RANGE_J = (1000.0, 40000.0)
"""Plausible W′ (J), exclusive bounds. Lower: GoldenCheetah Estimator (W′ > 1000). Upper (this project's rule):
twice GoldenCheetah's default W′ of 20 kJ (``WPrime.cpp``). One hard effort followed by easy riding makes the work
of the long windows grow at the easy power, so the fit reads that easy power as CP and the hard effort's surplus as
a huge W′: a W′ this large means the 12–20 min bests were not maximal."""

ENVELOPE_TOLERANCE = 0.08
"""Largest relative gap (8 %) between the model and any fitted best, and in particular the short and long efforts:
the points must lie on or near the model's envelope (this project's tolerance; the 2-parameter model is within a
few per cent of maximal efforts between 2 and 20 min)."""

ABOVE_MODEL_TOLERANCE = 0.02
"""Largest relative amount (2 %) by which any best from 2 min on may lie above the model: the model must be an
envelope of the bests (GoldenCheetah's envelope fit has none above it); 2 % is the accuracy power meters state
(±1–2 %), and about twice the scatter a least-squares fit leaves on efforts that follow the model."""

MIN_EFFORT_DAYS = 2
"""The fitted bests (2–20 min) must come from rides on at least this many calendar days: one ride (or two
recordings of it) rarely holds efforts that are maximal at both short and long durations (sources above)."""

EFTP_DURATION_S = 3600
"""eFTP is the model's power at this duration (60 min)."""


@dataclass(frozen=True)
class CriticalPowerFit:
    """A fitted 2-parameter model.

    Attributes:
        cp_w: critical power (W).
        w_prime_j: W′, the work capacity above CP (J).
        cp_se_w: standard error of CP (W), from the regression of work on time.
        w_prime_se_j: standard error of W′ (J).
        r_squared: R² of the model's power against the fitted bests (dimensionless).
        rmse_w: root-mean-square error of power (W), as GoldenCheetah reports it.
        max_gap_fraction: largest |model − best| / best over the fitted points.
        n_points: number of curve points fitted.
        effort_days: number of calendar days the fitted bests come from.
        eftp_w: the model's power at 60 min, CP + W′/3600 (W).
        model: ``'monod_scherrer_2p'``.
        status: ``'ok'``.
    """

    cp_w: float
    w_prime_j: float
    cp_se_w: float
    w_prime_se_j: float
    r_squared: float
    rmse_w: float
    max_gap_fraction: float
    n_points: int
    effort_days: int
    eftp_w: float
    model: str = "monod_scherrer_2p"
    status: Literal["ok"] = "ok"

    def power_at(self, duration_s: float | npt.NDArray[np.float64]) -> Any:
        """The model's power (W) at ``duration_s`` seconds (> 0): W′/t + CP; a float, or an array for an array."""
        return self.w_prime_j / np.asarray(duration_s, dtype=np.float64) + self.cp_w

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fit."""
        return asdict(self)


@dataclass(frozen=True)
class NoFit:
    """Why no model was fitted.

    Attributes:
        reason: one sentence naming the failed rule and the figures.
        status: ``'insufficient_data'``.
    """

    reason: str
    status: Literal["insufficient_data"] = "insufficient_data"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict ``{"status": "insufficient_data", "reason": ...}``."""
        return asdict(self)


def fit_critical_power(
    durations_s: npt.NDArray[np.int64], power_w: npt.NDArray[np.float64], *, effort_days: npt.ArrayLike
) -> CriticalPowerFit | NoFit:
    """Fit CP and W′ (Monod–Scherrer) to a power-duration curve's bests between 2 and 20 min, when supported.

    The rule (sources in the module docstring). A fit is returned only when all hold:

    1. the curve holds a best in the short window (2–5 min, ``SHORT_EFFORT_S``), one in the long window
       (12–20 min, ``LONG_EFFORT_S``) and at least ``MIN_FIT_POINTS`` points in 2–20 min;
    2. the bests in 2–20 min come from rides of at least two calendar days (``MIN_EFFORT_DAYS``): one ride
       alone, or two recordings of it, is not evidence of maximal efforts at both short and long durations;
    3. the fitted parameters are plausible: 100 < CP < 1000 W and 1 kJ < W′ < 40 kJ (``CP_RANGE_W``,
       ``W_PRIME_RANGE_J``): a larger W′ is the signature of long bests that are not maximal;
    4. the model is an envelope of the bests: no best from 2 min on lies more than 2 % above it
       (``ABOVE_MODEL_TOLERANCE``; such an effort would drive the model's W′ balance below zero);
    5. every fitted best, the short and the long ones included, lies within 8 % of the model
       (``ENVELOPE_TOLERANCE``): the efforts lie on or near the model's envelope.

    Otherwise a :class:`NoFit` gives the reason.

    Args:
        durations_s: int shape ``(k,)``, durations (s) of the curve (e.g. from
            :func:`training.power_curve.mean_max_power_curve`, or an athlete's best curve over a window).
        power_w: float shape ``(k,)``, the best mean power (W) at each duration.
        effort_days: shape ``(k,)``, the calendar day (``datetime.date`` or ``numpy.datetime64``) of the ride each
            best comes from (e.g. from the ``source`` of :func:`training.power_curve.best_of_curves`).

    Returns:
        The fit, or why there is none.

    Raises:
        ValueError: if the shapes differ or a duration is not positive.
    """
    t_s = np.asarray(durations_s, dtype=np.float64)
    p_w = np.asarray(power_w, dtype=np.float64)
    days = np.asarray(effort_days, dtype="datetime64[D]")
    if t_s.shape != p_w.shape or t_s.ndim != 1 or days.shape != t_s.shape:
        raise ValueError(
            f"durations_s {t_s.shape}, power_w {p_w.shape} and effort_days {days.shape} must be 1-D of one shape"
        )
    if np.any(t_s <= 0):
        raise ValueError("durations must be > 0 s")
    valid = np.isfinite(p_w) & (p_w > 0)
    short = valid & (t_s >= SHORT_EFFORT_S[0]) & (t_s <= SHORT_EFFORT_S[1])
    long = valid & (t_s >= LONG_EFFORT_S[0]) & (t_s <= LONG_EFFORT_S[1])
    in_range = valid & (t_s >= FIT_RANGE_S[0]) & (t_s <= FIT_RANGE_S[1])
    if not short.any():
        return NoFit("no best between 2 and 5 min: the curve lacks a short maximal effort")
    if not long.any():
        return NoFit("no best between 12 and 20 min: the curve lacks a long maximal effort")
    if int(in_range.sum()) < MIN_FIT_POINTS:
        return NoFit(f"fewer than {MIN_FIT_POINTS} bests between 2 and 20 min")
    n_days = int(np.unique(days[in_range]).size)
    if n_days < MIN_EFFORT_DAYS:
        return NoFit(
            f"the bests between 2 and 20 min all come from one day ({days[in_range][0]}): one ride rarely holds "
            "maximal efforts at both short and long durations; rides of at least two days are needed"
        )

    t, p = t_s[in_range], p_w[in_range]
    work_j = p * t
    design = np.column_stack((t, np.ones_like(t)))
    (cp_w, w_prime_j), *_ = np.linalg.lstsq(design, work_j, rcond=None)
    n = t.size
    residual_j = work_j - (cp_w * t + w_prime_j)
    sxx = float(np.sum((t - t.mean()) ** 2))
    variance = float(np.sum(residual_j**2)) / (n - 2) if n > 2 else 0.0
    cp_se = float(np.sqrt(variance / sxx)) if sxx > 0 else float("inf")
    w_prime_se = float(np.sqrt(variance * (1.0 / n + t.mean() ** 2 / sxx))) if sxx > 0 else float("inf")

    model_w = w_prime_j / t + cp_w
    error_w = p - model_w
    total = float(np.sum((p - p.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(error_w**2)) / total if total > 0 else 1.0
    rmse_w = float(np.sqrt(np.mean((error_w - error_w.mean()) ** 2)))  # GoldenCheetah: RMSE about the mean error
    gap = float(np.max(np.abs(error_w) / p))

    if not CP_RANGE_W[0] < cp_w < CP_RANGE_W[1]:
        return NoFit(f"fitted CP {cp_w:.0f} W is outside {CP_RANGE_W[0]:.0f}-{CP_RANGE_W[1]:.0f} W")
    if not W_PRIME_RANGE_J[0] < w_prime_j < W_PRIME_RANGE_J[1]:
        return NoFit(
            f"fitted W' {w_prime_j:.0f} J is outside {W_PRIME_RANGE_J[0]:.0f}-{W_PRIME_RANGE_J[1]:.0f} J: "
            "the 12-20 min bests are not maximal efforts"
        )
    longer = valid & (t_s >= FIT_RANGE_S[0])
    above = (p_w[longer] - (w_prime_j / t_s[longer] + cp_w)) / p_w[longer]
    if above.size and float(above.max()) > ABOVE_MODEL_TOLERANCE:
        worst = int(np.argmax(above))
        return NoFit(
            f"the best at {t_s[longer][worst]:.0f} s ({p_w[longer][worst]:.0f} W) lies {above[worst]:.1%} above the "
            f"model (CP {cp_w:.0f} W, W' {w_prime_j:.0f} J; more than {ABOVE_MODEL_TOLERANCE:.0%}): an effort the "
            "model calls impossible, so the model is not an envelope of the bests"
        )
    if gap > ENVELOPE_TOLERANCE:
        worst = int(np.argmax(np.abs(error_w) / p))
        return NoFit(
            f"the best at {t[worst]:.0f} s ({p[worst]:.0f} W) is {gap:.0%} from the model "
            f"(more than {ENVELOPE_TOLERANCE:.0%}): the bests do not follow one maximal power-duration curve"
        )
    return CriticalPowerFit(
        cp_w=float(cp_w),
        w_prime_j=float(w_prime_j),
        cp_se_w=cp_se,
        w_prime_se_j=w_prime_se,
        r_squared=r_squared,
        rmse_w=rmse_w,
        max_gap_fraction=gap,
        n_points=n,
        effort_days=n_days,
        eftp_w=float(cp_w + w_prime_j / EFTP_DURATION_S),
    )
