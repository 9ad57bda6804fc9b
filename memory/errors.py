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
