"""The offline responder (docs/architecture.md): a deterministic stand-in for the chat model.

With no model endpoint configured, this chat model routes the athlete's message by intent to the same tools a
language model would call, then composes its reply from their results. Every reply starts with
`[offline coach]`. It calls at most one tool per turn, so it never meets the tool-call cap.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llm.prompt import PROPOSAL_DECISIONS_KEY, describe_decision
from training.dates import find_day_in_text
from training.formatting import format_clock

LABEL = "[offline coach]"

_FACT_KEYS = {
    "goal": "goal",
    "goals": "goal",
    "level": "level",
    "ftp": "ftp_w",
    "injury": "injuries",
    "injuries": "injuries",
    "bike": "equipment",
    "equipment": "equipment",
    "schedule": "schedule",
    "weight": "weight_kg",
}
_STATE_FACT = re.compile(
    r"\bmy (?:current |new )?(goal|goals|level|ftp|injury|injuries|bike|equipment|schedule|weight) "
    r"(?:is|are|=|:)\s+(.+)",
    re.IGNORECASE,
)
_RECALL = re.compile(
    r"what did (?:we|you)|we (?:decided|discussed|talked|agreed)|did we decide|you (?:said|told|suggested)|"
    r"\bremember\b|last time|\brecently\b|earlier|\badvice\b",
    re.IGNORECASE,
)
_COMPARE = re.compile(r"\bcompare|\bcompared\b|against (?:my |the )?plan|versus|\bvs\b", re.IGNORECASE)
_PLAN = re.compile(r"\bplan(?:ned)?\b|\bscheduled\b|\bworkout\b", re.IGNORECASE)
_RIDES = re.compile(r"\blogs?\b|\brides?\b|\brode\b|\bride data\b|\bactivity\b", re.IGNORECASE)
_FACTS = re.compile(r"\bgoal|\blevel\b|\bftp\b|about me|my facts|\binjur", re.IGNORECASE)
_LOAD = re.compile(r"\bload\b|\bfitness\b|\bfatigue\b|\bform\b|\bctl\b|\batl\b|\btsb\b|\btired\b", re.IGNORECASE)


def plan_tool_call(message: str) -> tuple[str, dict[str, Any]] | None:
    """The one tool the offline responder calls for a message, by intent, or None (answer without tools).

    Order matters: stating a fact, recalling a discussion, comparing to the plan, the plan, ride logs, facts,
    training load.
    """
    stated = _STATE_FACT.search(message)
    if stated and "?" not in message:
        key = _FACT_KEYS[stated.group(1).lower()]
        raw = stated.group(2).strip().rstrip(".!")
        value: Any = raw
        if key == "ftp_w" and (number := re.match(r"(\d{2,4})\s*(?:w|watts)?$", raw, re.IGNORECASE)):
            value = int(number.group(1))
        return "propose_fact", {"key": key, "value": value}
    day = find_day_in_text(message, tz="UTC")
    day_text = day[0] if day else None
    if _RECALL.search(message):
        return "search_conversation", {"query": message}
    if _COMPARE.search(message) or ("plan" in message.lower() and re.search(r"\bthat\b", message, re.I)):
        return "compare_workout_to_plan", ({"date": day_text} if day_text else {})
    if _PLAN.search(message):
        return "get_plan", {"day": day_text or "today"}
    if _RIDES.search(message):
        return ("get_ride_logs", {"day": day_text}) if day_text else ("get_last_query_context", {})
    if _FACTS.search(message):
        return "get_pinned_facts", {}
    if _LOAD.search(message):
        return "get_training_load", {}
    return None


def compose_reply(message: str, tool_name: str | None, result: dict[str, Any] | None) -> str:
    """The offline reply for a message, from the result of the tool it called (or from nothing)."""
    if tool_name is None or result is None:
        return (
            f"{LABEL} I'm running without a language model, so I can only look things up. Ask me about your "
            "rides on a day, your plan, how a ride compared to the plan, your goals and facts, your training "
            "load, or what we discussed before."
        )
    if "error" in result:
        return f"{LABEL} " + _error_reply(result)
    text = _REPLIES[tool_name](message, result)
    return f"{LABEL} {text}"


def _error_reply(result: dict[str, Any]) -> str:
    code = result["error"]
    if code in ("missing_date", "unknown_date"):
        return "Which day do you mean? Give me a date (2026-11-19) or say e.g. 'last Thursday'."
    if code == "memory_unavailable":
        return "I can't reach your records right now, so I won't guess. Please ask again in a moment."
    if code == "cap_reached":
        return "I couldn't get what I needed. Could you tell me the missing detail (which day, or what to look up)?"
    return f"That didn't work: {result.get('message', code)}."


def _ftp_reply(value: dict[str, Any]) -> str:
    """Where the FTP in force comes from, in words (the dated athlete value: source, date, evidence)."""
    evidence = value.get("evidence") or {}
    where = {
        "confirmed": "you confirmed it",
        "device": f"your head unit reports it in {evidence.get('file', 'a ride file')}",
        "fitted": "it is fitted from your rides (critical-power model, eFTP)",
    }.get(value.get("source", ""), str(value.get("source")))
    return f"Your FTP is {value['value']:.0f} W: {where}, valid from {value.get('valid_from')}."


def _facts_reply(message: str, result: dict[str, Any]) -> str:
    values = result.get("athlete_values") or {}
    if re.search(r"\bftp\b", message, re.IGNORECASE) and "ftp_w" in values:
        return _ftp_reply(values["ftp_w"])
    facts = result.get("facts") or {}
    asked = [key for word, key in _FACT_KEYS.items() if re.search(rf"\b{word}\b", message, re.IGNORECASE)]
    asked = list(dict.fromkeys(asked))
    if not facts:
        return "I have no facts on file for you yet. Tell me your goal, level or FTP and I'll propose saving it."
    shown = asked or sorted(facts)
    lines = [f"{key}: {_value(facts[key]['value'])}" for key in shown if key in facts]
    missing = [key for key in shown if key not in facts]
    text = "From your pinned facts: " + "; ".join(lines) + "." if lines else ""
    if missing:
        text += f" I don't have your {', '.join(missing)} on file yet: tell me and I'll propose saving it."
    return text.strip()


def _propose_fact_reply(message: str, result: dict[str, Any]) -> str:
    return (
        f"I've proposed saving {result['key']} = {_value(result['value'])} (proposal #{result['proposal_id']}). "
        "It is saved once you accept it."
    )


def _search_reply(message: str, result: dict[str, Any]) -> str:
    snippets = result.get("snippets") or []
    if not snippets:
        return "I found nothing about that in our earlier conversations. Can you remind me?"
    advice = [s for s in snippets if s["role"] == "assistant"]
    said = [s for s in snippets if s["role"] == "user"]
    parts = []
    if said:
        parts.append(f"On {said[0]['date']} you told me: \u201c{said[0]['text']}\u201d")
    if advice:
        parts.append(f"On {advice[0]['date']} I suggested: \u201c{advice[0]['text']}\u201d")
    return " ".join(parts)


def _rides_reply(message: str, result: dict[str, Any]) -> str:
    rides = result.get("rides") or []
    when = f"{result['weekday']} {result['date']}"
    if not rides:
        return f"No ride recorded on {when}."
    parts = []
    for r in rides:
        bits = [f"{format_clock(r.get('moving_s') or 0, seconds=False)} moving"]
        if r.get("distance_m"):
            bits.append(f"{r['distance_m'] / 1000:.1f} km")
        if r.get("normalized_power_w"):
            bits.append(f"NP {r['normalized_power_w']:.0f} W")
        if r.get("tss") is not None:
            bits.append(f"TSS {r['tss']:.0f}")
        elif r.get("hr_tss") is not None:
            bits.append(f"hrTSS {r['hr_tss']:.0f}")
        if r.get("avg_hr_bpm"):
            bits.append(f"HR {r['avg_hr_bpm']:.0f} bpm")
        parts.append(", ".join(bits))
    return f"On {when} you rode: " + "; ".join(parts) + "."


def _plan_reply(message: str, result: dict[str, Any]) -> str:
    planned = result.get("planned") or []
    when = f"{result['weekday']} {result['date']}"
    if not planned:
        return f"Nothing planned on {when}."
    items = []
    for p in planned:
        item = p["kind"]
        if p.get("duration_s"):
            item += f" {format_clock(p['duration_s'], seconds=False)}"
        if p.get("tss") is not None:
            item += f" (TSS {p['tss']:.0f})"
        if p.get("description"):
            item += f": {p['description']}"
        items.append(item)
    return f"Planned on {when}: " + "; ".join(items) + "."


def _compare_reply(message: str, result: dict[str, Any]) -> str:
    comparison = result.get("comparison") or {}
    summary = comparison.get("summary") or json.dumps(comparison)
    return f"{result['weekday']} {result['date']}: {summary}"


def _load_reply(message: str, result: dict[str, Any]) -> str:
    text = (
        f"As of {result.get('as_of')}: fitness (CTL) {result.get('ctl')}, fatigue (ATL) {result.get('atl')}, "
        f"form (TSB) {result.get('tsb')}, ramp rate {result.get('ramp_rate')} per week."
    )
    if result.get("acwr") is not None:
        text += f" Acute:chronic ratio {result['acwr']}."
    flags = result.get("flags") or []
    if flags:
        text += " Worth a look: " + " ".join(f["message"] for f in flags[:2])
    return text


def _context_reply(message: str, result: dict[str, Any]) -> str:
    ctx = result.get("last_query_context") or {}
    last = ctx.get("last_logs_query") or ctx.get("last_plan_slice")
    if not last:
        return "Which day do you mean? Give me a date or say e.g. 'last Thursday'."
    return f"We were last looking at {last['date']}. Ask me about that day's ride or plan."


_REPLIES = {
    "get_pinned_facts": _facts_reply,
    "propose_fact": _propose_fact_reply,
    "search_conversation": _search_reply,
    "get_ride_logs": _rides_reply,
    "get_plan": _plan_reply,
    "compare_workout_to_plan": _compare_reply,
    "get_training_load": _load_reply,
    "get_last_query_context": _context_reply,
}


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class OfflineCoachModel(BaseChatModel):
    """A deterministic chat model: one tool call chosen by intent, then a reply composed from its result."""

    @property
    def _llm_type(self) -> str:
        return "offline-coach"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> OfflineCoachModel:
        """Return self: the offline responder knows the coach's tools already."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.respond(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # dateparser may read the machine's time zone from disk: keep that off the event loop.
        message = await asyncio.to_thread(self.respond, messages)
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def respond(messages: Sequence[BaseMessage]) -> AIMessage:
        """Next message of the turn: a tool call when no tool ran yet, else the reply."""
        last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        message = str(messages[last_human].content)
        results = [m for m in messages[last_human + 1 :] if isinstance(m, ToolMessage)]
        if not results:
            planned = plan_tool_call(message)
            if planned is None:
                return AIMessage(compose_reply(message, None, None))
            name, args = planned
            return AIMessage("", tool_calls=[{"name": name, "args": args, "id": "offline-1", "type": "tool_call"}])
        decided = [
            m.additional_kwargs[PROPOSAL_DECISIONS_KEY]
            for m in messages[last_human + 1 :]
            if isinstance(m, SystemMessage) and m.additional_kwargs.get(PROPOSAL_DECISIONS_KEY)
        ]
        if decided:  # the athlete just decided on a proposal: say what became of the proposal
            return AIMessage(f"{LABEL} Noted: " + "; ".join(describe_decision(d) for d in decided[-1]) + ".")
        last = results[-1]
        try:
            result = json.loads(str(last.content))
        except json.JSONDecodeError:
            result = {"error": "unreadable", "message": str(last.content)[:200]}
        return AIMessage(compose_reply(message, last.name, result))
