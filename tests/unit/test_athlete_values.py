"""Heart-rate dropouts, TRIMP's sex factor, HR estimates, FTP from dated values, one ride one load, device values
read from FIT files (issue 11: B1, B2, B5, B8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.conftest import needs_gpl_rides, ride_param, ride_path
from training.fit_profile import FitProfileError, read_device_values
from training.heart_rate import aerobic_decoupling, max_hr_estimate, sustained_hr_estimate, trimp
from training.metrics import compute_metrics
from training.power import normalized_power
from training.power_curve import best_normalized_power
from training.ride_files import read_ride
from training.samples import resample_to_1hz
from training.scoring import (
    DatedValue,
    Recording,
    choose_primary,
    ftp_for_ride,
    overlapping,
    same_activity,
    score_power_ride,
    value_at,
)

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)


# --- heart rate ------------------------------------------------------------------------------------------------


def test_zero_bpm_is_a_dropout_not_a_reading() -> None:
    hr = np.array([150.0] * 60 + [0.0] * 30 + [150.0] * 60)
    resampled = resample_to_1hz(np.arange(hr.size, dtype=float), {"hr_bpm": hr})
    assert resampled is not None
    samples = resampled[1]
    assert samples.hr_bpm is not None and np.isnan(samples.hr_bpm[60:90]).all()  # missing, not 0, not held
    assert np.nanmean(samples.hr_bpm) == 150.0
    with_zeros = trimp(hr, resting_hr_bpm=60, max_hr_bpm=190)
    assert with_zeros == pytest.approx(trimp(hr[hr > 0], resting_hr_bpm=60, max_hr_bpm=190))
    power = np.full(hr.size, 200.0)
    assert aerobic_decoupling(power, hr) == pytest.approx(0.0)


@pytest.mark.parametrize("name", [ride_param("gc_edge1030-virtual-14582164182.fit")])
def test_edge1030_average_hr_ignores_dropouts(name: str) -> None:
    """B2: 451 seconds of 0 bpm made the average 109 bpm, EF 1.71 and decoupling 48 %."""
    metrics = compute_metrics(read_ride(ride_path(name)))
    assert metrics.avg_hr_bpm == pytest.approx(130.0, abs=2.0)
    assert metrics.efficiency_factor == pytest.approx(1.43, abs=0.03)
    assert metrics.aerobic_decoupling_pct == pytest.approx(24.0, abs=2.0)


def test_trimp_uses_the_sex_factor_when_known() -> None:
    hr = np.full(3600, 160.0)
    x = (160 - 60) / (190 - 60)
    male = trimp(hr, resting_hr_bpm=60, max_hr_bpm=190, sex="male")
    female = trimp(hr, resting_hr_bpm=60, max_hr_bpm=190, sex="female")
    assert male == pytest.approx(60 * x * 0.64 * np.exp(1.92 * x))
    assert female == pytest.approx(60 * x * 0.86 * np.exp(1.67 * x))
    assert trimp(hr, resting_hr_bpm=60, max_hr_bpm=190) == male  # unknown: the male constants, as before
    with pytest.raises(ValueError, match="sex"):
        trimp(hr, resting_hr_bpm=60, max_hr_bpm=190, sex="x")


def test_sustained_and_max_hr_estimates_carry_their_evidence() -> None:
    hr = np.concatenate([np.full(1800, 150.0), np.full(2400, 170.0), [0.0] * 100, np.full(600, 140.0)])
    hr[1000] = 230.0  # one spike
    lthr = sustained_hr_estimate(hr)
    assert lthr is not None and lthr.value_bpm == pytest.approx(170.0)
    assert lthr.duration_s == 2400 and lthr.start_index == 1800
    top = max_hr_estimate(hr)
    assert top is not None and top.value_bpm == pytest.approx(170.0)  # the spike's 5 s average only 166 bpm
    assert top.duration_s == 5
    assert sustained_hr_estimate(np.full(1199, 160.0)) is None


# --- FTP from dated values ------------------------------------------------------------------------------------


def _ftp(value: float, source: str, days: int) -> DatedValue:
    return DatedValue(value, source, T0 + timedelta(days=days))  # type: ignore[arg-type]


def test_value_valid_at_the_ride_start_by_precedence() -> None:
    values = [_ftp(250, "fitted", -1), _ftp(240, "device", -10), _ftp(260, "confirmed", -30), _ftp(300, "confirmed", 5)]
    assert value_at(values, T0) == values[2]  # confirmed > device > fitted; the future value not yet
    assert value_at(values, T0 + timedelta(days=6)) == values[3]
    assert value_at(values[:2], T0) == values[1]
    assert value_at(values, T0 - timedelta(days=60)) is None


def test_a_value_the_ride_disproves_is_stale() -> None:
    choice = ftp_for_ride([_ftp(200, "device", -1)], T0, best_60min_np_w=287.0)
    assert choice.stale and choice.ftp_w == 287.0 and choice.proposed_ftp_w == 287.0
    assert choice.source == "ride_best_60min_np" and choice.evidence["value_w"] == 200
    kept = ftp_for_ride([_ftp(300, "device", -1)], T0, best_60min_np_w=287.0)
    assert not kept.stale and kept.ftp_w == 300.0 and kept.source == "device"
    by_eftp = ftp_for_ride([_ftp(200, "confirmed", -9), _ftp(230, "fitted", -1)], T0, best_60min_np_w=None)
    assert by_eftp.stale and by_eftp.ftp_w == 200 and by_eftp.proposed_ftp_w == 230


def test_no_ftp_means_no_tss() -> None:
    choice = ftp_for_ride([], T0, best_60min_np_w=250.0)
    assert choice.tss_status == "no_ftp" and choice.ftp_w is None and choice.proposed_ftp_w == 250.0
    scored = score_power_ride(3600, 240.0, choice)
    assert scored["tss"] is None and scored["intensity_factor"] is None and scored["tss_status"] == "no_ftp"
    ok = score_power_ride(3600, 250.0, ftp_for_ride([_ftp(250, "confirmed", -1)], T0, None))
    assert ok["tss"] == pytest.approx(100.0) and ok["intensity_factor"] == pytest.approx(1.0)


def test_sweatpy_stale_device_ftp_is_detected_and_a_value_proposed() -> None:
    """The head unit says 200 W; the rider holds 267 W NP for 2 h 19 min (the device's own IF: 1.34)."""
    path = ride_path("sweatpy_edge1000-4078723797.fit")
    device = read_device_values(path)
    ride = read_ride(path)
    power = ride.samples.recorded_power_w
    assert device.ftp_w == 200.0 and power is not None
    ftp = [DatedValue(device.ftp_w, "device", ride.start_time)]
    choice = ftp_for_ride(ftp, ride.start_time, best_normalized_power(power, 3600))
    assert choice.stale and choice.proposed_ftp_w == pytest.approx(287.0, abs=1.0)
    scored = score_power_ride(power.size, normalized_power(power), choice)
    assert scored["intensity_factor"] <= 1.05


# --- one ride, one load ---------------------------------------------------------------------------------------


def test_overlap_and_the_primary_recording() -> None:
    hour = timedelta(hours=1)
    assert overlapping(T0, T0 + hour, T0, T0 + hour) == 1.0
    assert overlapping(T0, T0 + hour, T0 + hour, T0 + 2 * hour) == 0.0
    assert overlapping(T0, T0 + 2 * hour, T0 + hour, T0 + 4 * hour) == pytest.approx(0.5)
    fit = Recording("fit", T0, T0 + 2 * hour, ("power_w", "hr_bpm", "speed_m_s"), 8357)
    gpx = Recording("gpx", T0 + timedelta(seconds=2), T0 + 2 * hour, ("power_w", "hr_bpm"), 8357)
    assert same_activity(fit, gpx)
    assert choose_primary(gpx, fit) == (fit, gpx)
    later = Recording("later", T0 + 1.7 * hour, T0 + 4 * hour, ("power_w",), 100)
    assert not same_activity(fit, later)
    with pytest.raises(ValueError):
        overlapping(T0 + hour, T0, T0, T0)


# --- device values in FIT files -------------------------------------------------------------------------------

DEVICE_VALUES = {
    "fitparse_ELEMNT-2019-02-17.fit": {"ftp_w": 220.0},
    "fitparse_Edge810-Vector-2013-08-16.fit": {"ftp_w": 315.0},
    "fitparse_edge500-hr-only-2011-09-25.fit": {},
    "fitparse_indoor-trainer-2011-11-02.fit": {"ftp_w": 250.0},
    "sweatpy_edge1000-4078723797.fit": {"ftp_w": 200.0, "max_hr_bpm": 185.0, "weight_kg": 81.0, "sex": "male"},
    "gc_Garmin1000_withFirstbeat.fit": {"ftp_w": 285.0, "max_hr_bpm": 197.0, "weight_kg": 64.0, "sex": "male"},
    "gc_Weather_XDATA_2016-02-06.fit": {"ftp_w": 300.0, "max_hr_bpm": 179.0, "weight_kg": 64.0, "sex": "male"},
    "gc_edge1030-virtual-14582164182.fit": {},
}
"""What each FIT ride carries (no file carries a threshold heart rate; resting HR is 0, i.e. unset, where present)."""


@pytest.mark.parametrize("name", [ride_param(n) for n in DEVICE_VALUES])
def test_device_values_read_from_fit_files(name: str) -> None:
    found = read_device_values(ride_path(name)).to_dict()
    fields = found.pop("fields")
    found.pop("utc_offset_s")
    assert {k: v for k, v in found.items() if v is not None} == DEVICE_VALUES[name]
    assert found["lthr_bpm"] is None and found["resting_hr_bpm"] is None
    if "ftp_w" in DEVICE_VALUES[name]:
        assert fields.get("session.threshold_power") == DEVICE_VALUES[name]["ftp_w"]


@pytest.mark.parametrize(
    ("name", "offset_s"),
    [
        ("fitparse_ELEMNT-2019-02-17.fit", 8 * 3600),
        ("sweatpy_edge1000-4078723797.fit", 2 * 3600),
        ("fitparse_Edge810-Vector-2013-08-16.fit", None),  # no local_timestamp
        pytest.param("gc_edge1030-virtual-14582164182.fit", None, marks=needs_gpl_rides),  # clock unset: 1989
    ],
)
def test_the_files_local_utc_offset(name: str, offset_s: int | None) -> None:
    assert read_device_values(ride_path(name)).utc_offset_s == offset_s


def test_a_non_fit_file_is_refused() -> None:
    with pytest.raises(FitProfileError, match="not a readable FIT file"):
        read_device_values(ride_path("sweatpy_edge1000-4078723797_strava.gpx"))
