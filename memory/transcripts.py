"""Transcripts to import into the archive: validation of each record and deterministic message ids.

One record is one line of a JSONL file: `{"role": "user"|"assistant", "content": str, "ts"?: ISO 8601 str,
"id"?: str|int}`. `transcript_messages` validates every record before anything is written (`coach
import-transcript`, `ConversationMemory.import_transcript` through `Archive.import_transcript`); message ids are
uuid5 of the athlete, the session and the record's id (or its line number and content), so importing a
transcript again writes nothing (docs/architecture.md, the memory tiers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from memory.athlete_store import validate_athlete_id
from memory.errors import InvalidTranscriptError
from memory.messages import ChatMessage, Role, validate_session_id
from memory.text import validate_text

TRANSCRIPT_CONTENT_MAX_CHARS = 100_000
"""Longest imported message, characters: far above a chat turn, well below Postgres's 1 MB tsvector limit."""
TRANSCRIPT_ID_MAX_CHARS = 256
"""Longest `id` of an imported record, characters."""

# Namespace of the deterministic ids of imported messages (uuid5); never change it, or re-imports duplicate.
_IMPORT_NAMESPACE = uuid.UUID("6f1c4f2e-0d5b-4a7e-9a57-3c1e2b8d9f10")


def transcript_messages(
    athlete_id: str, session_id: str, records: Iterable[Mapping[str, Any]], *, start: datetime | None = None
) -> list[ChatMessage]:
    """Validate a transcript's records and turn them into messages with deterministic ids, oldest first.

    A missing `ts` is `start` (default: now) plus the line number in microseconds, so the order is preserved; a
    `ts` without an offset is read as UTC. An `id` is kept as `external_id`.

    Args:
        athlete_id: owner of the session.
        session_id: the session to import into.
        records: the transcript, oldest first.
        start: the import's start time (aware).

    Returns:
        One message per record.

    Raises:
        InvalidTranscriptError: a record is invalid; its 1-based line number is in the message and `line_no`.
        InvalidAthleteIdError, InvalidSessionIdError: invalid ids.
    """
    validate_athlete_id(athlete_id)
    validate_session_id(session_id)
    start = start or datetime.now(UTC)
    return [
        _record_to_message(athlete_id, session_id, line_no, record, start)
        for line_no, record in enumerate(records, start=1)
    ]


def _record_to_message(
    athlete_id: str, session_id: str, line_no: int, record: Mapping[str, Any], start: datetime
) -> ChatMessage:
    """Validate one transcript record and turn it into a message with a deterministic id."""
    if not isinstance(record, Mapping):
        raise InvalidTranscriptError(line_no, f"expected a JSON object, got {type(record).__name__}")
    role = record.get("role")
    if role not in ("user", "assistant"):
        raise InvalidTranscriptError(line_no, f"role must be 'user' or 'assistant', not {role!r}")
    content = record.get("content")
    if not isinstance(content, str) or not content.strip():
        raise InvalidTranscriptError(line_no, "content must be a non-empty string")
    validate_text(content, "content", line=line_no, max_chars=TRANSCRIPT_CONTENT_MAX_CHARS)
    raw_id = record.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == ""):
        raise InvalidTranscriptError(line_no, f"id must be a non-empty string or an integer, not {raw_id!r}")
    if isinstance(raw_id, str):
        validate_text(raw_id, "id", line=line_no, max_chars=TRANSCRIPT_ID_MAX_CHARS)
    external_id = None if raw_id is None else str(raw_id)
    raw_ts = record.get("ts")
    if raw_ts is None:
        created_at = start + timedelta(microseconds=line_no)
    else:
        try:
            created_at = datetime.fromisoformat(str(raw_ts))
        except ValueError as exc:
            raise InvalidTranscriptError(line_no, f"ts {raw_ts!r} is not an ISO 8601 timestamp") from exc
        if created_at.utcoffset() is None:
            created_at = created_at.replace(tzinfo=UTC)
    if external_id is not None:
        name = f"{athlete_id}\x1f{session_id}\x1fid\x1f{external_id}"
    else:
        name = f"{athlete_id}\x1f{session_id}\x1fline\x1f{line_no}\x1f{content}"
    return ChatMessage(
        id=str(uuid.uuid5(_IMPORT_NAMESPACE, name)),
        athlete_id=athlete_id,
        session_id=session_id,
        role=cast(Role, role),
        content=content,
        created_at=created_at,
        external_id=external_id,
    )
