"""The Training Load Auditor graph, its store and its commands on a constructed athlete, on the real servers."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from psycopg.types.json import Jsonb
from rich.console import Console
from typer.testing import CliRunner

from cli import audit as audit_commands
from cli import chat as chat_commands
from cli import debrief as debrief_commands
from cli import main as cli
from cli import plan as plan_commands
from graphs.context import Context, thread_id
from graphs.training_load_auditor import AuditDateError, build_graph
from records.audit_store import AuditStore
from records.plans import PlanRow
from records.proposals import PlanChangeConflictError, PlanProposalNotFoundError, decide_proposal
from records.stores import Stores
from tools.base import ToolCallContext, run_tool
from tools.coach_tools import get_training_load
from training.load import training_load_summary

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=56)
# The weekly plan: (kind, duration_s, TSS) by weekday; Friday is a day off.
WEEK = {
    0: ("recovery", 2700.0, 25.0),
    1: ("intervals", 5400.0, 95.0),
    2: ("endurance", 7200.0, 100.0),
    3: ("threshold", 4500.0, 85.0),
    5: ("endurance", 10800.0, 160.0),
    6: ("endurance", 5400.0, 70.0),
}
PAST_MONDAYS = [d for d in (START + timedelta(days=i) for i in range(56)) if d.weekday() == 0 and d < TODAY]
RIDDEN_MONDAY = PAST_MONDAYS[-4]  # of the last 4 Mondays only this one was ridden
SKIPPED_MONDAYS = PAST_MONDAYS[-3:]
HR_ONLY_DAY = TODAY - timedelta(days=20)
BLOCK_FACTOR = 2.8  # the last 7 days: a load spike


def constructed_history() -> tuple[list[PlanRow], dict[date, tuple[float, float | None, float | None]]]:
    """8 weeks of plan before today, and rides: every planned day ridden as planned, but Mondays (3 of the last 4
    skipped), a heart-rate-only ride, and a block at 2.8 times the load in the last 7 days."""
    plan: list[PlanRow] = []
    rides: dict[date, tuple[float, float | None, float | None]] = {}  # day: (moving_s, tss, hr_tss)
    for i in range(56):
        day = START + timedelta(days=i)
        if day >= TODAY or day.weekday() not in WEEK:
            continue
        kind, duration_s, tss = WEEK[day.weekday()]
        plan.append(PlanRow(day, kind, duration_s, tss, f"{kind} ride"))
        if day.weekday() == 0 and day != RIDDEN_MONDAY and day >= PAST_MONDAYS[-4]:
            continue
        factor = BLOCK_FACTOR if day >= TODAY - timedelta(days=7) else 1.0
        rides[day] = (duration_s, tss * factor, None)
    rides[HR_ONLY_DAY] = (rides.get(HR_ONLY_DAY, (3600.0, None, None))[0], None, 80.0)
    plan.append(PlanRow(TODAY + timedelta(days=1), "endurance", 5400.0, 65.0, "Zone 2, steady"))
    plan.append(PlanRow(TODAY + timedelta(days=2), "threshold", 4500.0, 85.0, "3 x 12 min at FTP"))
    return plan, rides


async def insert_rides(deps: Stores, athlete_id: str, rides: dict[date, tuple[float, float | None, float | None]]):
    async with deps.athlete_store.pool.connection() as conn, conn.transaction():
        for day, (moving_s, tss, hr_tss) in rides.items():
            mmp = {"5s": 900.0 + day.day, "1min": 420.0, "5min": 320.0, "20min": 280.0, "60min": 250.0}
            await conn.execute(
                """INSERT INTO rides (athlete_id, ride_id, file_name, file_format, sport, start_time, elapsed_s,
                                      moving_s, distance_m, normalized_power_w, tss, hr_tss, metrics)
                   VALUES (%s, %s, %s, 'fit', 'cycling', %s, %s, %s, NULL, NULL, %s, %s, %s)""",
                (
                    athlete_id,
                    uuid.uuid4().hex,
                    f"constructed-{day}.fit",
                    datetime.combine(day, time(8), tzinfo=UTC),
                    moving_s,
                    moving_s,
                    tss,
                    hr_tss,
                    Jsonb({"mmp_w": mmp} if tss is not None else {"mmp_w": {}}),
                ),
            )


@pytest.fixture
async def athlete(deps: Stores, athlete_id: str) -> dict[str, Any]:
    plan, rides = constructed_history()
    await insert_rides(deps, athlete_id, rides)
    await deps.plans.import_rows(athlete_id, plan)
    daily = {day: (tss if tss is not None else hr or 0.0) for day, (_, tss, hr) in rides.items()}
    return {"id": athlete_id, "daily": daily}


async def audit(deps: Stores, athlete_id: str, **inp: Any) -> dict[str, Any]:
    graph = build_graph(stores=deps)
    inp.setdefault("as_of", TODAY.isoformat())  # the fixtures' day, even when the run crosses midnight UTC
    result = await graph.ainvoke(inp, context=Context(athlete_id=athlete_id, timezone="UTC"))
    return result["report"]


async def count(deps: Stores, sql: str, *params: Any) -> int:
    async with deps.athlete_store.pool.connection() as conn:
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def test_audit_figures_flags_pattern_fact_and_proposal(deps, athlete):
    athlete_id = athlete["id"]
    await deps.memory.current_facts(athlete_id)  # fill the facts cache: the audit must invalidate it
    report = await audit(deps, athlete_id)

    expected = training_load_summary(athlete["daily"], TODAY)  # hrTSS counted for the heart-rate-only ride
    for key in ("ctl", "atl", "tsb", "ramp_rate", "acwr", "monotony", "strain", "weekly_tss", "days_of_data"):
        assert report[key] == expected[key], key
    assert report["as_of"] == TODAY.isoformat() and report["tsb_for"] == (TODAY + timedelta(days=1)).isoformat()
    codes = [f["code"] for f in report["flags"]]
    assert "tsb_high_risk" in codes and "acwr_high" in codes and "short_history" not in codes
    assert all(f["message"] and f["source"] for f in report["flags"])

    key = "pattern_skips_monday_recovery"
    (pattern,) = report["patterns"]
    assert pattern["key"] == key and pattern["skipped_dates"] == [d.isoformat() for d in SKIPPED_MONDAYS]
    assert report["facts_changed"] == [key]
    facts = await deps.memory.current_facts(athlete_id)
    assert facts[key]["source"] == "training_load_auditor"
    assert all(d.isoformat() in facts[key]["value"] for d in SKIPPED_MONDAYS)
    assert "missed 3 of the last 4" in facts[key]["value"]

    (proposal,) = report["proposals"]
    assert proposal["status"] == "pending" and proposal["flag_code"] == "tsb_high_risk"
    assert proposal["change"]["date"] == (TODAY + timedelta(days=2)).isoformat()
    assert proposal["change"]["before"]["kind"] == "threshold" and proposal["change"]["after"]["kind"] == "recovery"
    stored = await AuditStore(deps.athlete_store.pool).get_report(athlete_id, TODAY)
    assert stored is not None and stored["proposals"] == report["proposals"]
    assert len(stored["series"]) == 90 and stored["series"][-1]["date"] == TODAY.isoformat()

    # The plan is untouched until the athlete accepts.
    day_after = await deps.plans.plan_for_day(athlete_id, TODAY + timedelta(days=2))
    assert [w["kind"] for w in day_after] == ["threshold"]


async def test_rerun_replaces_the_report_and_duplicates_nothing(deps, athlete):
    athlete_id = athlete["id"]
    first = await audit(deps, athlete_id, as_of=TODAY.isoformat())
    second = await audit(deps, athlete_id, as_of=TODAY.isoformat())
    assert second["facts_changed"] == []
    assert [p["id"] for p in second["proposals"]] == [p["id"] for p in first["proposals"]]
    assert second["ctl"] == first["ctl"] and second["flags"] == first["flags"]
    n = "SELECT count(*) AS n FROM {} WHERE athlete_id = %s"
    assert await count(deps, n.format("load_reports"), athlete_id) == 1
    assert await count(deps, n.format("plan_change_proposals"), athlete_id) == 1
    assert await count(deps, n.format("athlete_facts"), athlete_id) == 1
    stored = await AuditStore(deps.athlete_store.pool).get_report(athlete_id)
    assert stored is not None and stored["generated_at"] == second["generated_at"]


async def test_interrupt_then_accept_applies_the_change(deps, athlete):
    athlete_id = athlete["id"]
    graph = build_graph(checkpointer=InMemorySaver(), stores=deps)
    config = {"configurable": {"thread_id": thread_id("audit", athlete_id)}}
    context = Context(athlete_id=athlete_id, timezone="UTC")
    paused = await graph.ainvoke({"ask": True, "as_of": TODAY.isoformat()}, config=config, context=context)
    (request,) = paused["__interrupt__"]
    assert request.value["type"] == "confirm_plan_changes"
    (proposal,) = request.value["proposals"]
    plan = await deps.plans.plan_for_day(athlete_id, TODAY + timedelta(days=2))
    assert [w["kind"] for w in plan] == ["threshold"]  # nothing applied while waiting

    done = await graph.ainvoke(Command(resume={str(proposal["id"]): "yes"}), config=config, context=context)
    assert [p["status"] for p in done["report"]["proposals"]] == ["accepted"]
    plan = await deps.plans.plan_for_day(athlete_id, TODAY + timedelta(days=2))
    assert [(w["kind"], w["duration_s"], w["tss"]) for w in plan] == [("recovery", 2700.0, 25.0)]
    stored = await AuditStore(deps.athlete_store.pool).get_report(athlete_id, TODAY)
    assert stored is not None and stored["proposals"][0]["status"] == "accepted"

    # The next audit finds no hard workout to change; the accepted proposal is not made again.
    again = await audit(deps, athlete_id)
    assert again["proposals"] == []
    assert await count(deps, "SELECT count(*) AS n FROM plan_change_proposals WHERE athlete_id = %s", athlete_id) == 1


async def test_a_bad_answer_asks_again_then_a_good_one_applies(deps, athlete):
    athlete_id = athlete["id"]
    graph = build_graph(checkpointer=InMemorySaver(), stores=deps)
    config = {"configurable": {"thread_id": f"audit-bad-{athlete_id}"}}
    context = Context(athlete_id=athlete_id, timezone="UTC")
    (request,) = (await graph.ainvoke({"ask": True, "as_of": TODAY.isoformat()}, config=config, context=context))[
        "__interrupt__"
    ]
    again = await graph.ainvoke(Command(resume={"abc": True}), config=config, context=context)
    (question,) = again["__interrupt__"]
    assert question.value["proposals"] == request.value["proposals"]
    assert question.value["error"]["code"] == "invalid_answer"
    assert [p["status"] for p in await AuditStore(deps.athlete_store.pool).list_proposals(athlete_id)] == ["pending"]
    done = await graph.ainvoke(Command(resume="accept"), config=config, context=context)
    assert [p["status"] for p in done["report"]["proposals"]] == ["accepted"]


async def test_reject_conflict_and_other_athletes(deps, athlete):
    athlete_id = athlete["id"]
    audits = AuditStore(deps.athlete_store.pool)
    (proposal,) = (await audit(deps, athlete_id))["proposals"]
    with pytest.raises(PlanProposalNotFoundError):
        await decide_proposal(deps.athlete_store, "plan_change", f"{athlete_id}-x", proposal["id"], "accept")
    # The plan was re-imported with other figures: accepting must not overwrite it.
    await deps.plans.import_rows(athlete_id, [PlanRow(TODAY + timedelta(days=2), "threshold", 3600.0, 70.0, "")])
    with pytest.raises(PlanChangeConflictError, match="changed since"):
        await decide_proposal(deps.athlete_store, "plan_change", athlete_id, proposal["id"], "accept")
    assert [p["status"] for p in await audits.list_proposals(athlete_id)] == ["pending"]
    rejected = await decide_proposal(deps.athlete_store, "plan_change", athlete_id, proposal["id"], "reject")
    assert rejected["status"] == "rejected" and rejected["decided_at"]
    with pytest.raises(PlanProposalNotFoundError):
        await decide_proposal(deps.athlete_store, "plan_change", athlete_id, proposal["id"], "reject")
    plan = await deps.plans.plan_for_day(athlete_id, TODAY + timedelta(days=2))
    assert [(w["kind"], w["tss"]) for w in plan] == [("threshold", 70.0)]


async def test_a_rejected_change_is_not_proposed_again(deps, athlete):
    athlete_id = athlete["id"]
    audits = AuditStore(deps.athlete_store.pool)
    (proposal,) = (await audit(deps, athlete_id))["proposals"]
    await decide_proposal(deps.athlete_store, "plan_change", athlete_id, proposal["id"], "reject")
    again = await audit(deps, athlete_id)
    assert [(p["id"], p["status"]) for p in again["proposals"]] == [(proposal["id"], "rejected")]
    assert await audits.list_proposals(athlete_id) == []


async def test_pattern_fact_cleared_when_mondays_are_ridden_again(deps, athlete):
    athlete_id = athlete["id"]
    key = "pattern_skips_monday_recovery"
    assert key in (await audit(deps, athlete_id))["facts_changed"]
    await insert_rides(deps, athlete_id, {d: (2700.0, 25.0, None) for d in SKIPPED_MONDAYS[-2:]})
    report = await audit(deps, athlete_id)
    assert report["patterns"] == [] and report["facts_changed"] == [key]
    assert key not in await deps.memory.current_facts(athlete_id)
    history = await deps.athlete_store.fact_history(athlete_id, key)
    assert len(history) == 1 and history[0]["valid_to"] is not None


async def test_the_chat_tool_gives_the_auditors_figures(deps, athlete):
    athlete_id = athlete["id"]
    report = await audit(deps, athlete_id)
    ctx = ToolCallContext(athlete_id=athlete_id, session_id="s", timezone="UTC", now=datetime.now(UTC), sticky={})
    outcome = await run_tool(get_training_load, {}, deps, ctx)
    tool = outcome.content
    for key in ("ctl", "atl", "tsb", "ramp_rate", "acwr", "monotony", "strain", "weekly_tss", "days_of_data"):
        assert tool[key] == report[key], key
    assert [f["code"] for f in tool["flags"]] == [f["code"] for f in report["flags"]]
    assert await count(deps, "SELECT count(*) AS n FROM load_reports WHERE athlete_id = %s", athlete_id) == 1


async def test_bad_days(deps, athlete_id):
    graph = build_graph(stores=deps)
    for bad in ("yesterday-ish", (datetime.now(UTC).date() + timedelta(days=1)).isoformat()):
        with pytest.raises(AuditDateError):
            await graph.ainvoke({"as_of": bad}, context=Context(athlete_id=athlete_id, timezone="UTC"))
    report = (await graph.ainvoke({}, context=Context(athlete_id=athlete_id, timezone="UTC")))["report"]
    assert [f["code"] for f in report["flags"]] == ["no_ride_data"] and report["proposals"] == []


# ----- the command line ----------------------------------------------------------------------------------------

_app = typer.Typer()
chat_commands.register(_app, cli._run, cli._check_athlete)
audit_commands.register(_app, cli._run, cli._check_athlete)
plan_commands.register(_app, cli._run, cli._check_athlete)
_runner = CliRunner()


async def coach(*args: str) -> Any:
    """Run `coach ARGS...` in a worker thread (the commands run their own event loop)."""
    return await asyncio.to_thread(_runner.invoke, _app, list(args), catch_exceptions=False)


async def test_cli_audit_json_and_plan_decisions(athlete):
    athlete_id = athlete["id"]
    result = await coach("audit", "--athlete", athlete_id, "--json", "--tz", "UTC")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    required = {"as_of", "ctl", "atl", "tsb", "ramp_rate", "acwr", "monotony", "strain", "flags", "proposals"}
    assert required | {"facts_changed"} <= set(data)
    assert all(set(f) >= {"code", "message", "source"} for f in data["flags"])
    assert data["chart"] is None and data["facts_changed"] == ["pattern_skips_monday_recovery"]
    (proposal,) = data["proposals"]

    listed = await coach("plan", "proposals", "--athlete", athlete_id, "--json")
    assert [p["id"] for p in json.loads(listed.stdout)] == [proposal["id"]]
    accepted = await coach("plan", "accept", str(proposal["id"]), "--athlete", athlete_id)
    assert accepted.exit_code == 0 and "accepted" in accepted.stdout and "recovery" in accepted.stdout
    again = await coach("plan", "reject", str(proposal["id"]), "--athlete", athlete_id)
    assert again.exit_code == 2 and "no pending plan-change proposal" in again.stderr

    human = await coach("audit", "--athlete", athlete_id, "--tz", "UTC", "--as-of", "yesterday", "--no-ask")
    assert human.exit_code == 0 and "Fitness (CTL)" in human.stdout and "tsb_high_risk" in human.stdout
    future = await coach("audit", "--athlete", athlete_id, "--as-of", "2999-01-01", "--json")
    assert future.exit_code == 2 and json.loads(future.stdout)["error"]["code"] == "invalid_as_of"


async def test_cli_audit_chart(athlete, tmp_path: Path):
    pytest.importorskip("matplotlib")
    chart = tmp_path / "pmc.png"
    result = await coach("audit", "--athlete", athlete["id"], "--json", "--tz", "UTC", "--chart", str(chart))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["chart"] == str(chart)
    assert chart.read_bytes().startswith(b"\x89PNG") and chart.stat().st_size > 20_000


async def test_power_curve_charts_for_debriefed_rides(deps, athlete, tmp_path: Path):
    pytest.importorskip("matplotlib")
    rides = await deps.rides.list_rides(athlete["id"], limit=2)
    hr_only = next(r for r in await deps.rides.list_rides(athlete["id"]) if r.tss is None)
    ids = [r.ride_id for r in rides] + [hr_only.ride_id]
    results = await debrief_commands.ride_power_charts(athlete["id"], ids, tmp_path)
    paths = [p for _, p, _ in results if p is not None]
    assert len(paths) == 2 and all(p.stat().st_size > 15_000 for p in paths)
    assert results[-1][1] is None and "no power" in (results[-1][2] or "")
    best = await AuditStore(deps.athlete_store.pool).best_mmp(athlete["id"])
    assert best["1min"] == 420.0 and best["5s"] == 900.0 + max(d.day for d in athlete["daily"])


async def test_cli_audit_asks_on_a_terminal_and_applies_the_answer(athlete):
    athlete_id = athlete["id"]
    result = await asyncio.to_thread(
        _runner.invoke, _app, ["audit", "--athlete", athlete_id, "--tz", "UTC", "--ask"], input="y\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "Accept this change to your plan?" in result.stdout and "[accepted]" in result.stdout


async def test_demo_audit_prints_the_report_and_the_chart(athlete, tmp_path: Path):
    console = Console(record=True, width=170)
    await asyncio.to_thread(audit_commands.print_demo_audit, athlete["id"], cli._run, console, tmp_path)
    text = console.export_text()
    assert "demo data" in text and "Fitness (CTL)" in text and "tsb_high_risk" in text
    assert "Chart of fitness, fatigue and form:" in text or "No chart: charts need matplotlib" in text
