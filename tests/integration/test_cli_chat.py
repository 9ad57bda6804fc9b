"""`coach chat`, `import-transcript`, `search`, `plan import` and proposal decisions, run as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.test_cli_debrief import coach

pytestmark = pytest.mark.integration


def turn(athlete_id: str, session: str, message: str) -> dict:
    proc = coach("chat", "--athlete", athlete_id, "--session", session, "--message", message, "--json", "--tz", "UTC")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_one_turn_json_and_proposal_confirmed_from_the_command_line(athlete_id):
    out = turn(athlete_id, "s1", "my goal is a sub-5h century in June")
    assert set(out) == {"reply", "tool_calls", "memory_status", "prompt_tokens", "proposals"}
    assert out["memory_status"] == "ok" and out["prompt_tokens"] > 0
    assert out["tool_calls"] == [{"name": "propose_fact", "args": {"key": "goal", "value": "a sub-5h century in June"}}]
    (proposal,) = out["proposals"]
    assert json.loads(coach("facts", "--athlete", athlete_id, "--json").stdout) == {}

    confirmed = coach("facts", "--athlete", athlete_id, "--confirm", str(proposal["proposal_id"]))  # an alias
    assert confirmed.returncode == 0 and "accepted" in confirmed.stdout
    facts = json.loads(coach("facts", "--athlete", athlete_id, "--json").stdout)
    assert facts["goal"]["value"] == "a sub-5h century in June" and facts["goal"]["source"] == "user"
    again = coach("facts", "--athlete", athlete_id, "--accept", str(proposal["proposal_id"]))
    assert again.returncode == 2 and "no pending proposal" in again.stderr

    later = turn(athlete_id, "s2", "remind me my current goal")
    assert "a sub-5h century in June" in later["reply"]


def test_another_athlete_cannot_decide_my_proposal(athlete_id):
    out = turn(athlete_id, "s1", "my level is cat 2")
    pid = str(out["proposals"][0]["proposal_id"])
    proc = coach("facts", "--athlete", f"{athlete_id}-x", "--confirm", pid)
    assert proc.returncode == 2 and "no pending proposal" in proc.stderr


def test_bad_messages_are_refused_and_nothing_is_written(athlete_id):
    empty = coach("chat", "--athlete", athlete_id, "--message", "   ", "--json")
    assert empty.returncode == 2 and json.loads(empty.stdout)["error"]["code"] == "invalid_message"
    huge = coach("chat", "--athlete", athlete_id, "--message", "x" * 9000, "--json")
    assert huge.returncode == 2 and "limit" in json.loads(huge.stdout)["error"]["message"]
    search = json.loads(coach("search", "--athlete", athlete_id, "x", "--json").stdout)
    assert search == []


def test_import_transcript_then_search(athlete_id, tmp_path: Path):
    lines = [
        {
            "role": "user",
            "content": "My knee hurts on climbs when I push big gears.",
            "ts": "2026-10-01T08:00:00Z",
            "id": "t1",
        },
        {"role": "assistant", "content": "Spin a lighter gear above 85 rpm and check your saddle height.", "id": "t2"},
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    first = coach("import-transcript", str(path), "--athlete", athlete_id, "--session", "old")
    assert first.returncode == 0 and "imported 2" in first.stdout
    second = coach("import-transcript", str(path), "--athlete", athlete_id, "--session", "old")
    assert second.returncode == 0 and "imported 0" in second.stdout

    hits = json.loads(coach("search", "--athlete", athlete_id, "knee pain climbing", "--json").stdout)
    assert hits[0]["external_id"] == "t1" and hits[0]["session_id"] == "old"
    assert hits[0]["ts"].startswith("2026-10-01")
    assert set(hits[0]) == {"message_id", "external_id", "session_id", "ts", "role", "snippet", "score"}
    assert json.loads(coach("search", "--athlete", f"{athlete_id}-x", "knee", "--json").stdout) == []

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[0]) + "\n" + '{"role": "robot", "content": "x"}\n')
    proc = coach("import-transcript", str(bad), "--athlete", athlete_id, "--session", "bad")
    assert proc.returncode != 0 and "line 2" in proc.stderr


def test_plan_import_and_compare_with_sticky_context(athlete_id, tmp_path: Path):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    plan = tmp_path / "plan.csv"
    plan.write_text(f"date,kind,duration_s,tss,description\n{yesterday},endurance,3600,50,Z2 hour\n")
    proc = coach("plan", "import", str(plan), "--athlete", athlete_id)
    assert proc.returncode == 0 and "imported 1" in proc.stdout

    out = turn(athlete_id, "s1", "what was planned yesterday?")
    assert "Z2 hour" in out["reply"]
    compare = turn(athlete_id, "s1", "how does that compare to my plan?")
    assert compare["tool_calls"] == [{"name": "compare_workout_to_plan", "args": {}}]
    assert "missed" in compare["reply"]

    bad = tmp_path / "bad.csv"
    bad.write_text("date,kind,duration_s,tss,description\n2026-13-01,endurance,3600,50,x\n2026-11-02,,3600,50,y\n")
    proc = coach("plan", "import", str(bad), "--athlete", athlete_id)
    assert proc.returncode == 1 and "line 2" in proc.stderr and "line 3" in proc.stderr


def test_interactive_chat_asks_to_confirm_a_proposal(athlete_id):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(
        app,
        ["chat", "--athlete", athlete_id, "--session", "live", "--tz", "UTC"],
        input="my goal is to climb Ventoux in under 2 hours\ny\nremind me my current goal\n\n",
    )
    assert result.exit_code == 0, result.stdout
    assert "Save goal = " in result.stdout  # the confirmation question
    replies = [part.splitlines()[0] for part in result.stdout.split("coach> ")[1:]]
    assert len(replies) == 2 and "Ventoux in under 2 hours" in replies[1]  # the second turn knows the goal
    facts = json.loads(coach("facts", "--athlete", athlete_id, "--json").stdout)
    assert facts["goal"]["value"] == "to climb Ventoux in under 2 hours" and facts["goal"]["source"] == "user"
