"""The words of a post-ride debrief: the model's prompt, and the offline responder's deterministic text.

Both are built only from the ride's computed numbers and the athlete's facts, so the debrief never invents a
figure. This module is the one place a debrief prompt is assembled.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from llm.models import OFFLINE_LABEL, model_label
from training.formatting import format_duration

DEBRIEF_SYSTEM_PROMPT = (
    "You are an endurance cycling coach writing a short post-ride debrief (at most 5 sentences). Use only the "
    "numbers and facts given; never invent a figure. Say what the ride was, how hard (IF, TSS), what stood out "
    "(new bests, decoupling), and one concrete suggestion for the next days. If the FTP was estimated, say so."
)

# TrainingPeaks' recovery guidance by TSS ("What is Training Stress Score?", TrainingPeaks help centre):
# under 150 recovered by the next day; 150-300 some fatigue the next day; 300-450 some after two days; above
# 450 several days.
_TSS_RECOVERY: list[tuple[float, str]] = [
    (150, "low load: you should be recovered by tomorrow"),
    (300, "medium load: expect some residual fatigue tomorrow; keep the next day easy"),
    (450, "high load: residual fatigue may last two days; plan easy riding before the next hard session"),
    (float("inf"), "very high load: allow several days of easy riding or rest"),
]


_HISTOGRAM_SUFFIXES = ("_hist_bpm", "_hist_s", "_hist_w")
"""The ride row's histograms (`training.ride_histograms`): seconds per value, not for the model to read."""


def debrief_prompt(
    ride: dict[str, Any], facts: dict[str, dict[str, Any]], facts_changed: list[str]
) -> list[SystemMessage | HumanMessage]:
    """Messages asking a chat model for the debrief.

    Args:
        ride: the ride row as a dict (`file_name`, `sport`, `start_time`, `metrics`, ...).
        facts: the athlete's current facts before this ride (`{key: {"value": ...}}`).
        facts_changed: fact keys this ride is about to change (new bests, a new FTP estimate).
    """
    payload = {
        "ride": {k: v for k, v in ride.items() if k != "metrics" and not k.endswith(_HISTOGRAM_SUFFIXES)},
        "metrics": ride["metrics"],
        "athlete_facts": {k: v["value"] for k, v in facts.items()},
        "facts_changed_by_this_ride": facts_changed,
    }
    return [
        SystemMessage(DEBRIEF_SYSTEM_PROMPT),
        HumanMessage("Ride data (JSON):\n" + json.dumps(payload, default=str, sort_keys=True)),
    ]


async def write_debrief(
    model: BaseChatModel | None,
    ride: dict[str, Any],
    facts: dict[str, dict[str, Any]],
    facts_changed: list[str],
) -> tuple[str, str]:
    """Write the debrief with the model, or offline when there is none.

    Returns:
        `(text, writer)`: the debrief and the name of what wrote it (a model name or `offline`).
    """
    if model is None:
        return offline_debrief(ride, facts, facts_changed), OFFLINE_LABEL
    reply = await model.ainvoke(debrief_prompt(ride, facts, facts_changed))
    text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    return text.strip(), model_label(model)


def offline_debrief(ride: dict[str, Any], facts: dict[str, dict[str, Any]], facts_changed: list[str]) -> str:
    """Deterministic debrief from the numbers alone, labelled offline (no model configured).

    Args:
        ride: the ride row as a dict, with `metrics` a `RideMetrics.to_dict()`.
        facts: the athlete's current facts before this ride.
        facts_changed: the fact keys this ride changes.

    Returns:
        A few sentences starting with `[offline coach]`.
    """
    m = ride["metrics"]
    parts = [f"[offline coach] {format_duration(m.get('moving_s') or 0)} moving"]
    if m.get("distance_m"):
        parts[0] += f", {m['distance_m'] / 1000:.1f} km"
    parts[0] += "."
    if m.get("normalized_power_w") and m.get("tss") is not None:
        ftp_note = f" (FTP {m['ftp_used_w']:.0f} W, {m.get('ftp_source') or 'given'})" if m.get("ftp_used_w") else ""
        parts.append(
            f"NP {m['normalized_power_w']:.0f} W, IF {m['intensity_factor']:.2f}, TSS {m['tss']:.0f}{ftp_note}."
        )
        if m.get("ftp_stale") and m.get("ftp_proposed_w"):
            parts.append(
                f"Your FTP on record looks out of date: this ride supports {m['ftp_proposed_w']:.0f} W "
                "(proposed for you to confirm)."
            )
        load = m.get("tss")
    elif m.get("normalized_power_w"):
        parts.append(
            f"NP {m['normalized_power_w']:.0f} W; no FTP on record, so no IF or TSS: tell me your FTP "
            "(or `coach facts --set ftp_w=VALUE`)."
        )
        load = m.get("hr_tss")
    else:
        load = m.get("hr_tss")
        trimp = m.get("trimp")
        parts.append(
            "No power in this file: load from heart rate"
            + (f", hrTSS {load:.0f}" if load is not None else "")
            + (f", TRIMP {trimp:.0f}" if trimp is not None else "")
            + "."
        )
    if m.get("avg_hr_bpm"):
        hr = f"Heart rate {m['avg_hr_bpm']:.0f} bpm average"
        # Decoupling speaks of aerobic endurance only on a long ride (Friel: an hour or more of steady riding).
        if m.get("aerobic_decoupling_pct") is not None and (m.get("moving_s") or 0) >= 3600:
            d = m["aerobic_decoupling_pct"]
            # Friel, The Cyclist's Training Bible (5th ed., 2018): Pw:HR decoupling under 5 % = aerobic fitness.
            verdict = "steady, under 5 %" if d < 5 else "above 5 %: the aerobic base has room to grow"
            hr += f", decoupling {d:.1f} % ({verdict})"
        parts.append(hr + ".")
    if facts_changed:
        mmp = m.get("mmp_w") or {}
        shown = []
        for key in facts_changed:
            new = _fact_value_from_metrics(key, m, mmp)
            old = facts.get(key, {}).get("value")
            shown.append(f"{key} {new} W" + (f" (was {old} W)" if old is not None else ""))
        parts.append("New: " + ", ".join(shown) + ".")
    wbal = m.get("w_prime_balance")
    if wbal and wbal.get("status", "ok") == "ok":
        parts.append(
            f"W′ balance low point {wbal['min_j'] / 1000:.1f} kJ ({wbal['min_fraction']:.0%} of W′) "
            f"at {format_duration(wbal['min_at_s'])}."
        )
    elif wbal:
        parts.append(
            f"No W′ balance: this ride went {-wbal['min_j'] / 1000:.1f} kJ beyond the W′ of "
            f"{wbal['w_prime_j'] / 1000:.1f} kJ above a CP of {wbal['cp_w']:.0f} W ({wbal['source']}), "
            "so that model is out of date for you."
        )
    if load is not None:
        parts.append(next(text for limit, text in _TSS_RECOVERY if load < limit).capitalize() + ".")
    return " ".join(parts)


def _fact_value_from_metrics(key: str, m: dict[str, Any], mmp: dict[str, float]) -> Any:
    suffix = key.removeprefix("best_").removesuffix("_w")
    return round(mmp[suffix]) if suffix in mmp else "?"
