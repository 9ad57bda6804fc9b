"""Per-ride metrics: hand-computed synthetic series and the real rides' reference figures.

The real rides are the vendored ones (`data/rides/`) and, when present, the GoldenCheetah ones of
`../shared/data/rides` (their tests are skipped with the reason otherwise; see tests/conftest.py).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from tests.conftest import needs_gpl_rides, ride_param
from tests.unit.test_ride_files import needs_shared_rides, shared_ride
from training.heart_rate import aerobic_decoupling, efficiency_factor, estimate_lthr_bpm, hr_tss, trimp
from training.metrics import compute_metrics
from training.motion import moving_mask
from training.power import (
    ftp_from_best_20min,
    intensity_factor,
    mean_max_curve,
    mean_max_power,
    normalized_power,
    rolling_mean,
    training_stress_score,
    variability_index,
)
from training.ride_files import Ride
from training.samples import RideSamples
from training.zones import hr_zone_bounds_bpm, power_zone_bounds_w, time_in_zones


def make_ride(
    *,
    power_w: np.ndarray | None = None,
    hr_bpm: np.ndarray | None = None,
    speed_m_s: np.ndarray | None = None,
    cadence_rpm: np.ndarray | None = None,
    elapsed_s: np.ndarray | None = None,
) -> Ride:
    lengths = {a.size for a in (power_w, hr_bpm, speed_m_s, cadence_rpm) if a is not None}
    (n,) = lengths
    samples = RideSamples(
        elapsed_s=np.arange(n, dtype=np.int64) if elapsed_s is None else elapsed_s,
        power_w=None if power_w is None else np.asarray(power_w, dtype=float),
        hr_bpm=None if hr_bpm is None else np.asarray(hr_bpm, dtype=float),
        speed_m_s=None if speed_m_s is None else np.asarray(speed_m_s, dtype=float),
        cadence_rpm=None if cadence_rpm is None else np.asarray(cadence_rpm, dtype=float),
        power_recorded=None if power_w is None else np.ones(n, dtype=bool),
    )
    return Ride(
        file_path="synthetic.fit",
        file_sha256="0" * 64,
        file_format="fit",
        sport="cycling",
        start_time=datetime(2024, 1, 1, tzinfo=UTC),
        samples=samples,
        n_records=n,
    )


# --- power: hand-computed -----------------------------------------------------------------------------------------


def test_rolling_mean_full_windows_only() -> None:
    assert rolling_mean(np.array([1.0, 2, 3, 4]), 2).tolist() == [1.5, 2.5, 3.5]
    assert rolling_mean(np.array([1.0, 2]), 3).size == 0
    with pytest.raises(ValueError):
        rolling_mean(np.ones(3), 0)


def test_constant_power_np_equals_average() -> None:
    power = np.full(1800, 237.0)
    assert normalized_power(power) == pytest.approx(237.0)
    assert variability_index(237.0, float(power.mean())) == pytest.approx(1.0)


def test_np_of_a_two_level_series_by_hand() -> None:
    # 600 s at 100 W then 600 s at 300 W. The 1171 full 30 s windows: 571 at 100 W, 29 straddling the step
    # (k s at 300 W and 30 − k at 100 W, k = 1..29: mean 100 + 200k/30), 571 at 300 W.
    power = np.concatenate([np.full(600, 100.0), np.full(600, 300.0)])
    straddling = sum((100 + 200 * k / 30) ** 4 for k in range(1, 30))
    expected = ((571 * 100**4 + straddling + 571 * 300**4) / 1171) ** 0.25
    assert normalized_power(power) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(252.38, abs=0.01)  # NP well above the 200 W average


def test_np_needs_30_seconds() -> None:
    assert normalized_power(np.full(29, 200.0)) is None
    assert normalized_power(np.full(30, 200.0)) == pytest.approx(200.0)


def test_if_and_tss_for_one_hour_at_ftp() -> None:
    power = np.full(3600, 250.0)
    np_w = normalized_power(power)
    assert np_w is not None
    assert intensity_factor(np_w, 250.0) == pytest.approx(1.0)
    assert training_stress_score(3600, np_w, 250.0) == pytest.approx(100.0)
    assert training_stress_score(7200, 0.75 * 250, 250.0) == pytest.approx(2 * 0.75**2 * 100)
    with pytest.raises(ValueError):
        intensity_factor(200.0, 0.0)


def test_mean_max_power() -> None:
    power = np.zeros(4000)
    power[100:105] = 1000.0  # a 5 s sprint
    power[1000:2200] = 300.0  # 20 min at 300 W
    assert mean_max_power(power, 5) == pytest.approx(1000.0)
    assert mean_max_power(power, 60) == pytest.approx(300.0)  # the sprint's best minute is only 5000/60 W
    assert mean_max_power(power[:500], 60) == pytest.approx(5000 / 60)
    assert mean_max_power(power, 1200) == pytest.approx(300.0)
    assert mean_max_power(power, 3600) == pytest.approx((5 * 1000 + 1200 * 300) / 3600)
    assert mean_max_power(power[:100], 300) is None
    curve = mean_max_curve(power[:1000])
    assert set(curve) == {"5s", "1min", "5min"}  # shorter than 20 min: those keys are absent


def test_ftp_from_best_20min() -> None:
    assert ftp_from_best_20min(300.0) == pytest.approx(285.0)


def test_power_zones_from_ftp() -> None:
    bounds = power_zone_bounds_w(200.0)
    assert bounds.tolist() == pytest.approx([110, 150, 180, 210, 240, 300])
    # One second at each of: 0, 110 (=55 %, Z1), 111 (Z2), 150 (Z2), 180 (Z3), 200 (Z4), 240 (Z5), 300 (Z6),
    # 301 (Z7), 1000 (Z7).
    power = np.array([0, 110, 111, 150, 180, 200, 240, 300, 301, 1000], dtype=float)
    assert time_in_zones(power, bounds) == {
        "Z1": 2.0,
        "Z2": 2.0,
        "Z3": 1.0,
        "Z4": 1.0,
        "Z5": 1.0,
        "Z6": 1.0,
        "Z7": 2.0,
    }


def test_time_in_zones_skips_nan_and_checks_bounds() -> None:
    assert time_in_zones(np.array([np.nan, 1.0, 5.0]), [2.0]) == {"Z1": 1.0, "Z2": 1.0}
    with pytest.raises(ValueError):
        time_in_zones(np.ones(3), [2.0, 1.0])


def test_hr_zones_from_lthr() -> None:
    bounds = hr_zone_bounds_bpm(100.0)
    assert bounds.tolist() == pytest.approx([68, 83, 94, 105])
    hr = np.array([60, 68, 69, 83, 90, 100, 105, 106, 120], dtype=float)
    assert time_in_zones(hr, bounds) == {"Z1": 2.0, "Z2": 2.0, "Z3": 1.0, "Z4": 2.0, "Z5": 2.0}


# --- heart rate: hand-computed ------------------------------------------------------------------------------------


def test_trimp_constant_hr_by_hand() -> None:
    # 60 min at 150 bpm, rest 60, max 190: x = 90/130; TRIMP = 60 × x × 0.64 × e^(1.92 x).
    x = 90 / 130
    expected = 60 * x * 0.64 * math.exp(1.92 * x)
    assert expected == pytest.approx(100.44, abs=0.01)
    hr = np.full(3600, 150.0)
    assert trimp(hr, resting_hr_bpm=60, max_hr_bpm=190) == pytest.approx(expected)
    female = 60 * x * 0.86 * math.exp(1.67 * x)
    assert trimp(hr, resting_hr_bpm=60, max_hr_bpm=190, sex="female") == pytest.approx(female)


def test_trimp_clips_and_skips_nan() -> None:
    hr = np.array([50.0, np.nan, 250.0] + [np.nan] * 57)
    # 50 bpm < rest counts 0; 250 > max counts as x = 1: 1/60 min × 1 × 0.64 e^1.92.
    assert trimp(hr, resting_hr_bpm=60, max_hr_bpm=190) == pytest.approx(0.64 * math.exp(1.92) / 60)
    with pytest.raises(ValueError):
        trimp(hr, resting_hr_bpm=190, max_hr_bpm=190)
    with pytest.raises(ValueError):
        trimp(hr, resting_hr_bpm=60, max_hr_bpm=190, sex="other")


def test_hr_tss_one_hour_at_lthr_is_100() -> None:
    params = {"resting_hr_bpm": 55.0, "max_hr_bpm": 185.0, "lthr_bpm": 165.0}
    assert hr_tss(np.full(3600, 165.0), **params) == pytest.approx(100.0)
    assert hr_tss(np.full(7200, 165.0), **params) == pytest.approx(200.0)
    assert hr_tss(np.full(3600, 140.0), **params) < 100.0


def test_estimate_lthr_is_best_20min_hr() -> None:
    hr = np.concatenate([np.full(600, 120.0), np.full(1200, 160.0), np.full(600, 130.0)])
    assert estimate_lthr_bpm(hr) == pytest.approx(160.0)
    assert estimate_lthr_bpm(np.full(1199, 150.0)) is None


def test_efficiency_factor_and_decoupling_by_hand() -> None:
    power = np.full(3600, 200.0)
    hr = np.concatenate([np.full(1800, 140.0), np.full(1800, 147.0)])
    assert efficiency_factor(200.0, 140.0) == pytest.approx(200 / 140)
    # EF1 = 200/140, EF2 = 200/147: decoupling = (1 − 140/147) × 100.
    assert aerobic_decoupling(power, hr) == pytest.approx((1 - 140 / 147) * 100)
    assert aerobic_decoupling(power, np.full(3600, 140.0)) == pytest.approx(0.0)
    assert aerobic_decoupling(power[:50], hr[:50]) is None
    with pytest.raises(ValueError):
        aerobic_decoupling(power, hr[:10])


# --- moving time ----------------------------------------------------------------------------------------------------


def test_moving_by_speed_else_by_pedalling() -> None:
    speed = np.array([0.0, 0.5, 1.5, 8.0, np.nan, 0.0])
    power = np.array([0.0, 0.0, 0.0, 0.0, 150.0, 200.0])
    ride = make_ride(power_w=power, speed_m_s=speed)
    # Speed decides where known (the last second pedals at 0 m/s: stood still); the dropout falls back to power.
    assert moving_mask(ride.samples).tolist() == [False, False, True, True, True, False]
    trainer = make_ride(power_w=np.array([0.0, 100.0, 0.0]), cadence_rpm=np.array([0.0, 0.0, 60.0]))
    assert moving_mask(trainer.samples).tolist() == [False, True, True]


# --- compute_metrics on synthetic rides -----------------------------------------------------------------------------


def test_compute_metrics_with_the_athletes_ftp() -> None:
    power = np.concatenate([np.full(1800, 250.0), np.full(1800, 0.0)])
    ride = make_ride(power_w=power, speed_m_s=np.full(3600, 8.0))
    metrics = compute_metrics(ride, ftp_w=250.0)
    assert metrics.ftp_source == "athlete" and metrics.ftp_used_w == 250.0
    assert metrics.elapsed_s == 3599 and metrics.moving_s == 3600
    assert metrics.distance_m == pytest.approx(8.0 * 3600)
    assert metrics.work_kj == pytest.approx(250 * 1800 / 1000)
    assert metrics.avg_power_w == pytest.approx(125.0)
    assert metrics.avg_power_nonzero_w == pytest.approx(250.0)
    np_w = normalized_power(power)
    assert metrics.normalized_power_w == pytest.approx(np_w)
    assert metrics.intensity_factor == pytest.approx(np_w / 250.0)
    assert metrics.tss == pytest.approx(3600 * np_w * (np_w / 250) / (250 * 3600) * 100)
    assert metrics.power_zones_s == {"Z1": 1800.0, "Z2": 0.0, "Z3": 0.0, "Z4": 1800.0, "Z5": 0.0, "Z6": 0.0, "Z7": 0.0}
    assert metrics.best_20min_w == pytest.approx(250.0) and metrics.ftp_estimate_w == pytest.approx(237.5)
    assert set(metrics.mmp_w) == {"5s", "1min", "5min", "20min", "60min"}


def test_compute_metrics_without_ftp_has_no_if_tss_or_zones() -> None:
    """Issue 11, B1: the ride's own best 20 min never scores it (IF would be about 1 by construction)."""
    ride = make_ride(power_w=np.full(3600, 200.0))
    metrics = compute_metrics(ride)
    assert metrics.ftp_source is None and metrics.ftp_used_w is None and metrics.tss_status == "no_ftp"
    assert metrics.ftp_estimate_w == pytest.approx(190.0)  # shown, never used
    assert metrics.intensity_factor is None and metrics.tss is None and metrics.power_zones_s == {}
    assert metrics.power_s == 3600 and metrics.best_60min_np_w == pytest.approx(200.0)


def test_compute_metrics_short_ride_without_ftp_has_no_if() -> None:
    metrics = compute_metrics(make_ride(power_w=np.full(600, 200.0)))
    assert metrics.normalized_power_w == pytest.approx(200.0)
    assert metrics.best_20min_w is None and metrics.ftp_source is None
    assert metrics.intensity_factor is None and metrics.tss is None and metrics.power_zones_s == {}


def test_compute_metrics_hr_only() -> None:
    hr = np.full(3600, 150.0)
    metrics = compute_metrics(make_ride(hr_bpm=hr), lthr_bpm=150.0, max_hr_bpm=190.0, resting_hr_bpm=60.0)
    assert metrics.normalized_power_w is None and metrics.tss is None and metrics.mmp_w == {}
    assert metrics.power_zones_s == {} and metrics.efficiency_factor is None
    assert metrics.trimp == pytest.approx(60 * (90 / 130) * 0.64 * math.exp(1.92 * 90 / 130))
    assert metrics.hr_tss == pytest.approx(100.0)
    assert metrics.hr_zones_s["Z4"] == 3600.0
    assert metrics.hr_params == {
        "lthr_bpm": 150.0,
        "lthr_source": "athlete",
        "max_hr_bpm": 190.0,
        "max_hr_source": "athlete",
        "resting_hr_bpm": 60.0,
        "resting_hr_source": "athlete",
    }


def test_compute_metrics_estimates_missing_hr_parameters() -> None:
    hr = np.concatenate([np.full(1800, 130.0), np.full(1800, 160.0)])
    metrics = compute_metrics(make_ride(hr_bpm=hr))
    assert metrics.hr_params == {
        "lthr_bpm": 160.0,
        "lthr_source": "estimated",
        "max_hr_bpm": 160.0,
        "max_hr_source": "estimated",
        "resting_hr_bpm": 60.0,
        "resting_hr_source": "default",
    }
    assert metrics.trimp is not None and metrics.hr_tss is not None


def test_compute_metrics_rejects_bad_parameters() -> None:
    ride = make_ride(power_w=np.full(60, 100.0), hr_bpm=np.full(60, 120.0))
    with pytest.raises(ValueError):
        compute_metrics(ride, ftp_w=0)
    with pytest.raises(ValueError):
        compute_metrics(ride, max_hr_bpm=50)


def test_to_dict_is_json_ready() -> None:
    ride = make_ride(power_w=np.full(3700, 200.0), hr_bpm=np.full(3700, 140.0), speed_m_s=np.full(3700, 9.0))
    data = compute_metrics(ride).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["normalized_power_w"] == pytest.approx(200.0)
    assert data["mmp_w"]["60min"] == pytest.approx(200.0)


# --- the real rides ------------------------------------------------------------------------------------------------

# The rides READMEs (data/rides/README.md; gc_*: ../shared/data/rides/README.md): NP ref and best 20 min (W),
# Coggan method on the reference 1 Hz series.
README_POWER = {
    "fitparse_ELEMNT-2019-02-17.fit": (153.6, 147.7),
    "fitparse_Edge810-Vector-2013-08-16.fit": (301.1, 312.2),
    "fitparse_indoor-trainer-2011-11-02.fit": (228.2, 229.5),
    "gc_Garmin1000_withFirstbeat.fit": (225.3, 234.4),
    "gc_Weather_XDATA_2016-02-06.fit": (233.8, 255.0),
    "gc_edge1030-virtual-14582164182.fit": (186.4, 205.1),
    "gc_smartrec_2009_09_19.tcx": (247.0, 281.2),
    "sweatpy_edge1000-4078723797.fit": (267.4, 306.8),
    "sweatpy_edge1000-4078723797_strava.gpx": (267.4, 306.8),
}


@needs_shared_rides
@pytest.mark.parametrize("name", [ride_param(name) for name in sorted(README_POWER)])
def test_np_and_best_20min_match_the_readme(name: str) -> None:
    np_ref_w, best_20min_ref_w = README_POWER[name]
    metrics = compute_metrics(shared_ride(name))
    assert metrics.normalized_power_w is not None and metrics.best_20min_w is not None
    assert abs(metrics.normalized_power_w - np_ref_w) < 1.0
    assert abs(metrics.best_20min_w - best_20min_ref_w) < 1.0
    assert metrics.ftp_source is None and metrics.tss is None
    assert metrics.ftp_estimate_w == pytest.approx(0.95 * metrics.best_20min_w)


@needs_shared_rides
def test_fit_and_gpx_of_the_same_ride_agree() -> None:
    fit = compute_metrics(shared_ride("sweatpy_edge1000-4078723797.fit"), ftp_w=280.0)
    gpx = compute_metrics(shared_ride("sweatpy_edge1000-4078723797_strava.gpx"), ftp_w=280.0)
    assert fit.normalized_power_w is not None and gpx.normalized_power_w is not None
    assert fit.best_20min_w is not None and gpx.best_20min_w is not None
    assert abs(fit.normalized_power_w - gpx.normalized_power_w) < 1.0
    assert abs(fit.best_20min_w - gpx.best_20min_w) < 1.0
    assert fit.tss == pytest.approx(gpx.tss, abs=1.0)
    assert fit.moving_s == pytest.approx(gpx.moving_s, abs=60)
    assert fit.distance_m == pytest.approx(gpx.distance_m, rel=0.005)


@needs_shared_rides
def test_hr_only_ride_gets_trimp_and_hr_tss_but_no_power_figures() -> None:
    metrics = compute_metrics(shared_ride("fitparse_edge500-hr-only-2011-09-25.fit"))
    assert metrics.trimp is not None and metrics.trimp > 0
    assert metrics.hr_tss is not None and metrics.hr_tss > 0
    assert metrics.avg_hr_bpm is not None and metrics.max_hr_bpm is not None
    for name in (
        "work_kj",
        "avg_power_w",
        "avg_power_nonzero_w",
        "normalized_power_w",
        "variability_index",
        "intensity_factor",
        "tss",
        "best_20min_w",
        "ftp_estimate_w",
        "ftp_used_w",
        "ftp_source",
        "efficiency_factor",
        "aerobic_decoupling_pct",
    ):
        assert getattr(metrics, name) is None, name
    assert metrics.mmp_w == {} and metrics.power_zones_s == {}
    assert metrics.hr_params["lthr_source"] == "estimated"
    assert sum(metrics.hr_zones_s.values()) == shared_ride("fitparse_edge500-hr-only-2011-09-25.fit").samples.n_samples


@needs_shared_rides
def test_elemnt_moving_time_excludes_pauses() -> None:
    metrics = compute_metrics(shared_ride("fitparse_ELEMNT-2019-02-17.fit"))
    assert metrics.elapsed_s == 6 * 3600 + 33 * 60 + 11
    # The device's timer (moving) time is 3:44:31 = 13 471 s; by speed, some of that was standing still.
    assert 3.4 * 3600 < metrics.moving_s <= 13_471


@needs_gpl_rides
def test_given_ftp_drives_if_tss_and_zones_on_a_real_ride() -> None:
    ride = shared_ride("gc_Garmin1000_withFirstbeat.fit")
    metrics = compute_metrics(ride, ftp_w=250.0)
    assert metrics.ftp_source == "athlete"
    assert metrics.normalized_power_w is not None and metrics.intensity_factor is not None
    assert metrics.intensity_factor == pytest.approx(metrics.normalized_power_w / 250.0)
    assert sum(metrics.power_zones_s.values()) == ride.samples.n_samples
