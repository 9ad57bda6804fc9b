"""A ride's 1 Hz power kept with its row, so its W′ balance is recomputed when CP or W′ change (issue 11).

The series is the one W′ balance is computed on (`training.w_prime`): power on clock time with pauses and dropouts
at 0 W (`training.power_curve.zero_filled_power_w`, as GoldenCheetah fills gaps before W′bal), rounded to the
watt and stored as little-endian int16 (2 bytes a second: 7.2 KB for an hour; Postgres compresses it further).
Rounding moves each second by at most 0.5 W; the debrief computes its W′ balance on the same rounded series, so
the debrief and a later recomputation with the same CP and W′ agree exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from training.power_curve import zero_filled_power_w
from training.samples import RideSamples

SERIES_DTYPE = np.dtype("<i2")
"""Little-endian int16 watts."""

MAX_POWER_W = int(np.iinfo(np.int16).max)
"""The highest power a stored second holds (32,767 W; higher readings are clipped, as are negative ones to 0)."""


def power_series_w(samples: RideSamples) -> npt.NDArray[np.float64] | None:
    """The ride's 1 Hz power on clock time, pauses at 0 W, rounded to the watt; None without power.

    Returns:
        float64 shape ``(total elapsed s,)``, whole watts in ``[0, MAX_POWER_W]``.
    """
    if samples.power_w is None or samples.n_samples == 0:
        return None
    filled = zero_filled_power_w(samples.elapsed_s, samples.power_w, samples.power_recorded)
    return np.clip(np.rint(np.nan_to_num(filled, nan=0.0)), 0, MAX_POWER_W)


def pack_power_series(power_w: npt.NDArray[np.float64] | None) -> bytes | None:
    """``power_series_w``'s array as bytes (int16 little-endian); None stays None."""
    if power_w is None:
        return None
    return np.clip(np.rint(power_w), 0, MAX_POWER_W).astype(SERIES_DTYPE).tobytes()


def unpack_power_series(data: bytes) -> npt.NDArray[np.float64]:
    """The stored bytes back as float64 watts, shape ``(len(data) // 2,)``.

    Raises:
        ValueError: an odd number of bytes (not an int16 series).
    """
    if len(data) % SERIES_DTYPE.itemsize:
        raise ValueError(f"a power series has an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype=SERIES_DTYPE).astype(np.float64)
