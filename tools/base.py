"""What every chat tool shares: the turn it runs in, its outcome, its error results, and how the graph calls it.

A chat tool (`tools.coach_tools`) is a LangChain tool: the model reads its docstring and its annotated
arguments. Two more arguments are injected by the caller and never shown to the model (`InjectedToolArg`, as
in the LangGraph memory-agent template): `stores`, the process's `Stores`, and `turn`, the
`ToolCallContext` of the run (athlete, session, time zone, sticky context, the turn's window ids). The athlete
therefore never comes from the model.

A tool answers `(text, ToolOutcome)` (LangChain's `content_and_artifact` format): the text is what the model
reads, the outcome carries the same result as a dict plus what the graph keeps (sticky-context updates, a
fact proposal).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec

import psycopg
import psycopg_pool
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from pydantic import ValidationError

from memory.errors import InvalidFactError, StoreUnavailableError
from memory.text import find_unstorable
from records.stores import Stores
from training.dates import DateResolutionError

MAX_TOOL_RESULT_CHARS = 4000  # a tool result longer than this is cut before it reaches the prompt

P = ParamSpec("P")


@dataclass
class ToolCallContext:
    """The turn a tool call runs in, built by the chat graph from its `Context` and state.

    Attributes:
        athlete_id: whose records the tool reads and writes (from the run, never from the model).
        session_id: the conversation; a fact proposal names it as its source.
        timezone: IANA zone in which relative days ('last Thursday') are resolved.
        now: the turn's start (UTC-aware); 'today' is its date in `timezone`.
        sticky: what earlier tools resolved (`last_logs_query`, `last_plan_slice`, `last_ride`); read-only here,
            a tool returns its updates in `ToolOutcome.sticky`.
        window_message_ids: ids of the messages already in the prompt's session window (recall skips them).
    """

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


UNAVAILABLE = {
    "error": "memory_unavailable",
    "message": "the athlete's records are unreachable right now; say so, don't guess",
}


def result_text(outcome: ToolOutcome) -> str:
    """The tool result as the model reads it: compact JSON, cut at `MAX_TOOL_RESULT_CHARS`."""
    return _short(json.dumps(outcome.content, default=str, ensure_ascii=False), MAX_TOOL_RESULT_CHARS)


def reports_errors(
    *, postgres: bool = False
) -> Callable[[Callable[P, Awaitable[ToolOutcome]]], Callable[P, Awaitable[tuple[str, ToolOutcome]]]]:
    """Turn a tool body's `ToolOutcome` into `(text, outcome)` and its failures into error results.

    Args:
        postgres: the tool queries Postgres directly (not through the memory layer, which knows about outages):
            while the Postgres circuit breaker of `stores.memory` is open it answers `memory_unavailable` at
            once rather than wait for the pool's timeout on every call of the outage.

    Returns:
        A decorator. The error results are `{"error": code, "message": ...}` with code `unknown_date`,
        `invalid_fact` or `memory_unavailable`; nothing is recorded then.
    """

    def decorate(body: Callable[P, Awaitable[ToolOutcome]]) -> Callable[P, Awaitable[tuple[str, ToolOutcome]]]:
        @functools.wraps(body)
        async def run(*args: P.args, **kwargs: P.kwargs) -> tuple[str, ToolOutcome]:
            stores = kwargs.get("stores")
            if postgres and isinstance(stores, Stores) and not stores.memory.pg_breaker.healthy:
                outcome = ToolOutcome(UNAVAILABLE)
            else:
                try:
                    outcome = await body(*args, **kwargs)
                except DateResolutionError as exc:
                    message = f"{exc}; ask the athlete which day they mean"
                    outcome = ToolOutcome({"error": "unknown_date", "message": message})
                except InvalidFactError as exc:
                    outcome = ToolOutcome({"error": "invalid_fact", "message": str(exc)})
                except (StoreUnavailableError, psycopg.OperationalError, psycopg_pool.PoolTimeout):
                    outcome = ToolOutcome(UNAVAILABLE)
            return result_text(outcome), outcome

        return run

    return decorate


async def run_tool(
    tool: BaseTool, args: dict[str, Any], stores: Stores, turn: ToolCallContext, *, call_id: str = "call"
) -> ToolOutcome:
    """Run one chat tool for the model's arguments, injecting the stores and the turn.

    Args:
        tool: one of `tools.coach_tools.TOOLS`.
        args: the model's arguments (an injected name in them is overwritten, never trusted).
        stores: the memory and stores of the process.
        turn: the run's athlete, session, time zone, sticky context and window ids.
        call_id: the model's tool-call id.

    Returns:
        The outcome; arguments that fail the tool's schema give `{"error": "invalid_arguments", ...}`.
    """
    unstorable = _unstorable_argument(args)
    if unstorable is not None:  # the model's text, bound for Postgres queries and rows
        return ToolOutcome(
            {"error": "invalid_text", "message": f"argument {unstorable!r} holds NUL or a lone surrogate; rephrase"}
        )
    call = {"type": "tool_call", "name": tool.name, "id": call_id, "args": {**args, "stores": stores, "turn": turn}}
    try:
        message = await tool.ainvoke(call)
    except ValidationError as exc:
        return ToolOutcome({"error": "invalid_arguments", "message": _short(str(exc))})
    if isinstance(message, ToolMessage) and isinstance(message.artifact, ToolOutcome):
        return message.artifact
    raise TypeError(f"tool {tool.name!r} did not answer (text, ToolOutcome)")


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


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
