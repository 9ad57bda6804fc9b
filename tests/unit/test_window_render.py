"""The recent-turns block: format, pair limit, trimming, token budget (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from memory.session_window import (
    BLOCK_HEADER,
    WindowEntry,
    estimate_tokens,
    render_window_block,
    trim_text,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def entry(role: str, content: str, i: int = 0) -> WindowEntry:
    return WindowEntry.make(str(uuid.uuid4()), role, content, T0 + timedelta(seconds=i))  # type: ignore[arg-type]


def turns(n: int, user: str = "question {i}", assistant: str = "answer {i}") -> list[WindowEntry]:
    out = []
    for i in range(n):
        out.append(entry("user", user.format(i=i), 2 * i))
        out.append(entry("assistant", assistant.format(i=i), 2 * i + 1))
    return out


def test_estimate_tokens_is_ceil_of_chars_over_four() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert entry("user", "x" * 9).tokens == 3


def test_exact_format() -> None:
    entries = turns(2)
    block, ids = render_window_block(entries)
    assert block == ("[RECENT TURNS]\n- U: question 0\n- A: answer 0\n- U: question 1\n- A: answer 1")
    assert ids == [e.id for e in entries]


def test_empty_when_no_turns() -> None:
    assert render_window_block([]) == ("", [])
    assert render_window_block(turns(3), max_turns=0) == ("", [])


def test_at_most_max_turns_newest_kept() -> None:
    entries = turns(10)
    block, ids = render_window_block(entries, max_turns=6)
    assert block.count("- U: ") == 6 and block.count("- A: ") == 6
    assert "question 3" not in block and "question 4" in block and "answer 9" in block
    assert ids == [e.id for e in entries[-12:]]


def test_whitespace_collapsed_one_line_per_message() -> None:
    block, _ = render_window_block([entry("user", "line one\n\n  line   two"), entry("assistant", "ok\tfine")])
    assert block.splitlines() == [BLOCK_HEADER, "- U: line one line two", "- A: ok fine"]


def test_long_messages_trimmed_with_ellipsis() -> None:
    long = "word " * 2000
    block, ids = render_window_block([entry("user", "short"), entry("assistant", long)])
    line = block.splitlines()[2]
    assert line.startswith("- A: word") and line.endswith("…")
    assert len(line) < len(long)
    assert estimate_tokens(block) <= 1500
    assert len(ids) == 2  # a trimmed message is still in the prompt


def test_explicit_char_cap() -> None:
    block, _ = render_window_block([entry("user", "a" * 100)], message_char_cap=20)
    assert block.splitlines()[1] == "- U: " + "a" * 19 + "…"


def test_budget_drops_oldest_pairs_first() -> None:
    entries = turns(6, user="u{i} " + "x" * 300, assistant="a{i} " + "y" * 300)
    full, _ = render_window_block(entries, max_turns=6, token_budget=10_000)
    assert estimate_tokens(full) > 600
    block, ids = render_window_block(entries, max_turns=6, token_budget=600, message_char_cap=400)
    assert estimate_tokens(block) <= 600
    assert "u5 " in block and "a5 " in block  # the newest pair survives
    assert "u0 " not in block  # the oldest goes first
    kept = block.count("- U: ")
    assert 0 < kept < 6
    assert ids == [e.id for e in entries[-2 * kept :]]


@pytest.mark.parametrize("budget", [30, 100, 250, 1500, 4000])
def test_block_never_exceeds_budget(budget: int) -> None:
    entries = turns(8, user="{i} " + "lorem ipsum " * 80, assistant="{i} " + "dolor sit " * 120)
    block, ids = render_window_block(entries, max_turns=6, token_budget=budget)
    assert estimate_tokens(block) <= budget
    assert block.startswith(BLOCK_HEADER + "\n")
    assert ids and ids[-1] == entries[-1].id


def test_too_small_budget_gives_empty_block() -> None:
    assert render_window_block(turns(1), token_budget=3) == ("", [])


def test_orphans_form_their_own_turns() -> None:
    entries = [
        entry("assistant", "orphan answer", 0),  # its question was trimmed away
        entry("user", "q1", 1),
        entry("user", "q2 (no answer yet)", 2),
        entry("user", "q3", 3),
        entry("assistant", "a3", 4),
    ]
    block, ids = render_window_block(entries, max_turns=2)
    assert block.splitlines() == [BLOCK_HEADER, "- U: q2 (no answer yet)", "- U: q3", "- A: a3"]
    assert ids == [e.id for e in entries[2:]]


def test_trim_text_word_boundary() -> None:
    assert trim_text("short", 10) == "short"
    assert trim_text("alpha beta gamma delta", 15) == "alpha beta…"
    assert len(trim_text("x" * 50, 10)) == 10


def test_entry_json_round_trip_in_utc() -> None:
    e = WindowEntry.make(str(uuid.uuid4()), "user", "héllo", datetime(2025, 1, 1, 10, tzinfo=UTC))
    text = e.to_json()
    assert '"ts":"2025-01-01T10:00:00+00:00"' in text and '"tokens":2' in text
    assert WindowEntry.from_json(text) == e
