"""The offline responder's routing and replies, and the prompt assembly: no servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

from llm.offline import OfflineCoachModel, compose_reply, plan_tool_call
from llm.prompt import MEMORY_NOTICES, assemble_prompt, facts_block, prompt_tokens
from memory.session_window import estimate_tokens


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("show me last Thursday's logs", ("get_ride_logs", {"day": "last Thursday"})),
        ("how does that compare to my plan?", ("compare_workout_to_plan", {})),
        ("compare yesterday's ride to the plan", ("compare_workout_to_plan", {"date": "yesterday"})),
        ("what's planned for tomorrow?", ("get_plan", {"day": "tomorrow"})),
        ("remind me my current goal and level", ("get_pinned_facts", {})),
        ("my goal is a sub-5h century", ("propose_fact", {"key": "goal", "value": "a sub-5h century"})),
        ("my ftp is 285 W", ("propose_fact", {"key": "ftp_w", "value": 285})),
        (
            "my left shoulder was bugging me recently, what did we decide to do about it?",
            (
                "search_conversation",
                {"query": "my left shoulder was bugging me recently, what did we decide to do about it?"},
            ),
        ),
        ("how is my fitness and fatigue?", ("get_training_load", {})),
        ("show me my ride", ("get_last_query_context", {})),
        ("hello there", None),
    ],
)
def test_offline_routing(message, expected):
    assert plan_tool_call(message) == expected


def test_offline_turn_is_one_tool_call_then_a_labelled_reply():
    model = OfflineCoachModel()
    first = model.invoke([SystemMessage("s"), HumanMessage("what's planned for tomorrow?")])
    assert first.tool_calls[0]["name"] == "get_plan"
    result = '{"date": "2026-11-27", "weekday": "Friday", "planned": [{"kind": "endurance", "duration_s": 5400, "tss": 70, "description": "Z2"}]}'
    second = model.invoke(
        [
            SystemMessage("s"),
            HumanMessage("what's planned for tomorrow?"),
            first,
            ToolMessage(result, tool_call_id="offline-1", name="get_plan"),
        ]
    )
    assert not second.tool_calls
    assert second.content == "[offline coach] Planned on Friday 2026-11-27: endurance 1:30 (TSS 70): Z2."


def test_offline_replies_to_errors_ask_for_what_is_missing():
    assert "Which day do you mean?" in compose_reply("compare", "compare_workout_to_plan", {"error": "missing_date"})
    assert "won't guess" in compose_reply("goal?", "get_pinned_facts", {"error": "memory_unavailable"})
    assert compose_reply("hi", None, None).startswith("[offline coach]")


def test_offline_recall_cites_the_advice():
    result = {
        "snippets": [
            {"date": "2026-11-02", "role": "user", "session": "a", "text": "my left shoulder aches"},
            {"date": "2026-11-02", "role": "assistant", "session": "a", "text": "raise the handlebar 1 cm"},
        ]
    }
    reply = compose_reply("what did we decide?", "search_conversation", result)
    assert "I suggested: \u201craise the handlebar 1 cm\u201d" in reply and "2026-11-02" in reply


def test_prompt_holds_facts_window_and_message_only():
    now = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    window = "[RECENT TURNS]\n- U: hi\n- A: hello"
    prompt = assemble_prompt(
        message="and tomorrow?",
        facts={"goal": {"value": "Marmotte"}},
        window_block=window,
        now_local=now,
        memory_status="ok",
    )
    assert [type(m) for m in prompt] == [SystemMessage, HumanMessage]
    system = prompt[0].content
    assert "Thursday 2026-11-26" in system and "- goal: Marmotte" in system and window in system
    assert "use them when unsure; don't guess" in system
    assert prompt[1].content == "and tomorrow?"
    assert prompt_tokens(prompt) == estimate_tokens(system) + estimate_tokens("and tomorrow?")


def test_prompt_says_plainly_when_memory_is_unavailable():
    now = datetime(2026, 11, 26, tzinfo=UTC)
    prompt = assemble_prompt(
        message="hi", facts={"goal": {"value": "x"}}, window_block="", now_local=now, memory_status="unavailable"
    )
    assert MEMORY_NOTICES["unavailable"] in prompt[0].content
    assert "[ATHLETE FACTS]" not in prompt[0].content


def test_facts_block_cuts_long_values():
    block = facts_block({"notes": {"value": "x" * 1000}, "ftp_w": {"value": 280}})
    assert "- ftp_w: 280" in block and len(block) < 300
    assert facts_block({}) == "[ATHLETE FACTS]\n(none on file yet)"
