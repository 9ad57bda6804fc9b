"""One facts write path (`memory.fact_writes`): every writer's commit drops the Redis facts cache itself, so the
next `ConversationMemory.current_facts` (the one read path) sees the new fact with the cache warm, and no caller
invalidates by hand."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

import pytest

from memory.athlete_store import FactChange
from memory.facts_cache import facts_key
from records.audit_store import AUDITOR_SOURCE, AuditStore
from records.proposals import decide_proposal
from records.stores import Stores
from training.records import RideRecord

pytestmark = pytest.mark.integration

Writer = Callable[[Stores, str], Awaitable[None]]


async def _set_facts(deps: Stores, athlete_id: str) -> None:
    await deps.memory.set_facts(athlete_id, [FactChange("goal", "new")], source="user")


async def _confirmed_proposal(deps: Stores, athlete_id: str) -> None:
    proposal = await deps.athlete_store.create_proposal(athlete_id, "goal", "new")
    await decide_proposal(deps.athlete_store, "fact", athlete_id, proposal["id"], "accept")


async def _debrief(deps: Stores, athlete_id: str) -> None:
    ride = RideRecord(
        ride_id="r-facts",
        file_name="r.fit",
        file_format="fit",
        sport="cycling",
        start_time=datetime(2026, 1, 5, 7, tzinfo=UTC),
        elapsed_s=3600.0,
        moving_s=3500.0,
        distance_m=30_000.0,
        normalized_power_w=200.0,
        tss=60.0,
        hr_tss=None,
        metrics={},
    )
    changed = await deps.rides.save_debriefed_ride(athlete_id, ride, [FactChange("goal", "new")], "ok", "t")
    assert changed == ["goal"]


async def _audit(deps: Stores, athlete_id: str) -> None:
    report = await AuditStore(deps.athlete_store.pool).save_audit(
        athlete_id,
        date(2026, 1, 5),
        {},
        fact_changes=[FactChange("goal", "new")],
        clear_fact_keys=[],
        proposals=[],
        clearable_prefix="pattern_",
        fact_writer=deps.athlete_store,
    )
    assert report["facts_changed"] == ["goal"]


@pytest.mark.parametrize(
    "write", [_set_facts, _confirmed_proposal, _debrief, _audit], ids=["set_facts", "proposal", "debrief", "audit"]
)
async def test_each_writer_is_seen_by_the_next_read_with_the_cache_warm(
    deps: Stores, athlete_id: str, write: Writer
) -> None:
    await deps.memory.set_facts(athlete_id, [FactChange("goal", "old")], source="user")
    assert (await deps.memory.current_facts(athlete_id))["goal"]["value"] == "old"
    assert deps.memory.redis is not None and await deps.memory.redis.exists(facts_key(athlete_id)) == 1  # warm

    await write(deps, athlete_id)  # no invalidate_facts call: the write path drops the cache itself

    assert (await deps.memory.current_facts(athlete_id))["goal"]["value"] == "new"


async def test_an_audit_clearing_a_pattern_fact_drops_the_cache(deps: Stores, athlete_id: str) -> None:
    audits = AuditStore(deps.athlete_store.pool)
    key = "pattern_skips_x"
    common = {"proposals": [], "clearable_prefix": "pattern_", "fact_writer": deps.athlete_store}
    await audits.save_audit(
        athlete_id, date(2026, 1, 5), {}, fact_changes=[FactChange(key, True)], clear_fact_keys=[], **common
    )
    facts = await deps.memory.current_facts(athlete_id)  # warm, with the pattern fact
    assert facts[key]["source"] == AUDITOR_SOURCE

    await audits.save_audit(athlete_id, date(2026, 1, 6), {}, fact_changes=[], clear_fact_keys=[key], **common)

    assert key not in await deps.memory.current_facts(athlete_id)


async def test_a_rolled_back_write_keeps_the_cache(deps: Stores, athlete_id: str) -> None:
    await deps.memory.set_facts(athlete_id, [FactChange("goal", "old")], source="user")
    await deps.memory.current_facts(athlete_id)
    with pytest.raises(RuntimeError):
        async with deps.athlete_store.facts_transaction(athlete_id) as tx:
            await tx.apply([FactChange("goal", "new")], "user")
            raise RuntimeError("abort")
    assert deps.memory.redis is not None and await deps.memory.redis.exists(facts_key(athlete_id)) == 1
    assert (await deps.memory.current_facts(athlete_id))["goal"]["value"] == "old"
