"""The one place a chat turn's prompt is assembled (docs/architecture.md, the path of a chat turn).

A turn's prompt is: a short system prompt, a compact facts block, the recent-turns block of the session window,
and the athlete's new message. Nothing else: older discussion is reached through tools, so the prompt does not
grow with the conversation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from memory.session_window import estimate_tokens

SYSTEM_PROMPT = (
    "You are an endurance cycling coach talking with one athlete. Be concise, concrete and kind. "
    "You have tools to fetch pinned facts, recent context and older snippets; use them when unsure; don't guess."
)

MEMORY_NOTICES: dict[str, str] = {
    "degraded:dead_letter": (
        "Note: an earlier message of this conversation could not be saved to the long-term archive. If the "
        "athlete refers to it, say it may be missing from your records."
    ),
    "degraded:postgres": (
        "Note: the athlete's long-term records (older conversations, rides, plan) are unreachable right now. "
        "If the answer needs them, say so plainly."
    ),
    "unavailable": (
        "Note: memory is unavailable right now: you cannot see this athlete's facts or earlier conversations, "
        "and this exchange may not be saved. Say so plainly when it matters; never pretend to remember."
    ),
}

CAP_NOTE = (
    "The tool-call cap for this turn is reached: no more tools. Answer now with what you have, and ask the "
    "athlete for whatever is still missing."
)

MAX_FACT_CHARS = 200  # a fact value longer than this is cut in the facts block

PROPOSAL_DECISIONS_KEY = "proposal_decisions"
"""Where a decisions note carries its decisions as data (`SystemMessage.additional_kwargs`)."""


def proposal_decisions_note(decisions: Sequence[dict[str, Any]]) -> SystemMessage:
    """The note the chat graph adds once the athlete decided on fact proposals.

    Args:
        decisions: one `{"proposal_id", "key", "value", "status"}` per decided proposal; status is
            `accepted`, `rejected` or `no longer pending`.

    Returns:
        A system message: its text tells the model what became of each proposal; the same decisions ride along
        as data under `additional_kwargs[PROPOSAL_DECISIONS_KEY]` for code that reads them (the offline
        responder), so nothing has to parse the text.
    """
    text = "; ".join(describe_decision(d) for d in decisions)
    return SystemMessage(
        f"Fact proposals: {text}. Tell the athlete briefly.",
        additional_kwargs={PROPOSAL_DECISIONS_KEY: [dict(d) for d in decisions]},
    )


def describe_decision(decision: dict[str, Any]) -> str:
    """`key = value: status by the athlete`, the value as JSON (e.g. `goal = "a century": accepted ...`)."""
    return f"{decision['key']} = {json.dumps(decision['value'])}: {decision['status']} by the athlete"


def facts_block(facts: dict[str, dict[str, Any]] | None) -> str:
    """`[ATHLETE FACTS]` followed by one `- key: value` line per current fact.

    `None` means the facts could not be read: the block says so, so that the model does not take it for "none".
    """
    if facts is None:
        return "[ATHLETE FACTS]\n(unreachable right now: don't assume the athlete has none; say you can't check)"
    if not facts:
        return "[ATHLETE FACTS]\n(none on file yet)"
    lines = ["[ATHLETE FACTS]"]
    for key in sorted(facts):
        value = facts[key]["value"]
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > MAX_FACT_CHARS:
            text = text[: MAX_FACT_CHARS - 1] + "…"
        lines.append(f"- {key}: {text}")
    return "\n".join(lines)


def assemble_prompt(
    *,
    message: str,
    facts: dict[str, dict[str, Any]] | None,
    window_block: str,
    now_local: datetime,
    memory_status: str,
) -> list[BaseMessage]:
    """Build the turn's prompt.

    Args:
        message: the athlete's new message.
        facts: the athlete's current facts (`{key: {"value", ...}}`), or None when they could not be read.
        window_block: the `[RECENT TURNS]` block of the session window ("" when there is none).
        now_local: the current time in the athlete's time zone (so "today" and weekdays resolve).
        memory_status: `ok`, `degraded:redis`, `degraded:postgres` or `unavailable`.

    Returns:
        `[SystemMessage, HumanMessage]`.
    """
    parts = [SYSTEM_PROMPT, f"Today is {now_local:%A %Y-%m-%d} ({now_local.tzinfo})."]
    if memory_status in MEMORY_NOTICES:
        parts.append(MEMORY_NOTICES[memory_status])
    if memory_status != "unavailable":
        parts.append(facts_block(facts))
    if window_block:
        parts.append(window_block)
    return [SystemMessage("\n\n".join(parts)), HumanMessage(message)]


def prompt_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimated tokens of a prompt (see `estimate_tokens`)."""
    return sum(estimate_tokens(m.content if isinstance(m.content, str) else json.dumps(m.content)) for m in messages)
