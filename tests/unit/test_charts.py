"""PNG charts: the Performance Management Chart and the power curve (training.charts)."""

from __future__ import annotations

import builtins
from datetime import date, timedelta
from pathlib import Path

import pytest

from training import charts
from training.charts import ChartUnavailableError, best_curve, curve_from_mmp
from training.load import load_series

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
D0 = date(2026, 8, 1)


def _series() -> list[dict]:
    week = [70.0, 95.0, 45.0, 0.0, 100.0, 130.0, 50.0]
    daily = {D0 + timedelta(days=i): week[i % 7] * (1.4 if 70 <= i < 80 else 1.0) for i in range(90)}
    return [p.__dict__ for p in load_series(daily, D0, D0 + timedelta(days=89))]


def test_best_curve_and_curve_from_mmp_need_no_matplotlib():
    rides = [{"5s": 900.0, "1min": 420.0, "20min": 280.0}, {"5s": 1100.0, "20min": 260.0, "60min": 240.0}, {}]
    assert best_curve(rides) == {"5s": 1100.0, "1min": 420.0, "20min": 280.0, "60min": 240.0}
    assert curve_from_mmp({"5s": 900.0, "20min": 280.0, "odd": 1.0}) == {5: 900.0, 1200: 280.0}


def test_without_matplotlib_a_clear_error(monkeypatch, tmp_path: Path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ChartUnavailableError, match="matplotlib"):
        charts.pmc_chart(_series(), tmp_path / "pmc.png")


def test_input_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="empty"):
        charts.pmc_chart([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no power"):
        charts.power_curve_chart({}, {5: 1000.0}, tmp_path / "x.png")


def test_pmc_chart_writes_a_png(tmp_path: Path):
    pytest.importorskip("matplotlib")
    series = _series()
    last = series[-1]
    path = charts.pmc_chart(
        series,
        tmp_path / "sub" / "pmc.png",
        next_form=(last["date"] + timedelta(days=1), last["ctl"] - last["atl"]),
        title="test: fitness, fatigue and form",
    )
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_pmc_chart_accepts_iso_dates_and_extreme_form(tmp_path: Path):
    pytest.importorskip("matplotlib")
    series = [{**p, "date": p["date"].isoformat(), "tsb": p["tsb"] * 3} for p in _series()]
    assert charts.pmc_chart(series, tmp_path / "pmc.png").stat().st_size > 20_000


def test_power_curve_chart_writes_a_png(tmp_path: Path):
    pytest.importorskip("matplotlib")
    ride = curve_from_mmp({"5s": 850.0, "1min": 400.0, "5min": 310.0, "20min": 270.0, "60min": 240.0})
    best = curve_from_mmp({"5s": 1184.0, "1min": 428.0, "5min": 341.0, "20min": 312.0, "60min": 289.0})
    path = charts.power_curve_chart(ride, best, tmp_path / "power.png", title="ride vs best")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 15_000
