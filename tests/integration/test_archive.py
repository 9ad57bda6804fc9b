"""The Postgres conversation archive: idempotent writes, conversations rows, hydration order, recall, imports."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from memory.archive import Archive
from memory.errors import InvalidTranscriptError
from memory.messages import ChatMessage, new_message_id
from memory.recall import SNIPPET_MAX_CHARS, SearchHit, make_snippet
from records.stores import open_stores

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def archive() -> AsyncIterator[Archive]:
    async with open_stores(require_postgres=True) as stores:
        yield Archive(stores.pool, timeout_s=5)


def msg(athlete_id: str, session_id: str, role: str, content: str, at: datetime, **kw: object) -> ChatMessage:
    return ChatMessage(new_message_id(), athlete_id, session_id, role, content, at, **kw)  # type: ignore[arg-type]


def turn(athlete_id: str, session_id: str, user: str, assistant: str, at: datetime) -> list[ChatMessage]:
    turn_id = new_message_id()
    return [
        msg(athlete_id, session_id, "user", user, at, turn_id=turn_id),
        msg(athlete_id, session_id, "tool", '{"rides": []}', at + timedelta(seconds=1), turn_id=turn_id,
            tool_name="get_ride_logs"),
        msg(athlete_id, session_id, "assistant", assistant, at + timedelta(seconds=2), turn_id=turn_id),
    ]  # fmt: skip


async def conversation_row(archive: Archive, athlete_id: str, session_id: str) -> dict[str, object] | None:
    async with archive.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM conversations WHERE athlete_id = %s AND session_id = %s", (athlete_id, session_id)
        )
        return await cur.fetchone()


def test_chat_message_json_round_trip_and_validation(athlete_id: str) -> None:
    m = msg(athlete_id, "s", "tool", "ok", T0, turn_id=str(uuid.uuid4()).upper(), tool_name="get_plan")
    assert m.turn_id == m.turn_id.lower()  # type: ignore[union-attr]
    assert ChatMessage.from_json(m.to_json()) == m
    with pytest.raises(ValueError, match="timezone-aware"):
        msg(athlete_id, "s", "user", "x", datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="role"):
        msg(athlete_id, "s", "system", "x", T0)
    with pytest.raises(ValueError):
        ChatMessage("not-a-uuid", athlete_id, "s", "user", "x", T0)
    with pytest.raises(ValueError):
        ChatMessage.from_json('{"id": 1}')


def test_new_message_id_is_time_ordered_uuid7() -> None:
    ids = [new_message_id() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == 50
    first, later = new_message_id(), (time.sleep(0.002), new_message_id())[1]
    assert first < later


async def test_write_is_idempotent_and_creates_the_conversation(archive: Archive, athlete_id: str) -> None:
    long_question = "How should I pace a   4-hour gran fondo with 2,500 m of climbing when my FTP is 260 W and more?"
    messages = turn(athlete_id, "s1", long_question, "Ride the climbs at 75-85 % of FTP.", T0)
    assert await archive.write(messages) == 3
    assert await archive.write(messages) == 0  # exactly once
    assert await archive.write(list(reversed(messages))) == 0
    assert await archive.count(athlete_id, "s1") == 3
    assert await archive.count(athlete_id, roles=("user", "assistant")) == 2
    row = await conversation_row(archive, athlete_id, "s1")
    assert row is not None
    assert row["title"] == " ".join(long_question.split())[:80]
    assert row["created_at"] == T0 and row["updated_at"] == T0 + timedelta(seconds=2)

    later = turn(athlete_id, "s1", "And the descents?", "Stay loose.", T0 + timedelta(hours=1))
    assert await archive.write(later) == 3
    row = await conversation_row(archive, athlete_id, "s1")
    assert row is not None
    assert row["title"] == " ".join(long_question.split())[:80]  # kept
    assert row["updated_at"] == T0 + timedelta(hours=1, seconds=2)  # bumped
    assert await archive.count(athlete_id) == 6


async def test_concurrent_duplicate_writes_store_once(archive: Archive, athlete_id: str) -> None:
    messages = [m for i in range(20) for m in turn(athlete_id, "s", f"q{i}", f"a{i}", T0 + timedelta(minutes=i))]
    written = await asyncio.gather(*(archive.write(messages) for _ in range(4)), return_exceptions=True)
    assert not [w for w in written if isinstance(w, BaseException)]
    assert sum(w for w in written if isinstance(w, int)) == 60
    assert await archive.count(athlete_id) == 60


async def test_recent_is_oldest_first_user_and_assistant_only(archive: Archive, athlete_id: str) -> None:
    for i in range(5):
        await archive.write(turn(athlete_id, "s", f"q{i}", f"a{i}", T0 + timedelta(minutes=i)))
    await archive.write(turn(athlete_id, "other", "elsewhere", "elsewhere", T0))
    recent = await archive.recent(athlete_id, "s", 4)
    assert [m.content for m in recent] == ["q3", "a3", "q4", "a4"]
    assert all(m.role in ("user", "assistant") for m in recent)
    assert [m.content for m in await archive.recent(athlete_id, "s", 100)][:2] == ["q0", "a0"]
    assert await archive.recent(f"{athlete_id}-nobody", "s", 10) == []


async def test_recent_keeps_concurrent_turns_together(archive: Archive, athlete_id: str) -> None:
    # Two turns of one session ran at once: their timestamps interleave (u1, u2, a1, a2).
    t1, t2 = new_message_id(), new_message_id()
    await archive.write(
        [
            msg(athlete_id, "s", "user", "u1", T0, turn_id=t1),
            msg(athlete_id, "s", "user", "u2", T0 + timedelta(seconds=1), turn_id=t2),
            msg(athlete_id, "s", "assistant", "a1", T0 + timedelta(seconds=2), turn_id=t1),
            msg(athlete_id, "s", "assistant", "a2", T0 + timedelta(seconds=3), turn_id=t2),
        ]
    )
    assert [m.content for m in await archive.recent(athlete_id, "s", 10)] == ["u1", "a1", "u2", "a2"]


async def seed_recall_corpus(archive: Archive, athlete_id: str) -> dict[str, list[ChatMessage]]:
    march = datetime(2025, 3, 4, 18, 30, tzinfo=UTC)
    may = datetime(2025, 5, 20, 7, 0, tzinfo=UTC)
    sessions = {
        "march-knee": turn(
            athlete_id,
            "march-knee",
            "My left knee hurts after long climbs, especially when I stay seated at low cadence.",
            "Knee pain on climbs often comes from saddle height or grinding a low cadence. Raise the cadence "
            "to 85-90 rpm and check your saddle height before the next long ride.",
            march,
        ),
        "may-nutrition": turn(
            athlete_id,
            "may-nutrition",
            "What should I eat during a three hour endurance ride?",
            "Aim for 60-90 g of carbohydrate per hour, drink to thirst, and start fuelling in the first 30 minutes.",
            may,
        ),
    }
    for messages in sessions.values():
        await archive.write(messages)
    return sessions


async def test_search_finds_a_paraphrase_with_session_and_date(archive: Archive, athlete_id: str) -> None:
    sessions = await seed_recall_corpus(archive, athlete_id)
    hits = await archive.search(athlete_id, "why does my knee ache when climbing?", k=3)
    assert hits, "a paraphrase sharing 'knee' and 'climb' must match"
    best = hits[0]
    assert isinstance(best, SearchHit)
    assert best.session_id == "march-knee"
    assert best.ts.astimezone(UTC).date().isoformat() == "2025-03-04"
    assert best.message_id in {m.id for m in sessions["march-knee"]}
    assert "knee" in best.snippet.lower()
    assert 0 < best.score < 1
    d = best.to_dict()
    assert d["ts"].startswith("2025-03-04T18:3") and d["ts"].endswith("+00:00")
    assert json.dumps(d)  # JSON-ready
    assert all(h.role in ("user", "assistant") for h in hits)  # tool messages never recalled

    food = await archive.search(athlete_id, "how many carbs per hour on long rides", k=1)
    assert len(food) == 1 and food[0].session_id == "may-nutrition"


async def test_search_never_returns_another_athletes_messages(archive: Archive, athlete_id: str) -> None:
    other = f"{athlete_id}-other"
    await seed_recall_corpus(archive, other)
    assert await archive.search(athlete_id, "knee pain climbing saddle", k=3) == []
    await seed_recall_corpus(archive, athlete_id)
    hits = await archive.search(athlete_id, "knee pain climbing saddle", k=10)
    mine = {m.id for s in ("march-knee", "may-nutrition") for m in await archive.recent(athlete_id, s, 10)}
    assert hits and all(h.message_id in mine for h in hits)


async def test_search_excludes_ids_and_caps_k(archive: Archive, athlete_id: str) -> None:
    sessions = await seed_recall_corpus(archive, athlete_id)
    knee_ids = [m.id for m in sessions["march-knee"]]
    hits = await archive.search(athlete_id, "knee climb cadence saddle", k=3)
    assert {h.message_id for h in hits} >= {knee_ids[0], knee_ids[2]}
    excluded = await archive.search(athlete_id, "knee climb cadence saddle", k=3, exclude_ids=knee_ids + ["junk"])
    assert not {h.message_id for h in excluded} & set(knee_ids)
    assert len(await archive.search(athlete_id, "knee climb ride hour", k=1)) == 1
    assert await archive.search(athlete_id, "knee", k=0) == []


@pytest.mark.parametrize("query", ["", "   ", "the and of is it", "I?", "a"])
async def test_search_with_no_usable_words_returns_nothing(archive: Archive, athlete_id: str, query: str) -> None:
    await seed_recall_corpus(archive, athlete_id)
    assert await archive.search(athlete_id, query) == []


async def test_search_tolerates_tsquery_syntax_in_the_query(archive: Archive, athlete_id: str) -> None:
    await seed_recall_corpus(archive, athlete_id)
    hits = await archive.search(athlete_id, "knee & (climb | !saddle) ' \\ :* <-> O'Brien's")
    assert hits and hits[0].session_id == "march-knee"


async def test_snippets_are_short_and_around_the_match(archive: Archive, athlete_id: str) -> None:
    filler = " ".join(f"filler{i}" for i in range(400))
    long = f"{filler} the threshold intervals on Tuesday felt brutal {filler}"
    await archive.write([msg(athlete_id, "s", "assistant", long, T0)])
    hits = await archive.search(athlete_id, "brutal threshold intervals")
    assert len(hits) == 1
    snippet = hits[0].snippet
    assert len(snippet) <= SNIPPET_MAX_CHARS
    assert "threshold intervals" in snippet and snippet.startswith("…") and snippet.endswith("…")


def test_make_snippet_windows_around_the_densest_matches() -> None:
    assert make_snippet("short \n text") == "short text"
    head = "word " * 500
    assert len(make_snippet(head)) <= SNIPPET_MAX_CHARS and make_snippet(head).endswith(" …")
    marked = "intro \x02knee\x03 " + "pad " * 300 + "my \x02knee\x03 hurts on \x02climbs\x03 " + "tail " * 300
    snippet = make_snippet(marked)
    assert len(snippet) <= SNIPPET_MAX_CHARS
    assert "my knee hurts on climbs" in snippet and "intro" not in snippet
    assert snippet.startswith("… pad") and snippet.endswith("tail …")
    assert "\x02" not in snippet and "\x03" not in snippet
    for n in range(0, 900, 37):  # the cap holds wherever the match is
        s = make_snippet("x" * n + " \x02hit\x03 " + "yyyyyyyyyyyy" * 80)
        assert len(s) <= SNIPPET_MAX_CHARS and "hit" in s


async def test_import_transcript_is_idempotent(archive: Archive, athlete_id: str) -> None:
    records = [
        {"role": "user", "content": "Planning my first century.", "ts": "2024-06-01T08:00:00Z", "id": "m1"},
        {"role": "assistant", "content": "Build up the long ride by 10 % a week.", "id": 2},
        {"role": "user", "content": "No id, no timestamp."},
        {"role": "assistant", "content": "Still ordered after the line before."},
    ]
    first = await archive.import_transcript(athlete_id, "imported", records)
    assert (first.written, first.skipped) == (4, 0)
    again = await archive.import_transcript(athlete_id, "imported", records)
    assert (again.written, again.skipped) == (0, 4)
    assert await archive.count(athlete_id, "imported") == 4
    recent = await archive.recent(athlete_id, "imported", 10)
    assert [m.content for m in recent] == [r["content"] for r in records]
    assert recent[0].external_id == "m1" and recent[1].external_id == "2" and recent[2].external_id is None
    assert recent[0].created_at == datetime(2024, 6, 1, 8, tzinfo=UTC)
    assert recent[2].created_at < recent[3].created_at
    # The same external ids in another session are other messages.
    assert (await archive.import_transcript(athlete_id, "imported-2", records)).written == 4


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"role": "system", "content": "x"}, "role"),
        ({"role": "tool", "content": "x"}, "role"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": "x", "ts": "yesterday"}, "ts"),
        ({"role": "user", "content": "x", "id": ["a"]}, "id"),
        ("not an object", "object"),
    ],
)
async def test_import_reports_the_bad_line_and_writes_nothing(
    archive: Archive, athlete_id: str, bad: object, needle: str
) -> None:
    records = [{"role": "user", "content": "fine"}, {"role": "assistant", "content": "fine too"}, bad]
    with pytest.raises(InvalidTranscriptError, match=rf"line 3: .*{needle}") as info:
        await archive.import_transcript(athlete_id, "bad", records)  # type: ignore[arg-type]
    assert info.value.line_no == 3
    assert await archive.count(athlete_id) == 0
    assert await conversation_row(archive, athlete_id, "bad") is None


async def test_large_import_in_batches(archive: Archive, athlete_id: str) -> None:
    records = [{"role": ("user", "assistant")[i % 2], "content": f"message {i}"} for i in range(5000)]
    result = await archive.import_transcript(athlete_id, "big", records)
    assert (result.written, result.skipped) == (5000, 0)
    assert (await archive.import_transcript(athlete_id, "big", records)).skipped == 5000
    assert await archive.count(athlete_id, "big") == 5000
