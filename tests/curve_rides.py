"""Synthetic ride rows that carry only a power curve, for tests of the fitted CP/W′ and the best curves."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from training.records import RideRecord


def curve_ride(
    ride_id: str,
    start: datetime,
    durations_s: npt.NDArray[np.float64],
    power_w: npt.NDArray[np.float64],
    elapsed_s: float,
) -> RideRecord:
    """A power-only ride of ``elapsed_s`` seconds from ``start`` whose stored curve is ``power_w`` at ``durations_s``."""
    return RideRecord(
        ride_id=ride_id,
        file_name=f"{ride_id}.fit",
        file_format="fit",
        sport="cycling",
        start_time=start,
        elapsed_s=elapsed_s,
        moving_s=elapsed_s,
        distance_m=None,
        normalized_power_w=None,
        tss=None,
        hr_tss=None,
        metrics={},
        curve_durations_s=[int(d) for d in durations_s],
        curve_power_w=[float(p) for p in power_w],
        end_time=start + timedelta(seconds=elapsed_s),
        channels=["power"],
        n_samples=int(elapsed_s),
    )
