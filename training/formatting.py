"""How durations and training volumes are written for the athlete: the one duration formatter of the project."""

from __future__ import annotations


def format_duration(duration_s: float) -> str:
    """Format seconds as ``"1h05"`` (an hour or more) or ``"45min"``, rounded to the minute.

    Args:
        duration_s: a duration in seconds, ≥ 0.

    Returns:
        The duration as the athlete reads it, e.g. ``"0min"``, ``"45min"``, ``"2h00"``.
    """
    hours, minutes = divmod(round(duration_s / 60), 60)
    return f"{hours}h{minutes:02d}" if hours else f"{minutes}min"


def format_volume(duration_s: float | None, tss: float | None) -> str:
    """Format a session's volume as ``"1h30, 70 TSS"``, leaving out what is unknown (``""`` when both are).

    Args:
        duration_s: the session's duration in seconds, or None.
        tss: its training stress score, or None.

    Returns:
        The duration (see :func:`format_duration`) and the TSS, joined by a comma.
    """
    parts = []
    if duration_s is not None:
        parts.append(format_duration(duration_s))
    if tss is not None:
        parts.append(f"{tss:.0f} TSS")
    return ", ".join(parts)
