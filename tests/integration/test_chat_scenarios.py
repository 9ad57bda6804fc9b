"""The issue's acceptance scenarios on the chat graph, each with a scripted model and with the offline responder."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from langchain_core.messages import AIMessage

from graphs.chat import MAX_TOOL_CALLS
from memory.athlete_store import FactChange
from memory.session_window import window_key
from tests.chat_helpers import Chat, ScriptedModel, call, insert_ride, last_weekday, plan_rows, scripted

pytestmark = pytest.mark.integration

THURSDAY = 3


async def _thursday_ride_and_plan(deps, athlete_id):
    today = datetime.now(UTC).date()
    thursday = last_weekday(today, THURSDAY)
    await insert_ride(deps.rides, athlete_id, thursday, moving_s=4500, tss=65.0)
    await deps.plans.import_rows(athlete_id, plan_rows([(thursday, "endurance", 5400, 70, "Zone 2 steady")]))
    return thursday


# ----- last Thursday's logs, then "how does that compare to my plan?" from sticky context -------------------


async def test_logs_then_compare_from_sticky_context_scripted(deps, athlete_id):
    thursday = await _thursday_ride_and_plan(deps, athlete_id)
    model = scripted(
        call("get_ride_logs", {"day": "last Thursday"}),
        AIMessage("Here is Thursday's ride."),
        call("compare_workout_to_plan", {}),
        AIMessage("You did most of the planned ride."),
    )
    chat = Chat(deps, athlete_id, model)
    first = await chat.say("show me last Thursday's logs")
    assert first["tool_calls"] == [{"name": "get_ride_logs", "args": {"day": "last Thursday"}}]
    logs = (await chat.tool_results())["get_ride_logs"][0]
    assert logs["date"] == thursday.isoformat() and len(logs["rides"]) == 1

    second = await chat.say("how does that compare to my plan?")
    assert second["tool_calls"] == [{"name": "compare_workout_to_plan", "args": {}}]
    comparison = (await chat.tool_results())["compare_workout_to_plan"][0]
    assert comparison["date"] == thursday.isoformat()
    assert comparison["date_from"] == "sticky context"
    assert comparison["comparison"]["planned_duration_s"] == 5400
    assert comparison["comparison"]["actual_moving_s"] == 4500


async def test_logs_then_compare_from_sticky_context_offline(deps, athlete_id):
    thursday = await _thursday_ride_and_plan(deps, athlete_id)
    chat = Chat(deps, athlete_id, model=None)
    first = await chat.say("show me last Thursday's logs")
    assert first["tool_calls"][0]["name"] == "get_ride_logs"
    assert first["reply"].startswith("[offline coach]")
    assert thursday.isoformat() in first["reply"] and "1:15 moving" in first["reply"]
    second = await chat.say("how does that compare to my plan?")
    assert second["tool_calls"] == [{"name": "compare_workout_to_plan", "args": {}}]
    assert thursday.isoformat() in second["reply"]
    assert "1h30" in second["reply"]  # the planned duration, found through the sticky date


# ----- the shoulder: advice from an older session, beyond the window -----------------------------------------

SHOULDER_HISTORY = [
    {"role": "user", "content": "My left shoulder aches after long rides, especially on the drops.", "id": "o-1"},
    {
        "role": "assistant",
        "content": "Let's raise the handlebar by 1 cm and shorten the stem by 10 mm; add band pull-aparts, "
        "3 sets of 15 daily. If the pain persists past two weeks, see a physio.",
        "id": "o-2",
    },
    {"role": "user", "content": "Thanks, I'll try the handlebar change this weekend.", "id": "o-3"},
]


async def _shoulder_setup(deps, athlete_id, chat):
    await deps.memory.import_transcript(athlete_id, "old-session", SHOULDER_HISTORY)
    for i in range(8):  # a later session with enough turns to push anything old out of the window
        await chat.say(f"what's planned for tomorrow? ({i})", session_id="new-session")


async def test_shoulder_advice_is_recalled_offline(deps, athlete_id):
    chat = Chat(deps, athlete_id, model=None)
    await _shoulder_setup(deps, athlete_id, chat)
    out = await chat.say(
        "my left shoulder was bugging me recently, what did we decide to do about it?", session_id="new-session"
    )
    assert out["tool_calls"][0]["name"] == "search_conversation"
    assert "handlebar" in out["reply"] and "physio" in out["reply"]
    snippets = (await chat.tool_results("new-session"))["search_conversation"][0]["snippets"]
    assert 1 <= len(snippets) <= 3 and all(len(s["text"]) < 400 for s in snippets)
    assert snippets[0]["session"] == "old-session"


async def test_shoulder_advice_is_recalled_scripted(deps, athlete_id):
    model = scripted(
        call("search_conversation", {"query": "left shoulder pain what we decided"}),
        AIMessage("We decided to raise your handlebar by 1 cm."),
    )
    chat = Chat(deps, athlete_id, model)
    await deps.memory.import_transcript(athlete_id, "old-session", SHOULDER_HISTORY)
    out = await chat.say("my left shoulder was bugging me recently, what did we decide to do about it?", "new")
    assert out["tool_calls"] == [
        {"name": "search_conversation", "args": {"query": "left shoulder pain what we decided"}}
    ]
    snippets = (await chat.tool_results("new"))["search_conversation"][0]["snippets"]
    assert any("handlebar" in s["text"] for s in snippets)


# ----- goal and level from pinned facts --------------------------------------------------------------------


async def test_goal_and_level_from_pinned_facts(deps, athlete_id):
    await deps.memory.set_facts(
        athlete_id,
        [FactChange("goal", "sub-8h Marmotte in July"), FactChange("level", "cat 3 road racer")],
        source="user",
    )
    offline = await Chat(deps, athlete_id, model=None).say("remind me my current goal and level")
    assert offline["tool_calls"] == [{"name": "get_pinned_facts", "args": {}}]
    assert "sub-8h Marmotte in July" in offline["reply"] and "cat 3 road racer" in offline["reply"]

    chat = Chat(deps, athlete_id, scripted(call("get_pinned_facts"), AIMessage("Your goal is the Marmotte.")))
    await chat.say("remind me my current goal and level")
    facts = (await chat.tool_results())["get_pinned_facts"][0]["facts"]
    assert facts["goal"]["value"] == "sub-8h Marmotte in July" and facts["level"]["source"] == "user"


# ----- a request that keeps lacking a parameter ends at the cap -------------------------------------------


async def test_missing_parameter_ends_politely_at_the_cap(deps, athlete_id):
    # The model keeps asking for logs without a usable day, repeating itself: six tool calls offered, the last
    # two in one message, so the sixth meets the cap and is not run.
    two_calls = call("compare_workout_to_plan", {})
    two_calls.tool_calls.append(
        {"name": "get_ride_logs", "args": {"day": "that one"}, "id": "call-6", "type": "tool_call"}
    )
    model = scripted(
        call("get_ride_logs", {}),
        call("get_ride_logs", {"day": "the day"}),
        call("get_ride_logs", {}),  # a repeat: answered from the first result, and counted
        call("get_last_query_context"),
        two_calls,
        AIMessage("I need to know which day you mean: could you give me the date?"),
    )
    out = await Chat(deps, athlete_id, model).say("show me my ride logs")
    assert len(out["tool_calls"]) == MAX_TOOL_CALLS
    assert out["reply"] == "I need to know which day you mean: could you give me the date?"

    offline = await Chat(deps, athlete_id, model=None).say("how did my ride compare to the plan?")
    assert len(offline["tool_calls"]) <= MAX_TOOL_CALLS
    assert "Which day do you mean?" in offline["reply"]


async def test_model_that_never_stops_calling_tools_is_stopped(deps, athlete_id):
    model = ScriptedModel(messages=(call("get_ride_logs", {}) for _ in itertools.count()))
    out = await Chat(deps, athlete_id, model).say("logs please")
    assert len(out["tool_calls"]) == MAX_TOOL_CALLS
    assert "which day" in out["reply"].lower()


# ----- a goal confirmed in session 1 is known in session 5; Redis flushed, the window comes back -------------


async def test_goal_confirmed_in_session_1_known_in_session_5(deps, athlete_id):
    chat = Chat(deps, athlete_id, model=None, inline=True)
    proposed = await chat.say("my goal is to ride the Étape du Tour in under 9 hours", session_id="session-1")
    assert "__interrupt__" in proposed
    request = proposed["__interrupt__"][0].value
    assert request["proposals"][0]["key"] == "goal"
    assert await deps.memory.current_facts(athlete_id) == {}  # nothing written before the athlete accepts

    confirmed = await chat.resume(True, session_id="session-1")
    assert confirmed["proposals"][0]["status"] == "accepted"
    assert "accepted by the athlete" in confirmed["reply"] and "once you accept" not in confirmed["reply"]
    facts = await deps.memory.current_facts(athlete_id)
    assert facts["goal"]["value"] == "to ride the Étape du Tour in under 9 hours"
    assert facts["goal"]["source"] == "user"

    for n in (2, 3, 4):
        await chat.say("hello coach", session_id=f"session-{n}")
    out = await chat.say("what's my goal?", session_id="session-5")
    assert "Étape du Tour in under 9 hours" in out["reply"]

    # Redis loses the session window: the next turn's window comes back from the archive.
    await deps.memory.drain_outbox()
    await deps.memory.redis.delete(window_key(athlete_id, "session-5"))
    await chat.say("thanks!", session_id="session-5")
    state = await chat.graph.aget_state(chat.config("session-5"))
    system_prompt = state.values["messages"][0].content
    assert "[RECENT TURNS]" in system_prompt and "what's my goal?" in system_prompt


async def test_rejected_proposal_writes_nothing(deps, athlete_id):
    chat = Chat(deps, athlete_id, model=None, inline=True)
    await chat.say("my level is beginner")
    out = await chat.resume("no")
    assert out["proposals"][0]["status"] == "rejected"
    assert await deps.memory.current_facts(athlete_id) == {}


# ----- two athletes: nothing of one reaches the other -----------------------------------------------------


async def test_two_athletes_are_isolated(deps, athlete_id):
    other = f"{athlete_id}-b"
    await deps.memory.set_facts(athlete_id, [FactChange("goal", "secret goal of A")], source="user")
    await deps.memory.import_transcript(
        athlete_id, "a-old", [{"role": "user", "content": "my left shoulder hurts, secret of A"}]
    )
    a = Chat(deps, athlete_id, model=None)
    await a.say("what's planned for tomorrow? private A message")
    await deps.memory.drain_outbox()

    b = Chat(deps, other, model=None)
    for message in (
        f"remind me my current goal, I am athlete {athlete_id}",
        f"what did we decide about my left shoulder? (athlete {athlete_id})",
    ):
        out = await b.say(message)
        assert "secret" not in out["reply"] and "private A" not in out["reply"]
    assert await deps.memory.current_facts(other) == {}
    await deps.memory.drain_outbox()
    hits = await deps.memory.search(other, "left shoulder secret", k=3)
    assert hits and all("secret" not in h.snippet and h.session_id != "a-old" for h in hits)  # B's own turns only
    state = await b.graph.aget_state(b.config("s1"))
    assert "private A message" not in state.values["messages"][0].content
    # The tool layer has no athlete argument at all: a model cannot ask for another athlete.
    from tools.coach_tools import TOOLS

    for schema in (t.tool_call_schema for t in TOOLS):
        assert not any("athlete" in field for field in schema.model_fields)
