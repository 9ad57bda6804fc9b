"""TCX on vendored data: a vendored FIT ride written as TCX (tests/tcx_writer.py) reads back with its metrics.

The only real TCX ride is GoldenCheetah's (GPL-2.0, outside the project), so without `../shared` this is the test
that reads a whole ride's worth of TCX: about 2 300 trackpoints without positions (tcxreader must keep them:
``only_gps=False``), power in the `ns3:TPX/Watts` extension.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import RIDES_DIR
from tests.tcx_writer import write_tcx
from tests.unit.test_ride_files import shared_ride
from training.metrics import compute_metrics
from training.ride_files import find_ride_files, read_ride

INDOOR = "fitparse_indoor-trainer-2011-11-02.fit"  # power, heart rate, cadence; no positions


def test_tcx_written_from_a_vendored_fit_ride_reads_back_with_the_same_metrics(tmp_path: Path) -> None:
    fit = shared_ride(INDOOR)
    path = write_tcx(fit, tmp_path / "indoor-trainer.tcx")
    assert find_ride_files([tmp_path]) == [path]

    tcx = read_ride(path)
    assert tcx.file_format == "tcx" and tcx.sport == "cycling"
    assert tcx.start_time == fit.start_time.replace(microsecond=0)
    assert tcx.samples.channels == fit.samples.channels
    np.testing.assert_array_equal(tcx.samples.elapsed_s, fit.samples.elapsed_s)

    fit_metrics = compute_metrics(fit, ftp_w=250.0)
    tcx_metrics = compute_metrics(tcx, ftp_w=250.0)
    assert fit_metrics.normalized_power_w is not None and tcx_metrics.normalized_power_w is not None
    assert tcx_metrics.normalized_power_w == pytest.approx(fit_metrics.normalized_power_w, abs=1.0)
    assert tcx_metrics.elapsed_s == pytest.approx(fit_metrics.elapsed_s, abs=1.0)
    assert tcx_metrics.moving_s == pytest.approx(fit_metrics.moving_s, abs=60.0)
    assert fit_metrics.avg_hr_bpm is not None and tcx_metrics.avg_hr_bpm is not None
    assert tcx_metrics.avg_hr_bpm == pytest.approx(fit_metrics.avg_hr_bpm, abs=1.0)
    assert tcx_metrics.tss == pytest.approx(fit_metrics.tss, abs=1.0)
    # And the README's reference figure for the FIT ride (data/rides/README.md: NP ref 228.2 W).
    assert abs(tcx_metrics.normalized_power_w - 228.2) < 1.0


def test_the_vendored_rides_cover_fit_and_gpx() -> None:
    suffixes = {path.suffix for path in find_ride_files([RIDES_DIR])}
    assert suffixes == {".fit", ".gpx"}  # TCX: written from a FIT ride above
