"""The chat tools as LangChain tools, the proposal-decisions note as data, and the one thread-id format: no servers."""

from __future__ import annotations

import inspect
import json

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from graphs.context import thread_id
from llm.offline import OfflineCoachModel
from llm.prompt import PROPOSAL_DECISIONS_KEY, proposal_decisions_note
from tools import coach_tools
from tools.coach_tools import TOOLS

EXPECTED = {
    "get_pinned_facts": set(),
    "propose_fact": {"key", "value"},
    "search_conversation": {"query", "max_items"},
    "get_last_query_context": set(),
    "get_ride_logs": {"date", "day"},
    "get_plan": {"date", "day"},
    "compare_workout_to_plan": {"date"},
    "get_training_load": {"as_of"},
}


def test_each_chat_tool_is_one_langchain_tool_whose_docstring_and_arguments_the_model_reads():
    assert [t.name for t in TOOLS] == list(EXPECTED)
    for t in TOOLS:
        assert isinstance(t, BaseTool) and getattr(coach_tools, t.name) is t
        function = convert_to_openai_tool(t)["function"]
        assert set(function["parameters"]["properties"]) == EXPECTED[t.name], t.name
        assert all(p.get("description") for p in function["parameters"]["properties"].values()), t.name
        doc = inspect.getdoc(t.coroutine)
        assert doc and inspect.cleandoc(function["description"]) == doc, t.name


def test_the_stores_and_the_turn_are_injected_never_shown_to_the_model():
    for t in TOOLS:
        assert {"stores", "turn"} <= set(t.get_input_schema().model_fields), t.name
        shown = json.dumps(convert_to_openai_tool(t))
        assert '"stores"' not in shown and '"turn"' not in shown and "athlete_id" not in shown, t.name


def test_set_pinned_fact_is_named_for_what_it_does():
    assert "set_pinned_fact" not in EXPECTED and "propose" in coach_tools.propose_fact.description.lower()


def test_the_offline_responder_reads_decisions_from_message_data_not_from_its_text():
    decisions = [{"proposal_id": 7, "key": "goal", "value": "a century", "status": "accepted"}]
    turn = [
        SystemMessage("s"),
        HumanMessage("my goal is a century"),
        AIMessage("", tool_calls=[{"name": "propose_fact", "args": {}, "id": "offline-1", "type": "tool_call"}]),
        ToolMessage('{"proposal_id": 7, "key": "goal", "value": "a century"}', tool_call_id="offline-1"),
    ]
    note = proposal_decisions_note(decisions)
    assert note.additional_kwargs[PROPOSAL_DECISIONS_KEY] == decisions
    reply = OfflineCoachModel.respond([*turn, SystemMessage("(the wording is the model's business)", **{
        "additional_kwargs": {PROPOSAL_DECISIONS_KEY: decisions}})])  # fmt: skip
    assert reply.content == '[offline coach] Noted: goal = "a century": accepted by the athlete.'
    # A system text that merely looks like the old note is not read as decisions.
    lookalike = OfflineCoachModel.respond([*turn, SystemMessage("Fact proposals: goal = 1: confirmed. Tell")])
    assert "Noted" not in str(lookalike.content)


def test_thread_ids_have_one_format():
    assert thread_id("chat", "ana", "s1") == "chat:ana:s1"
    one_off = thread_id("audit", "ana")
    kind, athlete, key = one_off.split(":")
    assert (kind, athlete, len(key)) == ("audit", "ana", 32) and thread_id("audit", "ana") != one_off
