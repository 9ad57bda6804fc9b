"""Planned versus actual training for one day, with TrainingPeaks-style compliance.

Thresholds: TrainingPeaks colours a completed workout by comparing completed to planned duration (TrainingPeaks
Help, "Color coding workouts by type and/or compliance", support.trainingpeaks.com/athlete-edition/calendar/
color-coding.aspx):

* green: within ±20 % of planned (80-120 %);
* yellow: 50-79 % or 121-150 % of planned;
* red: not completed, or below 50 % or above 150 % of planned.

Here the day's totals are compared (every workout planned on the day against every ride of the day). The basis
is the planned duration, as in TrainingPeaks; when no duration is planned, the planned TSS. Status:

* ``done``: something planned, ridden, and the basis ratio within 80-120 % (green), or ridden with no planned
  duration nor TSS to compare against;
* ``partial``: something planned and ridden, outside 80-120 % (yellow or red: too short or too long);
* ``missed``: something planned, no ride;
* ``unplanned``: nothing planned (or only rest), but ridden;
* ``rest``: nothing planned (or only rest) and no ride.

Workouts of a kind in `REST_KINDS` plan rest, not training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from training.formatting import format_duration, format_volume

Status = Literal["done", "partial", "missed", "unplanned", "rest"]
Colour = Literal["green", "yellow", "red"]

GREEN_RANGE = (0.80, 1.20)
"""Compliance ratios (actual / planned) coloured green: done (TrainingPeaks: within ±20 % of planned)."""

YELLOW_RANGE = (0.50, 1.50)
"""Outside `GREEN_RANGE` but within this range: yellow; outside it: red (TrainingPeaks compliance colours)."""

REST_KINDS = frozenset({"rest", "off", "day off", "rest day"})
"""Planned kinds that mean a rest day."""


def compare_day(planned: list[dict[str, Any]], rides: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare one day's planned workouts with its rides.

    Args:
        planned: workouts planned on the day, dicts with ``kind``, ``duration_s`` (s or None), ``tss`` (or None),
            as returned by `records.plans.PlanStore.plan_for_day`.
        rides: rides of the day, dicts with ``moving_s`` (s), ``tss`` and ``hr_tss`` (or None), as returned by
            `records.rides.rides_on_day`. A ride's TSS is its power TSS, else its hrTSS.

    Returns:
        A dict:

        * ``status``: ``done | partial | missed | unplanned | rest`` (see the module docstring);
        * ``compliance_colour``: ``green | yellow | red`` by the basis ratio (``red`` when missed); None when
          there is no ratio (nothing planned, or nothing to compare against);
        * ``compliance_basis``: ``"duration"``, ``"tss"`` or None: the ratio the status is decided on;
        * ``planned_kinds``: kinds planned (rest included), in order; ``planned_duration_s``, ``planned_tss``:
          sums over the training workouts of the values given, None when none is given;
        * ``rides``: number of rides; ``actual_moving_s``: summed moving time (s); ``actual_tss``: summed TSS
          (power TSS, else hrTSS), None when rides exist but none has either; ``actual_tss_source``:
          ``"power"``, ``"heart_rate"``, ``"mixed"`` or None;
        * ``duration_diff_s``, ``tss_diff``: actual − planned, None when either side is missing;
        * ``duration_compliance``, ``tss_compliance``: actual / planned (2 decimals), None when nothing of that
          kind is planned (or planned as 0);
        * ``summary``: one line of text.
    """
    training = [w for w in planned if str(w.get("kind") or "").strip().lower() not in REST_KINDS]
    planned_kinds = [str(w.get("kind") or "") for w in planned]
    planned_duration_s = _sum_known(w.get("duration_s") for w in training)
    planned_tss = _sum_known(w.get("tss") for w in training)

    actual_moving_s = float(sum(float(r.get("moving_s") or 0.0) for r in rides))
    ride_tss = [_ride_tss(r) for r in rides]
    known_tss = [value for value, _ in ride_tss if value is not None]
    actual_tss: float | None = float(sum(known_tss)) if known_tss or not rides else None
    sources = {source for _, source in ride_tss if source is not None}
    actual_tss_source = None if not sources else sources.pop() if len(sources) == 1 else "mixed"

    duration_ratio = _ratio(actual_moving_s, planned_duration_s)
    tss_ratio = _ratio(actual_tss, planned_tss)
    basis: str | None
    ratio: float | None
    if duration_ratio is not None:
        basis, ratio = "duration", duration_ratio
    elif tss_ratio is not None:
        basis, ratio = "tss", tss_ratio
    else:
        basis, ratio = None, None

    status: Status
    colour: Colour | None = None
    if not training:
        status = "unplanned" if rides else "rest"
        basis = None
    elif not rides:
        status, colour = "missed", "red"
    elif ratio is None:
        status = "done"
    else:
        colour = _colour(ratio)
        status = "done" if colour == "green" else "partial"

    result: dict[str, Any] = {
        "status": status,
        "compliance_colour": colour,
        "compliance_basis": basis,
        "planned_kinds": planned_kinds,
        "planned_duration_s": _round(planned_duration_s, 0),
        "planned_tss": _round(planned_tss, 1),
        "rides": len(rides),
        "actual_moving_s": round(actual_moving_s),
        "actual_tss": _round(actual_tss, 1),
        "actual_tss_source": actual_tss_source,
        "duration_diff_s": _round(_diff(actual_moving_s, planned_duration_s), 0),
        "tss_diff": _round(_diff(actual_tss, planned_tss), 1),
        "duration_compliance": _round(duration_ratio, 2),
        "tss_compliance": _round(tss_ratio, 2),
    }
    result["summary"] = _summary(result, ratio)
    return result


def _ride_tss(ride: dict[str, Any]) -> tuple[float | None, str | None]:
    if ride.get("tss") is not None:
        return float(ride["tss"]), "power"
    if ride.get("hr_tss") is not None:
        return float(ride["hr_tss"]), "heart_rate"
    return None, None


def _sum_known(values: Iterable[Any]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return float(sum(known)) if known else None


def _ratio(actual: float | None, planned: float | None) -> float | None:
    if actual is None or planned is None or planned <= 0:
        return None
    return actual / planned


def _diff(actual: float | None, planned: float | None) -> float | None:
    return None if actual is None or planned is None else actual - planned


def _colour(ratio: float) -> Colour:
    if GREEN_RANGE[0] <= ratio <= GREEN_RANGE[1]:
        return "green"
    if YELLOW_RANGE[0] <= ratio <= YELLOW_RANGE[1]:
        return "yellow"
    return "red"


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _summary(r: dict[str, Any], ratio: float | None) -> str:
    training_kinds = [k for k in r["planned_kinds"] if k.strip().lower() not in REST_KINDS]
    planned_volume = format_volume(r["planned_duration_s"], r["planned_tss"])
    planned = " + ".join(training_kinds) + (f" ({planned_volume})" if planned_volume else "")
    ride_word = "ride" if r["rides"] == 1 else "rides"
    ridden_tss = "" if r["actual_tss"] is None else f" ({r['actual_tss']:.0f} TSS)"
    ridden = f"rode {format_duration(r['actual_moving_s'])}{ridden_tss}" + (
        f" in {r['rides']} {ride_word}" if r["rides"] > 1 else ""
    )
    status = r["status"]
    if status == "rest":
        return "Rest day: planned rest and no ride." if r["planned_kinds"] else "Rest day: nothing planned, no ride."
    if status == "unplanned":
        lead = "Planned rest, but" if r["planned_kinds"] else "Nothing planned;"
        return f"{lead} {ridden}: unplanned."
    if status == "missed":
        return f"Planned {planned}; no ride recorded: missed."
    if ratio is None:
        return f"Planned {planned}; {ridden}: done (no planned duration or TSS to compare)."
    basis = "duration" if r["compliance_basis"] == "duration" else "TSS"
    return f"Planned {planned}; {ridden}: {ratio * 100:.0f} % of planned {basis}, {status}."
