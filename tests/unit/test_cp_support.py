"""When the data supports a CP/W′ model (issue 11): the model is an envelope of the bests, and near-maximal efforts
must come from more than one day's riding; the sweatpy ride alone gives no model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from tests.conftest import ride_path
from training.athlete_model import fit_from_curves
from training.cp_model import CriticalPowerFit, NoFit, fit_critical_power
from training.power_curve import log_duration_grid, ride_power_curve
from training.ride_files import read_ride

SWEATPY_FIT = "sweatpy_edge1000-4078723797.fit"
SWEATPY_GPX = "sweatpy_edge1000-4078723797_strava.gpx"
DAY_A, DAY_B = date(2024, 5, 1), date(2024, 5, 8)


def _two_days(durations: np.ndarray) -> np.ndarray:
    """Short bests (≤ 5 min) from one day, the longer ones from another week's test."""
    return np.where(durations <= 300, np.datetime64(DAY_A), np.datetime64(DAY_B))


@pytest.mark.parametrize(("cp_w", "w_prime_j"), [(280.0, 20000.0), (180.0, 9000.0), (420.0, 32000.0)])
def test_known_cp_and_w_prime_are_recovered_from_two_days_of_efforts(cp_w: float, w_prime_j: float) -> None:
    durations = log_duration_grid(3600)
    power = (w_prime_j / durations + cp_w) * (1.0 + 0.01 * np.sin(durations))  # ±1 % noise
    fit = fit_critical_power(durations, power, effort_days=_two_days(durations))
    assert isinstance(fit, CriticalPowerFit), fit
    assert fit.cp_w == pytest.approx(cp_w, rel=0.02) and fit.w_prime_j == pytest.approx(w_prime_j, rel=0.02)
    assert fit.effort_days == 2


def test_the_same_curve_from_one_day_gives_no_model() -> None:
    durations = log_duration_grid(3600)
    power = 20000.0 / durations + 280.0
    days = np.full(durations.size, np.datetime64(DAY_A))
    fit = fit_critical_power(durations, power, effort_days=days)
    assert isinstance(fit, NoFit) and "one day" in fit.reason


def test_a_best_above_the_model_refuses_it() -> None:
    """A 15-min best 6 % above the model is an effort the model calls impossible: no model."""
    durations = log_duration_grid(3600)
    power = 20000.0 / durations + 280.0
    power = np.where(durations == 900, power * 1.06, power)
    fit = fit_critical_power(durations, power, effort_days=_two_days(durations))
    assert isinstance(fit, NoFit) and "above the model" in fit.reason


def _sweatpy_curve(name: str = SWEATPY_FIT) -> tuple[np.ndarray, np.ndarray, datetime]:
    ride = read_ride(ride_path(name))
    curve = ride_power_curve(ride.samples)
    assert curve is not None
    return curve[0], curve[1], ride.start_time


def test_the_sweatpy_ride_alone_gives_no_model() -> None:
    """The old rule fitted CP 306 W / W′ 11.5 kJ to this one ride, and the ride itself exceeds that model."""
    durations, power, start = _sweatpy_curve()
    days = np.full(durations.size, np.datetime64(start.date()))
    fit = fit_critical_power(durations, power, effort_days=days)
    assert isinstance(fit, NoFit) and "one day" in fit.reason
    assert fit_from_curves([("sweatpy", start, (durations, power))]) is None


def test_the_sweatpy_curve_even_from_two_days_is_not_an_envelope() -> None:
    """Its 15-min best (328 W) lies about 3 % above the least-squares model: refused by the envelope rule."""
    durations, power, _ = _sweatpy_curve()
    fit = fit_critical_power(durations, power, effort_days=_two_days(durations))
    assert isinstance(fit, NoFit) and "above the model" in fit.reason


def test_two_recordings_of_one_ride_are_one_day_of_evidence() -> None:
    fit_t, fit_p, start = _sweatpy_curve(SWEATPY_FIT)
    gpx_t, gpx_p, gpx_start = _sweatpy_curve(SWEATPY_GPX)
    assert fit_from_curves([("fit", start, (fit_t, fit_p)), ("gpx", gpx_start, (gpx_t, gpx_p))]) is None


def test_a_model_fitted_to_two_days_lies_on_or_above_every_best() -> None:
    """A short-test day (maximal to 5 min, easier after) and a long-test day a week later (maximal beyond 5 min):
    the model is recovered, names both rides, and no best of either day lies above it."""
    cp_w, w_prime_j = 300.0, 18000.0
    t = log_duration_grid(3600)
    model = w_prime_j / t + cp_w
    short_day = (t, np.where(t <= 300, model, 0.85 * model))
    long_day = (t, np.where(t > 300, model, 0.9 * model))
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    fitted = fit_from_curves([("short", start, short_day), ("long", start + timedelta(days=7), long_day)])
    assert fitted is not None, "two days of maximal tests support a model"
    fit, evidence = fitted
    assert fit.cp_w == pytest.approx(cp_w, rel=0.02) and fit.w_prime_j == pytest.approx(w_prime_j, rel=0.02)
    assert evidence["ride_ids"] == ["long", "short"]
    for durations, power in (short_day, long_day):
        assert np.all(power[durations >= 120] <= fit.power_at(durations[durations >= 120]) * 1.02)
