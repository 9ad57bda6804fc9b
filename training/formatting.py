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


def format_clock(duration_s: float | None, *, seconds: bool = True) -> str:
    """Format seconds as a clock, ``"1:15:30"`` (H:MM:SS) or, without seconds, ``"1:15"`` (H:MM).

    The duration is rounded to the second first; without seconds the minutes are then whole minutes passed (as a
    clock shows them: 119 s is ``"0:01"``). Hours are not wrapped at 24.

    Args:
        duration_s: a duration in seconds, ≥ 0, or None when unknown.
        seconds: whether to show the seconds.

    Returns:
        The duration as a clock, e.g. ``"0:00:00"``, ``"25:01:01"``, ``"1:15"``; ``"–"`` (an en dash) for None.
    """
    if duration_s is None:
        return "–"
    total_s = int(round(duration_s))
    hours, minutes, secs = total_s // 3600, total_s % 3600 // 60, total_s % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if seconds else f"{hours}:{minutes:02d}"


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
