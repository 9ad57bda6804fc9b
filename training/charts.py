"""Charts as PNG files: the Performance Management Chart, and a ride's power curve against the athlete's best.

The Performance Management Chart shows fitness (CTL), fatigue (ATL), daily TSS and form (TSB) over form zones.

matplotlib is imported lazily, with the non-interactive Agg backend and without pyplot (each chart is its own
`Figure`, so charts can be drawn from several threads); without matplotlib the chart functions raise
`ChartUnavailableError` and everything else in the project works.

Form zones (intervals.icu Fitness page; TrainingPeaks/Allen & Coggan 2010 read TSB with the same bands), as
`training.flags.FORM_ZONES`: above +25 transition, +5 to +25 fresh, −10 to +5 grey zone, −30 to −10 optimal
(productive training), below −30 high risk.

Power curves are coarse: each stored ride keeps its mean-max power at five durations (5 s, 1, 5, 20 and 60 min:
`training.power.MMP_DURATIONS_S`), so the athlete's best curve is the maximum over the rides at those five
points, drawn as straight segments between them on a log time axis. A ride's own curve may be given densely (from
its samples, `training.power.mean_max_curve` with more durations) or at the same five points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from training.flags import FORM_ZONES
from training.power import MMP_DURATIONS_S

FORM_ZONE_COLOURS = {
    "transition": "#f6e7b0",
    "fresh": "#cfe2f7",
    "grey": "#e4e4e4",
    "optimal": "#d3edd3",
    "high_risk": "#f6cccc",
}
"""Background colour of each form zone on the chart (intervals.icu's hues: yellow, blue, grey, green, red)."""

CTL_COLOUR, ATL_COLOUR, TSB_COLOUR, TSS_COLOUR = "#1f5fbf", "#b0308f", "#333333", "#9a9a9a"
DPI = 110


class ChartUnavailableError(RuntimeError):
    """matplotlib is not installed, so no chart can be drawn."""

    code = "chart_unavailable"


def _figure(width_in: float, height_in: float) -> Any:
    """A new Agg-backed `Figure` (no pyplot, no global state)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ChartUnavailableError(
            "charts need matplotlib, which is not installed in this environment (add it: `uv add matplotlib`)"
        ) from exc
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def pmc_chart(
    series: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    next_form: tuple[date, float] | None = None,
    title: str | None = None,
) -> Path:
    """Draw fitness (CTL), fatigue (ATL), daily TSS and form (TSB) over the form zones, and save a PNG.

    Args:
        series: consecutive days, oldest first: mappings with ``date`` (date or ISO string), ``tss``, ``ctl``,
            ``atl`` and ``tsb`` (the form *for* that day: CTL − ATL of the day before, as TrainingPeaks charts
            it; see `training.load.LoadPoint`).
        path: the PNG file to write (its folder is created).
        next_form: ``(day after the last, TSB)``: the form going into the next day, drawn as the form line's last
            point (the summary's ``tsb`` / ``tsb_for``).
        title: chart title.

    Returns:
        The path written.

    Raises:
        ChartUnavailableError: matplotlib is not installed.
        ValueError: `series` is empty.
    """
    if not series:
        raise ValueError("nothing to chart: the series is empty")
    days = [_day(p["date"]) for p in series]
    form_days, form = list(days), [float(p["tsb"]) for p in series]
    if next_form is not None:
        form_days.append(next_form[0])
        form.append(float(next_form[1]))
    fig = _figure(10.0, 6.4)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 2), hspace=0.08)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)

    bars = top.twinx()
    bars.bar(days, [float(p["tss"]) for p in series], width=0.8, color=TSS_COLOUR, alpha=0.35, label="TSS (day)")
    bars.set_ylabel("TSS per day", color=TSS_COLOUR)
    bars.tick_params(axis="y", colors=TSS_COLOUR)
    top.set_zorder(bars.get_zorder() + 1)
    top.patch.set_visible(False)
    top.plot(days, [float(p["ctl"]) for p in series], color=CTL_COLOUR, lw=2.2, label="Fitness (CTL, 42 d)")
    top.plot(days, [float(p["atl"]) for p in series], color=ATL_COLOUR, lw=1.4, label="Fatigue (ATL, 7 d)")
    top.set_ylabel("load (TSS/day)")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    handles = top.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    top.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    top.tick_params(labelbottom=False)
    if title:
        top.set_title(title, fontsize=11, loc="left")

    low = min(-40.0, min(form) - 5.0)
    high = max(35.0, max(form) + 5.0)
    for code, label, zone_low, zone_high in FORM_ZONES:
        z_low, z_high = max(low, zone_low if zone_low is not None else low), min(high, zone_high or high)
        if z_high > z_low:
            bottom.axhspan(z_low, z_high, color=FORM_ZONE_COLOURS[code], zorder=0)
            bottom.text(
                1.005,
                (z_low + z_high) / 2,
                label.split(":")[0],
                transform=bottom.get_yaxis_transform(),
                fontsize=7,
                va="center",
                ha="left",
                color="#555555",
            )
    bottom.plot(form_days, form, color=TSB_COLOUR, lw=1.6, label="Form (TSB, for the day)")
    bottom.axhline(0, color="#777777", lw=0.6)
    last_day, last_form = form_days[-1], form[-1]
    bottom.plot([last_day], [last_form], "o", color=TSB_COLOUR, ms=4)
    bottom.annotate(
        f"{last_form:+.1f} ({last_day:%d %b})",
        (last_day, last_form),
        textcoords="offset points",
        xytext=(-4, 8),
        ha="right",
        fontsize=8,
    )
    bottom.set_ylim(low, high)
    bottom.set_ylabel("form (TSB)")
    bottom.legend(loc="lower left", fontsize=8, framealpha=0.9)
    bottom.set_xlim(days[0] - timedelta(days=1), form_days[-1] + timedelta(days=1))
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.text(
        0.01,
        0.005,
        "CTL/ATL: 42/7-day exponentially weighted daily TSS (TrainingPeaks). Form zones: intervals.icu.",
        fontsize=7,
        color="#666666",
    )
    return _save(fig, path)


def curve_from_mmp(mmp_w: Mapping[str, float]) -> dict[int, float]:
    """Turn stored mean-max powers by label (``{"5s": 950, "20min": 290}``) into ``{duration_s: watts}``.

    Labels not in `training.power.MMP_DURATIONS_S` are ignored.
    """
    return {MMP_DURATIONS_S[k]: float(v) for k, v in mmp_w.items() if k in MMP_DURATIONS_S and v is not None}


def best_curve(curves: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The athlete's best mean-max power per label (``"5s"`` ... ``"60min"``) over rides' ``metrics["mmp_w"]``.

    A label missing in a ride (too short for that duration) is skipped.
    """
    best: dict[str, float] = {}
    for curve in curves:
        for label, watts in (curve or {}).items():
            if watts is not None and float(watts) > best.get(label, float("-inf")):
                best[label] = float(watts)
    return best


def _duration_label(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600 or seconds % 3600:
        return f"{seconds // 60}min"
    return f"{seconds // 3600}h"


def style_power_curve_axes(ax: Any, ticks: list[int], title: str | None) -> None:
    """Axes of a power-duration chart: log durations labelled at `ticks` (s), power from 0 W, legend, title."""
    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels([_duration_label(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("duration")
    ax.set_ylabel("mean-max power (W)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=11, loc="left")


def power_curve_chart(
    ride_curve_w: Mapping[int, float],
    best_curve_w: Mapping[int, float],
    path: str | Path,
    *,
    title: str | None = None,
    ride_label: str = "this ride",
    best_label: str = "best of all rides",
) -> Path:
    """Draw a ride's mean-max power curve against the athlete's best curve, and save a PNG.

    Args:
        ride_curve_w: ``{duration_s: watts}`` of the ride (e.g. `curve_from_mmp` of its metrics).
        best_curve_w: ``{duration_s: watts}`` of the athlete's best (coarse: see the module docstring).
        path: the PNG file to write (its folder is created).
        title: chart title.
        ride_label: legend of the ride's curve.
        best_label: legend of the best curve.

    Returns:
        The path written.

    Raises:
        ChartUnavailableError: matplotlib is not installed.
        ValueError: the ride has no power curve.
    """
    if not ride_curve_w:
        raise ValueError("the ride has no power curve (no power data)")
    fig = _figure(8.0, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    ride = sorted(ride_curve_w.items())
    best = sorted(best_curve_w.items())
    if best:
        ax.plot([d for d, _ in best], [w for _, w in best], "--o", color="#888888", ms=4, lw=1.4, label=best_label)
    ax.plot([d for d, _ in ride], [w for _, w in ride], "-o", color=CTL_COLOUR, ms=4, lw=2.0, label=ride_label)
    best_at = dict(best)
    for duration_s, watts in ride:
        if duration_s in MMP_DURATIONS_S.values():
            share = f" ({watts / best_at[duration_s]:.0%})" if best_at.get(duration_s) else ""
            ax.annotate(
                f"{watts:.0f} W{share}",
                (duration_s, watts),
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
                fontsize=8,
                color=CTL_COLOUR,
            )
    ticks = sorted(set(MMP_DURATIONS_S.values()) | {d for d, _ in ride if d in MMP_DURATIONS_S.values()})
    style_power_curve_axes(ax, ticks, title)
    fig.text(
        0.01,
        0.005,
        "Coarse curves: mean-max power stored at 5 s, 1, 5, 20 and 60 min per ride; % = share of the best.",
        fontsize=7,
        color="#666666",
    )
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", bbox_inches="tight")
    return out
