"""Risk flags on a training-load summary: each a prompt to look, not a diagnosis, with its threshold and source.

`assess_load` is the computation the Training Load Auditor and the chat tool `get_training_load` share: the load
summary (`training.load.training_load_summary`), the form zone, and the flags below. Flags read the summary's
rounded figures, so a message never contradicts the number shown next to it.

| code | fires when | source |
|---|---|---|
| ``ramp_rate_high`` | CTL ramp rate > 8 points per week | Friel 2015; TrainingPeaks ramp rate |
| ``tsb_high_risk`` | TSB (form for the next day) < −30 | Allen & Coggan 2010; intervals.icu form zones |
| ``acwr_high`` | ACWR > 1.5 | Gabbett 2016 ("danger zone" ≥ 1.5) |
| ``acwr_low`` | ACWR < 0.8, with rides in the last 7 days | Gabbett 2016 ("sweet spot" 0.8-1.3) |
| ``monotony_high`` | monotony > 2.0, or the very same load every day | Foster 1998 |
| ``form_transition`` | TSB > +25 and no event within 21 days | intervals.icu form zones (transition) |
| ``no_recent_rides`` | no ride for 7 days or more (rides before) | Mujika & Padilla 2000 (detraining) |
| ``low_compliance`` | < 50 % of the planned TSS (else duration) of the last 7 days done | TrainingPeaks compliance |
| ``short_history`` | fewer than 42 days since the first ride | Allen & Coggan 2010 (42-day constant) |
| ``rides_without_load`` | a day of the last 42 with a (primary) ride that has neither TSS nor hrTSS | — |
| ``no_ride_data`` | no ride at all in the history read | — |

A ride with neither TSS nor hrTSS adds 0 to its day's load: power without a known FTP (reason ``no_ftp``), or
no power and no usable heart rate (``no_power``). ``rides_without_load`` names those days (its ``details``) so the
figures are read knowing they understate the load; only the primary recording of an activity counts.

While CTL is still building up from 0 (fewer than 42 days of data) it understates fitness: the ramp rate then
mostly measures the start of the records, and the 28-day average of the ACWR counts days before the first ride
as rest. So ``ramp_rate_high`` waits for 42 days of data and ``acwr_*`` for 28; ``short_history`` says so, and the
TSB message warns that form reads lower than it is.

Form zones (intervals.icu Fitness page; TrainingPeaks/Allen & Coggan use the same bands for TSB): above +25
transition (fitness is being lost), +5 to +25 fresh (race-ready), −10 to +5 grey zone (neutral), −30 to −10
optimal (productive training), below −30 high risk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from training.flag_base import Flag
from training.load import training_load_summary
from training.unloaded_rides import rides_without_load_flag

RAMP_RATE_MAX = 8.0
"""CTL points per week above which ramp rate is flagged (Friel 2015: 5-8 per week suits most athletes)."""

TSB_HIGH_RISK = -30.0
"""Form below this is the high-risk zone (intervals.icu; Allen & Coggan: −10 to −30 is the productive range)."""

TSB_TRANSITION = 25.0
"""Form above this is the transition zone: fitness is being lost (intervals.icu form zones)."""

ACWR_HIGH = 1.5
"""ACWR above this is Gabbett's (2016) "danger zone" (injury risk rises steeply)."""

ACWR_LOW = 0.8
"""ACWR below this is under Gabbett's (2016) "sweet spot" (0.8-1.3): under-loading, detraining."""

MONOTONY_HIGH = 2.0
"""Monotony above this preceded illness in Foster's (1998) athletes, with high weekly load."""

NO_RIDE_DAYS = 7
"""Days without a ride that raise `no_recent_rides`."""

LOW_COMPLIANCE = 0.5
"""Weekly compliance ratio below which `low_compliance` fires (TrainingPeaks colours < 50 % of planned red)."""

SHORT_HISTORY_DAYS = 42
"""Days of data under which CTL is still building up (one CTL time constant: 63 % of a steady load)."""

ACWR_MIN_DAYS = 28
"""Days of data the ACWR flags wait for (the chronic window)."""

EVENT_TAPER_DAYS = 21
"""An event this close makes high form a taper, not a loss of fitness (tapers last 1-3 weeks: Mujika & Padilla,
Med Sci Sports Exerc 35:1182-1187, 2003)."""

EVENT_FACT_KEYS = ("event_date", "race_date", "goal_date", "a_race_date")
"""Fact keys read for the next event's date (value ``YYYY-MM-DD``)."""

SRC_RAMP = (
    "Friel, 'The CTL Ramp Rate' (joefrielsblog.com, 2015): 5-8 CTL points/week suits most; "
    "TrainingPeaks ramp rate = CTL change over 7 days"
)
SRC_TSB = "Allen & Coggan, Training and Racing with a Power Meter (2010); intervals.icu form zones (< -30 high risk)"
SRC_ACWR = "Gabbett, Br J Sports Med 50:273-280 (2016): sweet spot 0.8-1.3, danger zone >= 1.5"
SRC_MONOTONY = "Foster, Med Sci Sports Exerc 30:1164-1168 (1998): monotony > 2.0 with high load preceded illness"
SRC_TRANSITION = "intervals.icu form zones: > +25 transition (losing fitness); taper: Mujika & Padilla 2003"
SRC_DETRAINING = "Mujika & Padilla, Sports Med 30:79-87 (2000): adaptations decline within 2-4 weeks without training"
SRC_COMPLIANCE = "TrainingPeaks compliance colours: under 50 % of planned is red"
SRC_SHORT_HISTORY = "Allen & Coggan (2010): CTL is a 42-day exponentially weighted average"
FORM_ZONES: tuple[tuple[str, str, float | None, float | None], ...] = (
    ("transition", "transition: fitness is being lost", TSB_TRANSITION, None),
    ("fresh", "fresh: ready to race", 5.0, TSB_TRANSITION),
    ("grey", "grey zone: neither building nor resting", -10.0, 5.0),
    ("optimal", "optimal: productive training", TSB_HIGH_RISK, -10.0),
    ("high_risk", "high risk: deep fatigue", None, TSB_HIGH_RISK),
)
"""(code, label, lower bound, upper bound) of each form zone in TSB points, top zone first; None is open. A zone
holds its lower bound, except the transition zone, which starts above +25 (so +25 is fresh and −30 optimal, as
the flags read "> +25" and "< −30")."""


def form_zone(tsb: float) -> dict[str, Any]:
    """The form zone of a TSB value (intervals.icu zones; module docstring).

    Returns:
        ``{"code": "optimal", "label": "...", "min": -30.0, "max": -10.0}`` (None for an open bound).
    """
    for code, label, low, high in FORM_ZONES:
        if low is None or tsb > low or (tsb == low and code != "transition"):
            return {"code": code, "label": label, "min": low, "max": high}
    raise AssertionError("unreachable: the last zone has no lower bound")  # pragma: no cover


def event_date_from_facts(facts: Mapping[str, Any]) -> date | None:
    """The first parseable ``YYYY-MM-DD`` among the event facts (`EVENT_FACT_KEYS`), or None.

    Args:
        facts: ``{key: value}`` or ``{key: {"value": value, ...}}`` (current facts as the stores return them).
    """
    for key in EVENT_FACT_KEYS:
        raw = facts.get(key)
        value = raw.get("value") if isinstance(raw, Mapping) else raw
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip()[:10])
            except ValueError:
                continue
    return None


def load_flags(
    summary: Mapping[str, Any],
    *,
    last_ride_day: date | None,
    recent_days: Sequence[Mapping[str, Any]] = (),
    event_date: date | None = None,
    daily_loads_7d: Sequence[float] = (),
) -> list[Flag]:
    """Evaluate every flag on a load summary (thresholds and sources in the module docstring).

    Args:
        summary: `training.load.training_load_summary` output.
        last_ride_day: the day of the last ride up to `summary["as_of"]`, or None when there is none.
        recent_days: `training.patterns.compliance_days` of the 7 days ending on the day audited (empty: no
            compliance flag).
        event_date: the athlete's next event, if known.
        daily_loads_7d: the 7 daily loads ending on the day audited (for monotony when every day is the same).

    Returns:
        The flags that fire, most urgent first (risk, then load balance, then data and plan notes).
    """
    as_of: date = summary["as_of"]
    days_of_data: int = summary["days_of_data"]
    flags: list[Flag] = []
    if last_ride_day is None:
        return [
            Flag(
                "no_ride_data",
                "No rides recorded in the period read: fitness, fatigue and form are all 0. Debrief some rides first.",
                "-",
            )
        ]
    building = days_of_data < SHORT_HISTORY_DAYS
    tsb, ctl, atl = summary["tsb"], summary["ctl"], summary["atl"]
    tsb_for: date = summary.get("tsb_for") or as_of + timedelta(days=1)
    if tsb < TSB_HIGH_RISK:
        caveat = (
            f" With only {days_of_data} days of data CTL is still building, so form reads lower than it is."
            if building
            else ""
        )
        flags.append(
            Flag(
                "tsb_high_risk",
                f"Form for {tsb_for:%a %d %b} (TSB) is {tsb:+.1f}, below {TSB_HIGH_RISK:.0f}: fatigue (ATL {atl:.1f}) "
                f"far exceeds fitness (CTL {ctl:.1f}). Look at sleep, soreness and motivation; an easier day or two "
                f"would bring it back into the productive -10 to -30 range.{caveat}",
                SRC_TSB,
                tsb,
                TSB_HIGH_RISK,
            )
        )
    ramp = summary["ramp_rate"]
    if ramp > RAMP_RATE_MAX and days_of_data >= SHORT_HISTORY_DAYS:
        flags.append(
            Flag(
                "ramp_rate_high",
                f"Fitness (CTL) rose {ramp:.1f} points in 7 days, above {RAMP_RATE_MAX:.0f} per week: a build this "
                "steep is rarely sustainable for more than a week or two.",
                SRC_RAMP,
                ramp,
                RAMP_RATE_MAX,
            )
        )
    acwr = summary.get("acwr")
    rode_this_week = (as_of - last_ride_day).days < NO_RIDE_DAYS
    if acwr is not None and days_of_data >= ACWR_MIN_DAYS:
        if acwr > ACWR_HIGH:
            flags.append(
                Flag(
                    "acwr_high",
                    f"Acute:chronic workload ratio {acwr:.2f}, above {ACWR_HIGH}: the last 7 days averaged "
                    f"{summary['weekly_tss'] / 7:.0f} TSS a day against {summary['chronic_daily_tss']:.0f} over 28 "
                    "days. Load spikes like this go with a higher injury risk.",
                    SRC_ACWR,
                    acwr,
                    ACWR_HIGH,
                )
            )
        elif acwr < ACWR_LOW and rode_this_week:
            flags.append(
                Flag(
                    "acwr_low",
                    f"Acute:chronic workload ratio {acwr:.2f}, below {ACWR_LOW}: the last 7 days averaged "
                    f"{summary['weekly_tss'] / 7:.0f} TSS a day against {summary['chronic_daily_tss']:.0f} over 28 "
                    "days. Fine for a planned recovery week; otherwise fitness is starting to slip.",
                    SRC_ACWR,
                    acwr,
                    ACWR_LOW,
                )
            )
    mono = summary.get("monotony")
    loads = list(daily_loads_7d)
    same_every_day = mono is None and len(loads) == 7 and min(loads) > 0 and max(loads) - min(loads) < 1e-9
    if (mono is not None and mono > MONOTONY_HIGH) or same_every_day:
        shown = "undefined (the same load every day)" if same_every_day else f"{mono:.2f}"
        strain = summary.get("strain")
        strain_text = f", strain {strain:.0f}" if strain is not None else ""
        flags.append(
            Flag(
                "monotony_high",
                f"Training monotony {shown}, above {MONOTONY_HIGH:.0f}{strain_text}: the days of the last week are "
                "too alike. Make easy days easier (or a day off) and hard days hard.",
                SRC_MONOTONY,
                mono,
                MONOTONY_HIGH,
            )
        )
    if tsb > TSB_TRANSITION:
        event_soon = event_date is not None and as_of <= event_date <= as_of + timedelta(days=EVENT_TAPER_DAYS)
        if not event_soon:
            flags.append(
                Flag(
                    "form_transition",
                    f"Form (TSB) {tsb:+.1f} is above +{TSB_TRANSITION:.0f} with no event in the next "
                    f"{EVENT_TAPER_DAYS} days: this much rest means fitness is being lost.",
                    SRC_TRANSITION,
                    tsb,
                    TSB_TRANSITION,
                )
            )
    gap = (as_of - last_ride_day).days
    if not rode_this_week:
        flags.append(
            Flag(
                "no_recent_rides",
                f"No ride for {gap} days (last on {last_ride_day:%a %d %b}): fitness (CTL {ctl:.1f}) is decaying. "
                "Planned rest, illness or injury? Training adaptations fade within 2-4 weeks.",
                SRC_DETRAINING,
                float(gap),
                float(NO_RIDE_DAYS),
            )
        )
    compliance = _compliance_flag(recent_days)
    if compliance is not None:
        flags.append(compliance)
    if building:
        flags.append(
            Flag(
                "short_history",
                f"Only {days_of_data} days since the first ride in the records: CTL starts from 0 and is still "
                f"building (it reaches 63 % of a steady load after {SHORT_HISTORY_DAYS} days), so fitness is "
                f"understated. Ramp-rate flags wait for {SHORT_HISTORY_DAYS} days of data, ACWR flags for "
                f"{ACWR_MIN_DAYS}.",
                SRC_SHORT_HISTORY,
                float(days_of_data),
                float(SHORT_HISTORY_DAYS),
            )
        )
    return flags


def _compliance_flag(days: Sequence[Mapping[str, Any]]) -> Flag | None:
    over = [d for d in days if d.get("status") != "open"]
    planned_tss = sum(float(d.get("planned_tss") or 0.0) for d in over)
    planned_s = sum(float(d.get("planned_duration_s") or 0.0) for d in over)
    if planned_tss > 0:
        ratio = sum(float(d.get("actual_tss") or 0.0) for d in over) / planned_tss
        basis = "TSS"
    elif planned_s > 0:
        ratio = sum(float(d.get("actual_moving_s") or 0.0) for d in over) / planned_s
        basis = "duration"
    else:
        return None
    if ratio >= LOW_COMPLIANCE:
        return None
    missed = [d["date"] for d in over if d.get("status") == "missed"]
    missed_text = f" Missed: {', '.join(f'{d:%a %d %b}' for d in missed)}." if missed else ""
    return Flag(
        "low_compliance",
        f"{ratio * 100:.0f} % of the planned {basis} of the last 7 days was ridden (under "
        f"{LOW_COMPLIANCE * 100:.0f} %).{missed_text} Is the plan too much for this week, or did life get in "
        "the way?",
        SRC_COMPLIANCE,
        round(ratio, 2),
        LOW_COMPLIANCE,
    )


def assess_load(
    daily_tss: Mapping[date, float],
    as_of: date,
    *,
    recent_days: Sequence[Mapping[str, Any]] = (),
    event_date: date | None = None,
    rides_by_day: Mapping[date, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The load figures, form zone and flags of `as_of`: the Auditor's and `get_training_load`'s computation.

    Args:
        daily_tss: TSS per local day (a day with rides present, even at 0; rest days absent), covering at least
            `training.load.LOAD_HISTORY_DAYS` before `as_of` for TrainingPeaks-equal CTL.
        as_of: the day audited (its rides included).
        recent_days: `training.patterns.compliance_days` of the 7 days ending on `as_of` (for `low_compliance`).
        event_date: the athlete's next event (see `event_date_from_facts`).
        rides_by_day: the rides of the last `NO_LOAD_DAYS` days (`records.audit_store.AuditInputs.rides_by_day`),
            for `rides_without_load_flag`; None: that flag is not evaluated.

    Returns:
        `training.load.training_load_summary` output plus ``"form_zone"`` (`form_zone` of the TSB),
        ``"last_ride_day"`` (date or None) and ``"flags"`` (a list of `Flag.to_dict()`).

    Raises:
        ValueError: a TSS that is negative or not finite.
    """
    summary = training_load_summary(daily_tss, as_of)
    ride_days = [d for d in daily_tss if d <= as_of]
    last_ride_day = max(ride_days) if ride_days else None
    loads = [float(daily_tss.get(as_of - timedelta(days=i), 0.0)) for i in range(6, -1, -1)]
    flags = load_flags(
        summary, last_ride_day=last_ride_day, recent_days=recent_days, event_date=event_date, daily_loads_7d=loads
    )
    unloaded = rides_without_load_flag(rides_by_day, as_of) if rides_by_day is not None else None
    if unloaded is not None:
        flags.insert(len(flags) - int(bool(flags) and flags[-1].code == "short_history"), unloaded)
    return {
        **summary,
        "form_zone": form_zone(summary["tsb"]),
        "last_ride_day": last_ride_day,
        "flags": [f.to_dict() for f in flags],
    }
