"""Errors raised by the memory layer."""

from __future__ import annotations


class MemoryError_(Exception):
    """Base class of the memory layer's errors; `code` is a stable machine-readable name."""

    code = "memory_error"


class StoreUnavailableError(MemoryError_):
    """A server of the memory layer (Postgres or Redis) cannot be reached."""

    code = "store_unavailable"


class InvalidAthleteIdError(MemoryError_, ValueError):
    """An athlete id is empty, too long or holds characters outside `[A-Za-z0-9_.@-]`."""

    code = "invalid_athlete_id"


class InvalidFactError(MemoryError_, ValueError):
    """A fact key or value is not acceptable (see `memory.athlete_store.validate_fact`)."""

    code = "invalid_fact"


class ProposalNotFoundError(MemoryError_, LookupError):
    """No pending fact proposal with that id for this athlete."""

    code = "proposal_not_found"


class InvalidSessionIdError(MemoryError_, ValueError):
    """A session id breaks the one rule (`memory.messages.validate_session_id`): 1-128 of `[A-Za-z0-9_.@:-]`."""

    code = "invalid_session_id"


class InvalidTranscriptError(MemoryError_, ValueError):
    """A transcript to import holds an invalid record; nothing was written.

    Attributes:
        line_no: 1-based number of the offending record (the line of a JSONL file).
    """

    code = "invalid_transcript"

    def __init__(self, line_no: int, reason: str) -> None:
        """Build the error from the record's 1-based number and what is wrong with it."""
        super().__init__(f"transcript line {line_no}: {reason}; nothing was imported")
        self.line_no = line_no
