"""Text Postgres cannot store, refused or normalised at the boundaries (issue 9, items 4 and 8).

Unit level: the one check (`memory.text`), the plan CSV parser (`records.plans.parse_plan_csv`), transcript
records (`memory.archive`), ride metadata (`training.debrief.ride_record`) and upload names (`records.inbox`),
with property-based tests over arbitrary text (hypothesis).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.errors import InvalidTranscriptError
from memory.text import InvalidTextError, clean_text, find_unstorable, validate_text
from memory.transcripts import _record_to_message  # the per-record check `import_transcript` runs first
from records.plans import InvalidCsvError, PlanImportError, PlanRow, parse_plan_csv
from records.uploads import InvalidUploadError, save_upload

# Every code point, lone surrogates and control characters included (codec=None lets surrogates through).
ANY_CHAR = st.characters(codec=None, categories=None)
ANY_TEXT = st.text(ANY_CHAR, max_size=200)
NASTY = st.sampled_from(["\x00", "\ud800", "\udfff", "\udcff", "\x01", "\x1b", "\u2028", "\ufeff", "\n", "\r", '"'])
NASTY_TEXT = st.lists(st.one_of(ANY_CHAR, NASTY), max_size=80).map("".join)
PROPS = settings(max_examples=80, deadline=None)

HEADER = "date,kind,duration_s,tss,description\n"


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


# ----- the one check -----------------------------------------------------------------------------------------


def test_validate_text_names_the_character_field_and_line():
    assert validate_text("hello\x01\x1b world", "message") == "hello\x01\x1b world"  # other controls are stored
    with pytest.raises(InvalidTextError) as info:
        validate_text("ab\x00c", "message")
    assert info.value.code == "invalid_text" and info.value.position == 2
    assert str(info.value) == "message: NUL (U+0000) at character 3 cannot be stored; remove it and try again"
    with pytest.raises(InvalidTextError) as info:
        validate_text("line one\nline \ud800two", "plan file")
    assert info.value.line == 2 and "lone surrogate (U+D800) at column 6" in str(info.value)
    with pytest.raises(InvalidTextError) as info:
        validate_text("x\udcff", "content", line=7)
    assert info.value.line == 7 and str(info.value).startswith(
        "content (line 7): a lone surrogate (U+DCFF) at character 2"
    )
    with pytest.raises(InvalidTextError, match="limit is 3"):
        validate_text("abcd", "message", max_chars=3)
    with pytest.raises(InvalidTextError, match="empty"):
        validate_text(" \n", "content", allow_empty=False)
    with pytest.raises(InvalidTextError, match="expected text, got int"):
        validate_text(42, "content")


@PROPS
@given(NASTY_TEXT)
def test_validate_text_accepts_exactly_the_storable_text(text):
    if storable(text):
        assert validate_text(text, "t") is text
    else:
        with pytest.raises(InvalidTextError):
            validate_text(text, "t")


@PROPS
@given(NASTY_TEXT)
def test_clean_text_always_gives_storable_text_and_keeps_storable_text(text):
    cleaned = clean_text(text)
    assert storable(cleaned) and find_unstorable(cleaned) is None
    if storable(text):
        assert cleaned == text


# ----- plan CSV (item 8 and the CSV cells of item 4) --------------------------------------------------------


def test_unterminated_quote_is_refused_with_its_line_not_swallowed():
    text = HEADER + '2026-11-23,recovery,2700,25,"Easy spin\n2026-11-24,intervals,5400,95,VO2\n2026-11-25,rest,,,\n'
    with pytest.raises(InvalidCsvError) as info:
        parse_plan_csv(text)
    assert info.value.code == "invalid_csv"
    [(line, reason)] = info.value.errors
    assert line == 2 and "unterminated quoted field" in reason
    assert "line 2" in str(info.value)


def test_text_after_a_closing_quote_is_refused():
    with pytest.raises(InvalidCsvError) as info:
        parse_plan_csv(HEADER + '2026-11-23,recovery,2700,25,"Easy" spin\n')
    assert info.value.errors[0][0] == 2


def test_a_quoted_multi_line_description_is_still_fine():
    rows = parse_plan_csv(HEADER + '2026-11-23,recovery,2700,25,"Easy\nspin"\n2026-11-24,rest,,,\n')
    assert [r.description for r in rows] == ["Easy\nspin", ""]


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_unstorable_character_in_a_cell_is_refused_with_its_line(bad):
    text = HEADER + "2026-11-23,recovery,2700,25,Easy\n" + f"2026-11-24,intervals,5400,95,VO2{bad}max\n"
    with pytest.raises(InvalidTextError) as info:
        parse_plan_csv(text)
    assert info.value.code == "invalid_text" and info.value.line == 3
    assert "column 33" in str(info.value)  # "2026-11-24,intervals,5400,95,VO2" is 32 characters


@PROPS
@given(st.lists(NASTY_TEXT, min_size=1, max_size=5))
def test_any_description_round_trips_or_is_refused_as_invalid_text(descriptions):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["date", "kind", "duration_s", "tss", "description"])
    for day, description in enumerate(descriptions, start=1):
        writer.writerow([f"2026-11-{day:02d}", "endurance", "3600", "50", description])
    text = buffer.getvalue()
    if not storable(text):
        with pytest.raises(InvalidTextError):
            parse_plan_csv(text)
        return
    try:
        rows = parse_plan_csv(text)
    except PlanImportError as exc:  # a description that is only a newline makes no row problem, but "\r" may
        assert exc.errors and all(line >= 1 for line, _ in exc.errors)
        return
    assert rows == [
        PlanRow(date(2026, 11, day), "endurance", 3600.0, 50.0, d.strip()) for day, d in enumerate(descriptions, 1)
    ]


@PROPS
@given(st.one_of(NASTY_TEXT, st.text(st.sampled_from(',"\n\r\x00ab1-'), max_size=300)))
def test_any_file_is_parsed_or_refused_with_a_code_and_a_line(text):
    try:
        rows = parse_plan_csv(HEADER + text)
    except InvalidTextError as exc:
        assert exc.code == "invalid_text" and exc.line is not None and exc.line >= 1
        return
    except PlanImportError as exc:
        assert exc.code in ("invalid_plan", "invalid_csv") and exc.errors
        assert all(isinstance(line, int) and line >= 1 for line, _ in exc.errors)
        return
    assert all(storable(r.description) and storable(r.kind) for r in rows)


def test_huge_cell_is_refused_as_invalid_csv():
    with pytest.raises(InvalidCsvError):
        parse_plan_csv(HEADER + "2026-11-23,recovery,2700,25," + "x" * 200_000 + "\n")


# ----- transcript records --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_transcript_record_with_unstorable_text_is_refused_with_its_line(bad):
    with pytest.raises(InvalidTextError) as info:
        _record_to_message("a1", "s1", 3, {"role": "user", "content": f"hi{bad}"}, datetime.now(UTC))
    assert info.value.code == "invalid_text" and info.value.line == 3 and "content" in str(info.value)
    with pytest.raises(InvalidTextError):
        _record_to_message("a1", "s1", 4, {"role": "user", "content": "hi", "id": f"x{bad}"}, datetime.now(UTC))


@PROPS
@given(st.dictionaries(st.sampled_from(["role", "content", "ts", "id"]), st.one_of(NASTY_TEXT, st.integers())))
def test_any_transcript_record_becomes_a_storable_message_or_a_coded_error(record):
    try:
        m = _record_to_message("a1", "s1", 1, record, datetime.now(UTC))
    except (InvalidTextError, InvalidTranscriptError) as exc:
        assert exc.code in ("invalid_text", "invalid_transcript")
        return
    assert storable(m.content) and (m.external_id is None or storable(m.external_id))


# ----- ride metadata and upload names --------------------------------------------------------------------------


def test_ride_metadata_from_files_is_normalised():
    from memory.text import clean_ride_metadata

    assert clean_ride_metadata("ride-\udcff.fit", "cyc\x00ling") == ("ride-\ufffd.fit", "cycling")
    assert clean_ride_metadata("ride.fit", "cycling") == ("ride.fit", "cycling")


@PROPS
@given(name=st.one_of(NASTY_TEXT, st.text(max_size=300).map(lambda s: s + ".fit")))
def test_any_upload_name_is_saved_inside_the_inbox_or_refused_without_writing(tmp_path_factory, name):
    inbox = tmp_path_factory.mktemp("inbox")
    try:
        path = save_upload("athlete-1", name, b"\x0e\x10 not really a fit file", inbox).path
    except InvalidUploadError as exc:
        assert exc.code == "invalid_upload"
        assert not any(p.is_file() for p in Path(inbox).rglob("*"))
        return
    assert path.is_file() and path.parent == inbox.absolute() / "athlete-1" and storable(path.name)
