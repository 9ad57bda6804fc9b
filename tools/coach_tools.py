"""The chat coach's tools: one LangChain tool per function, for the run's athlete.

The docstring and the annotated arguments of each function are what the model reads (`TOOLS` is bound to the
chat model as is). `stores` and `turn` are injected by the chat graph (`tools.base.run_tool`) and hidden from
the model, so the athlete id is never an argument. Each body returns a `ToolOutcome`; `reports_errors` turns
it into the model's text plus the outcome, and a failure into an error result the model can read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import psycopg
import psycopg_pool
from langchain_core.tools import BaseTool, InjectedToolArg, tool
from pydantic import Field

from memory.session_window import trim_text
from records.athlete_values import values_at
from records.audit_store import AuditStore
from records.rides import rides_on_day
from records.stores import Stores
from tools.base import ToolCallContext, ToolOutcome, reports_errors
from training.compare import compare_day
from training.dates import Prefer, resolve_day, zone_info
from training.flags import assess_load, event_date_from_facts
from training.load import LOAD_HISTORY_DAYS
from training.patterns import compliance_days
from training.scoring import DatedValue
from training.unloaded_rides import NO_LOAD_DAYS

MAX_SNIPPET_CHARS = 399  # snippets stay under 400 characters

StoresArg = Annotated[Stores, InjectedToolArg]
Turn = Annotated[ToolCallContext, InjectedToolArg]
DayText = Annotated[str | None, "a day in words: 'last Thursday', 'yesterday', 'today'"]
IsoDate = Annotated[str | None, "ISO date YYYY-MM-DD"]
MISSING_DATE = {"error": "missing_date", "message": "which day? give date or day"}


def _resolve(text: str | None, turn: ToolCallContext, prefer: Prefer = "past") -> dt.date | None:
    """The day `text` names in the athlete's time zone, or None when no day was given."""
    return resolve_day(text, tz=turn.timezone, now=turn.now, prefer=prefer) if text else None


@tool(response_format="content_and_artifact")
@reports_errors()
async def get_pinned_facts(*, stores: StoresArg, turn: Turn) -> ToolOutcome:
    """The athlete's current durable facts, with where each came from.

    Goals, injuries, equipment, schedule, nutrition, level, FTP and power bests. Use it before answering about the
    athlete; don't guess.

    Also the dated athlete values in force now (FTP, LTHR, max HR, CP, W′, sex, weight, time zone) with where each
    comes from: `confirmed` by the athlete > `device` (read from a ride file) > `fitted` from the rides.

    Returns `{"facts": {key: {"value", "source", "updated_at"}}, "athlete_values": {key: {"value", "source",
    "valid_from", "evidence"}}}`.
    """
    facts = await stores.memory.current_facts(turn.athlete_id)
    return ToolOutcome(
        {
            "facts": {
                k: {"value": v["value"], "source": v["source"], "updated_at": str(v.get("updated_at") or "")[:10]}
                for k, v in facts.items()
            },
            "athlete_values": await _values_now(stores, turn),
        }
    )


_EVIDENCE_SHOWN = ("file", "ride_id", "rule", "set_by", "proposal_id")


async def _values_now(stores: Stores, turn: ToolCallContext) -> dict[str, Any]:
    """The athlete's dated values valid now, with source, date and a short evidence; {} when Postgres is down.

    Postgres is not tried while the memory's circuit breaker holds it down (the reply path pays no timeout).
    """
    if not stores.memory.pg_breaker.healthy:
        return {}
    try:
        async with stores.athlete_store.pool.connection() as conn:
            values = await values_at(conn, turn.athlete_id, dt.datetime.now(dt.UTC))
    except (psycopg.Error, psycopg_pool.PoolTimeout):
        return {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, DatedValue):
            evidence = {k: value.evidence[k] for k in _EVIDENCE_SHOWN if k in value.evidence}
            out[key] = {
                "value": round(value.value, 1),
                "source": value.source,
                "valid_from": value.valid_from.date().isoformat(),
                "evidence": evidence,
            }
        else:
            out[key] = {"value": value}
    return out


@tool(response_format="content_and_artifact")
@reports_errors(postgres=True)
async def propose_fact(
    key: Annotated[str, "snake_case fact key, e.g. goal, level, ftp_w, injuries, equipment, schedule"],
    value: Annotated[str | float | int | bool, "the value the athlete stated, in their words or a number"],
    *,
    stores: StoresArg,
    turn: Turn,
) -> ToolOutcome:
    """Propose a durable fact the athlete stated (goal, injury, equipment, schedule, level...).

    Nothing is saved until the athlete accepts it; tell them it awaits their decision.

    Returns `{"proposal_id", "key", "value", "status": "pending", "note"}`.
    """
    proposal = await stores.athlete_store.create_proposal(
        turn.athlete_id, key, value, source_session_id=turn.session_id
    )
    public = {"proposal_id": proposal["id"], "key": proposal["fact_key"], "value": proposal["value"]}
    return ToolOutcome(
        {**public, "status": "pending", "note": "nothing is saved until the athlete accepts it"}, proposal=public
    )


@tool(response_format="content_and_artifact")
@reports_errors()
async def search_conversation(
    query: Annotated[str, "what to look for, in plain words (e.g. 'left shoulder pain advice')"],
    max_items: Annotated[int, Field(ge=1, le=3, description="how many snippets, at most 3")] = 3,
    *,
    stores: StoresArg,
    turn: Turn,
) -> ToolOutcome:
    """Search older conversations with this athlete (beyond the recent turns) for what was said or decided.

    Returns at most 3 short dated snippets. Use it when the athlete refers to an earlier discussion.

    Returns `{"snippets": [{"date", "session", "role", "text"}], "ranking": "hybrid" | "full_text"}`.
    """
    # A hit on something the athlete said is followed by the coach's reply to it (the advice usually shares few
    # words with the question), as long as the snippets allow. `ranking` is `hybrid` (full text and embeddings)
    # or `full_text` (no pgvector or no embedding model: paraphrases that share no word with the query are missed).
    limit = min(max_items, 3)
    result = await stores.memory.recall(turn.athlete_id, query, k=limit, exclude_ids=turn.window_message_ids)
    hits = result.hits
    replies = await stores.memory.replies_to(turn.athlete_id, [h.message_id for h in hits if h.role == "user"])
    excluded = set(turn.window_message_ids)
    snippets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for hit in hits:
        if len(snippets) >= limit:
            break
        if hit.message_id not in seen:
            seen.add(hit.message_id)
            snippets.append(
                {"date": str(hit.ts)[:10], "session": hit.session_id, "role": hit.role, "text": hit.snippet}
            )
        reply = replies.get(hit.message_id)
        if reply and reply.id not in seen and reply.id not in excluded and len(snippets) < limit:
            seen.add(reply.id)
            snippets.append(
                {
                    "date": reply.created_at.date().isoformat(),
                    "session": reply.session_id,
                    "role": "assistant",
                    "text": trim_text(reply.content, MAX_SNIPPET_CHARS),
                }
            )
    return ToolOutcome({"snippets": snippets, "ranking": result.ranking})


@tool(response_format="content_and_artifact")
@reports_errors()
async def get_last_query_context(*, stores: StoresArg, turn: Turn) -> ToolOutcome:
    """The parameters the last tools resolved (last_logs_query date, last_plan_slice day, last ride).

    Use it to resolve 'that ride', 'that day', 'and tomorrow?'.

    Returns `{"last_query_context": {...}}`, empty when nothing was resolved yet.
    """
    return ToolOutcome({"last_query_context": turn.sticky or {}})


@tool(response_format="content_and_artifact")
@reports_errors(postgres=True)
async def get_ride_logs(date: IsoDate = None, day: DayText = None, *, stores: StoresArg, turn: Turn) -> ToolOutcome:
    """Rides recorded on one day: duration, distance, power, TSS, heart rate.

    The day is a date or words like 'last Thursday', resolved in the athlete's time zone.

    Returns `{"date", "weekday", "rides": [...]}`.
    """
    text = date or day
    resolved = _resolve(text, turn)
    if text is None or resolved is None:
        return ToolOutcome(MISSING_DATE)
    rides = await rides_on_day(stores.athlete_store.pool, turn.athlete_id, resolved, turn.timezone)
    sticky: dict[str, Any] = {"last_logs_query": {"date": resolved.isoformat(), "day": text}}
    if rides:
        sticky["last_ride"] = {"ride_id": rides[-1]["ride_id"], "date": resolved.isoformat()}
    return ToolOutcome({"date": resolved.isoformat(), "weekday": resolved.strftime("%A"), "rides": rides}, sticky)


@tool(response_format="content_and_artifact")
@reports_errors(postgres=True)
async def get_plan(date: IsoDate = None, day: DayText = None, *, stores: StoresArg, turn: Turn) -> ToolOutcome:
    """Planned workouts on one day (date or words), from the athlete's training plan.

    Returns `{"date", "weekday", "planned": [...]}`; a bare weekday means the coming one.
    """
    text = date or day
    resolved = _resolve(text, turn, prefer="future")
    if text is None or resolved is None:
        return ToolOutcome(MISSING_DATE)
    planned = await stores.plans.plan_for_day(turn.athlete_id, resolved)
    return ToolOutcome(
        {"date": resolved.isoformat(), "weekday": resolved.strftime("%A"), "planned": planned},
        {"last_plan_slice": {"date": resolved.isoformat(), "day": text}},
    )


@tool(response_format="content_and_artifact")
@reports_errors(postgres=True)
async def compare_workout_to_plan(
    date: Annotated[
        str | None, "ISO date or words ('last Thursday'); omit it to use the day the last logs or plan query used"
    ] = None,
    *,
    stores: StoresArg,
    turn: Turn,
) -> ToolOutcome:
    """Planned versus actual for one day.

    With no date it uses the day of the last logs or plan query; if there is none it says so: then ask the athlete
    which day.

    Returns `{"date", "weekday", "date_from": "given" | "sticky context", "comparison": {...}}`.
    """
    resolved = _resolve(date, turn)
    if date is not None and resolved is not None:
        day, text, source = resolved, date, "given"
    else:
        remembered = (turn.sticky.get("last_logs_query") or turn.sticky.get("last_plan_slice") or {}).get("date")
        if not remembered:
            return ToolOutcome(
                {
                    "error": "missing_date",
                    "message": "No day given and no earlier logs or plan query in this conversation: ask the "
                    "athlete which day to compare.",
                }
            )
        day, text, source = dt.date.fromisoformat(remembered), remembered, "sticky context"
    planned = await stores.plans.plan_for_day(turn.athlete_id, day)
    rides = await rides_on_day(stores.athlete_store.pool, turn.athlete_id, day, turn.timezone)
    comparison = compare_day(planned, rides)
    return ToolOutcome(
        {"date": day.isoformat(), "weekday": day.strftime("%A"), "date_from": source, "comparison": comparison},
        {"last_logs_query": {"date": day.isoformat(), "day": text}},
    )


@tool(response_format="content_and_artifact")
@reports_errors(postgres=True)
async def get_training_load(
    as_of: Annotated[str | None, "ISO date or words; default today"] = None, *, stores: StoresArg, turn: Turn
) -> ToolOutcome:
    """Fitness (CTL), fatigue (ATL), form (TSB), ramp rate, acute:chronic ratio, monotony, strain and risk flags.

    Each flag names its source; all come from ride TSS, as of a day (default today). A flag is a prompt to look,
    not a diagnosis.

    Returns the Training Load Auditor's figures: `{"as_of", "ctl", "atl", "tsb", "ramp_rate", "acwr", ...}`.
    """
    # The Auditor's computation (`training.flags.assess_load`) on the same inputs (`AuditStore.read_inputs`), the
    # last 7 days' compliance included; nothing is written.
    today = turn.now.astimezone(zone_info(turn.timezone)).date()
    day = _resolve(as_of, turn) or today
    facts = await stores.memory.current_facts(turn.athlete_id)
    inputs = await AuditStore(stores.athlete_store.pool).read_inputs(
        turn.athlete_id, day, turn.timezone, history_days=LOAD_HISTORY_DAYS, lookback_days=NO_LOAD_DAYS, ahead_days=0
    )
    recent = compliance_days(
        inputs.planned, inputs.rides_by_day, inputs.plan_start, day, open_day=today if day == today else None
    )[-7:]
    snapshot = assess_load(
        inputs.daily_tss,
        day,
        recent_days=recent,
        event_date=event_date_from_facts(facts),
        rides_by_day=inputs.rides_by_day,
    )
    snapshot["form_zone"] = snapshot["form_zone"]["label"]
    return ToolOutcome(snapshot)


TOOLS: list[BaseTool] = [
    get_pinned_facts,
    propose_fact,
    search_conversation,
    get_last_query_context,
    get_ride_logs,
    get_plan,
    compare_workout_to_plan,
    get_training_load,
]
"""The chat tools, in the order the model is shown them."""
