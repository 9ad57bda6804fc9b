"""Forget and export an athlete on the real Postgres and Redis: `records.erase`, `records.export`,
`records.restore`, and `coach forget|export|import-export` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.types.json import Jsonb

from graphs.context import thread_id
from memory.checkpointer import open_checkpointer
from memory.messages import ChatMessage, new_message_id
from memory.outbox import LocalSpool
from records.erase import erase_athlete, survey_athlete
from records.export import write_export
from records.plans import PlanRow
from records.restore import restore_export
from records.stores import Stores, open_stores
from tests.integration.test_cli_debrief import coach
from training.records import FactChange, RideRecord

pytestmark = pytest.mark.integration


def message(athlete_id: str, session: str, role: str, content: str, at: datetime, turn: str) -> ChatMessage:
    return ChatMessage(new_message_id(), athlete_id, session, role, content, at, turn_id=turn)  # type: ignore[arg-type]


def ride(ride_id: str, start: datetime) -> RideRecord:
    return RideRecord(
        ride_id, f"{ride_id}.fit", "fit", "cycling", start, 3600.0, 3500.0, 30000.0, 210.0, 70.5, None,
        {"avg_power_w": 190.0, "zones": [1, 2, 3]},
    )  # fmt: skip


async def populate(stores: Stores, athlete_id: str, inbox: Path, charts: Path) -> None:
    """Give the athlete something in every place the coach keeps data."""
    memory = stores.memory
    await memory.set_facts(athlete_id, [FactChange("ftp_w", 250)], source="user")
    await memory.set_facts(athlete_id, [FactChange("ftp_w", 265)], source="debrief_coach")
    await memory.set_facts(athlete_id, [FactChange("goal", "sub-5h century")], source="user")
    await stores.athlete_store.create_proposal(athlete_id, "level", "cat 3")
    await memory.current_facts(athlete_id)  # fills the Redis facts cache
    start = datetime.now(UTC) - timedelta(hours=2)
    for i, session in enumerate(("s1", "s1", "s2")):
        turn = str(uuid.uuid4())
        at = start + timedelta(minutes=10 * i)
        await memory.save_turn(
            athlete_id,
            session,
            [
                message(athlete_id, session, "user", f"question {i} from {athlete_id}", at, turn),
                message(athlete_id, session, "assistant", f"answer {i}", at + timedelta(seconds=1), turn),
            ],
        )
    await memory.drain_outbox()
    await memory.drainer.settle()  # the drain each saved turn asked for, so it cannot take later queued entries
    await stores.rides.save_replay_ride(athlete_id, ride("r" + athlete_id[-6:], start), "Good ride.")
    await stores.plans.import_rows(athlete_id, [PlanRow(start.date(), "intervals", 3600.0, 80.0, "5x5")])
    async with stores.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO load_reports (athlete_id, as_of, report) VALUES (%s, %s, %s)",
            (athlete_id, start.date(), Jsonb({"ctl": 50})),
        )
        await conn.execute(
            "INSERT INTO plan_change_proposals (athlete_id, as_of, change, reason) VALUES (%s, %s, %s, 'load')",
            (athlete_id, start.date(), Jsonb({"kind": "rest"})),
        )
        await conn.execute(
            "INSERT INTO failed_inbox_files (athlete_id, ride_id, file_name, code, message) "
            "VALUES (%s, 'bad1', 'bad.fit', 'invalid_ride', 'no records')",
            (athlete_id,),
        )
    saver = await open_checkpointer(stores.pool)
    for tid, meta in (
        (thread_id("chat", athlete_id, "s1"), {}),
        (str(uuid.uuid4()), {"langgraph_auth_user_id": athlete_id, "owner": athlete_id}),  # a server thread
    ):
        config: Any = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
        await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1, **meta}, {})  # type: ignore[typeddict-item]
    folder = inbox / athlete_id
    folder.mkdir(parents=True)
    (folder / "ride.fit").write_bytes(b"fit bytes of " + athlete_id.encode())
    charts.mkdir(exist_ok=True)
    (charts / f"pmc-{athlete_id}-2026-11-01.png").write_bytes(b"png")


async def queue_pending(stores: Stores, athlete_id: str) -> None:
    """One message left in the Redis outbox and one in the local spool, not drained yet."""
    said, turn = datetime.now(UTC) - timedelta(hours=1), str(uuid.uuid4())
    await stores.memory.outbox.enqueue([message(athlete_id, "s3", "user", "pending", said, turn)])  # type: ignore[union-attr]
    assert stores.memory.spool is not None
    spool = LocalSpool(stores.memory.spool.directory)
    await spool.append([message(athlete_id, "s4", "user", "spooled", said, turn)])


async def rows_per_table(stores: Stores, athlete_id: str) -> dict[str, int]:
    """Rows holding the athlete in every table with an `athlete_id` column (asked of information_schema)."""
    async with stores.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE column_name = 'athlete_id' AND table_schema = current_schema()"
        )
        tables = [r["table_name"] for r in await cur.fetchall()]
        counts = {}
        for table in tables:
            cur = await conn.execute(f'SELECT count(*) AS n FROM "{table}" WHERE athlete_id = %s', (athlete_id,))
            counts[table] = (await cur.fetchone())["n"]  # type: ignore[index]
    return counts


async def checkpoint_rows(stores: Stores, athlete_id: str) -> int:
    async with stores.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM checkpoints WHERE split_part(thread_id, ':', 2) = %(a)s "
            "OR metadata ->> 'langgraph_auth_user_id' = %(a)s OR metadata ->> 'owner' = %(a)s",
            {"a": athlete_id},
        )
        return int((await cur.fetchone())["n"])  # type: ignore[index]


async def outbox_entries(stores: Stores, athlete_id: str) -> int:
    redis, stream = stores.memory.redis, stores.memory.outbox.stream  # type: ignore[union-attr]
    entries = await redis.xrange(stream, "-", "+")  # type: ignore[union-attr]
    return sum(1 for _, fields in entries if json.loads(fields["m"])["athlete_id"] == athlete_id)


async def test_forget_erases_the_athlete_everywhere_and_keeps_the_other(deps: Stores, tmp_path: Path) -> None:
    a, b = f"forget-a-{uuid.uuid4().hex[:10]}", f"forget-b-{uuid.uuid4().hex[:10]}"
    inbox, charts = tmp_path / "inbox", tmp_path / "charts"
    await populate(deps, a, inbox, charts)
    await populate(deps, b, inbox, charts)
    await queue_pending(deps, a)
    await queue_pending(deps, b)
    b_before = await survey_athlete(deps, b, inbox_dir=inbox, chart_dirs=[charts])
    b_rows = await rows_per_table(deps, b)
    held = await survey_athlete(deps, a, inbox_dir=inbox, chart_dirs=[charts])
    # A's 6 archived messages and 2 queued ones (outbox, spool). A drainer (ours after each saved turn, or the e2e
    # servers' on the same outbox and spool) may move the queued ones into the archive at any time; the survey
    # counts the queues first, so a message on the move is counted twice, never missed.
    assert 6 <= held["postgres:messages"] <= 8 and held["postgres:athlete_facts"] == 3
    assert held["postgres:messages"] + held["redis:outbox"] + held["spool:lines"] >= 8

    report = await erase_athlete(deps, a, inbox_dir=inbox, chart_dirs=[charts])

    # A queued message is erased where the erase finds it (archive, outbox or spool), or, moved after the archive's
    # erase, dropped by the drain (the tombstone): checked below once every queue is drained.
    assert 6 <= report.erased["postgres:messages"] <= 8 and report.erased["postgres:athlete_facts"] == 3
    assert report.erased["postgres:rides"] == 1 and report.erased["postgres:planned_workouts"] == 1
    assert report.erased["checkpoints:checkpoints"] == 2 and report.erased["redis:outbox"] in (0, 1)
    assert report.erased["spool:lines"] in (0, 1) and report.erased["files:inbox"] == 1
    assert report.erased["files:charts"] == 1 and report.erased["redis:keys"] >= 3  # 3 windows + facts cache
    assert all(n == 0 for n in (await rows_per_table(deps, a)).values()), await rows_per_table(deps, a)
    assert await checkpoint_rows(deps, a) == 0 and await outbox_entries(deps, a) == 0
    assert [k async for k in deps.memory.redis.scan_iter(match=f"*{a}*")] == []  # type: ignore[union-attr]
    assert not (inbox / a).exists() and not list(charts.glob(f"*{a}*"))
    assert sum((await survey_athlete(deps, a, inbox_dir=inbox, chart_dirs=[charts])).values()) == 0
    await deps.memory.drain_outbox()  # nothing of A's comes back from a queue
    assert (await rows_per_table(deps, a))["messages"] == 0
    # The other athlete keeps everything.
    # B keeps everything. Another drainer on the shared servers (the e2e session's API server drains the same
    # outbox and spool every second) may move B's queued entries into the archive meanwhile: lost nowhere.
    b_after, b_rows_after = (
        await survey_athlete(deps, b, inbox_dir=inbox, chart_dirs=[charts]),
        await rows_per_table(deps, b),
    )
    movable = {"postgres:messages", "postgres:conversations", "redis:outbox", "spool:lines"}
    assert {k: v for k, v in b_after.items() if k not in movable} == {
        k: v for k, v in b_before.items() if k not in movable
    }
    # Nothing of B's is lost: once every queue is drained (by us or by another drainer), the archive holds B's 6
    # archived messages and the 2 that were queued (counting is not atomic across places, arrival is).
    queued = 8  # 3 turns of 2 messages, 1 in the outbox, 1 in the spool (a message on the move counts twice)
    assert sum(b_before[k] for k in ("postgres:messages", "redis:outbox", "spool:lines")) >= queued
    for _ in range(300):
        await deps.memory.drain_outbox()
        b_now = await survey_athlete(deps, b, inbox_dir=inbox, chart_dirs=[charts])
        if b_now["redis:outbox"] == 0 and b_now["spool:lines"] == 0:
            break
        await asyncio.sleep(0.2)
    assert (b_now["redis:outbox"], b_now["spool:lines"], b_now["postgres:messages"]) == (0, 0, queued)
    assert {t: n for t, n in b_rows_after.items() if t not in ("messages", "conversations")} == {
        t: n for t, n in b_rows.items() if t not in ("messages", "conversations")
    }
    assert b_rows_after["messages"] >= b_rows["messages"] and b_rows_after["conversations"] >= b_rows["conversations"]
    assert await checkpoint_rows(deps, b) == 2


async def test_a_late_outbox_entry_of_an_erased_athlete_is_dropped_on_drain(deps: Stores, athlete_id: str) -> None:
    said = datetime.now(UTC) - timedelta(minutes=5)
    turn = str(uuid.uuid4())
    await deps.memory.set_facts(athlete_id, [FactChange("ftp_w", 250)], source="user")
    await erase_athlete(deps, athlete_id)
    # A turn that was in flight during the erase reaches the outbox afterwards.
    await deps.memory.outbox.enqueue([message(athlete_id, "late", "user", "in flight", said, turn)])  # type: ignore[union-attr]
    await deps.memory.drain_outbox()
    assert (await rows_per_table(deps, athlete_id))["messages"] == 0
    assert (await rows_per_table(deps, athlete_id))["conversations"] == 0
    # The same id may start again: what is said after the erase is kept.
    now = datetime.now(UTC) + timedelta(seconds=1)
    await deps.memory.outbox.enqueue([message(athlete_id, "new", "user", "hello again", now, turn)])  # type: ignore[union-attr]
    await deps.memory.drain_outbox()
    assert (await rows_per_table(deps, athlete_id))["messages"] == 1


def test_forget_of_an_unknown_athlete_says_so_and_erases_nothing(athlete_id: str) -> None:
    proc = coach("forget", "--athlete", athlete_id, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "holds nothing" in proc.stdout and "nothing erased" in proc.stdout


async def _set_ftp_and_count(athlete_id: str, *, write: bool) -> int:
    async with open_stores(require_postgres=True) as stores:
        if write:
            await stores.memory.set_facts(athlete_id, [FactChange("ftp_w", 250)], source="user")
        return (await rows_per_table(stores, athlete_id))["athlete_facts"]


def test_forget_asks_and_refuses_without_a_terminal_unless_yes(athlete_id: str) -> None:
    assert asyncio.run(_set_ftp_and_count(athlete_id, write=True)) == 1
    refused = coach("forget", "--athlete", athlete_id)  # the test runner's stdin is not a terminal
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert asyncio.run(_set_ftp_and_count(athlete_id, write=False)) == 1
    done = coach("forget", "--athlete", athlete_id, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["erased"]["postgres:athlete_facts"] == 1
    assert asyncio.run(_set_ftp_and_count(athlete_id, write=False)) == 0


async def test_export_round_trips_into_a_fresh_athlete(deps: Stores, tmp_path: Path) -> None:
    a, new = f"export-a-{uuid.uuid4().hex[:10]}", f"export-n-{uuid.uuid4().hex[:10]}"
    inbox = tmp_path / "inbox"
    await populate(deps, a, inbox, tmp_path / "charts")
    await queue_pending(deps, a)
    out = tmp_path / "a.zip"
    counts = await write_export(deps, a, out, inbox_dir=inbox)
    assert counts["messages.jsonl"] == 8 and counts["facts.jsonl"] == 3  # queued messages are drained first
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.txt").decode()
        assert zf.read("ride_files/ride.fit") == b"fit bytes of " + a.encode()
    assert {"README.txt", "athlete.json", "facts.jsonl", "messages.jsonl", "plans.csv", "rides.csv"} <= names
    assert all(name.split("/")[0] in readme for name in names - {"README.txt"}), names

    result = await restore_export(deps, out, new, inbox_dir=inbox)
    assert result.messages == 8 and result.facts == 3 and result.rides == 1 and result.ride_files == 1

    assert await deps.memory.current_facts(new) == await deps.memory.current_facts(a)
    assert [r["value"] for r in await deps.athlete_store.fact_history(new, "ftp_w")] == [
        r["value"] for r in await deps.athlete_store.fact_history(a, "ftp_w")
    ]
    assert await transcript(deps, new) == await transcript(deps, a)
    assert [(r.ride_id, r.metrics, r.tss) for r in await deps.rides.list_rides(new)] == [
        (r.ride_id, r.metrics, r.tss) for r in await deps.rides.list_rides(a)
    ]
    assert (inbox / new / "ride.fit").read_bytes() == b"fit bytes of " + a.encode()
    again = await restore_export_error(deps, out, new, inbox)
    assert again == "athlete_not_empty"


async def transcript(stores: Stores, athlete_id: str) -> list[tuple[str, str, str]]:
    async with stores.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT session_id, role, content FROM messages WHERE athlete_id = %s ORDER BY session_id, created_at, id",
            (athlete_id,),
        )
        return [(r["session_id"], r["role"], r["content"]) for r in await cur.fetchall()]


async def restore_export_error(stores: Stores, path: Path, athlete_id: str, inbox: Path) -> str:
    try:
        await restore_export(stores, path, athlete_id, inbox_dir=inbox)
    except Exception as exc:  # noqa: BLE001 (the code is what the test checks)
        return str(getattr(exc, "code", type(exc).__name__))
    return "no error"


def test_export_to_an_existing_file_refuses_unless_force(athlete_id: str, tmp_path: Path) -> None:
    asyncio.run(_set_ftp_and_count(athlete_id, write=True))
    out = tmp_path / "x.zip"
    out.write_bytes(b"keep me")
    refused = coach("export", "--athlete", athlete_id, "--out", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr and out.read_bytes() == b"keep me"
    forced = coach("export", "--athlete", athlete_id, "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    new = f"{athlete_id}-n"
    restored = coach("import-export", str(out), "--athlete", new)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(coach("facts", "--athlete", new, "--json").stdout)["ftp_w"]["value"] == 250
