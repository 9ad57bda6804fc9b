"""Training zones: Coggan power and heart-rate levels, and the seconds a 1 Hz series spends in each zone.

Source: Allen, H. & Coggan, A. *Training and Racing with a Power Meter*, 2nd ed., VeloPress 2010 ("Allen &
Coggan"): the seven power levels by FTP and the five heart-rate levels by LTHR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

POWER_ZONE_UPPER_FRACTIONS = (0.55, 0.75, 0.90, 1.05, 1.20, 1.50)
"""Upper bounds of Coggan power levels 1-6 as fractions of FTP (Allen & Coggan 2010); level 7 is above 150 %.

Z1 active recovery ≤ 55 %, Z2 endurance ≤ 75 %, Z3 tempo ≤ 90 %, Z4 lactate threshold ≤ 105 %,
Z5 VO2max ≤ 120 %, Z6 anaerobic capacity ≤ 150 %, Z7 neuromuscular power > 150 %.
"""

HR_ZONE_UPPER_FRACTIONS = (0.68, 0.83, 0.94, 1.05)
"""Upper bounds of Coggan heart-rate levels 1-4 as fractions of LTHR (Allen & Coggan 2010); level 5 above.

Z1 active recovery ≤ 68 %, Z2 endurance 69-83 %, Z3 tempo 84-94 %, Z4 lactate threshold 95-105 %,
Z5 VO2max and above ≥ 106 %. A value between two printed bands (e.g. 68.5 %) goes to the higher zone.
"""


def power_zone_bounds_w(ftp_w: float) -> npt.NDArray[np.float64]:
    """Upper bounds (W) of Coggan power zones Z1..Z6 for an FTP, shape ``(6,)``; Z7 lies above the last."""
    return np.asarray(POWER_ZONE_UPPER_FRACTIONS) * float(ftp_w)


def hr_zone_bounds_bpm(lthr_bpm: float) -> npt.NDArray[np.float64]:
    """Upper bounds (bpm) of Coggan heart-rate zones Z1..Z4 for an LTHR, shape ``(4,)``; Z5 above the last."""
    return np.asarray(HR_ZONE_UPPER_FRACTIONS) * float(lthr_bpm)


def time_in_zones(
    values: npt.NDArray[np.float64], upper_bounds: Sequence[float] | npt.NDArray[np.float64]
) -> dict[str, float]:
    """Seconds spent in each zone of a 1 Hz series.

    Zone ``Zk`` (k = 1..len(upper_bounds)+1) holds values ``upper_bounds[k-2] < v <= upper_bounds[k-1]``; the
    first zone has no lower bound and the last no upper bound. NaN samples are not counted.

    Args:
        values: float shape ``(n,)``, 1 Hz samples (e.g. power in W or heart rate in bpm).
        upper_bounds: increasing upper bounds, shape ``(z - 1,)`` for ``z`` zones.

    Returns:
        ``{'Z1': seconds, ..., 'Zz': seconds}``, every zone present.

    Raises:
        ValueError: if the bounds are not strictly increasing.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    if bounds.size > 1 and np.any(np.diff(bounds) <= 0):
        raise ValueError("upper_bounds must be strictly increasing")
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    zone_index = np.searchsorted(bounds, values, side="left")
    counts = np.bincount(zone_index, minlength=bounds.size + 1)
    return {f"Z{k + 1}": float(counts[k]) for k in range(bounds.size + 1)}
