"""Zones, TRIMP and hrTSS from a ride's histograms equal the sample-based figures (`training.ride_histograms`).

The sample-based figures are the independent computation: `training.zones.time_in_zones`, `training.heart_rate.trimp`
and `hr_tss` on the 1 Hz series, and `training.metrics.compute_metrics` for the whole ride.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import RIDES_DIR
from training.heart_rate import hr_tss, trimp, valid_hr_bpm
from training.metrics import compute_metrics
from training.ride_files import Ride, read_ride
from training.ride_histograms import (
    RideHistograms,
    hr_tss_from_histogram,
    rescored_zones_and_hr,
    ride_histograms,
    trimp_from_histogram,
    value_histogram,
    zones_from_histogram,
)
from training.zones import hr_zone_bounds_bpm, power_zone_bounds_w, time_in_zones

RIDES = sorted(p.name for p in RIDES_DIR.iterdir() if p.suffix in (".fit", ".gpx"))
FTPS_W = (137.0, 200.0, 250.5, 313.3)
LTHRS_BPM = (131.0, 150.5, 163.0, 181.7)


@cache
def _ride(name: str) -> Ride:
    return read_ride(RIDES_DIR / name)


@pytest.mark.parametrize("name", RIDES)
def test_power_zones_from_the_histogram_equal_the_samples(name):
    ride = _ride(name)
    power = ride.samples.recorded_power_w
    hist = ride_histograms(ride.samples)
    if power is None:
        assert hist.power == ([], [])
        return
    assert sum(hist.power[1]) == power.size
    for ftp in FTPS_W:
        bounds = power_zone_bounds_w(ftp)
        assert zones_from_histogram(*hist.power, bounds) == time_in_zones(power, bounds)


@pytest.mark.parametrize("name", RIDES)
def test_hr_zones_trimp_and_hr_tss_from_the_histogram_equal_the_samples(name):
    ride = _ride(name)
    hist = ride_histograms(ride.samples)
    if ride.samples.hr_bpm is None:
        assert hist.hr == ([], [])
        return
    hr = ride.samples.hr_bpm
    assert sum(hist.hr[1]) == valid_hr_bpm(hr).size  # 0 bpm and NaN are dropouts, not seconds at a heart rate
    for lthr in LTHRS_BPM:
        assert zones_from_histogram(*hist.hr, hr_zone_bounds_bpm(lthr)) == time_in_zones(
            valid_hr_bpm(hr), hr_zone_bounds_bpm(lthr)
        )
        for sex in (None, "male", "female"):
            for rest, max_hr in ((60.0, 190.0), (48.0, lthr + 5.0)):
                kw = {"resting_hr_bpm": rest, "max_hr_bpm": max_hr, "sex": sex}
                assert trimp_from_histogram(*hist.hr, **kw) == pytest.approx(trimp(hr, **kw), rel=1e-12)
                assert hr_tss_from_histogram(*hist.hr, lthr_bpm=lthr, **kw) == pytest.approx(
                    hr_tss(hr, lthr_bpm=lthr, **kw), rel=1e-12
                )


@pytest.mark.parametrize("name", RIDES)
@pytest.mark.parametrize(
    "params",
    [
        {"ftp_w": 250.0, "lthr_bpm": 160.0, "max_hr_bpm": 190.0, "resting_hr_bpm": 50.0, "sex": "female"},
        {"ftp_w": 180.0, "lthr_bpm": 140.0, "max_hr_bpm": None, "resting_hr_bpm": None, "sex": None},
        {"ftp_w": None, "lthr_bpm": 171.0, "max_hr_bpm": 181.0, "resting_hr_bpm": None, "sex": "male"},
    ],
)
def test_a_stored_ride_rescored_from_its_histograms_equals_its_metrics_from_the_samples(name, params):
    ride = _ride(name)
    old = compute_metrics(ride, ftp_w=200.0, lthr_bpm=120.0, max_hr_bpm=205.0).to_dict()  # scored with other values
    new = compute_metrics(ride, **params).to_dict()
    hr_params = {k: params[k] for k in ("lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "sex")}
    rescored = rescored_zones_and_hr({**old, "ftp_used_w": params["ftp_w"]}, ride_histograms(ride.samples), hr_params)
    for key in ("power_zones_s", "hr_zones_s", "hr_params"):
        assert rescored[key] == new[key], key
    for key in ("trimp", "hr_tss"):
        assert rescored[key] == pytest.approx(new[key], rel=1e-12), key
    assert rescored["zones_status"] == "current"


def test_the_histograms_are_compact():
    for name in RIDES:
        hist = ride_histograms(_ride(name).samples)
        assert len(hist.hr[0]) <= 256 and len(hist.power[0]) <= 2000, name


@settings(max_examples=200, deadline=None)
@given(
    values=arrays(
        np.float64,
        st.integers(0, 400),
        elements=st.one_of(st.floats(0, 2000, allow_nan=False), st.just(float("nan")), st.integers(0, 400)),
    ),
    bounds=st.lists(st.floats(0, 2000, allow_nan=False), min_size=1, max_size=7, unique=True).map(sorted),
)
def test_zones_from_any_histogram_equal_the_samples(values, bounds):
    if len(bounds) > 1 and np.any(np.diff(bounds) <= 0):
        return
    assert zones_from_histogram(*value_histogram(values), bounds) == time_in_zones(values, bounds)


def test_an_empty_histogram_scores_no_heart_rate_nor_power_zones():
    out = rescored_zones_and_hr(
        {"ftp_used_w": 250.0, "max_hr_bpm": None}, RideHistograms(([], []), ([], [])), {"lthr_bpm": 160.0}
    )
    assert out["power_zones_s"] == {} and out["hr_zones_s"] == {} and out["hr_tss"] is None


def test_mismatched_histogram_lists_are_refused():
    with pytest.raises(ValueError, match="2 values but 1 seconds"):
        zones_from_histogram([100.0, 101.0], [3], [150.0])
