"""The demo's replay: copies of the debriefed rides placed on the last days, with a sample plan around them.

The demo's rides (`data/rides/`) were recorded between 2011 and 2019, so "last Thursday" would find nothing. The
demo therefore also stores a copy of each ride (file name prefixed `replay:`) on consecutive days ending
yesterday, oldest ride first, and a sample plan for those days and the next two. This is demo data, said so in
its output; the original rides stay as they were recorded.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from records.plans import PlanRow, PlanStore
from records.rides import RideStore
from training.records import RideRecord

REPLAY_PREFIX = "replay:"
REPLAY_MONDAYS = 4  # planned (and skipped) Monday recovery rides, counting back from the last Monday


def replay_days(n_rides: int, today: date) -> list[date]:
    """The days the replayed rides go on, oldest first: the last `n_rides` days before today but Mondays.

    The sample plan puts a recovery ride on the last four Mondays, which the replay skips.
    """
    days: list[date] = []
    day = today
    while len(days) < n_rides:
        day -= timedelta(days=1)
        if day.weekday() != 0:
            days.append(day)
    return days[::-1]


def planned_for(ride: dict[str, Any], day: date) -> PlanRow:
    """A plausible planned workout for a replayed ride, close to what was ridden but not exact.

    The kind comes from the intensity factor, the duration and TSS are the ride's, rounded.

    Kinds by IF follow Coggan's levels (Allen & Coggan 2010, table 3.1): below 0.75 endurance, 0.75-0.90
    tempo, above threshold work.
    """
    intensity = ride.get("intensity_factor") or 0.7
    kind = "endurance" if intensity < 0.75 else "tempo" if intensity < 0.9 else "threshold"
    duration_s = max(1800.0, round(ride["moving_s"] / 900) * 900)
    load = ride.get("tss") or ride.get("hr_tss")
    return PlanRow(
        date=day, kind=kind, duration_s=duration_s, tss=round(load) if load else None, description=f"{kind} ride"
    )


async def replay_recent(
    store: RideStore, plans: PlanStore, athlete_id: str, lines: list[dict[str, Any]], today: date | None = None
) -> list[tuple[date, str]]:
    """Store replayed copies of the debriefed rides on the last days, and a sample plan.

    Args:
        store: the stored rides and debriefs.
        plans: the planned-workout store.
        athlete_id: the demo athlete.
        lines: `coach debrief --json` lines of the rides, oldest first (errors and second recordings of a
            ride, same start time, are skipped).
        today: the day the replay ends before (default: today, UTC).

    Returns:
        `(day, original file name)` of each replayed ride.
    """
    today = today or datetime.now(UTC).date()
    rides: list[dict[str, Any]] = []
    for line in lines:  # one copy per ride: the same ride recorded twice (FIT and GPX) starts at the same second
        if "error" not in line and all(line["start_time"] != r["start_time"] for r in rides):
            rides.append(line)
    days = replay_days(len(rides), today)
    plan: list[PlanRow] = []
    placed: list[tuple[date, str]] = []
    for ride, day in zip(rides, days, strict=True):
        original = await store.get_ride(athlete_id, ride["ride_id"])
        debrief = await store.get_debrief(athlete_id, ride["ride_id"])
        if original is None:
            continue
        start = datetime.combine(day, original.start_time.astimezone(UTC).time(), tzinfo=UTC)
        copy = RideRecord(
            **{
                **original.__dict__,
                "ride_id": hashlib.sha256(f"{REPLAY_PREFIX}{original.ride_id}".encode()).hexdigest()[:32],
                "file_name": REPLAY_PREFIX + original.file_name,
                "start_time": start,
            }
        )
        await store.save_replay_ride(athlete_id, copy, debrief["text"] if debrief else "")
        plan.append(planned_for(ride, day))
        placed.append((day, original.file_name))
    # Monday recovery rides over the last four weeks, all skipped (the Auditor's recurring-pattern example), and
    # the next two days, so the plan has misses and a future.
    monday = today - timedelta(days=today.weekday() or 7)
    for _ in range(REPLAY_MONDAYS):
        plan.append(PlanRow(monday, "recovery", 2700.0, 25.0, "easy spin, high cadence"))
        monday -= timedelta(days=7)
    plan.append(PlanRow(today + timedelta(days=1), "endurance", 5400.0, 65.0, "Zone 2, steady"))
    plan.append(PlanRow(today + timedelta(days=2), "threshold", 4500.0, 85.0, "3 x 12 min at FTP"))
    await plans.import_rows(athlete_id, plan)
    return placed
