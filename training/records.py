"""The domain's own records: a fact change to write, a debriefed ride's row, and the words of a decision.

These are plain values the domain computes (`training.debrief`, `training.patterns`) and the stores persist
(`memory.athlete_store`, `records.rides`): the domain owns their shape, the stores import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

FactSource = Literal["user", "debrief_coach", "training_load_auditor"]
"""Who wrote a fact: the athlete (an accepted proposal or `coach facts --set`) or one of the graphs."""

Decision = Literal["accept", "reject"]
"""The athlete's decision on a proposal (a fact proposal or a plan-change proposal: one vocabulary)."""

ProposalStatus = Literal["pending", "accepted", "rejected"]
"""A proposal's status: ``pending`` until the athlete decides, then the decision's status (`STATUS_OF`)."""

STATUS_OF: dict[Decision, ProposalStatus] = {"accept": "accepted", "reject": "rejected"}
"""The status a decision gives a proposal."""


@dataclass(frozen=True)
class FactChange:
    """A fact to write if it still applies when the write happens.

    Attributes:
        key: fact key, e.g. `ftp_w`.
        value: new value (JSON-serialisable).
        only_if_higher: write only when there is no current value or `value` is greater than it (power bests,
            FTP estimates); otherwise write whenever the value differs.
    """

    key: str
    value: Any
    only_if_higher: bool = False


@dataclass(frozen=True)
class RideRecord:
    """A ride's row: identity, headline figures and the full metrics dictionary.

    The athlete model's fields (issue 11) have defaults so older rows and callers keep working:
    ``curve_durations_s``/``curve_power_w`` the mean-max power curve (s, W; `training.power_curve`), ``end_time``
    the last sample, ``utc_offset_s`` the file's local time minus UTC (s), ``channels`` and ``n_samples`` (which
    of two recordings of one activity is primary), ``primary_ride_id`` set when this row is the linked copy.
    ``hr_hist_bpm``/``hr_hist_s`` and ``power_hist_w``/``power_hist_s``: the seconds at each heart rate and power
    value (`training.ride_histograms`; empty lists without the channel, None for rows stored before them).
    ``power_1hz_w``: the 1 Hz power W′ balance is computed on (`training.power_series`; None without power or
    for rows stored before it).
    """

    ride_id: str
    file_name: str
    file_format: str
    sport: str
    start_time: datetime
    elapsed_s: float
    moving_s: float
    distance_m: float | None
    normalized_power_w: float | None
    tss: float | None
    hr_tss: float | None
    metrics: dict[str, Any]
    curve_durations_s: list[int] | None = None
    curve_power_w: list[float] | None = None
    end_time: datetime | None = None
    utc_offset_s: int | None = None
    channels: list[str] | None = None
    n_samples: int | None = None
    primary_ride_id: str | None = None
    hr_hist_bpm: list[float] | None = None
    hr_hist_s: list[int] | None = None
    power_hist_w: list[float] | None = None
    power_hist_s: list[int] | None = None
    power_1hz_w: bytes | None = None
