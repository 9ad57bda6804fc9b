"""Text Postgres cannot store, at every boundary, on the real Postgres and Redis (issue 9, items 4 and 8).

NUL (U+0000) and lone surrogates are refused with `invalid_text` (chat message, transcript, plan CSV) before
anything is written or checkpointed, or normalised (ride metadata read from files); a broken CSV quote is
refused with `invalid_csv`; a message that reaches the outbox's dead-letter stream changes `memory_status` and
shows in `coach doctor`. Property-based tests (hypothesis) run arbitrary text through each boundary: never a
traceback, never a partial write.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import get_settings
from graphs.chat import InvalidMessageError
from memory.athlete_store import AthleteStore
from memory.checkpointer import open_checkpointer
from memory.conversation import ConversationMemory
from memory.errors import InvalidTranscriptError
from memory.messages import ChatMessage, new_message_id
from memory.text import InvalidTextError
from records.plans import PlanImportError, parse_plan_csv
from records.rides import RideStore
from records.stores import Stores
from tests.chat_helpers import Chat
from tests.conftest import RIDES_DIR
from tests.integration.chat_fault_fixtures import EchoModel, archived, wait_drained
from tests.integration.test_cli_debrief import INDOOR, coach

pytestmark = pytest.mark.integration

ANY_CHAR = st.characters(codec=None, categories=None)  # every code point: surrogates and controls included
NASTY = st.sampled_from(["\x00", "\ud800", "\udfff", "\x01", "\x1b", "\u2028", "\n", " ", '"', "\ufeff"])
NASTY_TEXT = st.lists(st.one_of(ANY_CHAR, NASTY), max_size=60).map("".join)
PROPS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
DEAD_STREAM = "outbox:archive:dead"


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


async def archive_count(deps: Stores, athlete_id: str) -> int:
    assert deps.memory.archive is not None
    return await deps.memory.archive.count(athlete_id)


async def dead_letters(deps: Stores) -> int:
    assert deps.memory.redis is not None
    return int(await deps.memory.redis.xlen(DEAD_STREAM))


# ----- chat message --------------------------------------------------------------------------------------------


async def test_nul_or_surrogate_message_is_refused_before_anything_is_saved_or_checkpointed(
    deps: Stores, athlete_id: str
) -> None:
    chat = Chat(deps, athlete_id, EchoModel())
    # The Postgres checkpointer `coach chat` uses: NUL crashed it (jsonb cannot hold \u0000).
    chat.graph = chat.graph.builder.compile(checkpointer=await open_checkpointer(deps.athlete_store.pool))
    await chat.say("a first message")
    await wait_drained(deps)  # type: ignore[arg-type]
    redis = deps.memory.redis
    assert redis is not None

    async def snapshot() -> tuple[Any, ...]:
        return (
            await redis.lrange(f"session:{{{athlete_id}}}:s1", 0, -1),  # type: ignore[misc]
            await archived(deps, athlete_id),
            await deps.memory.pending_writes(),
            await dead_letters(deps),
        )

    before = await snapshot()
    for bad in ["a\x00b", "\x00", "tired legs \ud800", "\udcff"]:
        with pytest.raises(InvalidTextError) as info:
            await chat.say(bad)
        assert info.value.code == "invalid_text" and info.value.field == "message"
    await asyncio.sleep(0.1)  # a background drain, had anything been queued, would land now
    await deps.memory.drain_outbox()
    assert await snapshot() == before

    # The thread is not poisoned: the next turn is saved whole.
    out = await chat.say("and now a clean one")
    assert out["reply"] == "echo: and now a clean one" and out["memory_status"] == "ok"
    await wait_drained(deps)  # type: ignore[arg-type]
    contents = [r["content"] for r in await archived(deps, athlete_id)]
    assert contents[-2:] == ["and now a clean one", "echo: and now a clean one"]


LIMIT = get_settings().max_message_chars
MESSAGES = st.one_of(
    NASTY_TEXT,
    st.builds(lambda c, n: c * n, ANY_CHAR, st.integers(LIMIT - 2, LIMIT + 2)),  # around the length limit
    st.just(""),
)


@PROPS
@given(message=MESSAGES)
async def test_any_message_is_answered_and_archived_whole_or_refused_with_nothing_written(
    deps: Stores, athlete_id: str, message: str
) -> None:
    chat = Chat(deps, athlete_id, EchoModel())
    before = await archive_count(deps, athlete_id)
    dead_before = await dead_letters(deps)
    try:
        out = await chat.say(message)
    except (InvalidMessageError, InvalidTextError) as exc:
        assert exc.code in ("invalid_message", "invalid_text")
        assert not message.strip() or len(message) > LIMIT or not storable(message)
        await deps.memory.drain_outbox()
        assert await archive_count(deps, athlete_id) == before
    else:
        assert storable(message) and message.strip() and len(message) <= LIMIT
        assert out["memory_status"] == "ok"
        await wait_drained(deps)  # type: ignore[arg-type]
        rows = await archived(deps, athlete_id)
        # The athlete's message is archived exactly as typed; the reply is stripped (`save_turn`).
        assert len(rows) == before + 2 and [r["content"] for r in rows[-2:]] == [message, f"echo: {message}".strip()]
    assert await dead_letters(deps) == dead_before


# ----- dead letters are visible ----------------------------------------------------------------------------


async def test_a_dead_lettered_turn_changes_memory_status_and_shows_in_doctor(athlete_id: str) -> None:
    """A caller that skips the boundary: the archive rejects the row; the athlete and `coach doctor` are told."""
    from cli.doctor import doctor_report

    stream = f"test-outbox:{uuid.uuid4().hex[:8]}"
    memory = await ConversationMemory.from_settings(spool_dir=None)
    memory.outbox.stream, memory.outbox.dead_stream = stream, f"{stream}:dead"  # type: ignore[union-attr]
    try:
        now = datetime.now(UTC)
        turn = [
            ChatMessage(new_message_id(), athlete_id, "s1", "user", "bad \x00 text", now, turn_id=str(uuid.uuid4())),
            ChatMessage(new_message_id(), athlete_id, "s1", "assistant", "a reply", now, turn_id=str(uuid.uuid4())),
        ]
        assert await memory.save_turn(athlete_id, "s1", turn) == "ok"  # queued: Postgres is not asked yet
        await memory.drain_outbox()
        assert memory.redis is not None
        dead = await memory.redis.xrange(f"{stream}:dead", "-", "+")
        assert len(dead) >= 1
        assert all("reason" in fields and "NUL" in fields["reason"] for _, fields in dead)

        loaded = await memory.load(athlete_id, "s1")
        assert loaded.status == "degraded:dead_letter"  # the athlete's next turn says so
        assert (await memory.load(athlete_id, "s1")).status == "ok"  # said once
        assert (await memory.load(athlete_id, "other-session")).status == "ok"

        report = await doctor_report(memory)
        assert report["postgres"]["status"] == "ok" and report["redis"]["status"] == "ok"
        assert report["outbox"]["pending"] == 0
        assert report["dead_letters"]["count"] == len(dead)
        last = report["dead_letters"]["last"][0]
        assert last["athlete_id"] == athlete_id and last["session_id"] == "s1" and "NUL" in last["reason"]
    finally:
        assert memory.redis is not None
        await memory.redis.delete(stream, f"{stream}:dead")
        await memory.close()


def test_coach_doctor_prints_the_state_of_the_stores() -> None:
    proc = coach("doctor", "--json")
    report = json.loads(proc.stdout)
    assert set(report) >= {"postgres", "redis", "outbox", "dead_letters", "status"}
    assert report["postgres"]["status"] == "ok" and report["redis"]["status"] == "ok"
    assert proc.returncode == (0 if report["status"] == "ok" else 1)
    text = coach("doctor")
    assert "postgres" in text.stdout and "dead letters" in text.stdout


# ----- transcript ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
async def test_transcript_with_unstorable_text_is_refused_and_nothing_is_imported(
    deps: Stores, athlete_id: str, bad: str
) -> None:
    records = [
        {"role": "user", "content": "fine"},
        {"role": "assistant", "content": f"not {bad} fine"},
    ]
    with pytest.raises(InvalidTextError) as info:
        await deps.memory.import_transcript(athlete_id, "imported", records)
    assert info.value.line == 2 and info.value.code == "invalid_text"
    assert await archive_count(deps, athlete_id) == 0


TRANSCRIPT_RECORDS = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": NASTY_TEXT},
        optional={"id": st.one_of(NASTY_TEXT, st.integers(0, 10**6))},
    ),
    min_size=1,
    max_size=4,
)


@PROPS
@given(records=TRANSCRIPT_RECORDS)
async def test_any_transcript_is_imported_whole_or_refused_with_nothing_written(
    deps: Stores, athlete_id: str, records: list[dict[str, Any]]
) -> None:
    session = f"t-{uuid.uuid4().hex[:8]}"
    before = await archive_count(deps, athlete_id)
    try:
        result = await deps.memory.import_transcript(athlete_id, session, records)
    except (InvalidTextError, InvalidTranscriptError) as exc:
        assert exc.code in ("invalid_text", "invalid_transcript")
        assert await archive_count(deps, athlete_id) == before
        return
    assert all(storable(r["content"]) and r["content"].strip() for r in records)
    assert result.written + result.skipped == len(records)
    assert await archive_count(deps, athlete_id) == before + result.written


def test_cli_transcript_with_nul_or_surrogate_exits_2_naming_the_line(athlete_id: str, tmp_path: Path) -> None:
    for n, escape in enumerate(["\\u0000", "\\ud800"]):
        path = tmp_path / f"t{n}.jsonl"
        path.write_text(
            '{"role": "user", "content": "fine"}\n' + '{"role": "assistant", "content": "bad ' + escape + '"}\n'
        )
        proc = coach("import-transcript", str(path), "--athlete", athlete_id, "--session", "s1")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "invalid_text" in proc.stderr and "line 2" in proc.stderr
    assert json.loads(coach("search", "--athlete", athlete_id, "fine", "--json").stdout) == []


# ----- chat on the command line --------------------------------------------------------------------------------


def test_cli_chat_refuses_nul_and_surrogates_with_exit_2(athlete_id: str) -> None:
    for bad in ["a\x00b", "caf\udce9"]:  # "\udce9": a Latin-1 byte in argv, as Python decodes it
        proc = coach("chat", "--athlete", athlete_id, "--message", bad, "--json")
        assert proc.returncode == 2, proc.stdout
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "invalid_text" and "cannot be stored" in error["message"]
    assert json.loads(coach("search", "--athlete", athlete_id, "a", "--json").stdout) == []


def test_cli_interactive_chat_refuses_a_nul_line_and_goes_on(athlete_id: str) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(
        app, ["chat", "--athlete", athlete_id, "--tz", "UTC"], input="a\x00b\nhello coach\n\n", catch_exceptions=False
    )
    assert result.exit_code == 0
    assert "invalid_text" in result.stderr and "coach>" in result.stdout
    hits = json.loads(coach("search", "--athlete", athlete_id, "hello coach", "--json").stdout)
    assert [h["role"] for h in hits if "hello coach" in h["snippet"]] == ["user"]


# ----- plan CSV ------------------------------------------------------------------------------------------------


async def planned(deps: Stores, athlete_id: str) -> list[dict[str, Any]]:
    return await deps.plans.plan_between(athlete_id, datetime(2000, 1, 1).date(), datetime(2100, 1, 1).date())


async def test_cli_plan_import_refuses_an_unterminated_quote_and_nul(
    deps: Stores, athlete_id: str, tmp_path: Path
) -> None:
    header = "date,kind,duration_s,tss,description\n"
    unterminated = tmp_path / "quote.csv"
    unterminated.write_text(header + '2026-11-23,recovery,2700,25,"Easy spin\n2026-11-24,intervals,5400,95,VO2\n')
    proc = coach("plan", "import", str(unterminated), "--athlete", athlete_id)
    assert proc.returncode == 1, proc.stdout
    assert "(invalid_csv)" in proc.stderr and "line 2" in proc.stderr and "unterminated" in proc.stderr

    nul = tmp_path / "nul.csv"
    nul.write_text(header + "2026-11-23,recovery,2700,25,Easy\x00 spin\n")
    proc = coach("plan", "import", str(nul), "--athlete", athlete_id)
    assert proc.returncode == 2, proc.stdout
    assert "(invalid_text)" in proc.stderr and "line 2" in proc.stderr
    assert await planned(deps, athlete_id) == []


@PROPS
@given(descriptions=st.lists(NASTY_TEXT, min_size=1, max_size=4), kind=NASTY_TEXT)
async def test_any_plan_csv_is_stored_as_parsed_or_refused_with_nothing_written(
    deps: Stores, athlete_id: str, descriptions: list[str], kind: str
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["date", "kind", "duration_s", "tss", "description"])
    for day, description in enumerate(descriptions, start=1):
        writer.writerow([f"2026-11-{day:02d}", kind or "endurance", "3600", "50", description])
    athlete = f"{athlete_id}-{uuid.uuid4().hex[:6]}"
    try:
        rows = parse_plan_csv(buffer.getvalue())
    except (InvalidTextError, PlanImportError) as exc:
        assert exc.code in ("invalid_text", "invalid_csv", "invalid_plan")
        assert await planned(deps, athlete) == []
        return
    assert await deps.plans.import_rows(athlete, rows) == len(rows)
    stored = await planned(deps, athlete)
    assert [(r["kind"], r["description"]) for r in stored] == [(r.kind, r.description) for r in rows]


# ----- ride metadata -------------------------------------------------------------------------------------------


async def test_ride_file_with_a_non_utf8_name_is_refused_per_file_without_a_traceback(
    store: AthleteStore, athlete_id: str, tmp_path: Path
) -> None:
    """The path goes into the Debrief Coach's checkpointed state: refused with `invalid_text`, the others go on."""
    folder = tmp_path / "rides"
    folder.mkdir()
    # A Latin-1 name: Python reads the byte 0xE9 as the lone surrogate U+DCE9, which Postgres cannot store.
    shutil.copy(RIDES_DIR / INDOOR, os.path.join(os.fsencode(folder), b"caf\xe9-ride.fit"))
    shutil.copy(RIDES_DIR / "fitparse_edge500-hr-only-2011-09-25.fit", folder / "fine.fit")
    proc = coach("debrief", "--athlete", athlete_id, str(folder), "--json", env={})  # a subprocess: we are in a loop
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = {line["file"].rsplit("/", 1)[-1]: line for line in map(json.loads, proc.stdout.splitlines())}
    assert lines["caf\ufffd-ride.fit"]["error"]["code"] == "invalid_text"
    assert "rename the file" in lines["caf\ufffd-ride.fit"]["error"]["message"]
    assert "error" not in lines["fine.fit"]
    assert [r.file_name for r in await RideStore(store.pool, store).list_rides(athlete_id)] == ["fine.fit"]


def test_inbox_file_with_a_non_utf8_name_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from records.inbox import inbox_files

    folder = tmp_path / "athlete-1"
    folder.mkdir()
    shutil.copy(RIDES_DIR / INDOOR, os.path.join(os.fsencode(folder), b"caf\xe9.fit"))
    shutil.copy(RIDES_DIR / INDOOR, folder / "fine.fit")
    assert [p.name for p in inbox_files("athlete-1", tmp_path)] == ["fine.fit"]
    assert "rename it" in caplog.text


# ----- search queries and the model's tool arguments ---------------------------------------------------------


def test_cli_search_with_a_non_utf8_argument_exits_2(athlete_id: str) -> None:
    proc = coach("search", "--athlete", athlete_id, "caf\udce9")
    assert proc.returncode == 2 and "invalid_text" in proc.stderr


async def test_a_tool_call_with_nul_in_its_arguments_gets_an_error_result_not_a_crash(
    deps: Stores, athlete_id: str
) -> None:
    from tools.base import ToolCallContext, run_tool
    from tools.coach_tools import TOOLS

    by_name = {t.name: t for t in TOOLS}

    ctx = ToolCallContext(
        athlete_id=athlete_id, session_id="s1", timezone="UTC", now=datetime.now(UTC), sticky={}, window_message_ids=[]
    )
    for name, args in [
        ("search_conversation", {"query": "knee\x00 pain"}),
        ("propose_fact", {"key": "goal", "value": "x\ud800"}),
    ]:
        outcome = await run_tool(by_name[name], args, deps, ctx)
        assert outcome.content["error"] == "invalid_text", outcome.content
    assert await deps.athlete_store.current_facts(athlete_id) == {}
