"""The CP/W′ fits of many trailing 90-day windows at once (the stored fitted CP/W′, `records.fitted_model`).

A stored ride changes the windows of every ride of the 90 days from its start on, so its insert refits up to 90
windows. Each window's envelope is the column-wise maximum of a block of one matrix (rides × durations, the
curves' union grid), not `training.power_curve.best_of_curves` over the window's curves again: the same best per
duration and the same source ride (the first, i.e. the earliest, on a tie: ``numpy.argmax`` returns the first
maximum), so each fit (`training.athlete_model.fit_envelope`) is the one `training.athlete_model.fit_from_curves`
gives for that window alone (`tests/unit/test_cp_windows.py` checks it).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import numpy as np

from training.athlete_model import FIT_WINDOW_DAYS, DatedCurve, fit_envelope
from training.cp_model import CriticalPowerFit


def trailing_window_fits(
    curves: list[DatedCurve], first: int, window_days: int = FIT_WINDOW_DAYS
) -> Iterator[tuple[int, tuple[CriticalPowerFit, dict[str, Any]] | None]]:
    """For each ride from index ``first`` on, the fit of the curves of the ``window_days`` up to its start.

    Args:
        curves: ``(ride_id, start, (durations_s, power_w))``, sorted by start (oldest first); the window of ride
            ``j`` is every curve whose start ``s`` has ``start_j - window < s <= start_j``.
        first: the index of the first ride whose window is fitted.
        window_days: the window's length in days.

    Yields:
        ``(j, fit)``: the ride's index and `training.athlete_model.fit_from_curves` of its window (None when
        the window does not support a model).
    """
    if not curves or first >= len(curves):
        return
    grid = np.unique(np.concatenate([np.asarray(d, dtype=np.int64) for _, _, (d, _) in curves]))
    present = np.zeros((len(curves), grid.size), dtype=bool)
    power = np.full((len(curves), grid.size), -np.inf)
    for i, (_, _, (d, p)) in enumerate(curves):
        at = np.searchsorted(grid, np.asarray(d, dtype=np.int64))
        present[i, at] = True
        values = np.asarray(p, dtype=np.float64)
        power[i, at] = np.where(values > -np.inf, values, -np.inf)  # NaN never wins, as in best_of_curves
    starts = [c[1] for c in curves]
    days = np.array([np.datetime64(s.astimezone(UTC).date()) for s in starts], dtype="datetime64[D]")
    window = timedelta(days=window_days)
    for j in range(first, len(curves)):
        lo, hi = bisect_right(starts, starts[j] - window), bisect_right(starts, starts[j])
        columns = present[lo:hi].any(axis=0)
        block = power[lo:hi][:, columns]
        best = block.max(axis=0)
        source = block.argmax(axis=0)
        source[best == -np.inf] = -1  # no finite power: best_of_curves leaves -1 (the window's last curve)
        yield j, fit_envelope(curves[lo:hi], grid[columns], best, source.astype(np.int64), days[lo:hi])
