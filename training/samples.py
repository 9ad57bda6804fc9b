"""1 Hz ride samples and the resampling of raw device records onto them.

Bike computers record at 1 Hz, at irregular "smart recording" intervals, or with pauses (auto-pause, stops).
Every metric (:mod:`training.metrics` and the power, heart-rate, zone and motion modules it assembles) assumes
one sample per recorded second, so the readers in :mod:`training.ride_files` hand their raw records to
:func:`resample_to_1hz`, which applies the reference method of the rides README
(``data/rides/README.md``), the one its "NP ref" figures use:

* timestamps are rounded to whole seconds; records that share a second are merged, the last value winning;
* a gap of ``MAX_HOLD_GAP_S`` (10 s) or less between records is filled by holding the last value;
* a longer gap is a pause: its seconds are dropped, not filled, so ``elapsed_s`` jumps across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_HOLD_GAP_S = 10
"""Longest gap (s) between records that is filled by holding the last value; longer gaps are pauses."""

MIN_CHANNEL_COVERAGE = 0.01
"""Fraction of records that must carry a channel for it to count as present (1 %)."""

CHANNELS = ("power_w", "hr_bpm", "cadence_rpm", "speed_m_s", "distance_m", "altitude_m")
"""Channel names, in the order of :class:`RideSamples` fields."""

_ZERO_MEANS_ABSENT = frozenset({"power_w", "hr_bpm", "cadence_rpm", "speed_m_s", "distance_m"})

_ZERO_IS_DROPOUT = frozenset({"hr_bpm"})
"""Channels whose 0 (or negative) values are dropouts, treated as missing records: a heart rate of 0 bpm."""


@dataclass(frozen=True, eq=False)
class RideSamples:
    """1 Hz samples on the recorded seconds of a ride.

    All arrays have the same shape ``(n,)``, one element per kept second. Short gaps (≤ 10 s) in the recording
    are filled by holding the last value; pauses (> 10 s without any record) are dropped, so ``elapsed_s``
    jumps across them. Each channel is also resampled on its own: a channel that drops out for more than 10 s
    while other channels keep recording is *missing* there (never held across the dropout).

    A channel is ``None`` when the file does not carry it: present in fewer than 1 % of the records
    (``MIN_CHANNEL_COVERAGE``), or, for power, heart rate, cadence, speed and distance, zero in every record
    (a field written by a device with no such sensor).

    Attributes:
        elapsed_s: int64 seconds since the ride's ``start_time`` for each kept sample; strictly increasing,
            starting at 0.
        power_w: float64 power in watts, NaN-free: 0 W where power is missing (no power recorded, no work).
        hr_bpm: float64 heart rate in beats per minute; NaN where missing. A record of 0 bpm is a dropout (the strap
            lost contact) and counts as missing, so it is neither a reading nor held.
        cadence_rpm: float64 cadence in revolutions per minute; NaN where missing.
        speed_m_s: float64 speed in metres per second; NaN where missing.
        distance_m: float64 cumulative distance in metres as recorded; NaN where missing.
        altitude_m: float64 altitude in metres; NaN where missing.
        power_recorded: bool, True where power was recorded (or held across a gap of at most 10 s); ``None``
            when there is no power. Power metrics use only these seconds (:attr:`recorded_power_w`).
    """

    elapsed_s: npt.NDArray[np.int64]
    power_w: npt.NDArray[np.float64] | None = None
    hr_bpm: npt.NDArray[np.float64] | None = None
    cadence_rpm: npt.NDArray[np.float64] | None = None
    speed_m_s: npt.NDArray[np.float64] | None = None
    distance_m: npt.NDArray[np.float64] | None = None
    altitude_m: npt.NDArray[np.float64] | None = None
    power_recorded: npt.NDArray[np.bool_] | None = None

    @property
    def recorded_power_w(self) -> npt.NDArray[np.float64] | None:
        """Power (W) on the seconds where it was recorded, shape ``(k,)`` with ``k <= n``; ``None`` without power.

        This is the 1 Hz power series of the reference method (``data/rides/README.md``): gaps of at most 10 s
        held, longer gaps (pauses and power dropouts alike) dropped. NP, mean-max power, average power and
        power zones are computed on it.
        """
        if self.power_w is None:
            return None
        if self.power_recorded is None:
            return self.power_w
        return self.power_w[self.power_recorded]

    @property
    def n_samples(self) -> int:
        """Number of kept 1 Hz samples, i.e. recorded seconds (pauses excluded)."""
        return int(self.elapsed_s.size)

    @property
    def total_elapsed_s(self) -> int:
        """Seconds from the first to the last sample, pauses included (``last - first``).

        This is the convention of FIT ``session.total_elapsed_time`` and of the rides README (``data/rides/README.md``).
        """
        if self.elapsed_s.size == 0:
            return 0
        return int(self.elapsed_s[-1] - self.elapsed_s[0])

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the channels that are present (not ``None``), in field order."""
        return tuple(name for name in CHANNELS if getattr(self, name) is not None)


def resample_to_1hz(
    timestamps_s: npt.NDArray[np.float64], channels: dict[str, npt.NDArray[np.float64]]
) -> tuple[int, RideSamples] | None:
    """Put raw records on a 1 Hz grid of recorded seconds.

    Method (the reference method of ``data/rides/README.md``; Allen & Coggan 2010 work on 1 Hz data):
    timestamps are rounded to whole seconds and records sorted stably by time; within one second the last
    non-missing value of each channel wins. Between consecutive recorded seconds a gap of at most
    ``MAX_HOLD_GAP_S`` is filled by holding the last values; a longer gap is a pause and is dropped. Each
    channel is then placed on that grid from its own valid values with the same rule: held between two of its
    values at most ``MAX_HOLD_GAP_S`` apart, missing in a longer dropout and before its first or after its
    last value. Missing power reads 0 W with ``power_recorded`` False; other missing values are NaN.

    Args:
        timestamps_s: float64 shape ``(m,)``, record times in seconds since the Unix epoch (UTC); NaN for
            records without a timestamp (they are discarded). Need not be sorted.
        channels: channel name (one of :data:`CHANNELS`) to float64 shape ``(m,)`` values, NaN where a record
            lacks the channel. Missing names are treated as absent channels.

    Returns:
        ``(start_epoch_s, samples)``: the first kept second as integer Unix seconds and the samples relative
        to it; or ``None`` when no record has a timestamp.

    Raises:
        ValueError: if a channel array's shape differs from ``timestamps_s``'s, or a channel name is unknown.
    """
    timestamps_s = np.asarray(timestamps_s, dtype=np.float64)
    for name, values in channels.items():
        if name not in CHANNELS:
            raise ValueError(f"unknown channel {name!r}")
        if np.shape(values) != timestamps_s.shape:
            raise ValueError(f"channel {name!r} has shape {np.shape(values)}, expected {timestamps_s.shape}")

    has_time = ~np.isnan(timestamps_s)
    if not has_time.any():
        return None
    seconds = np.rint(timestamps_s[has_time]).astype(np.int64)
    order = np.argsort(seconds, kind="stable")
    seconds = seconds[order]
    n_records = seconds.size

    unique_s = np.unique(seconds)
    gap_s = np.diff(unique_s)
    # Each recorded second spans itself plus the held seconds up to the next record (if the gap is short).
    span = np.ones(unique_s.size, dtype=np.int64)
    span[:-1] = np.where(gap_s <= MAX_HOLD_GAP_S, gap_s, 1)
    grid_s = np.repeat(unique_s, span) + _ramp(span)
    start_s = int(unique_s[0])

    out: dict[str, npt.NDArray[np.float64] | None] = {}
    power_recorded: npt.NDArray[np.bool_] | None = None
    for name in CHANNELS:
        raw = channels.get(name)
        if raw is None:
            out[name] = None
            continue
        values = np.asarray(raw, dtype=np.float64)[has_time][order]
        if name in _ZERO_IS_DROPOUT:
            values = np.where(values > 0, values, np.nan)  # 0 bpm: the strap lost contact, not a reading
        valid = ~np.isnan(values)
        n_valid = int(valid.sum())
        if n_valid == 0 or n_valid < MIN_CHANNEL_COVERAGE * n_records:
            out[name] = None
            continue
        if name in _ZERO_MEANS_ABSENT and not np.any(values[valid] != 0):
            out[name] = None
            continue
        held, recorded = _hold_onto_grid(seconds[valid], values[valid], grid_s)
        if name == "power_w":
            power_recorded = recorded
            held = np.where(recorded, held, 0.0)
        out[name] = held

    samples = RideSamples(elapsed_s=grid_s - start_s, power_recorded=power_recorded, **out)
    return start_s, samples


def _ramp(span: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return ``0..span[i]-1`` for every block, concatenated (shape ``(span.sum(),)``)."""
    starts = np.cumsum(span) - span
    return np.arange(int(span.sum()), dtype=np.int64) - np.repeat(starts, span)


def _hold_onto_grid(
    value_s: npt.NDArray[np.int64], values: npt.NDArray[np.float64], grid_s: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Sample a channel's valid values onto ``grid_s`` by holding each value across gaps of at most 10 s.

    Args:
        value_s: int64 shape ``(k,)``, sorted seconds of the channel's valid values (``k >= 1``).
        values: float64 shape ``(k,)``, the values.
        grid_s: int64 shape ``(n,)``, sorted grid seconds.

    Returns:
        ``(held, recorded)``: float64 shape ``(n,)`` values (NaN where not recorded) and the boolean mask of
        grid seconds that carry a recorded or held value. A second is held when it lies between two of the
        channel's values at most ``MAX_HOLD_GAP_S`` apart; in a longer gap the channel is missing.
    """
    # Last value within each second: the last occurrence of each second in the (stably sorted) series.
    last_of_second = np.ones(value_s.size, dtype=bool)
    last_of_second[:-1] = value_s[1:] != value_s[:-1]
    value_s = value_s[last_of_second]
    values = values[last_of_second]

    prev = np.searchsorted(value_s, grid_s, side="right") - 1  # last value at or before each grid second
    prev_clipped = np.maximum(prev, 0)
    gap_after_s = np.append(np.diff(value_s), np.iinfo(np.int64).max)  # gap to the next value, per value
    recorded = (prev >= 0) & ((grid_s == value_s[prev_clipped]) | (gap_after_s[prev_clipped] <= MAX_HOLD_GAP_S))
    held = np.where(recorded, values[prev_clipped], np.nan)
    return held, recorded
