"""The stored CP/W′ refit of many 90-day windows at once equals the fit of each window alone (issue 11)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from training.athlete_model import FIT_WINDOW_DAYS, DatedCurve, fit_from_curves
from training.cp_windows import trailing_window_fits
from training.power_curve import log_duration_grid

T0 = datetime(2024, 1, 1, 7, tzinfo=UTC)


def _curves(n: int, seed: int) -> list[DatedCurve]:
    """``n`` rides over about 200 days (some on the same start), each a model curve cut and scaled at random."""
    rng = random.Random(seed)
    grid = log_duration_grid(3 * 3600)
    out: list[DatedCurve] = []
    start = T0
    for i in range(n):
        start += timedelta(days=rng.choice([0, 1, 1, 2, 3]))
        k = rng.randint(len(grid) // 2, len(grid))
        t = grid[:k]
        cp, w_prime = 280.0 * rng.uniform(0.95, 1.05), 20000.0 * rng.uniform(0.9, 1.1)
        shape = np.where(t <= 300, 1.0, rng.uniform(0.85, 1.0)) if i % 2 else np.where(t > 300, 1.0, 0.9)
        power = np.round((w_prime / t + cp) * shape * rng.uniform(0.8, 1.0), 1)
        if i % 7 == 3:
            power = np.round(power * 1.0, 0)  # ties between rides are possible
        out.append((f"r{i:03d}", start, (t.astype(np.int64), power.astype(np.float64))))
    return sorted(out, key=lambda c: (c[1], c[0]))


def _reference(curves: list[DatedCurve], first: int) -> list[tuple[int, object]]:
    window = timedelta(days=FIT_WINDOW_DAYS)
    out = []
    for j in range(first, len(curves)):
        start = curves[j][1]
        out.append((j, fit_from_curves([c for c in curves if start - window < c[1] <= start])))
    return out


def test_every_window_fit_equals_the_fit_of_that_window_alone() -> None:
    for seed in range(4):
        curves = _curves(120, seed)
        for first in (0, 37, 119):
            fast = list(trailing_window_fits(curves, first))
            reference = _reference(curves, first)
            assert [j for j, _ in fast] == [j for j, _ in reference]
            assert any(fit is not None for _, fit in fast) or first == 119
            for (_, got), (_, want) in zip(fast, reference, strict=True):
                if want is None:
                    assert got is None
                    continue
                assert got is not None
                assert got[0] == want[0] and got[1] == want[1]


def test_no_curve_gives_no_window() -> None:
    assert list(trailing_window_fits([], 0)) == []
