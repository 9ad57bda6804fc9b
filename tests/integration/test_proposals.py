"""Fact proposals and plan-change proposals decided by one function, in one vocabulary, on the real Postgres."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from memory.errors import ProposalNotFoundError
from records.plans import PlanRow
from records.proposals import PlanProposalNotFoundError, ProposalKind, decide_proposal
from records.stores import Stores
from training.records import STATUS_OF, Decision

pytestmark = pytest.mark.integration

DAY = date(2031, 6, 3)


async def _plan_proposal(deps: Stores, athlete_id: str) -> int:
    """A threshold workout on `DAY` and a pending proposal to make it a recovery ride; returns the proposal id."""
    await deps.plans.import_rows(athlete_id, [PlanRow(DAY, "threshold", 3600.0, 80.0, "")])
    change = {
        "action": "replace",
        "date": DAY.isoformat(),
        "kind": "threshold",
        "before": {"kind": "threshold", "duration_s": 3600.0, "tss": 80.0, "description": ""},
        "after": {"kind": "recovery", "duration_s": 2700.0, "tss": 25.0, "description": "easy"},
    }
    async with deps.athlete_store.pool.connection() as conn:
        cur = await conn.execute(
            """INSERT INTO plan_change_proposals (athlete_id, as_of, change, reason)
               VALUES (%s, %s, %s, 'form is low') RETURNING id""",
            (athlete_id, DAY - timedelta(days=1), Jsonb(change)),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def _fact_proposal(deps: Stores, athlete_id: str, value: str) -> int:
    row = await deps.athlete_store.create_proposal(athlete_id, "goal", value, source_session_id="s1")
    return int(row["id"])


async def test_both_kinds_share_one_decision_function_and_one_vocabulary(deps: Stores, athlete_id: str) -> None:
    athletes = deps.athlete_store
    made: dict[ProposalKind, int] = {
        "fact": await _fact_proposal(deps, athlete_id, "a century"),
        "plan_change": await _plan_proposal(deps, athlete_id),
    }
    for kind, proposal_id in made.items():
        decided = await decide_proposal(athletes, kind, athlete_id, proposal_id, "accept")
        assert decided["status"] == STATUS_OF["accept"] == "accepted" and decided["decided_at"] is not None
        with pytest.raises(ProposalNotFoundError):  # decided once: no longer pending
            await decide_proposal(athletes, kind, athlete_id, proposal_id, "reject")
    facts = await deps.athlete_store.current_facts(athlete_id)
    assert facts["goal"]["value"] == "a century" and facts["goal"]["source"] == "user"
    plan = await deps.plans.plan_for_day(athlete_id, DAY)
    assert [(w["kind"], w["tss"]) for w in plan] == [("recovery", 25.0)]
    assert [p["status"] for p in await deps.athlete_store.list_proposals(athlete_id, status="accepted")] == ["accepted"]


@pytest.mark.parametrize("kind", ["fact", "plan_change"])
async def test_a_rejected_proposal_changes_nothing(deps: Stores, athlete_id: str, kind: ProposalKind) -> None:
    proposal_id = (
        await _fact_proposal(deps, athlete_id, "a century")
        if kind == "fact"
        else await _plan_proposal(deps, athlete_id)
    )
    decision: Decision = "reject"
    decided = await decide_proposal(deps.athlete_store, kind, athlete_id, proposal_id, decision)
    assert decided["status"] == "rejected"
    assert await deps.athlete_store.current_facts(athlete_id) == {}
    plan = await deps.plans.plan_for_day(athlete_id, DAY)
    assert [w["kind"] for w in plan] == ([] if kind == "fact" else ["threshold"])


async def test_another_athletes_proposal_is_not_found_and_bad_words_are_refused(deps: Stores, athlete_id: str) -> None:
    athletes = deps.athlete_store
    fact_id = await _fact_proposal(deps, athlete_id, "a century")
    plan_id = await _plan_proposal(deps, athlete_id)
    with pytest.raises(ProposalNotFoundError):
        await decide_proposal(athletes, "fact", f"{athlete_id}-x", fact_id, "accept")
    with pytest.raises(PlanProposalNotFoundError):
        await decide_proposal(athletes, "plan_change", f"{athlete_id}-x", plan_id, "accept")
    with pytest.raises(ValueError, match="decision"):
        await decide_proposal(athletes, "fact", athlete_id, fact_id, "confirm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        await decide_proposal(athletes, "workout", athlete_id, fact_id, "accept")  # type: ignore[arg-type]
    assert [p["status"] for p in await deps.athlete_store.list_proposals(athlete_id)] == ["pending"]


async def test_the_old_fact_status_word_is_gone_from_the_schema(deps: Stores, athlete_id: str) -> None:
    """Migration v26 renamed `confirmed` to `accepted`: the table takes the one vocabulary only."""
    async with deps.athlete_store.pool.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(
                "INSERT INTO fact_proposals (athlete_id, fact_key, value, status) VALUES (%s, 'goal', '1', 'confirmed')",
                (athlete_id,),
            )
        await conn.execute(
            "INSERT INTO fact_proposals (athlete_id, fact_key, value, status) VALUES (%s, 'goal', '1', 'accepted')",
            (athlete_id,),
        )
