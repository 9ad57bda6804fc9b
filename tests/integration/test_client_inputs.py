"""Client-controlled inputs that used to crash a run: an unknown time zone, a bad answer, a bad `max_rides`.

Each is refused where it comes in with a code and a message (exit 2 on the command line), never a traceback,
and a bad answer to a question asks it again instead of failing the run and losing the question.
"""

from __future__ import annotations

import json

import pytest

from graphs.context import Context
from graphs.inputs import InvalidInputError
from graphs.pending_debriefs import build_graph as build_pending_graph
from records.stores import Stores
from tests.chat_helpers import Chat
from tests.integration.test_cli_debrief import coach

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("tz", ["Mars/Olympus", "../../etc/passwd"])
def test_chat_refuses_an_unknown_time_zone(athlete_id: str, tz: str) -> None:
    # "training load" makes the offline responder call a tool that needs the zone: it used to crash there.
    proc = coach("chat", "--athlete", athlete_id, "--tz", tz, "--message", "what is my training load?")
    assert proc.returncode == 2 and "(invalid_timezone)" in proc.stderr and "Traceback" not in proc.stderr
    as_json = coach("chat", "--athlete", athlete_id, "--tz", tz, "--message", "what is my training load?", "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_timezone"
    assert json.loads(coach("search", "--athlete", athlete_id, "training", "--json").stdout) == []  # nothing saved


@pytest.mark.parametrize("tz", ["Mars/Olympus", "../../etc/passwd"])
def test_audit_refuses_an_unknown_time_zone(athlete_id: str, tz: str) -> None:
    proc = coach("audit", "--athlete", athlete_id, "--tz", tz, "--json")
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "invalid_timezone" and tz in error["message"]
    human = coach("audit", "--athlete", athlete_id, "--tz", tz, "--no-ask")
    assert human.returncode == 2 and "(invalid_timezone)" in human.stderr


def test_a_known_time_zone_still_works(athlete_id: str) -> None:
    proc = coach("chat", "--athlete", athlete_id, "--tz", "Pacific/Auckland", "--message", "what is my training load?")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("bad", [{"abc": True}, {"999999": True}, "maybe", 7])
async def test_a_bad_answer_asks_again_and_a_good_one_then_confirms(deps: Stores, athlete_id: str, bad: object) -> None:
    chat = Chat(deps, athlete_id, model=None, inline=True)
    paused = await chat.say("my goal is a sub-5h century in June")
    (first,) = paused["__interrupt__"]
    assert first.value["type"] == "confirm_facts"

    again = await chat.resume(bad)
    (question,) = again["__interrupt__"]  # the same question, with why the answer was not read
    assert question.value["proposals"] == first.value["proposals"]
    assert question.value["error"]["code"] == "invalid_answer"
    state = await chat.graph.aget_state(chat.config("s1"))
    assert state.next == ("confirm_facts",) and await deps.memory.current_facts(athlete_id) == {}

    still = await chat.resume("perhaps")  # a second bad answer: asked a third time
    assert still["__interrupt__"][0].value["error"]["code"] == "invalid_answer"

    done = await chat.resume({str(first.value["proposals"][0]["proposal_id"]): "yes"})
    assert done["proposals"][0]["status"] == "accepted" and "__interrupt__" not in done
    facts = await deps.memory.current_facts(athlete_id)
    assert facts["goal"]["value"] == "a sub-5h century in June"


async def test_pending_debriefs_refuses_a_bad_max_rides(deps: Stores, athlete_id: str) -> None:
    graph = build_pending_graph(stores=deps)
    with pytest.raises(InvalidInputError) as exc:
        await graph.ainvoke({"max_rides": "abc"}, context=Context(athlete_id=athlete_id))
    assert exc.value.code == "invalid_max_rides"
    out = await graph.ainvoke({"max_rides": 2}, context=Context(athlete_id=athlete_id))
    assert out == {"debriefed": [], "errors": [], "remaining": 0, "skipped": []}
