"""The chat coach graph (docs/architecture.md, the path of a chat turn): one turn per run, with bounded state.

    START ─► load_context ─► agent ─┬─► tools ─┬─► agent …
                                    │          └─► confirm_facts ─► agent   (a fact was proposed, inline mode)
                                    └─► save_turn ─► END

Input is the athlete's new message only; the client never sends history. `load_context` drops the previous
turn's messages and assembles the prompt (`llm.prompt`) from the facts, the session window and the message.
`tools` runs at most `MAX_TOOL_CALLS` calls per turn and answers a repeated call from the earlier result.
`save_turn` appends the exchange to the session window and the archive. The athlete comes from `Context`.

The message is checked first, in `load_context`, before anything is read, saved or checkpointed: an empty or
too long one raises `InvalidMessageError` (`invalid_message`); one holding a character Postgres cannot store
(NUL, a lone surrogate) raises `memory.text.InvalidTextError` (`invalid_text`). The model's and the tools' text
is normalised (`memory.text.clean_text`) before it is archived, so no part of a turn is refused by Postgres later.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, RemoveMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from config.settings import get_settings
from graphs.context import Context, run_context
from graphs.inputs import ask_for_decisions
from llm.models import get_chat_model
from llm.offline import OfflineCoachModel
from llm.prompt import CAP_NOTE, assemble_prompt, prompt_tokens, proposal_decisions_note
from memory.athlete_store import validate_athlete_id
from memory.errors import ProposalNotFoundError
from memory.messages import ChatMessage, new_message_id
from memory.text import clean_text, validate_text
from records.proposals import decide_proposal
from records.stores import Stores, get_stores
from tools.base import ToolCallContext, ToolOutcome, result_text, run_tool
from tools.coach_tools import TOOLS
from training.dates import zone_info

MAX_TOOL_CALLS = 5
STATUS_ORDER = ("ok", "degraded:dead_letter", "degraded:redis", "degraded:postgres", "unavailable")
UNAVAILABLE_NOTICE = (
    "(Memory is unavailable right now: I can't see your saved facts or our earlier conversations, and this "
    "exchange may not be saved.)"
)
CAP_FALLBACK = (
    "I couldn't get everything I needed within this turn. Could you tell me what's missing, for example which "
    "day you mean?"
)


class InvalidMessageError(ValueError):
    """The athlete's message is empty or longer than `Settings.max_message_chars`."""

    code = "invalid_message"


class ChatInput(TypedDict):
    """What a client sends: the new message, nothing else (no history, no athlete id)."""

    message: str


class ChatOutput(TypedDict, total=False):
    """What a turn returns."""

    reply: str
    tool_calls: list[dict[str, Any]]
    memory_status: str
    prompt_tokens: int
    proposals: list[dict[str, Any]]


class ChatState(ChatInput, ChatOutput, total=False):
    """Per-turn working state plus the sticky context, which outlives the turn."""

    messages: Annotated[list[AnyMessage], add_messages]
    sticky: dict[str, Any]
    turn_id: str
    turn_started_at: str
    window_ids: list[str]
    tool_results: dict[str, str]
    awaiting_confirmation: list[dict[str, Any]]


_UNSET: Any = object()


def _worst(*statuses: str) -> str:
    return max(statuses, key=STATUS_ORDER.index)


def _call_key(name: str, args: dict[str, Any]) -> str:
    return name + ":" + json.dumps(args, sort_keys=True, default=str)


def build_graph(
    checkpointer: Checkpointer = None,
    stores: Stores | None = None,
    model: BaseChatModel | None = _UNSET,
) -> Any:
    """Build and compile the chat graph.

    Args:
        checkpointer: LangGraph checkpointer (the command line passes `CoachPostgresSaver`); None for the
            exported graph.
        stores: the memory and stores the tools use; None takes the process-wide ones (`records.stores`).
        model: the chat model; by default the model factory's, or the offline responder when none is configured.

    Returns:
        The compiled graph: invoke with `{"message": ...}` and `context=Context(athlete_id=..., session_id=...)`.
    """
    if model is _UNSET:
        model = get_chat_model()
    chat_model: BaseChatModel = model if model is not None else OfflineCoachModel()
    with_tools = chat_model.bind_tools(TOOLS)
    tools_by_name = {t.name: t for t in TOOLS}
    max_chars = get_settings().max_message_chars

    async def deps() -> Stores:
        return stores if stores is not None else await get_stores()

    async def load_context(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = run_context(runtime)
        athlete_id = validate_athlete_id(ctx.athlete_id)
        message = state.get("message")
        if not isinstance(message, str) or not message.strip():
            raise InvalidMessageError("the message is empty")
        if len(message) > max_chars:
            raise InvalidMessageError(f"the message is {len(message)} characters long; the limit is {max_chars}")
        validate_text(message, "message")
        d = await deps()
        loaded = await d.memory.load(athlete_id, ctx.session_id)
        now = datetime.now(UTC)
        prompt = assemble_prompt(
            message=message,
            facts=loaded.facts if loaded.facts_available else None,
            window_block=loaded.window_block,
            now_local=now.astimezone(zone_info(ctx.timezone)),
            memory_status=loaded.status,
        )
        return {
            "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *prompt],
            "turn_id": str(uuid.uuid4()),
            "turn_started_at": now.isoformat(),
            "window_ids": list(loaded.window_message_ids),
            "memory_status": loaded.status,
            "prompt_tokens": prompt_tokens(prompt),
            "tool_calls": [],
            "tool_results": {},
            "proposals": [],
            "awaiting_confirmation": [],
            "reply": "",
        }

    async def agent(state: ChatState) -> dict[str, Any]:
        if len(state.get("tool_calls") or []) >= MAX_TOOL_CALLS:
            response = await chat_model.ainvoke([*state["messages"], SystemMessage(CAP_NOTE)])
            if isinstance(response, AIMessage) and response.tool_calls:
                # At the cap no tool runs again: keep only the words, or ask for what is missing.
                text = response.content if isinstance(response.content, str) and response.content.strip() else ""
                response = AIMessage(text or CAP_FALLBACK, id=response.id)
            return {"messages": [response]}
        return {"messages": [await with_tools.ainvoke(state["messages"])]}

    def route_after_agent(state: ChatState) -> str:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return "tools"
        return "save_turn"

    async def tools(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = run_context(runtime)
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        made = list(state.get("tool_calls") or [])
        results = dict(state.get("tool_results") or {})
        sticky = dict(state.get("sticky") or {})
        proposals = list(state.get("proposals") or [])
        new_proposals: list[dict[str, Any]] = []
        out: list[ToolMessage] = []
        d = await deps()
        for call in last.tool_calls:
            name, args = call["name"], call.get("args") or {}
            key = _call_key(name, args)
            if len(made) >= MAX_TOOL_CALLS:
                content = json.dumps(
                    {"error": "cap_reached", "message": f"not run: at most {MAX_TOOL_CALLS} tool calls per turn"}
                )
            elif key in results:
                made.append({"name": name, "args": args, "repeated": True})
                content = results[key]
            else:
                made.append({"name": name, "args": args})
                turn = ToolCallContext(
                    athlete_id=ctx.athlete_id,
                    session_id=ctx.session_id,
                    timezone=ctx.timezone,
                    now=datetime.fromisoformat(state["turn_started_at"]),
                    sticky=dict(sticky),
                    window_message_ids=state.get("window_ids") or [],
                )
                tool = tools_by_name.get(name)
                outcome = (
                    await run_tool(tool, args, d, turn, call_id=str(call["id"]))
                    if tool is not None
                    else ToolOutcome({"error": "unknown_tool", "message": f"there is no tool {name!r}"})
                )
                sticky.update(outcome.sticky)
                if outcome.proposal is not None:
                    proposals.append(outcome.proposal)
                    new_proposals.append(outcome.proposal)
                content = result_text(outcome)
                results[key] = content
            out.append(ToolMessage(content, tool_call_id=call["id"], name=name))
        update: dict[str, Any] = {
            "messages": out,
            "tool_calls": made,
            "tool_results": results,
            "sticky": sticky,
            "proposals": proposals,
        }
        if ctx.confirm_facts_inline and new_proposals:
            update["awaiting_confirmation"] = new_proposals
        return update

    def route_after_tools(state: ChatState) -> str:
        return "confirm_facts" if state.get("awaiting_confirmation") else "agent"

    async def confirm_facts(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        pending = state.get("awaiting_confirmation") or []
        request = {"type": "confirm_facts", "proposals": pending}
        decisions = ask_for_decisions(request, [p["proposal_id"] for p in pending])  # asks again if it can't read
        athlete_id = run_context(runtime).athlete_id
        d = await deps()
        decided, proposals = [], []
        for p in state.get("proposals") or []:
            if p["proposal_id"] in decisions:
                decision = decisions[p["proposal_id"]]
                try:
                    row = await decide_proposal(d.athlete_store, "fact", athlete_id, p["proposal_id"], decision)
                    status = row["status"]
                except ProposalNotFoundError:
                    status = "no longer pending"
                p = {**p, "status": status}
                decided.append(p)
            proposals.append(p)
        return {"messages": [proposal_decisions_note(decided)], "awaiting_confirmation": [], "proposals": proposals}

    async def save_turn(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = run_context(runtime)
        last = state["messages"][-1]
        reply = last.content if isinstance(last, AIMessage) and isinstance(last.content, str) else ""
        reply = clean_text(reply).strip() or CAP_FALLBACK
        d = await deps()
        status = state.get("memory_status", "ok")
        if status == "unavailable":
            # The servers may have returned while the model answered (its tools may have read the facts since):
            # the notice, and the status, go by what the memory is now, after a re-probe.
            status = await d.memory.refresh_health()
        if status == "unavailable" and UNAVAILABLE_NOTICE not in reply:
            reply = f"{reply}\n\n{UNAVAILABLE_NOTICE}"
        started = datetime.fromisoformat(state["turn_started_at"])
        turn_id = state["turn_id"]
        archived = [
            ChatMessage(
                id=new_message_id(),
                athlete_id=ctx.athlete_id,
                session_id=ctx.session_id,
                role="user",
                content=state["message"],
                created_at=started,
                turn_id=turn_id,
            )
        ]
        for m in state["messages"]:
            if isinstance(m, ToolMessage):
                archived.append(
                    ChatMessage(
                        id=new_message_id(),
                        athlete_id=ctx.athlete_id,
                        session_id=ctx.session_id,
                        role="tool",
                        content=clean_text(str(m.content)),
                        created_at=datetime.now(UTC),
                        turn_id=turn_id,
                        tool_name=m.name,
                    )
                )
        archived.append(
            ChatMessage(
                id=new_message_id(),
                athlete_id=ctx.athlete_id,
                session_id=ctx.session_id,
                role="assistant",
                content=reply,
                created_at=datetime.now(UTC),
                turn_id=turn_id,
            )
        )
        saved = await d.memory.save_turn(ctx.athlete_id, ctx.session_id, archived)
        return {
            "reply": reply,
            "memory_status": _worst(status, saved),
            "tool_calls": [{"name": c["name"], "args": c["args"]} for c in state.get("tool_calls") or []],
        }

    builder = StateGraph(ChatState, context_schema=Context, input_schema=ChatInput, output_schema=ChatOutput)
    builder.add_node("load_context", load_context)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_node("confirm_facts", confirm_facts)
    builder.add_node("save_turn", save_turn)
    builder.add_edge(START, "load_context")
    builder.add_edge("load_context", "agent")
    builder.add_conditional_edges("agent", route_after_agent, ["tools", "save_turn"])
    builder.add_conditional_edges("tools", route_after_tools, ["agent", "confirm_facts"])
    builder.add_edge("confirm_facts", "agent")
    builder.add_edge("save_turn", END)
    return builder.compile(checkpointer=checkpointer, name="chat")


graph = build_graph()
