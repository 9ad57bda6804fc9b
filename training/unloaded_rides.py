"""Days whose rides add no load (issue 11, B6): a ride with neither TSS nor hrTSS counts 0 in the daily load.

A power ride without a known FTP has no TSS (``tss_status = "no_ftp"``, `training.scoring`); a ride without power
and without usable heart rate (or threshold heart rate) has no hrTSS either. `records.rides.daily_load` then adds
0 for it, which understates CTL/ATL; the flag ``rides_without_load`` names those days, with the reason, so the
figures are read knowing it (and, for ``no_ftp``, the athlete is asked for the FTP). Only the primary recording
of an activity counts (a linked copy is never loaded anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from training.flag_base import Flag

SRC_NO_LOAD = (
    "TSS needs FTP (Coggan: TSS = s x NP x IF / (FTP x 3600) x 100); hrTSS needs heart rate and LTHR "
    "(TrainingPeaks hrTSS); without either a ride's load is unknown, not 0"
)

NO_LOAD_DAYS = 42
"""Days before the day audited (included) searched for rides without load (one CTL time constant)."""

NO_LOAD_REASONS = {
    "no_ftp": "power but no FTP known",
    "no_power": "no power, and no heart rate or threshold heart rate for hrTSS",
}
"""Reason code of a ride without load → its plain words (``tss_status`` of the ride; anything else: no_power)."""


def rides_without_load_flag(rides_by_day: Mapping[date, Sequence[Mapping[str, Any]]], as_of: date) -> Flag | None:
    """Flag the days of the last `NO_LOAD_DAYS` (ending on `as_of`) with a ride that adds no load (B6, issue 11).

    Args:
        rides_by_day: ``{day: [{"tss", "hr_tss", "tss_status", "primary"}, ...]}`` (`records.audit_store.AuditInputs`);
            a ride whose ``primary`` is False (a linked copy) is skipped, a missing ``primary`` counts as True.
        as_of: the day audited.

    Returns:
        ``rides_without_load`` with ``value`` the number of such days and ``details``
        ``({"date": "YYYY-MM-DD", "rides": n, "reasons": ["no_ftp", ...]}, ...)`` oldest first; None when every
        ride has a load.
    """
    first = as_of - timedelta(days=NO_LOAD_DAYS - 1)
    details: list[dict[str, Any]] = []
    for day in sorted(d for d in rides_by_day if first <= d <= as_of):
        unloaded = [
            r for r in rides_by_day[day] if r.get("primary", True) and r.get("tss") is None and r.get("hr_tss") is None
        ]
        if unloaded:
            reasons = sorted({"no_ftp" if r.get("tss_status") == "no_ftp" else "no_power" for r in unloaded})
            details.append({"date": day.isoformat(), "rides": len(unloaded), "reasons": reasons})
    if not details:
        return None
    why = "; ".join(f"{code}: {NO_LOAD_REASONS[code]}" for code in sorted({c for d in details for c in d["reasons"]}))
    shown = ", ".join(date.fromisoformat(d["date"]).strftime("%a %d %b") for d in details[-5:])
    more = f" (and {len(details) - 5} earlier)" if len(details) > 5 else ""
    ask = " Tell me your FTP and those rides will be scored." if any("no_ftp" in d["reasons"] for d in details) else ""
    return Flag(
        "rides_without_load",
        f"{len(details)} day(s) of the last {NO_LOAD_DAYS} have rides that add no load ({why}): {shown}{more}. "
        f"Fitness, fatigue and form understate the training done.{ask}",
        SRC_NO_LOAD,
        float(len(details)),
        None,
        tuple(details),
    )
