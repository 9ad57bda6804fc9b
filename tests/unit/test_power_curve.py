"""The power-duration curve (pauses zero-filled), the CP/W′ fit and W′ balance (issue 11: B3, the fitted model)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ride_param, ride_path
from tests.unit.test_metrics import make_ride
from training.cp_model import CriticalPowerFit, NoFit, fit_critical_power
from training.metrics import compute_metrics
from training.power_curve import (
    best_of_curves,
    best_window,
    log_duration_grid,
    mean_max_power_curve,
    power_at,
    ride_power_curve,
    zero_filled_power_w,
)
from training.ride_files import read_ride
from training.w_prime import summarise_w_prime_balance, w_prime_balance


def _paused_ride() -> tuple[np.ndarray, np.ndarray]:
    """12 min at 300 W, a 5-min stop, 10 min at 300 W, a 12-min stop, 10 min at 300 W (elapsed jumps at stops)."""
    blocks = [(0, 720), (720 + 300, 600), (720 + 300 + 600 + 720, 600)]
    elapsed = np.concatenate([np.arange(start, start + length) for start, length in blocks])
    return elapsed.astype(np.int64), np.full(elapsed.size, 300.0)


def test_pauses_are_zero_filled_not_joined() -> None:
    elapsed, power = _paused_ride()
    filled = zero_filled_power_w(elapsed, power)
    assert filled.size == int(elapsed[-1]) + 1 and filled.sum() == pytest.approx(power.sum())
    durations, best = mean_max_power_curve(filled, np.array([600, 1200]))
    assert best[0] == pytest.approx(300.0)
    # The best 20 min holds 15 min of riding and the 5-min stop (at 0 W), never 20 min "at 300 W".
    assert best[1] == pytest.approx(900 * 300.0 / 1200)


def test_ride_metrics_best_20min_does_not_join_pauses() -> None:
    """B3: the old code dropped the paused seconds and reported 300 W for 20 minutes."""
    elapsed, power = _paused_ride()
    metrics = compute_metrics(make_ride(power_w=power, elapsed_s=elapsed))
    assert metrics.best_20min_w == pytest.approx(225.0)
    assert metrics.mmp_w["5min"] == pytest.approx(300.0)
    assert metrics.normalized_power_w == pytest.approx(300.0)  # NP still on the recorded seconds


def test_a_pause_over_an_hour_becomes_one_zero_second() -> None:
    elapsed = np.array([0, 1, 2, 2 + 7200, 2 + 7201], dtype=np.int64)
    filled = zero_filled_power_w(elapsed, np.full(5, 100.0))
    assert filled.tolist() == [100.0, 100.0, 100.0, 0.0, 100.0, 100.0]


def test_dropouts_are_zero_and_bad_input_is_refused() -> None:
    filled = zero_filled_power_w(np.arange(4), np.array([100.0, 200.0, 300.0, 400.0]), np.array([1, 0, 1, 1], bool))
    assert filled.tolist() == [100.0, 0.0, 300.0, 400.0]
    with pytest.raises(ValueError, match="strictly increasing"):
        zero_filled_power_w(np.array([0, 0]), np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        mean_max_power_curve(np.array([1.0, np.nan]))


def test_log_grid_and_curve_cover_1s_to_the_ride_length() -> None:
    grid = log_duration_grid(7200)
    assert grid[0] == 1 and grid[-1] == 7200 and np.all(np.diff(grid) > 0)
    assert list(grid[:10]) == list(range(1, 11))
    past_10 = grid[grid >= 10]
    assert np.all(past_10[1:] / past_10[:-1] < 1.15)  # about 10 % apart past 10 s (rounded to seconds)
    rng = np.random.default_rng(1)
    power = rng.uniform(0, 400, 3000)
    durations, best = mean_max_power_curve(power)
    assert durations[-1] == 3000 and durations.size == best.size
    for d, b in zip(durations[::7], best[::7], strict=True):
        assert b == pytest.approx(np.convolve(power, np.ones(d) / d, "valid").max())


def test_best_of_curves_names_the_source() -> None:
    a = (np.array([1, 60, 1200]), np.array([900.0, 400.0, 250.0]))
    b = (np.array([1, 60]), np.array([800.0, 420.0]))
    durations, best, source = best_of_curves([a, b])
    assert durations.tolist() == [1, 60, 1200] and best.tolist() == [900.0, 420.0, 250.0]
    assert source.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    "name", [ride_param("fitparse_ELEMNT-2019-02-17.fit"), ride_param("gc_smartrec_2009_09_19.tcx")]
)
def test_shared_rides_best_20min_spans_no_pause(name: str) -> None:
    """The rides with stops: the best 20-minute window lies inside one stretch of riding."""
    samples = read_ride(ride_path(name)).samples
    assert samples.power_w is not None
    filled = zero_filled_power_w(samples.elapsed_s, samples.power_w, samples.power_recorded)
    found = best_window(filled, 1200)
    assert found is not None
    start, mean_w = found
    inside = (samples.elapsed_s >= start) & (samples.elapsed_s < start + 1200)
    assert int(inside.sum()) == 1200, "the window holds seconds of a pause"
    curve = ride_power_curve(samples)
    assert curve is not None and power_at(*curve, 1200) == pytest.approx(mean_w)


# --- CP and W′ ------------------------------------------------------------------------------------------------


def _two_days(durations: np.ndarray) -> np.ndarray:
    """Bests up to 5 min from one day, longer ones from another (the model needs rides of two days)."""
    return np.where(durations <= 300, np.datetime64("2024-05-01"), np.datetime64("2024-05-08"))


@pytest.mark.parametrize(("cp_w", "w_prime_j"), [(280.0, 20000.0), (180.0, 9000.0), (420.0, 32000.0)])
def test_fit_recovers_known_cp_and_w_prime(cp_w: float, w_prime_j: float) -> None:
    durations = log_duration_grid(3600)
    wobble = 1.0 + 0.01 * np.sin(durations)  # ±1 % noise on every best
    fit = fit_critical_power(durations, (w_prime_j / durations + cp_w) * wobble, effort_days=_two_days(durations))
    assert isinstance(fit, CriticalPowerFit), fit
    assert fit.cp_w == pytest.approx(cp_w, rel=0.02) and fit.w_prime_j == pytest.approx(w_prime_j, rel=0.02)
    assert fit.eftp_w == pytest.approx(fit.cp_w + fit.w_prime_j / 3600)
    assert fit.r_squared > 0.9 and fit.rmse_w < 0.02 * cp_w and fit.cp_se_w < 0.01 * cp_w
    assert fit.power_at(300.0) == pytest.approx(w_prime_j / 300 + cp_w, rel=0.02)


def test_curve_without_long_efforts_gives_no_fit() -> None:
    durations = log_duration_grid(600)  # a 10-minute ride: nothing at 12-20 min
    fit = fit_critical_power(durations, 20000.0 / durations + 280.0, effort_days=_two_days(durations))
    assert isinstance(fit, NoFit) and "12 and 20 min" in fit.reason
    assert fit.to_dict() == {"status": "insufficient_data", "reason": fit.reason}


def test_one_hard_effort_then_easy_riding_gives_no_fit() -> None:
    """3 min at 400 W in an hour at 150 W: the 12-20 min bests are the easy riding, not maximal efforts."""
    power = np.full(3600, 150.0)
    power[600:780] = 400.0
    durations, best_w = mean_max_power_curve(power)
    fit = fit_critical_power(durations, best_w, effort_days=_two_days(durations))
    assert isinstance(fit, NoFit) and "not maximal" in fit.reason


def test_curve_without_short_efforts_gives_no_fit() -> None:
    durations = np.array([600, 900, 1200])
    fit = fit_critical_power(durations, 20000.0 / durations + 280.0, effort_days=_two_days(durations))
    assert isinstance(fit, NoFit) and "2 and 5 min" in fit.reason


# --- W′ balance -------------------------------------------------------------------------------------------------


def test_w_prime_balance_on_an_interval_session() -> None:
    cp_w, w_prime_j = 250.0, 20000.0
    effort_s, rest_s, above_w = 180, 180, 60.0
    blocks = [np.full(600, 150.0)]
    for _ in range(5):
        blocks += [np.full(effort_s, cp_w + above_w), np.full(rest_s, 150.0)]
    power = np.concatenate(blocks)
    balance = w_prime_balance(power, cp_w, w_prime_j)
    assert balance.shape == power.shape and np.all(balance <= w_prime_j + 1e-9)
    assert np.all(balance[:600] == w_prime_j)  # below CP from full: nothing to recover
    starts = [600 + k * (effort_s + rest_s) for k in range(5)]
    for start in starts:
        before = w_prime_j if start == 600 else balance[start - 1]
        end = start + effort_s - 1
        assert before - balance[end] == pytest.approx(effort_s * above_w)  # the work above CP, exactly
        assert balance[end + rest_s] > balance[end]  # recovers in the rest
    summary = summarise_w_prime_balance(balance, w_prime_j)
    assert summary is not None
    assert summary.min_at_s == starts[-1] + effort_s - 1  # the end of the last effort
    assert summary.min_j == pytest.approx(balance.min()) and 0 < summary.min_fraction < 1
    with pytest.raises(ValueError):
        w_prime_balance(power, 0.0, w_prime_j)
