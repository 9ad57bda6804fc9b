"""Which FTP scores a ride, from dated athlete values; and which of two overlapping recordings is the ride.

Rules (issue 11, "The athlete model"):

* A value (FTP, LTHR, …) is dated: it holds from its ``valid_from``. A ride is scored with the values valid at its
  start; among them the source decides: confirmed by the athlete > reported by the device in a file > fitted from
  the athlete's rides (``SOURCE_PRECEDENCE``), and within one source the latest ``valid_from`` wins.
* FTP is by definition the highest power held for about an hour (Allen & Coggan, *Training and Racing with a
  Power Meter*, 2nd ed., 2010). A ride whose best 60-minute power exceeds the FTP disproves it: the value is
  stale from that ride on, the ride is scored with the lowest FTP its data supports and that value is proposed to
  the athlete with the evidence. The best 60-minute power is taken as normalized power
  (:func:`training.power_curve.best_normalized_power`): an hour ridden at that NP scores IF 1.0, so no ride of an
  hour or more is scored above IF 1.0 with a stale FTP (its mean power would let a variable ride score IF > 1:
  the sweatpy ride's best hour averages 251 W but its NP is 267 W). A fitted eFTP more than 5 % above a confirmed
  or device FTP also marks it stale (the proposal is the eFTP). TrainingPeaks ("threshold change detection") and
  intervals.icu ("FTP up" on a new eFTP) detect threshold changes from the athlete's data this way.
* The ride's own 20-minute best alone never sets the FTP it is scored with (that makes IF ≈ 1 by construction).
  With no FTP, a power ride has no TSS: ``tss_status = "no_ftp"``.
* One ride, one load: two recordings of one athlete whose spans overlap by 80 % or more (of the shorter one) are
  one activity; the richer recording (more channels, then more samples) is primary.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from training.power import intensity_factor, training_stress_score

Source = Literal["confirmed", "device", "fitted"]

SOURCE_PRECEDENCE: dict[str, int] = {"confirmed": 3, "device": 2, "fitted": 1}
"""Higher wins: confirmed by the athlete > reported by the device > fitted from rides."""

STALE_DURATION_S = 3600
"""A ride's best power over this duration (60 min) above the FTP disproves the FTP (the definition of FTP)."""

EFTP_STALE_MARGIN = 0.05
"""A fitted eFTP more than 5 % above a confirmed or device FTP marks that FTP stale."""

SAME_ACTIVITY_OVERLAP = 0.8
"""Two recordings overlapping by this fraction (80 %) of the shorter one are one activity."""


@dataclass(frozen=True)
class DatedValue:
    """An athlete value that holds from a date.

    Attributes:
        value: the value (FTP in W, LTHR in bpm, …).
        source: ``'confirmed'``, ``'device'`` or ``'fitted'``.
        valid_from: when it starts to hold (timezone-aware).
        evidence: where it came from (free-form, JSON-ready).
    """

    value: float
    source: Source
    valid_from: datetime
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FtpChoice:
    """The FTP a ride is scored with, and why.

    Attributes:
        ftp_w: the FTP to score with (W), or None.
        source: the winning value's source, ``'ride_best_60min_np'`` when a stale value was replaced by the ride's
            own best hour, or None.
        tss_status: ``'ok'`` or ``'no_ftp'``.
        stale: True when the value valid at the ride's start is disproved by the data.
        proposed_ftp_w: the value to propose to the athlete (W), or None.
        evidence: the figures behind the choice and the proposal (JSON-ready).
    """

    ftp_w: float | None
    source: str | None
    tss_status: Literal["ok", "no_ftp"]
    stale: bool = False
    proposed_ftp_w: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def value_at(values: Iterable[DatedValue], at: datetime) -> DatedValue | None:
    """The value valid at ``at``: highest source precedence, then latest ``valid_from`` (≤ ``at``).

    Args:
        values: dated values of one kind (e.g. all FTP values), any order.
        at: the moment (timezone-aware), e.g. a ride's start.

    Returns:
        The winning value, or None when none is valid yet.

    Raises:
        ValueError: if a source is unknown.
    """
    best: DatedValue | None = None
    for item in values:
        if item.source not in SOURCE_PRECEDENCE:
            raise ValueError(f"unknown source {item.source!r}; expected one of {sorted(SOURCE_PRECEDENCE)}")
        if item.valid_from > at:
            continue
        key = (SOURCE_PRECEDENCE[item.source], item.valid_from)
        if best is None or key > (SOURCE_PRECEDENCE[best.source], best.valid_from):
            best = item
    return best


def ftp_for_ride(ftp_values: Iterable[DatedValue], ride_start: datetime, best_60min_np_w: float | None) -> FtpChoice:
    """Choose the FTP a ride is scored with (rules in the module docstring).

    Args:
        ftp_values: the athlete's dated FTP values (W).
        ride_start: the ride's start (timezone-aware).
        best_60min_np_w: the ride's best 60-minute normalized power (W)
            (:func:`training.power_curve.best_normalized_power` on ``RideSamples.recorded_power_w``); None when
            the ride is shorter than an hour or has no power.

    Returns:
        The choice: the valid value; or, when the ride's best hour exceeds it, that best hour with ``stale`` and a
        proposal; or ``tss_status='no_ftp'`` when no value is valid (with the ride's best hour proposed as a lower
        bound, when it has one).
    """
    values = list(ftp_values)
    chosen = value_at(values, ride_start)
    if chosen is None:
        evidence: dict[str, Any] = {"reason": "no FTP valid at the ride's start"}
        if best_60min_np_w is not None:
            evidence["best_60min_np_w"] = best_60min_np_w
        return FtpChoice(None, None, "no_ftp", proposed_ftp_w=best_60min_np_w, evidence=evidence)

    evidence = {"value_w": chosen.value, "source": chosen.source, "valid_from": chosen.valid_from.isoformat()}
    if best_60min_np_w is not None and best_60min_np_w > chosen.value:
        evidence.update(best_60min_np_w=best_60min_np_w, rule="the ride's best 60-min NP exceeds the FTP")
        return FtpChoice(best_60min_np_w, "ride_best_60min_np", "ok", True, best_60min_np_w, evidence)
    if chosen.source != "fitted":
        fitted = value_at((v for v in values if v.source == "fitted"), ride_start)
        if fitted is not None and fitted.value > chosen.value * (1.0 + EFTP_STALE_MARGIN):
            evidence.update(
                eftp_w=fitted.value,
                eftp_valid_from=fitted.valid_from.isoformat(),
                rule=f"a fitted eFTP more than {EFTP_STALE_MARGIN:.0%} above the FTP",
            )
            return FtpChoice(chosen.value, chosen.source, "ok", True, fitted.value, evidence)
    return FtpChoice(chosen.value, chosen.source, "ok", evidence=evidence)


def score_power_ride(duration_s: float, normalized_power_w: float | None, choice: FtpChoice) -> dict[str, Any]:
    """IF and TSS of a power ride with the chosen FTP (Allen & Coggan 2010), or why there are none.

    Args:
        duration_s: seconds of the power series.
        normalized_power_w: the ride's NP (W), or None (shorter than 30 s).
        choice: from :func:`ftp_for_ride`.

    Returns:
        ``{"ftp_w", "ftp_source", "intensity_factor", "tss", "tss_status"}``; IF and TSS None with
        ``tss_status='no_ftp'`` without an FTP, or ``'no_power'`` without NP.
    """
    out: dict[str, Any] = {
        "ftp_w": choice.ftp_w,
        "ftp_source": choice.source,
        "intensity_factor": None,
        "tss": None,
        "tss_status": choice.tss_status,
    }
    if choice.ftp_w is None:
        return out
    if normalized_power_w is None:
        out["tss_status"] = "no_power"
        return out
    out["intensity_factor"] = intensity_factor(normalized_power_w, choice.ftp_w)
    out["tss"] = training_stress_score(duration_s, normalized_power_w, choice.ftp_w)
    return out


def overlapping(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> float:
    """The fraction of the shorter of two spans that the other covers (0 to 1).

    Args:
        a_start: start of the first span (timezone-aware).
        a_end: its end, ``>= a_start``.
        b_start: start of the second span.
        b_end: its end, ``>= b_start``.

    Returns:
        overlap / shorter duration; 1.0 for identical spans, 0.0 for disjoint ones; for a zero-length span, 1.0
        when it lies inside the other, else 0.0.

    Raises:
        ValueError: if a span ends before it starts.
    """
    if a_end < a_start or b_end < b_start:
        raise ValueError("a span ends before it starts")
    overlap_s = (min(a_end, b_end) - max(a_start, b_start)).total_seconds()
    shorter_s = min((a_end - a_start).total_seconds(), (b_end - b_start).total_seconds())
    if shorter_s <= 0:
        return 1.0 if overlap_s >= 0 else 0.0
    return max(0.0, overlap_s) / shorter_s


@dataclass(frozen=True)
class Recording:
    """What :func:`choose_primary` needs of a recorded ride.

    Attributes:
        ride_id: its identifier.
        start: first sample (timezone-aware).
        end: last sample.
        channels: names of the channels it carries (e.g. ``RideSamples.channels``).
        n_samples: kept 1 Hz samples.
    """

    ride_id: str
    start: datetime
    end: datetime
    channels: Collection[str]
    n_samples: int


def same_activity(a: Recording, b: Recording) -> bool:
    """True when two recordings overlap by ``SAME_ACTIVITY_OVERLAP`` (80 %) or more of the shorter one."""
    return overlapping(a.start, a.end, b.start, b.end) >= SAME_ACTIVITY_OVERLAP


def choose_primary(a: Recording, b: Recording) -> tuple[Recording, Recording]:
    """Of two recordings of one activity, the primary (counted) and the linked one (shown, never counted).

    The richer recording is primary: more channels, then more samples; on a tie, the first given.

    Args:
        a: one recording.
        b: the other.

    Returns:
        ``(primary, linked)``.
    """
    if (len(b.channels), b.n_samples) > (len(a.channels), a.n_samples):
        return b, a
    return a, b
