"""Plan-change proposals from the Auditor's flags: stored, shown, applied only when the athlete accepts.

Rules (this project's; the thresholds are the flags', see `training.flags`):

1. ``tsb_high_risk`` (form below −30): replace the next *hard* workout planned within the next
   `PROPOSAL_HORIZON_DAYS` (3) days by a recovery ride: `RECOVERY_DURATION_S` (45 min) at Coggan's level 1
   (active recovery, below 55 % of FTP: IF ≈ 0.55-0.6), `RECOVERY_TSS` (25) TSS.
2. otherwise ``acwr_high`` (ACWR above 1.5) or ``ramp_rate_high`` (CTL rising more than 8 per week): cut the next
   hard workout within those days by `REDUCTION_FRACTION` (30 %) of its duration and TSS, keeping its kind.
   30 % is a moderate cut that keeps the session's purpose while lowering the week's acute load (a choice of
   this project, not a published figure).

A workout is *hard* when its kind names intensity work (`HARD_KIND_WORDS`: threshold, sweet spot, intervals,
VO2max, anaerobic, sprints, race, ...), or when its planned TSS and duration imply an intensity factor of at
least `HARD_INTENSITY_FACTOR` (0.85: upper tempo / sweet spot and above, Allen & Coggan 2010 levels), from
``TSS = hours × IF² × 100``. At most one proposal per audit: the most urgent rule, on the earliest hard workout.
With no hard workout in the window there is no proposal (the flag still says what to look at).

A change is a JSON-ready dict::

    {"action": "replace" | "reduce", "date": "YYYY-MM-DD", "kind": str (the workout changed),
     "before": {"kind", "duration_s", "tss", "description"},
     "after": {"kind", "duration_s", "tss", "description"}}

`records.proposals.decide_proposal` applies ``after`` to the workout identified by date and ``before.kind``,
and refuses when that workout no longer matches ``before``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from training.compare import REST_KINDS
from training.formatting import format_volume

PROPOSAL_HORIZON_DAYS = 3
"""Proposals look at workouts planned from the day after the audit to this many days after it."""

RECOVERY_DURATION_S = 2700.0
"""Duration of the recovery ride proposed instead of a hard workout, seconds (45 min)."""

RECOVERY_TSS = 25.0
"""TSS of that recovery ride (45 min at IF ≈ 0.58: 0.75 h × 0.58² × 100 ≈ 25)."""

REDUCTION_FRACTION = 0.30
"""Share of duration and TSS removed from a hard workout when the acute load spikes."""

HARD_INTENSITY_FACTOR = 0.85
"""Planned IF (from TSS and duration) from which a workout counts as hard."""

HARD_KIND_WORDS = (
    "threshold",
    "sweet",
    "interval",
    "vo2",
    "anaerobic",
    "sprint",
    "race",
    "ftp",
    "hiit",
    "hill repeat",
    "over-under",
    "over under",
    "time trial",
)
"""Words in a planned kind (lower case) that make it a hard workout."""

REPLACE_FLAGS = ("tsb_high_risk",)
"""Flags that call for replacing the next hard workout by a recovery ride (rule 1)."""

REDUCE_FLAGS = ("acwr_high", "ramp_rate_high")
"""Flags that call for reducing the next hard workout (rule 2)."""


@dataclass(frozen=True)
class PlanChangeProposal:
    """A proposed change of one planned workout.

    Attributes:
        change: the change (module docstring), JSON-ready.
        reason: one plain sentence with the figures, for the athlete.
        flag_code: the flag that called for it.
    """

    change: dict[str, Any]
    reason: str
    flag_code: str

    def to_dict(self) -> dict[str, Any]:
        """``{"change", "reason", "flag_code"}``."""
        return {"change": self.change, "reason": self.reason, "flag_code": self.flag_code}


def planned_intensity_factor(workout: Mapping[str, Any]) -> float | None:
    """The intensity factor a planned workout implies: ``sqrt(TSS / (hours × 100))``; None without both numbers."""
    tss, duration_s = workout.get("tss"), workout.get("duration_s")
    if tss is None or not duration_s or float(duration_s) <= 0 or float(tss) < 0:
        return None
    return math.sqrt(float(tss) / (float(duration_s) / 3600.0 * 100.0))


def is_hard(workout: Mapping[str, Any]) -> bool:
    """Whether a planned workout is hard (module docstring: its kind, or an implied IF ≥ 0.85)."""
    kind = str(workout.get("kind") or "").strip().lower()
    if kind in REST_KINDS or "recovery" in kind:
        return False
    if any(word in kind for word in HARD_KIND_WORDS):
        return True
    intensity = planned_intensity_factor(workout)
    return intensity is not None and intensity >= HARD_INTENSITY_FACTOR


def propose_plan_changes(
    flags: Iterable[Mapping[str, Any]],
    planned: Sequence[Mapping[str, Any]],
    as_of: date,
    *,
    not_before: date | None = None,
    horizon_days: int = PROPOSAL_HORIZON_DAYS,
) -> list[PlanChangeProposal]:
    """Propose at most one change of the coming plan from the flags (rules in the module docstring).

    Args:
        flags: the audit's flags (dicts with ``code`` and ``value``, as `training.flags.Flag.to_dict`).
        planned: planned workouts (dicts with ``date`` (date), ``kind``, ``duration_s``, ``tss``,
            ``description``), any order.
        as_of: the day audited; workouts from ``as_of + 1`` to ``as_of + horizon_days`` are considered.
        not_before: ignore workouts before this day too (today, when auditing a day in the past).
        horizon_days: how many days ahead to look.

    Returns:
        The proposals (empty or one).
    """
    by_code = {f["code"]: f for f in flags}
    trigger = next((c for c in REPLACE_FLAGS if c in by_code), None)
    action = "replace"
    if trigger is None:
        trigger = next((c for c in REDUCE_FLAGS if c in by_code), None)
        action = "reduce"
    if trigger is None:
        return []
    first = as_of + timedelta(days=1)
    if not_before is not None and not_before > first:
        first = not_before
    last = as_of + timedelta(days=horizon_days)
    candidates = sorted(
        (w for w in planned if first <= w["date"] <= last and is_hard(w)),
        key=lambda w: (w["date"], -(float(w.get("tss") or 0.0)), str(w["kind"])),
    )
    if not candidates:
        return []
    workout = candidates[0]
    kind = str(workout["kind"])
    duration_s, tss = _float(workout.get("duration_s")), _float(workout.get("tss"))
    description = str(workout.get("description") or "")
    before: dict[str, Any] = {"kind": kind, "duration_s": duration_s, "tss": tss, "description": description}
    day: date = workout["date"]
    volume = format_volume(duration_s, tss)
    was = f"{kind} ({volume})" if volume else kind
    flag = by_code[trigger]
    if action == "replace":
        after = {
            "kind": "recovery",
            "duration_s": RECOVERY_DURATION_S,
            "tss": RECOVERY_TSS,
            "description": f"Recovery ride, easy spin below 55 % of FTP (replaces: {was})",
        }
        reason = (
            f"Form (TSB) is {flag['value']:+.1f}, below -30: swap {day:%A %d %b}'s {was} for a 45-min recovery "
            f"ride ({RECOVERY_TSS:.0f} TSS) to let fatigue come down."
        )
    else:
        keep = 1.0 - REDUCTION_FRACTION
        new_duration_s = None if duration_s is None else _round_half_up(duration_s * keep / 60.0) * 60.0
        new_tss = None if tss is None else _round_half_up(tss * keep)
        after = {
            "kind": kind,
            "duration_s": new_duration_s,
            "tss": new_tss,
            "description": f"{description or kind} (shortened by {REDUCTION_FRACTION:.0%})",
        }
        if trigger == "acwr_high":
            what = f"ACWR is {flag['value']:.2f} (above 1.5)"
        else:
            what = f"CTL ramp rate is {flag['value']:.1f} per week (above 8)"
        new_volume = format_volume(new_duration_s, new_tss)
        reason = (
            f"{what}: shorten "
            f"{day:%A %d %b}'s {was} by {REDUCTION_FRACTION:.0%}"
            + (f" to {new_volume}" if new_volume else "")
            + " to ease the load spike."
        )
    change = {"action": action, "date": day.isoformat(), "kind": kind, "before": before, "after": after}
    return [PlanChangeProposal(change, reason, trigger)]


def _round_half_up(value: float) -> float:
    """Whole number, halves up (Python's `round` rounds halves to even: 52.5 → 52; 85 × 0.7 is 59.4999…)."""
    return float(math.floor(round(value, 6) + 0.5))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
