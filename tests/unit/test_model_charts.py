"""PNG charts of the athlete model (training.model_charts): power-duration curve with CP/W′, ride W′ balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.cp_model import CriticalPowerFit, NoFit, fit_critical_power
from training.model_charts import athlete_curve_chart, athlete_curve_figure, ride_chart, ride_figure
from training.power_curve import log_duration_grid
from training.w_prime import w_prime_balance

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CP_W, W_PRIME_J = 260.0, 18_000.0

pytest.importorskip("matplotlib")


def _curve(cp_w: float = CP_W, w_prime_j: float = W_PRIME_J) -> tuple[np.ndarray, np.ndarray]:
    t = log_duration_grid(7200)
    return t, np.minimum(w_prime_j / t + cp_w, 1100.0)


def _two_days(durations: np.ndarray) -> np.ndarray:
    """Bests up to 5 min from one day, longer ones from another (the model needs rides of two days)."""
    return np.where(durations <= 300, np.datetime64("2024-05-01"), np.datetime64("2024-05-08"))


def _texts(fig) -> str:
    parts = [t.get_text() for ax in fig.axes for t in ax.texts]
    parts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    return " | ".join(parts)


def test_curve_chart_with_a_fit_names_cp_w_prime_and_eftp(tmp_path: Path):
    recent = _curve()
    all_time = _curve(280.0, 20_000.0)
    fit = fit_critical_power(*recent, effort_days=_two_days(recent[0]))
    assert isinstance(fit, CriticalPowerFit)
    text = _texts(athlete_curve_figure(recent, all_time, fit))
    assert f"CP {fit.cp_w:.0f} W" in text and "W′ 18.0 kJ" in text and f"eFTP {fit.eftp_w:.0f} W" in text
    path = athlete_curve_chart(recent, all_time, fit, tmp_path / "sub" / "curve.png", title="curve")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_curve_chart_without_a_fit_says_why(tmp_path: Path):
    t, p = _curve()
    short_only = (t[t <= 300], p[t <= 300])
    fit = fit_critical_power(*short_only, effort_days=_two_days(short_only[0]))
    assert isinstance(fit, NoFit)
    fig = athlete_curve_figure(short_only, (t, p), fit)
    assert "No CP/W′ model: no best between 12 and 20 min" in _texts(fig)
    assert "CP " not in _texts(fig).replace("No CP/W′", "")
    path = athlete_curve_chart(short_only, (t, p), fit, tmp_path / "curve.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    empty = (np.zeros(0, np.int64), np.zeros(0))
    assert athlete_curve_chart(empty, (t, p), None, tmp_path / "old.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no power curve"):
        athlete_curve_chart(empty, empty, None, tmp_path / "x.png")


def _interval_ride() -> np.ndarray:
    """10 min at 150 W, then 5 × (3 min at 400 W, 3 min at 120 W), then 10 min at 150 W."""
    parts = [np.full(600, 150.0)]
    for _ in range(5):
        parts += [np.full(180, 400.0), np.full(180, 120.0)]
    parts.append(np.full(600, 150.0))
    return np.concatenate(parts)


def test_ride_chart_draws_w_prime_balance_and_marks_its_minimum(tmp_path: Path):
    power = _interval_ride()
    balance = w_prime_balance(power, CP_W, W_PRIME_J)
    low = int(np.argmin(balance))
    assert 600 + 4 * 360 <= low < 600 + 4 * 360 + 180  # the end of the 5th interval
    fig = ride_figure(power, balance_j=balance, w_prime_j=W_PRIME_J, cp_w=CP_W)
    right = fig.axes[1]
    assert right.get_ylabel() == "W′ balance (kJ)"
    line, marker = right.lines[0], right.lines[1]
    assert np.allclose(line.get_ydata(), balance / 1000.0)
    assert marker.get_xdata()[0] == pytest.approx(low / 60.0)
    assert marker.get_ydata()[0] == pytest.approx(balance[low] / 1000.0)
    assert f"min {balance[low] / 1000:.1f} kJ" in _texts(fig)
    path = ride_chart(power, tmp_path / "ride.png", balance_j=balance, w_prime_j=W_PRIME_J, cp_w=CP_W)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_ride_chart_without_cp_has_power_only(tmp_path: Path):
    fig = ride_figure(_interval_ride())
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="shape"):
        ride_figure(_interval_ride(), balance_j=np.zeros(3), w_prime_j=W_PRIME_J)
    with pytest.raises(ValueError, match="no power"):
        ride_chart(np.zeros(0), tmp_path / "x.png")
