"""`coach power-curve`: the athlete's power-duration curve (90 days vs all time) with the fitted CP/W′ model.

Reads the per-ride curves stored with the rides (`records.best_curve.curves_between`), takes their envelope
(`training.power_curve.best_of_curves`) over the ``FIT_WINDOW_DAYS`` (90) days up to ``--as-of``, takes the
all-time curve the store keeps (`records.best_curve.best_curve`; computed from the rides when ``--as-of`` is
before the last ride), fits the Monod–Scherrer model to the 90-day curve (`training.athlete_model.fit_window`)
and draws the chart (`training.model_charts.athlete_curve_chart`). Registered on the `coach` app by `cli.main`.

`coach power-curve --json` prints ``{"athlete_id", "as_of", "rides_90d", "rides_all_time", "fit", "chart"}``
where ``fit`` is the model (`CriticalPowerFit.to_dict`) or ``{"status": "insufficient_data", "reason"}``, or
null with no ride in the window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from records.best_curve import best_curve, count_curves, curves_between
from records.stores import open_stores
from training.athlete_model import FIT_WINDOW_DAYS, fit_window
from training.charts import ChartUnavailableError
from training.cp_model import CriticalPowerFit
from training.model_charts import athlete_curve_chart, ride_chart
from training.power_curve import best_of_curves, zero_filled_power_w
from training.ride_files import read_ride
from training.w_prime import w_prime_balance

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


async def power_curve_report(athlete_id: str, chart: Path | None, as_of: date | None = None) -> dict[str, Any]:
    """The athlete's best curves, the CP/W′ model fitted to the 90-day one, and the chart when asked.

    Args:
        athlete_id: the athlete (checked by the caller).
        chart: the PNG file to write, or None for the figures only.
        as_of: the last day of the 90-day window (UTC, inclusive); None means today.

    Returns:
        The `coach power-curve --json` object (``chart`` is the path written, or None).

    Raises:
        StoreUnavailableError: Postgres cannot be reached.
        ChartUnavailableError: a chart was asked for and matplotlib is not installed.
        ValueError: a chart was asked for and the athlete has no ride with power.
    """
    day = as_of or datetime.now(UTC).date()
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    empty = (np.zeros(0, np.int64), np.zeros(0))
    async with open_stores(require_postgres=True) as stores, stores.pool.connection() as conn:
        recent = await curves_between(conn, athlete_id, end - timedelta(days=FIT_WINDOW_DAYS), end)
        n_rides, n_later = await count_curves(conn, athlete_id, end)
        kept = await best_curve(conn, athlete_id) if n_later == 0 else None
        if kept is not None:  # the kept all-time curve (`records.best_curve`): no ride after the day asked
            all_curve = (kept.durations_s, kept.power_w)
        else:
            rides = await curves_between(conn, athlete_id, None, end) if n_rides else []
            all_curve = best_of_curves([c for *_, c in rides])[:2] if rides else empty
    recent_curve = best_of_curves([c for *_, c in recent])[:2] if recent else empty
    fit = fit_window(recent) if recent else None
    path = None
    if chart is not None:
        title = f"{athlete_id}: power-duration curve to {day:%Y-%m-%d}"
        path = await asyncio.to_thread(athlete_curve_chart, recent_curve, all_curve, fit, chart, title=title)
    return {
        "athlete_id": athlete_id,
        "as_of": day.isoformat(),
        "rides_90d": len(recent),
        "rides_all_time": n_rides,
        "fit": fit.to_dict() if fit is not None else None,
        "chart": str(path) if path is not None else None,
    }


def ride_w_prime_chart(file: str, w_prime: Mapping[str, Any] | None, path: Path) -> Path | None:
    """The ride chart of `coach debrief --chart`: power over clock time, with W′ balance when CP and W′ are known.

    Args:
        file: the ride file (read again: the samples are not stored).
        w_prime: the debrief's ``metrics["w_prime_balance"]`` (``cp_w``, ``w_prime_j``, …) or None.
        path: the PNG file to write.

    Returns:
        The path written, or None when the ride has no power.

    Raises:
        RideFileError: the file cannot be read.
        ChartUnavailableError: matplotlib is not installed.
    """
    ride = read_ride(file)
    samples = ride.samples
    if samples.power_w is None or samples.n_samples == 0:
        return None
    power = zero_filled_power_w(samples.elapsed_s, samples.power_w, samples.power_recorded)
    title = f"{Path(file).name} ({ride.start_time:%Y-%m-%d}): power"
    if not w_prime or w_prime.get("cp_w") is None or w_prime.get("w_prime_j") is None:
        return ride_chart(power, path, title=title)
    cp_w, w_prime_j = float(w_prime["cp_w"]), float(w_prime["w_prime_j"])
    balance = w_prime_balance(power, cp_w, w_prime_j)
    title += f" and W′ balance (CP {cp_w:.0f} W, W′ {w_prime_j / 1000:.1f} kJ, {w_prime.get('source')})"
    return ride_chart(power, path, balance_j=balance, w_prime_j=w_prime_j, cp_w=cp_w, title=title)


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `coach power-curve` to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""

    @app.command("power-curve")
    def power_curve(
        athlete: Annotated[str, typer.Option("--athlete", help="Athlete id.")],
        chart: Annotated[Path | None, typer.Option("--chart", help="Write the chart (PNG) to PATH.")] = None,
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="Last day of the 90-day window (YYYY-MM-DD); default today.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Your power-duration curve (last 90 days vs all time) and the CP/W′ model fitted to it."""
        athlete = check_athlete(athlete)
        try:
            day = date.fromisoformat(as_of) if as_of is not None else None
        except ValueError:
            err.print(f"[red]error[/red] (invalid_date): --as-of {escape(as_of or '')} is not YYYY-MM-DD")
            raise typer.Exit(2) from None
        try:
            report = run(power_curve_report(athlete, chart, day))
        except (ChartUnavailableError, ValueError) as exc:
            code = getattr(exc, "code", "no_power_data")
            err.print(f"[red]error[/red] ({code}): {escape(str(exc))}")
            raise typer.Exit(1) from None
        if as_json:
            print(json.dumps(report), flush=True)
            return
        fit = report["fit"]
        out.print(
            f"Rides with power: {report['rides_90d']} in the 90 days to {report['as_of']}, "
            f"{report['rides_all_time']} in all"
        )
        if fit is None:
            out.print("No CP/W′ model: no ride with power in the last 90 days.")
        elif fit["status"] == "ok":
            parsed = CriticalPowerFit(**fit)
            out.print(
                f"CP {parsed.cp_w:.0f} ± {parsed.cp_se_w:.0f} W, W′ {parsed.w_prime_j / 1000:.1f} kJ, "
                f"eFTP {parsed.eftp_w:.0f} W (Monod-Scherrer, bests of 2-20 min, R² {parsed.r_squared:.3f})"
            )
        else:
            out.print(f"No CP/W′ model: {fit['reason']}")
        if report["chart"]:
            out.print(f"Chart: {report['chart']}")
