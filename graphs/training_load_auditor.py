"""The Training Load Auditor graph (docs/architecture.md): weeks of load → figures, flags, patterns, plan proposals.

    read_inputs ─► analyse ─► store ─┬─► END
                                     └─► confirm_plan_changes ─► END   (input `ask` and a proposal is pending)

`read_inputs` reads the athlete's facts (through the conversation memory's facts cache), a year of daily load,
8 weeks of plan and rides and the next week of plan. `analyse` computes, without I/O: the load figures and flags
(`training.flags.assess_load`, the very computation the chat tool `get_training_load` runs), compliance per day
and week, recurring skipped workouts (`training.patterns`) and at most one plan-change proposal
(`training.plan_changes`). `store` writes the pattern facts (source ``training_load_auditor``), clears the ones
that no longer hold, stores the proposals and the report in one transaction (`records.audit_store`), then drops the
athlete's cached facts. With ``ask``, `confirm_plan_changes` pauses on a LangGraph `interrupt` until the athlete
accepts or rejects each pending proposal (`Command(resume=...)`, read by `graphs.inputs.read_decisions`); an
accepted one changes the plan (`records.proposals.decide_proposal`). Without it the
proposals wait for `coach plan accept ID` / `coach plan reject ID`.

The athlete and time zone come from the run's `Context` (`graphs.context.run_context`: on the API server, the
authenticated user). A re-run for the same day replaces its report and writes
no fact or proposal twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from graphs.context import Context, run_context
from graphs.inputs import ask_for_decisions
from memory.athlete_store import FactChange, validate_athlete_id
from records.audit_store import AUDITOR_SOURCE, AuditInputs, AuditStore
from records.proposals import PlanChangeConflictError, PlanProposalNotFoundError, decide_proposal
from records.stores import Stores, get_stores
from training.dates import zone_info
from training.flags import assess_load, event_date_from_facts
from training.load import LOAD_HISTORY_DAYS, load_series
from training.patterns import (
    PATTERN_FACT_PREFIX,
    PATTERN_LOOKBACK_DAYS,
    cleared_pattern_keys,
    compliance_days,
    compliance_weeks,
    pattern_fact_changes,
    recurring_skips,
)
from training.plan_changes import propose_plan_changes

PLAN_AHEAD_DAYS = 7
"""Days of plan read after the audited day (proposals look 3 days ahead; the report shows the week)."""

SERIES_DAYS = 90
"""Days of fitness, fatigue and form kept in the report, for its chart."""

REPORT_DAYS = 28
"""Days of day-by-day compliance kept in the report (weeks cover the whole 8-week lookback)."""

_DAY_FIELDS = (
    "date",
    "weekday",
    "status",
    "compliance_colour",
    "planned_kinds",
    "planned_duration_s",
    "planned_tss",
    "actual_moving_s",
    "actual_tss",
    "summary",
)


class AuditDateError(ValueError):
    """The day to audit is not a date, or is in the future."""

    code = "invalid_as_of"


class AuditInput(TypedDict, total=False):
    """What a client sends.

    Attributes:
        as_of: the day to audit, ``YYYY-MM-DD`` in the athlete's time zone; default today. Its rides count.
        ask: pause with an `interrupt` for the athlete's decision when a proposal is pending (default False:
            proposals wait for ``coach plan accept/reject``).
    """

    as_of: str
    ask: bool


class AuditOutput(TypedDict, total=False):
    """What a run returns: the report as stored (see `analyse` and `records.audit_store.AuditStore.save_audit`)."""

    report: dict[str, Any]


class AuditState(AuditInput, AuditOutput, total=False):
    """Working state: the resolved day, the inputs read, and what `analyse` decided to write."""

    today: str
    facts: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    draft: dict[str, Any]
    fact_changes: list[dict[str, Any]]
    clear_fact_keys: list[str]
    proposal_candidates: list[dict[str, Any]]


def resolve_as_of(text: str | None, today: date) -> date:
    """The day to audit: `text` (``YYYY-MM-DD``) or `today`.

    Raises:
        AuditDateError: not an ISO date, or after `today`.
    """
    if not text:
        return today
    try:
        day = date.fromisoformat(str(text).strip())
    except ValueError:
        raise AuditDateError(f"as_of {text!r} is not a date YYYY-MM-DD") from None
    if day > today:
        raise AuditDateError(f"as_of {day} is in the future (today is {today}): nothing to audit yet")
    return day


def _inputs_to_state(inputs: AuditInputs) -> dict[str, Any]:
    return {
        "daily_tss": {d.isoformat(): tss for d, tss in inputs.daily_tss.items()},
        "planned": [{**w, "date": w["date"].isoformat()} for w in inputs.planned],
        "rides_by_day": {d.isoformat(): rides for d, rides in inputs.rides_by_day.items()},
        "history_start": inputs.history_start.isoformat(),
        "plan_start": inputs.plan_start.isoformat(),
        "plan_end": inputs.plan_end.isoformat(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def audit_report(
    inputs: Mapping[str, Any], facts: Mapping[str, Mapping[str, Any]], as_of: date, today: date, timezone: str
) -> dict[str, Any]:
    """Compute an audit from its inputs (no I/O): the report and what to write.

    Args:
        inputs: `AuditInputs` in state form (ISO dates).
        facts: current facts ``{key: {"value", "source", ...}}``.
        as_of: the day audited.
        today: today in the athlete's time zone (a workout planned today is not missed yet; proposals never
            change a day before today).
        timezone: the athlete's time zone, recorded in the report.

    Returns:
        ``{"draft": report without facts_changed/proposals, "fact_changes": [FactChange dicts],
        "clear_fact_keys": [...], "proposal_candidates": [{"change", "reason", "flag_code"}]}``.
    """
    daily = {date.fromisoformat(d): float(v) for d, v in inputs["daily_tss"].items()}
    planned = [{**w, "date": date.fromisoformat(w["date"])} for w in inputs["planned"]]
    rides = {date.fromisoformat(d): r for d, r in inputs["rides_by_day"].items()}
    plan_start = date.fromisoformat(inputs["plan_start"])
    open_day = today if as_of == today else None
    days = compliance_days(planned, rides, plan_start, as_of, open_day=open_day)
    snapshot = assess_load(
        daily, as_of, recent_days=days[-7:], event_date=event_date_from_facts(facts), rides_by_day=rides
    )
    patterns = recurring_skips(days, as_of)
    detected = {p.key for p in patterns}
    written = [k for k, f in facts.items() if k.startswith(PATTERN_FACT_PREFIX) and f.get("source") == AUDITOR_SOURCE]
    clear = cleared_pattern_keys([k for k in written if k not in detected], days, as_of)
    proposals = propose_plan_changes(snapshot["flags"], planned, as_of, not_before=today)
    history_start = date.fromisoformat(inputs["history_start"])
    series = load_series(daily, history_start, as_of)[-SERIES_DAYS:]
    draft = {
        "as_of": as_of,
        "tsb_for": snapshot["tsb_for"],
        "timezone": timezone,
        **{
            k: snapshot[k]
            for k in (
                "ctl",
                "atl",
                "tsb",
                "ramp_rate",
                "acwr",
                "monotony",
                "strain",
                "weekly_tss",
                "chronic_daily_tss",
                "days_of_data",
                "form_zone",
                "last_ride_day",
                "flags",
            )
        },
        "patterns": [p.to_dict() for p in patterns],
        "compliance": {
            "days": [{k: d.get(k) for k in _DAY_FIELDS} for d in days[-REPORT_DAYS:]],
            "weeks": compliance_weeks(days),
        },
        "series": [
            {"date": p.date, "tss": round(p.tss, 1), **{k: round(getattr(p, k), 2) for k in ("ctl", "atl", "tsb")}}
            for p in series
        ],
        "generated_at": datetime.now(UTC).isoformat(),
    }
    return {
        "draft": _jsonable(draft),
        "fact_changes": [c.__dict__ for c in pattern_fact_changes(patterns)],
        "clear_fact_keys": clear,
        "proposal_candidates": _jsonable([p.to_dict() for p in proposals]),
    }


def build_graph(checkpointer: Checkpointer = None, stores: Stores | None = None) -> Any:
    """Build and compile the Training Load Auditor graph.

    Args:
        checkpointer: LangGraph checkpointer, needed when the input asks for decisions (``ask``: the run pauses
            on an `interrupt`); None for the exported graph, whose server supplies its own.
        stores: the conversation memory and athlete store; None takes the process-wide ones
            (`records.stores.get_stores`).

    Returns:
        The compiled graph: invoke with ``{"as_of": "YYYY-MM-DD"?, "ask": bool?}`` and
        ``context=Context(athlete_id=..., timezone=...)``; resume a paused run with ``Command(resume=answer)``,
        the answer being True/False (or "yes"/"no") for every pending proposal, or ``{proposal_id: bool}``.
    """

    async def deps() -> Stores:
        return stores if stores is not None else await get_stores()

    async def read_inputs(state: AuditState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = run_context(runtime)
        athlete_id = validate_athlete_id(ctx.athlete_id)
        today = datetime.now(UTC).astimezone(zone_info(ctx.timezone)).date()
        as_of = resolve_as_of(state.get("as_of"), today)
        d = await deps()
        facts = await d.memory.current_facts(athlete_id)
        inputs = await AuditStore(d.athlete_store.pool).read_inputs(
            athlete_id,
            as_of,
            ctx.timezone,
            history_days=LOAD_HISTORY_DAYS,
            lookback_days=PATTERN_LOOKBACK_DAYS,
            ahead_days=PLAN_AHEAD_DAYS,
        )
        return {
            "as_of": as_of.isoformat(),
            "today": today.isoformat(),
            "facts": _jsonable({k: {"value": v.get("value"), "source": v.get("source")} for k, v in facts.items()}),
            "inputs": _inputs_to_state(inputs),
        }

    async def analyse(state: AuditState, runtime: Runtime[Context]) -> dict[str, Any]:
        return audit_report(
            state["inputs"],
            state.get("facts") or {},
            date.fromisoformat(state["as_of"]),
            date.fromisoformat(state["today"]),
            run_context(runtime).timezone,
        )

    async def store_audit(state: AuditState, runtime: Runtime[Context]) -> dict[str, Any]:
        athlete_id = validate_athlete_id(run_context(runtime).athlete_id)
        d = await deps()
        report = await AuditStore(d.athlete_store.pool).save_audit(
            athlete_id,
            date.fromisoformat(state["as_of"]),
            state["draft"],
            fact_changes=[FactChange(**c) for c in state.get("fact_changes") or []],
            clear_fact_keys=state.get("clear_fact_keys") or [],
            proposals=state.get("proposal_candidates") or [],
            clearable_prefix=PATTERN_FACT_PREFIX,
            fact_writer=d.athlete_store,
        )
        return {"report": report}

    def route_after_store(state: AuditState) -> str:
        pending = [p for p in state["report"]["proposals"] if p["status"] == "pending"]
        return "confirm_plan_changes" if state.get("ask") and pending else END

    async def confirm_plan_changes(state: AuditState, runtime: Runtime[Context]) -> dict[str, Any]:
        athlete_id = validate_athlete_id(run_context(runtime).athlete_id)
        pending = [p for p in state["report"]["proposals"] if p["status"] == "pending"]
        request = {"type": "confirm_plan_changes", "proposals": pending}
        decisions = ask_for_decisions(request, [int(p["id"]) for p in pending])  # asks again if it can't read
        audits = AuditStore((await deps()).athlete_store.pool)
        notes: dict[int, str] = {}
        for proposal_id, decision in decisions.items():
            try:
                await decide_proposal((await deps()).athlete_store, "plan_change", athlete_id, proposal_id, decision)
            except (PlanProposalNotFoundError, PlanChangeConflictError) as exc:
                notes[proposal_id] = str(exc)
        report = await audits.get_report(athlete_id, date.fromisoformat(state["as_of"])) or state["report"]
        report["proposals"] = [{**p, "note": notes[p["id"]]} if p["id"] in notes else p for p in report["proposals"]]
        return {"report": report}

    builder = StateGraph(AuditState, context_schema=Context, input_schema=AuditInput, output_schema=AuditOutput)
    builder.add_node("read_inputs", read_inputs)
    builder.add_node("analyse", analyse)
    builder.add_node("store", store_audit)
    builder.add_node("confirm_plan_changes", confirm_plan_changes)
    builder.add_edge(START, "read_inputs")
    builder.add_edge("read_inputs", "analyse")
    builder.add_edge("analyse", "store")
    builder.add_conditional_edges("store", route_after_store, ["confirm_plan_changes", END])
    builder.add_edge("confirm_plan_changes", END)
    return builder.compile(checkpointer=checkpointer, name="training_load_auditor")


graph = build_graph()
