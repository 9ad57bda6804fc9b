"""The chat coach's tools (DESIGN section 6): memory and training functions, run for the run's athlete.

Each tool takes a `ToolCallContext` (athlete, session, time zone, sticky context, the turn's window ids) and
its validated arguments, and returns a `ToolOutcome`: a JSON-ready result for the model and, where the tool
resolved a parameter, an update of the sticky context. The athlete id comes from the context only.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import psycopg_pool
from pydantic import BaseModel, ValidationError

from memory.audit_store import AuditStore
from memory.errors import InvalidFactError, StoreUnavailableError
from memory.ride_queries import rides_on_day
from memory.session_window import trim_text
from memory.text import find_unstorable
from tools.deps import CoachDeps
from tools.specs import (
    TOOL_DESCRIPTIONS,
    CompareArgs,
    DayArgs,
    SearchConversationArgs,
    SetPinnedFactArgs,
    TrainingLoadArgs,
)
from training.compare import compare_day
from training.dates import DateResolutionError, Prefer, resolve_day
from training.flags import assess_load, event_date_from_facts
from training.load import LOAD_HISTORY_DAYS
from training.patterns import compliance_days

MAX_SNIPPET_CHARS = 399  # snippets stay under 400 characters (DESIGN section 6)
MAX_TOOL_RESULT_CHARS = 4000  # a tool result longer than this is cut before it reaches the prompt


@dataclass
class ToolCallContext:
    """Per-call context, built by the chat graph from its `Context` and state."""

    athlete_id: str
    session_id: str
    timezone: str
    now: datetime
    sticky: dict[str, Any]
    window_message_ids: list[str] = field(default_factory=list)


@dataclass
class ToolOutcome:
    """A tool's result (JSON-ready), sticky-context updates, and a fact proposal if one was made."""

    content: dict[str, Any]
    sticky: dict[str, Any] = field(default_factory=dict)
    proposal: dict[str, Any] | None = None


ToolFunc = Callable[[CoachDeps, ToolCallContext, Any], Awaitable[ToolOutcome]]


def _day_from(
    args: DayArgs | CompareArgs | TrainingLoadArgs, ctx: ToolCallContext, *, prefer: Prefer = "past"
) -> tuple[str, date] | None:
    text = None
    if isinstance(args, DayArgs):
        text = args.date or args.day
    elif isinstance(args, CompareArgs):
        text = args.date
    else:
        text = args.as_of
    if not text:
        return None
    return text, resolve_day(text, tz=ctx.timezone, now=ctx.now, prefer=prefer)


async def get_pinned_facts(deps: CoachDeps, ctx: ToolCallContext, _: BaseModel) -> ToolOutcome:
    """The athlete's current facts: `{"facts": {key: {"value", "source", "updated_at"}}}`."""
    facts = await deps.memory.current_facts(ctx.athlete_id)
    return ToolOutcome(
        {
            "facts": {
                k: {"value": v["value"], "source": v["source"], "updated_at": str(v.get("updated_at") or "")[:10]}
                for k, v in facts.items()
            }
        }
    )


async def set_pinned_fact(deps: CoachDeps, ctx: ToolCallContext, args: SetPinnedFactArgs) -> ToolOutcome:
    """Record a proposal; the fact is written (source `user`) only when the athlete confirms."""
    proposal = await deps.athlete_store.create_proposal(
        ctx.athlete_id, args.key, args.value, source_session_id=ctx.session_id
    )
    public = {"proposal_id": proposal["id"], "key": proposal["fact_key"], "value": proposal["value"]}
    return ToolOutcome(
        {**public, "status": "pending", "note": "nothing is saved until the athlete confirms"}, proposal=public
    )


async def search_conversation(deps: CoachDeps, ctx: ToolCallContext, args: SearchConversationArgs) -> ToolOutcome:
    """At most 3 dated snippets (< 400 characters each) of the athlete's older conversations.

    A hit on something the athlete said is followed by the coach's reply to it (the advice usually shares few
    words with the question), as long as the 3 snippets allow. `ranking` says how the archive ranked:
    `hybrid` (full text and embeddings) or `full_text` (no pgvector or no embedding model: paraphrases that share
    no word with the query are missed).
    """
    limit = min(args.max_items, 3)
    result = await deps.memory.recall(ctx.athlete_id, args.query, k=limit, exclude_ids=ctx.window_message_ids)
    hits = result.hits
    replies = await deps.memory.replies_to(ctx.athlete_id, [h.message_id for h in hits if h.role == "user"])
    excluded = set(ctx.window_message_ids)
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


async def get_last_query_context(deps: CoachDeps, ctx: ToolCallContext, _: BaseModel) -> ToolOutcome:
    """The sticky context: what the last tools resolved (empty when nothing was resolved yet)."""
    return ToolOutcome({"last_query_context": ctx.sticky or {}})


async def get_ride_logs(deps: CoachDeps, ctx: ToolCallContext, args: DayArgs) -> ToolOutcome:
    """Rides on a day in the athlete's time zone; records `last_logs_query` and `last_ride`."""
    resolved = _day_from(args, ctx)
    if resolved is None:
        return ToolOutcome({"error": "missing_date", "message": "which day? give date or day"})
    text, day = resolved
    rides = await rides_on_day(deps.athlete_store.pool, ctx.athlete_id, day, ctx.timezone)
    sticky: dict[str, Any] = {"last_logs_query": {"date": day.isoformat(), "day": text}}
    if rides:
        sticky["last_ride"] = {"ride_id": rides[-1]["ride_id"], "date": day.isoformat()}
    return ToolOutcome({"date": day.isoformat(), "weekday": day.strftime("%A"), "rides": rides}, sticky)


async def get_plan(deps: CoachDeps, ctx: ToolCallContext, args: DayArgs) -> ToolOutcome:
    """Planned workouts on a day (a bare weekday means the coming one); records `last_plan_slice`."""
    resolved = _day_from(args, ctx, prefer="future")
    if resolved is None:
        return ToolOutcome({"error": "missing_date", "message": "which day? give date or day"})
    text, day = resolved
    planned = await deps.plans.plan_for_day(ctx.athlete_id, day)
    return ToolOutcome(
        {"date": day.isoformat(), "weekday": day.strftime("%A"), "planned": planned},
        {"last_plan_slice": {"date": day.isoformat(), "day": text}},
    )


async def compare_workout_to_plan(deps: CoachDeps, ctx: ToolCallContext, args: CompareArgs) -> ToolOutcome:
    """Planned versus actual for a day: the given one, else the sticky one, else a gentle error."""
    resolved = _day_from(args, ctx)
    if resolved is not None:
        text, day = resolved
        source = "given"
    else:
        remembered = (ctx.sticky.get("last_logs_query") or ctx.sticky.get("last_plan_slice") or {}).get("date")
        if not remembered:
            return ToolOutcome(
                {
                    "error": "missing_date",
                    "message": "No day given and no earlier logs or plan query in this conversation: ask the "
                    "athlete which day to compare.",
                }
            )
        day, text, source = date.fromisoformat(remembered), remembered, "sticky context"
    planned = await deps.plans.plan_for_day(ctx.athlete_id, day)
    rides = await rides_on_day(deps.athlete_store.pool, ctx.athlete_id, day, ctx.timezone)
    comparison = compare_day(planned, rides)
    return ToolOutcome(
        {"date": day.isoformat(), "weekday": day.strftime("%A"), "date_from": source, "comparison": comparison},
        {"last_logs_query": {"date": day.isoformat(), "day": text}},
    )


async def get_training_load(deps: CoachDeps, ctx: ToolCallContext, args: TrainingLoadArgs) -> ToolOutcome:
    """Fitness, fatigue, form, ramp rate, ACWR, monotony, strain and flags as of a day (default today).

    The Training Load Auditor's computation (`training.flags.assess_load`) on the same inputs
    (`memory.audit_store.AuditStore.read_inputs`), the last 7 days' compliance included; nothing is written.
    """
    resolved = _day_from(args, ctx)
    today = ctx.now.astimezone(ZoneInfo(ctx.timezone)).date()
    as_of = resolved[1] if resolved else today
    facts = await deps.memory.current_facts(ctx.athlete_id)
    inputs = await AuditStore(deps.athlete_store.pool).read_inputs(
        ctx.athlete_id, as_of, ctx.timezone, history_days=LOAD_HISTORY_DAYS, lookback_days=7, ahead_days=0
    )
    recent = compliance_days(
        inputs.planned, inputs.rides_by_day, inputs.plan_start, as_of, open_day=today if as_of == today else None
    )
    snapshot = assess_load(inputs.daily_tss, as_of, recent_days=recent, event_date=event_date_from_facts(facts))
    snapshot["form_zone"] = snapshot["form_zone"]["label"]
    return ToolOutcome(snapshot)


TOOL_FUNCS: dict[str, tuple[ToolFunc, type[BaseModel]]] = {
    "get_pinned_facts": (get_pinned_facts, TOOL_DESCRIPTIONS["get_pinned_facts"][1]),
    "set_pinned_fact": (set_pinned_fact, SetPinnedFactArgs),
    "search_conversation": (search_conversation, SearchConversationArgs),
    "get_last_query_context": (get_last_query_context, TOOL_DESCRIPTIONS["get_last_query_context"][1]),
    "get_ride_logs": (get_ride_logs, DayArgs),
    "get_plan": (get_plan, DayArgs),
    "compare_workout_to_plan": (compare_workout_to_plan, CompareArgs),
    "get_training_load": (get_training_load, TrainingLoadArgs),
}


# Tools that query Postgres directly (the others go through the memory layer, which knows about outages).
POSTGRES_TOOLS = frozenset(
    {"set_pinned_fact", "get_ride_logs", "get_plan", "compare_workout_to_plan", "get_training_load"}
)
_UNAVAILABLE = {
    "error": "memory_unavailable",
    "message": "the athlete's records are unreachable right now; say so, don't guess",
}


async def run_tool(name: str, raw_args: dict[str, Any], deps: CoachDeps, ctx: ToolCallContext) -> ToolOutcome:
    """Validate the arguments and run one tool; every failure becomes an error result the model can read.

    Returns:
        The outcome; on failure its content is `{"error": code, "message": ...}` and nothing is recorded.
    """
    entry = TOOL_FUNCS.get(name)
    if entry is None:
        return ToolOutcome({"error": "unknown_tool", "message": f"there is no tool {name!r}"})
    func, schema = entry
    try:
        args = schema.model_validate(raw_args or {})
    except ValidationError as exc:
        return ToolOutcome({"error": "invalid_arguments", "message": _short(str(exc))})
    unstorable = _unstorable_argument(raw_args or {})
    if unstorable is not None:  # the model's text, bound for Postgres queries and rows
        return ToolOutcome(
            {"error": "invalid_text", "message": f"argument {unstorable!r} holds NUL or a lone surrogate; rephrase"}
        )
    if name in POSTGRES_TOOLS and not deps.memory.pg_breaker.healthy:
        # Known down: answer at once rather than wait for the pool's timeout on every call of the outage.
        return ToolOutcome(_UNAVAILABLE)
    try:
        return await func(deps, ctx, args)
    except DateResolutionError as exc:
        return ToolOutcome({"error": "unknown_date", "message": f"{exc}; ask the athlete which day they mean"})
    except InvalidFactError as exc:
        return ToolOutcome({"error": "invalid_fact", "message": str(exc)})
    except (StoreUnavailableError, psycopg.OperationalError, psycopg_pool.PoolTimeout):
        return ToolOutcome(_UNAVAILABLE)


def _unstorable_argument(args: dict[str, Any]) -> str | None:
    """The name of the first argument whose text (at any depth) holds NUL or a lone surrogate, else None."""

    def bad(value: Any) -> bool:
        if isinstance(value, str):
            return find_unstorable(value) is not None
        if isinstance(value, dict):
            return any(bad(k) or bad(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(bad(v) for v in value)
        return False

    return next((str(name) for name, value in args.items() if bad(name) or bad(value)), None)


def result_text(outcome: ToolOutcome) -> str:
    """The tool result as the model reads it: compact JSON, cut at `MAX_TOOL_RESULT_CHARS`."""
    return _short(json.dumps(outcome.content, default=str, ensure_ascii=False), MAX_TOOL_RESULT_CHARS)


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
