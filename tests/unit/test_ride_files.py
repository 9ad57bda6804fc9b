"""Reading FIT/TCX/GPX ride files into 1 Hz samples: the real rides, synthetic files, bad input.

The real rides are the vendored ones (`data/rides/`, MIT) and, when `../shared/data/rides` is present, the
GoldenCheetah ones (GPL-2.0, not in the project): their tests are skipped with the reason when it is absent.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import RIDES_DIR, SHARED_RIDES_DIR, needs_gpl_rides, ride_param, ride_path
from training.ride_files import Ride, RideFileError, find_ride_files, read_ride
from training.samples import MAX_HOLD_GAP_S, resample_to_1hz

# The vendored rides are part of the repository: a missing folder fails (tests/conftest.py).
needs_shared_rides = pytest.mark.usefixtures("rides_dir")


@functools.cache
def _read_cached(path: Path) -> Ride:
    return read_ride(path)


def shared_ride(name: str) -> Ride:
    """Read a real ride once per test session (FIT and GPX parsing takes seconds).

    A vendored ride comes from `data/rides/`; a GoldenCheetah ride (`gc_*`) from the shared folder, and the
    test is skipped with the reason when that folder is absent.
    """
    return _read_cached(ride_path(name))


# The rides README tables (data/rides/README.md; the gc_* rows: ../shared/data/rides/README.md):
# start (UTC, to the minute), elapsed, samples (records), fields.
README_TABLE: dict[str, tuple[str, str, int, str]] = {
    "fitparse_ELEMNT-2019-02-17.fit": ("2019-02-17 06:26", "6:33:11", 13471, "PHCSA"),
    "fitparse_Edge810-Vector-2013-08-16.fit": ("2013-08-16 18:05", "1:18:19", 4700, "PHCSA"),
    "fitparse_edge500-hr-only-2011-09-25.fit": ("2011-09-25 13:00", "3:31:31", 10686, "HCSA"),
    "fitparse_indoor-trainer-2011-11-02.fit": ("2011-11-02 12:54", "0:37:43", 2263, "PHCA"),
    "gc_Garmin1000_withFirstbeat.fit": ("2018-12-31 13:12", "1:50:09", 6610, "PHCSA"),
    "gc_Weather_XDATA_2016-02-06.fit": ("2016-02-06 12:01", "2:14:37", 8078, "PHCSA"),
    "gc_edge1030-virtual-14582164182.fit": ("2025-02-19 00:10", "0:45:59", 2760, "PHCSA"),
    "gc_smartrec_2009_09_19.tcx": ("2009-09-19 13:22", "2:24:45", 1863, "PHCA"),
    "sweatpy_edge1000-4078723797.fit": ("2019-09-20 14:10", "2:19:16", 8357, "PHCSA"),
    "sweatpy_edge1000-4078723797_strava.gpx": ("2019-09-20 14:10", "2:19:16", 8357, "PHCA"),
}
FIELD_LETTERS = {"P": "power_w", "H": "hr_bpm", "C": "cadence_rpm", "S": "speed_m_s", "A": "altitude_m"}


def _hms_s(text: str) -> int:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


# --- the shared real rides --------------------------------------------------------------------------------------


@needs_shared_rides
@pytest.mark.parametrize("name", [ride_param(name) for name in sorted(README_TABLE)])
def test_shared_ride_matches_readme_table(name: str) -> None:
    start, elapsed, n_records, fields = README_TABLE[name]
    ride = shared_ride(name)
    samples = ride.samples

    assert ride.start_time.tzinfo is not None and ride.start_time.utcoffset() == timedelta(0)
    assert ride.start_time.strftime("%Y-%m-%d %H:%M") == start
    assert abs(samples.total_elapsed_s - _hms_s(elapsed)) <= 3
    assert ride.n_records == n_records
    # 1 Hz samples: at least one per record second (smart recording is filled in), at most one per second.
    assert min(n_records, samples.total_elapsed_s) <= samples.n_samples <= samples.total_elapsed_s + 1
    for letter, channel in FIELD_LETTERS.items():
        assert (getattr(samples, channel) is not None) == (letter in fields), channel


@needs_shared_rides
@pytest.mark.parametrize("name", [ride_param(name) for name in sorted(README_TABLE)])
def test_shared_ride_identity_and_sample_invariants(name: str) -> None:
    ride = shared_ride(name)
    samples = ride.samples
    path = ride_path(name)

    assert ride.file_path == str(path)
    assert ride.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ride.ride_id == ride.file_sha256[:32]
    assert ride.file_format == name.rsplit(".", 1)[1]
    assert ride.sport == "cycling"

    assert samples.elapsed_s.dtype == np.int64
    assert samples.elapsed_s[0] == 0
    assert np.all(np.diff(samples.elapsed_s) > 0)
    for channel in samples.channels:
        assert getattr(samples, channel).shape == samples.elapsed_s.shape
    if samples.power_w is not None:
        assert samples.power_w.dtype == np.float64
        assert not np.isnan(samples.power_w).any()
        assert samples.power_recorded is not None and samples.power_recorded.dtype == bool
        assert samples.power_w[~samples.power_recorded].sum() == 0


@needs_shared_rides
def test_elemnt_pauses_are_dropped_not_filled() -> None:
    samples = shared_ride("fitparse_ELEMNT-2019-02-17.fit").samples
    assert samples.total_elapsed_s == _hms_s("6:33:11")
    # Recorded seconds: the 13 471 records plus short gaps held; the long pauses (~2:49 in all) are not filled.
    assert 13_471 <= samples.n_samples < 13_471 + 100
    assert np.diff(samples.elapsed_s).max() > 1_000
    assert np.all(np.diff(samples.elapsed_s)[np.diff(samples.elapsed_s) > 1] > MAX_HOLD_GAP_S)


@needs_gpl_rides
def test_smart_recording_tcx_is_resampled_to_1hz() -> None:
    ride = shared_ride("gc_smartrec_2009_09_19.tcx")
    samples = ride.samples
    assert ride.start_time == datetime(2009, 9, 19, 13, 22, 43, tzinfo=UTC)  # first trackpoint
    assert samples.n_samples > 4 * ride.n_records  # records every few seconds, filled to 1 Hz
    steps = np.diff(samples.elapsed_s)
    assert np.all((steps == 1) | (steps > MAX_HOLD_GAP_S))
    assert samples.distance_m is not None and samples.speed_m_s is None


@needs_shared_rides
def test_same_ride_as_fit_and_gpx_has_the_same_samples() -> None:
    fit = shared_ride("sweatpy_edge1000-4078723797.fit").samples
    gpx = shared_ride("sweatpy_edge1000-4078723797_strava.gpx").samples
    assert (
        shared_ride("sweatpy_edge1000-4078723797.fit").start_time
        == shared_ride("sweatpy_edge1000-4078723797_strava.gpx").start_time
    )
    np.testing.assert_array_equal(fit.elapsed_s, gpx.elapsed_s)
    assert fit.power_w is not None and gpx.power_w is not None
    np.testing.assert_array_equal(fit.power_w, gpx.power_w)
    np.testing.assert_array_equal(fit.hr_bpm, gpx.hr_bpm)
    # GPX distance is derived from positions: within 0.5 % of the device's wheel/GPS distance.
    assert fit.distance_m is not None and gpx.distance_m is not None
    assert abs(np.nanmax(gpx.distance_m) - np.nanmax(fit.distance_m)) < 0.005 * np.nanmax(fit.distance_m)


@needs_shared_rides
def test_hr_only_ride_has_no_power() -> None:
    samples = shared_ride("fitparse_edge500-hr-only-2011-09-25.fit").samples
    assert samples.power_w is None and samples.power_recorded is None and samples.recorded_power_w is None
    assert samples.hr_bpm is not None


@needs_shared_rides
def test_gzipped_fit_reads_like_the_plain_file(tmp_path: Path) -> None:
    plain = shared_ride("fitparse_indoor-trainer-2011-11-02.fit")
    gz_path = tmp_path / "indoor.FIT.gz"
    gz_path.write_bytes(gzip.compress((RIDES_DIR / "fitparse_indoor-trainer-2011-11-02.fit").read_bytes()))
    ride = read_ride(gz_path)
    assert ride.file_format == "fit"
    assert ride.file_sha256 == hashlib.sha256(gz_path.read_bytes()).hexdigest()
    assert ride.start_time == plain.start_time
    np.testing.assert_array_equal(ride.samples.power_w, plain.samples.power_w)


@needs_shared_rides
def test_find_ride_files_expands_the_vendored_folder() -> None:
    found = find_ride_files([RIDES_DIR])  # README.md and licenses/ are not ride files
    assert [path.name for path in found] == sorted(n for n in README_TABLE if not n.startswith("gc_"))


@needs_gpl_rides
def test_find_ride_files_expands_the_shared_folder() -> None:
    found = find_ride_files([SHARED_RIDES_DIR])
    assert [path.name for path in found] == sorted(README_TABLE)


# --- synthetic files --------------------------------------------------------------------------------------------

GPX_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1"'
    ' xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">'
    "<trk><type>cycling</type><trkseg>"
)
GPX_TAIL = "</trkseg></trk></gpx>"


def _gpx_point(second: int, *, power: int | None = None, hr: int | None = None, cad: int | None = None) -> str:
    time = (datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC) + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")
    extensions = ""
    if power is not None:
        extensions += f"<power>{power}</power>"
    if hr is not None or cad is not None:
        extensions += "<gpxtpx:TrackPointExtension>"
        extensions += f"<gpxtpx:hr>{hr}</gpxtpx:hr>" if hr is not None else ""
        extensions += f"<gpxtpx:cad>{cad}</gpxtpx:cad>" if cad is not None else ""
        extensions += "</gpxtpx:TrackPointExtension>"
    lon = 5.0 + second * 0.0001
    body = f"<ele>100.0</ele><time>{time}</time>"
    if extensions:
        body += f"<extensions>{extensions}</extensions>"
    return f'<trkpt lat="50.0" lon="{lon:.4f}">{body}</trkpt>'


def test_gpx_extensions_are_read(tmp_path: Path) -> None:
    # Seconds 0-3, a 5 s gap (held), 9-10, a 60 s pause (dropped), 71.
    points = [_gpx_point(s, power=100 + s, hr=120 + s, cad=80) for s in (0, 1, 2, 3, 9, 10, 71)]
    path = tmp_path / "ride.GPX"
    path.write_text(GPX_HEAD + "".join(points) + GPX_TAIL)
    ride = read_ride(path)
    samples = ride.samples

    assert ride.file_format == "gpx" and ride.sport == "cycling"
    assert ride.start_time == datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
    assert samples.elapsed_s.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 71]
    assert samples.power_w is not None and samples.hr_bpm is not None and samples.cadence_rpm is not None
    assert samples.power_w.tolist() == [100, 101, 102, 103, 103, 103, 103, 103, 103, 109, 110, 171]
    assert samples.hr_bpm.tolist() == [120, 121, 122, 123, 123, 123, 123, 123, 123, 129, 130, 191]
    assert np.all(samples.cadence_rpm == 80)
    assert samples.speed_m_s is None
    assert samples.distance_m is not None and samples.distance_m[0] == 0 and np.all(np.diff(samples.distance_m) >= 0)
    assert samples.total_elapsed_s == 71


def test_tcx_without_positions_keeps_every_trackpoint(tmp_path: Path) -> None:
    trackpoints = "".join(
        f"<Trackpoint><Time>2020-01-01T10:00:{second:02d}Z</Time><HeartRateBpm><Value>{120 + second}</Value>"
        f"</HeartRateBpm><Cadence>90</Cadence><Extensions><TPX xmlns="
        f'"http://www.garmin.com/xmlschemas/ActivityExtension/v2"><Watts>{200 + second}</Watts></TPX>'
        "</Extensions></Trackpoint>"
        for second in (0, 2, 4)
    )
    path = tmp_path / "indoor.tcx"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">'
        '<Activities><Activity Sport="Biking"><Id>2020-01-01T10:00:00Z</Id>'
        '<Lap StartTime="2020-01-01T10:00:00Z"><TotalTimeSeconds>4</TotalTimeSeconds>'
        f"<DistanceMeters>0</DistanceMeters><Calories>1</Calories><Track>{trackpoints}</Track></Lap>"
        "</Activity></Activities></TrainingCenterDatabase>"
    )
    ride = read_ride(path)
    assert ride.sport == "cycling" and ride.n_records == 3
    assert ride.start_time == datetime(2020, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert ride.samples.power_w is not None
    assert ride.samples.power_w.tolist() == [200, 200, 202, 202, 204]
    assert ride.samples.channels == ("power_w", "hr_bpm", "cadence_rpm")


# --- resampling -------------------------------------------------------------------------------------------------


def test_resample_holds_short_gaps_drops_pauses_and_keeps_the_last_duplicate() -> None:
    t0 = 1_700_000_000.0
    timestamps = t0 + np.array([0, 1, 1.2, 3, 13, 14, 40, 41.4])  # 1.2 → second 1 (duplicate); 41.4 → 41
    power = np.array([10, 20, 25, 30, 40, 50, 60, 70], dtype=float)
    start_s, samples = resample_to_1hz(timestamps, {"power_w": power}) or (0, None)
    assert samples is not None
    assert start_s == int(t0)
    # 3 → 13 is a 10 s gap (held); 14 → 40 is a 26 s pause (dropped).
    assert samples.elapsed_s.tolist() == [0, 1, 2, 3, *range(4, 13), 13, 14, 40, 41]
    assert samples.power_w is not None
    assert samples.power_w.tolist() == [10, 25, 25, 30, *[30] * 9, 40, 50, 60, 70]
    assert samples.total_elapsed_s == 41


def test_resample_channel_dropout_longer_than_10s_is_missing() -> None:
    seconds = np.arange(0, 40, dtype=float)
    power = np.full(40, 200.0)
    power[5:25] = np.nan  # 20 s power dropout while heart rate keeps recording
    hr = np.full(40, 140.0)
    hr[30:33] = np.nan  # 3 s heart-rate dropout: held
    result = resample_to_1hz(seconds, {"power_w": power, "hr_bpm": hr})
    assert result is not None
    samples = result[1]
    assert samples.power_w is not None and samples.power_recorded is not None and samples.hr_bpm is not None
    assert samples.n_samples == 40
    assert np.all(samples.power_w[5:25] == 0) and not samples.power_recorded[5:25].any()
    assert samples.power_recorded.sum() == 20
    assert samples.recorded_power_w is not None and np.all(samples.recorded_power_w == 200)
    assert not np.isnan(samples.hr_bpm).any()


def test_resample_marks_absent_channels_none() -> None:
    seconds = np.arange(0, 300, dtype=float)
    sparse = np.full(300, np.nan)
    sparse[0:2] = 150.0  # 2 of 300 records < 1 %
    result = resample_to_1hz(seconds, {"power_w": np.zeros(300), "hr_bpm": sparse, "cadence_rpm": np.full(300, 85.0)})
    assert result is not None
    samples = result[1]
    assert samples.power_w is None  # all zero: a power field with no power meter
    assert samples.hr_bpm is None  # under 1 % coverage
    assert samples.channels == ("cadence_rpm",)


def test_resample_without_timestamps_returns_none() -> None:
    assert resample_to_1hz(np.array([np.nan, np.nan]), {"power_w": np.array([100.0, 100.0])}) is None


# --- bad input --------------------------------------------------------------------------------------------------


def _expect_error(path: Path, code: str) -> RideFileError:
    with pytest.raises(RideFileError) as excinfo:
        read_ride(path)
    assert excinfo.value.code == code, str(excinfo.value)
    assert "\n" not in str(excinfo.value) and path.name in str(excinfo.value)
    return excinfo.value


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.fit"
    path.write_bytes(b"")
    _expect_error(path, "empty_file")


@needs_shared_rides
def test_truncated_fit_is_corrupt_not_a_partial_ride(tmp_path: Path) -> None:
    data = (RIDES_DIR / "fitparse_indoor-trainer-2011-11-02.fit").read_bytes()
    path = tmp_path / "truncated.fit"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "corrupt_file")


def test_text_file_named_fit(tmp_path: Path) -> None:
    path = tmp_path / "notes.fit"
    path.write_text("these are my ride notes, not a FIT file\n")
    _expect_error(path, "corrupt_file")


def test_damaged_gzip(tmp_path: Path) -> None:
    path = tmp_path / "ride.fit.gz"
    path.write_bytes(gzip.compress(b"x" * 1000)[:20])
    _expect_error(path, "corrupt_file")


@pytest.mark.parametrize(("name", "text"), [("bad.gpx", "<gpx><trk>"), ("bad.tcx", "<TrainingCenterDatabase>")])
def test_malformed_xml(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    _expect_error(path, "corrupt_file")


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "ride.csv"
    path.write_text("time,power\n0,100\n")
    _expect_error(path, "unsupported_format")


def test_missing_path_and_folder_are_not_files(tmp_path: Path) -> None:
    _expect_error(tmp_path / "missing.fit", "not_a_file")
    with pytest.raises(RideFileError) as excinfo:
        read_ride(tmp_path)
    assert excinfo.value.code == "not_a_file"


def test_gpx_without_power_or_heart_rate(tmp_path: Path) -> None:
    path = tmp_path / "walk.gpx"
    path.write_text(GPX_HEAD + "".join(_gpx_point(s) for s in range(5)) + GPX_TAIL)
    _expect_error(path, "no_power_or_hr")


def test_gpx_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "route.gpx"
    path.write_text(GPX_HEAD + '<trkpt lat="50.0" lon="5.0"><ele>1</ele></trkpt>' + GPX_TAIL)
    _expect_error(path, "no_samples")


def test_error_codes_are_checked() -> None:
    with pytest.raises(ValueError):
        RideFileError("oops", "not a code")


# --- find_ride_files --------------------------------------------------------------------------------------------


def test_find_ride_files_filters_and_sorts_a_folder(tmp_path: Path) -> None:
    for name in ("b.FIT", "a.gpx", "c.fit.gz", "d.Tcx", "notes.txt", "e.fit.bak"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.fit").write_bytes(b"x")
    found = find_ride_files([tmp_path])
    assert [path.name for path in found] == ["a.gpx", "b.FIT", "c.fit.gz", "d.Tcx"]


def test_find_ride_files_returns_a_file_whatever_its_extension(tmp_path: Path) -> None:
    path = tmp_path / "ride.csv"
    path.write_text("x")
    assert find_ride_files([path, str(path)]) == [path]


def test_find_ride_files_errors(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("no rides here")
    with pytest.raises(RideFileError) as excinfo:
        find_ride_files([tmp_path])
    assert excinfo.value.code == "no_ride_files"
    with pytest.raises(RideFileError) as excinfo:
        find_ride_files([tmp_path / "missing"])
    assert excinfo.value.code == "not_a_file"
