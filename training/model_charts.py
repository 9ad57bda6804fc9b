"""Charts of the athlete model: the power-duration curve with the fitted CP/W′ model, and a ride's W′ balance.

Kept beside `training.charts` (same Agg figures, no pyplot; `ChartUnavailableError` without matplotlib) so that
each module stays small.

* :func:`athlete_curve_chart`: the athlete's best mean-max power over the trailing 90 days and over all time
  (`training.power_curve.best_of_curves` of the stored per-ride curves), on a log time axis, with the
  Monod–Scherrer model P = W′/t + CP fitted to the 90-day curve (`training.cp_model.fit_critical_power`) drawn
  from 2 to 60 min (the fit uses 2–20 min; beyond that it is the model's extrapolation, eFTP at 60 min). When the
  fit is refused the chart says why instead of drawing a line.
* :func:`ride_chart`: a ride's power over clock time and, when CP and W′ are known, its W′ balance (kJ, Skiba's
  differential form, `training.w_prime`) on a second axis with its minimum marked (GoldenCheetah draws W′bal
  on the ride plot the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from training.charts import ATL_COLOUR, CTL_COLOUR, _figure, _save, style_power_curve_axes
from training.cp_model import FIT_RANGE_S, CriticalPowerFit, NoFit
from training.power import rolling_mean
from training.w_prime import summarise_w_prime_balance

CURVE_TICKS_S = (1, 5, 15, 60, 120, 300, 600, 1200, 3600, 7200, 18000)
"""Labelled durations (s) of the power-duration chart's log axis (those within the curves' span are shown)."""

MODEL_SPAN_S = (FIT_RANGE_S[0], 3600)
"""The model line is drawn from 2 min (the fit's start) to 60 min (eFTP)."""

RIDE_SMOOTHING_S = 30
"""The ride chart draws power as 30-s rolling means (as NP's window), so the line is readable over hours."""

WPRIME_COLOUR, MODEL_COLOUR, ALL_TIME_COLOUR = "#d9480f", "#2b8a3e", "#888888"


def athlete_curve_figure(
    recent: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    all_time: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    fit: CriticalPowerFit | NoFit | None,
    *,
    title: str | None = None,
    recent_label: str = "best, last 90 days",
    all_time_label: str = "best, all time",
) -> Any:
    """The figure of :func:`athlete_curve_chart` (a matplotlib ``Figure``, not saved); arguments as there."""
    if len(all_time[0]) == 0 and len(recent[0]) == 0:
        raise ValueError("no power curve to chart: the athlete has no ride with power")
    fig = _figure(8.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    if len(all_time[0]):
        ax.plot(all_time[0], all_time[1], "--", color=ALL_TIME_COLOUR, lw=1.4, label=all_time_label)
    if len(recent[0]):
        ax.plot(recent[0], recent[1], "-", color=CTL_COLOUR, lw=2.0, label=recent_label)
    if isinstance(fit, CriticalPowerFit):
        t = np.geomspace(MODEL_SPAN_S[0], MODEL_SPAN_S[1], 60)
        label = (
            f"model P = W′/t + CP: CP {fit.cp_w:.0f} W, W′ {fit.w_prime_j / 1000:.1f} kJ, eFTP {fit.eftp_w:.0f} W "
            f"(R² {fit.r_squared:.3f})"
        )
        ax.plot(t, fit.power_at(t), ":", color=MODEL_COLOUR, lw=2.2, label=label)
        ax.axvspan(FIT_RANGE_S[0], FIT_RANGE_S[1], color=MODEL_COLOUR, alpha=0.06, zorder=0)
    else:
        reason = fit.reason if isinstance(fit, NoFit) else "no rides with power in the last 90 days"
        ax.text(
            0.02,
            0.04,
            f"No CP/W′ model: {reason}",
            transform=ax.transAxes,
            fontsize=8,
            color=WPRIME_COLOUR,
            wrap=True,
        )
    longest = max(int(np.max(c[0])) for c in (recent, all_time) if len(c[0]))
    ticks = [t for t in CURVE_TICKS_S if t <= max(longest, MODEL_SPAN_S[1])]
    style_power_curve_axes(ax, ticks, title)
    fig.text(
        0.01,
        0.005,
        "Pauses zero-filled (GoldenCheetah). Model fitted to the 90-day bests of 2-20 min (shaded), Monod-Scherrer.",
        fontsize=7,
        color="#666666",
    )
    return fig


def athlete_curve_chart(
    recent: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    all_time: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    fit: CriticalPowerFit | NoFit | None,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw the athlete's power-duration curve (90 days vs all time) with the fitted CP/W′ model, and save a PNG.

    Args:
        recent: ``(durations_s, power_w)``, int64 and float64 shape ``(k,)``: the best curve of the trailing
            90 days (`training.power_curve.best_of_curves`); may be empty.
        all_time: the same over all the athlete's rides.
        fit: the model fitted to ``recent`` (`training.cp_model.fit_critical_power`); a `NoFit` writes its
            reason on the chart, None says there is no recent ride.
        path: the PNG file to write (its folder is created).
        title: chart title.

    Returns:
        The path written.

    Raises:
        ChartUnavailableError: matplotlib is not installed.
        ValueError: both curves are empty.
    """
    return _save(athlete_curve_figure(recent, all_time, fit, title=title), path)


def ride_figure(
    power_w: npt.NDArray[np.float64],
    *,
    balance_j: npt.NDArray[np.float64] | None = None,
    w_prime_j: float | None = None,
    cp_w: float | None = None,
    title: str | None = None,
) -> Any:
    """The figure of :func:`ride_chart` (a matplotlib ``Figure``, not saved); arguments as there."""
    power = np.nan_to_num(np.asarray(power_w, dtype=np.float64), nan=0.0)
    if power.size == 0:
        raise ValueError("the ride has no power samples")
    minutes = np.arange(power.size) / 60.0
    fig = _figure(10.0, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    smooth = rolling_mean(power, RIDE_SMOOTHING_S) if power.size >= RIDE_SMOOTHING_S else power
    ax.plot(minutes[-smooth.size :], smooth, color=CTL_COLOUR, lw=0.9, label=f"power ({RIDE_SMOOTHING_S}-s mean)")
    if cp_w is not None:
        ax.axhline(cp_w, color=ATL_COLOUR, lw=0.8, ls="--", label=f"CP {cp_w:.0f} W")
    ax.set_xlabel("time (min, clock time; pauses at 0 W)")
    ax.set_ylabel("power (W)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if balance_j is not None and w_prime_j is not None:
        balance = np.asarray(balance_j, dtype=np.float64)
        if balance.shape != power.shape:
            raise ValueError(f"balance_j shape {balance.shape} must match power_w {power.shape}")
        summary = summarise_w_prime_balance(balance, w_prime_j)
        right = ax.twinx()
        right.plot(minutes, balance / 1000.0, color=WPRIME_COLOUR, lw=1.4, label="W′ balance (kJ)")
        if summary is not None:
            at_min = summary.min_at_s / 60.0
            right.plot([at_min], [summary.min_j / 1000.0], "v", color=WPRIME_COLOUR, ms=8, label="W′bal minimum")
            right.annotate(
                f"min {summary.min_j / 1000:.1f} kJ ({summary.min_fraction:.0%}) at {int(summary.min_at_s // 60)}:"
                f"{int(summary.min_at_s % 60):02d}",
                (at_min, summary.min_j / 1000.0),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
                color=WPRIME_COLOUR,
            )
        right.set_ylabel("W′ balance (kJ)", color=WPRIME_COLOUR)
        right.tick_params(axis="y", colors=WPRIME_COLOUR)
        right.set_ylim(min(0.0, float(balance.min()) / 1000.0 * 1.1), w_prime_j / 1000.0 * 1.05)
        handles += right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    return fig


def ride_chart(
    power_w: npt.NDArray[np.float64],
    path: str | Path,
    *,
    balance_j: npt.NDArray[np.float64] | None = None,
    w_prime_j: float | None = None,
    cp_w: float | None = None,
    title: str | None = None,
) -> Path:
    """Draw a ride's power over time and, when given, its W′ balance on a second axis with the minimum marked.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power (W) on clock time with pauses at 0 W
            (`training.power_curve.zero_filled_power_w`).
        path: the PNG file to write (its folder is created).
        balance_j: float shape ``(n,)``, W′ balance (J) per second (`training.w_prime.w_prime_balance`), or None.
        w_prime_j: the W′ (J) the balance was computed with (needed with ``balance_j``).
        cp_w: critical power (W), drawn as a line when given.
        title: chart title.

    Returns:
        The path written.

    Raises:
        ChartUnavailableError: matplotlib is not installed.
        ValueError: no power samples, or ``balance_j`` of another shape.
    """
    fig = ride_figure(power_w, balance_j=balance_j, w_prime_j=w_prime_j, cp_w=cp_w, title=title)
    return _save(fig, path)
