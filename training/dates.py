"""Relative dates ("last Thursday", "yesterday", "Nov 19th") resolved to a day in the athlete's time zone.

Parsing is done by the `dateparser` library (English only), never by a hand-written grammar. This module adds
three things around it:

* the reference time: `now` (default: the current time) converted to the athlete's IANA time zone, so "today"
  at 23:30 in Los Angeles is the Los Angeles day, not the UTC one;
* a preference for the past (a coach is mostly asked about rides done), switchable to the future for plans;
* a filter against `dateparser`'s false positives ("may", "now", "a sec", "5", "sat"): a phrase is accepted only
  when it names a day (see `is_day_phrase`).

Weekday names, as `dateparser` resolves them with `PREFER_DATES_FROM="past"`:

* "Thursday" and "last Thursday" are the most recent Thursday strictly before today: on Thursday 2026-11-26
  both mean 2026-11-19 (say "today" for today);
* "this Thursday" on a Thursday is today; "next Thursday" is the first Thursday after today (2026-12-03).

With ``prefer="future"`` a bare "Thursday" is the next Thursday strictly after today and "Dec 3" the coming one.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

import dateparser
from dateparser.search import search_dates

Prefer = Literal["past", "future"]

LANGUAGES = ["en"]
"""Languages given to dateparser: English only (faster, and the day-phrase filter is English)."""

_WEEKDAY_RE = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tues?|thu|thurs?|fri)\b", re.IGNORECASE
)
# "mon", "wed", "sat" and "sun" are left out on purpose: "I sat on the bike in the sun" is not a date.
_MONTH_RE = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b",
    re.IGNORECASE,
)
_DAY_OF_MONTH_RE = re.compile(r"\b(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\b", re.IGNORECASE)
_RELATIVE_RE = re.compile(
    r"\b(?:yesterday|today|tomorrow|tonight|ago|last|next)\b|\bin\s+(?:\d+|an?)\s+(?:days?|weeks?)\b",
    re.IGNORECASE,
)
_ISO_DATE_RE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")

_POSSESSIVE_RE = re.compile(r"(?<=\w)['’]s\b", re.IGNORECASE)
# Words that dateparser's search may glue around a date phrase: separators split a phrase ("yesterday and today"
# is two phrases), leading prepositions and "the" are dropped ("on Monday" -> "Monday").
_SPLIT_RE = re.compile(r"\s*(?:,|;|\band\b|\bor\b|\bto\b|\buntil\b|\bthrough\b|\bvs\.?|\bversus\b)\s*", re.IGNORECASE)
_LEADING_WORDS_RE = re.compile(r"^(?:(?:on|from|for|about|at|since|by|of|during|the)\s+)+", re.IGNORECASE)

_HINT = "try 'today', 'yesterday', 'last Thursday', '2 days ago', 'Nov 19' or an ISO date such as 2026-11-19"


class DateResolutionError(ValueError):
    """A text could not be resolved to a day, or the time zone is unknown; the message says which and why."""


class InvalidTimezoneError(DateResolutionError):
    """A time zone that is not a known IANA name (`validate_timezone`); refused wherever a client gives one."""

    code = "invalid_timezone"


def local_now(tz: str, now: datetime | None = None) -> datetime:
    """Return `now` (default: the current time) as an aware datetime in the IANA time zone `tz`.

    Args:
        tz: IANA time zone name, e.g. ``"Europe/Paris"``.
        now: reference instant; a naive datetime is taken as UTC.

    Raises:
        InvalidTimezoneError: `tz` is not a known IANA time zone.
    """
    zone = zone_info(tz)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(zone)


def is_day_phrase(phrase: str) -> bool:
    """Whether a phrase names a day, so it is not one of dateparser's false positives.

    Accepted: a weekday ("Thursday", "thu"; not the ambiguous "mon", "wed", "sat", "sun"), a month name with a
    day number ("Nov 19th", "19 November"; "may" or "march" alone are not dates), a relative word (yesterday,
    today, tomorrow, tonight, ago, last, next; "in 3 days", "in a week") or an ISO date (2026-11-19).
    Rejected, for example: "now", "may", "a sec", "5", "5 hours", "November".
    """
    if _WEEKDAY_RE.search(phrase) or _RELATIVE_RE.search(phrase) or _ISO_DATE_RE.search(phrase):
        return True
    return bool(_MONTH_RE.search(phrase) and _DAY_OF_MONTH_RE.search(phrase))


def resolve_day(text: str, *, tz: str = "UTC", now: datetime | None = None, prefer: Prefer = "past") -> date:
    """Resolve a day phrase to a calendar day in the athlete's time zone.

    Examples with `now` = Thursday 2026-11-26 in `tz`: "today" → 2026-11-26, "yesterday" → 2026-11-25,
    "2 days ago" → 2026-11-24, "Thursday" and "last Thursday" → 2026-11-19 (a weekday name on that same weekday
    means a week ago: see the module docstring), "this Thursday" → 2026-11-26, "2026-11-19", "19 Nov" and
    "Nov 19th" → 2026-11-19. A phrase with an explicit UTC offset ("2026-11-19T03:30:00+00:00") is converted to
    `tz` before its day is taken.

    Args:
        text: the phrase (English).
        tz: the athlete's IANA time zone name.
        now: reference instant (default: the current time); naive means UTC.
        prefer: ``"past"`` (default) or ``"future"``: which way an incomplete date goes ("Thursday", "Dec 3").

    Returns:
        The local day.

    Raises:
        DateResolutionError: empty text, unknown time zone, a phrase that does not name a day (see
            `is_day_phrase`), or one dateparser cannot read.
    """
    phrase = " ".join(text.split()) if isinstance(text, str) else ""
    if not phrase:
        raise DateResolutionError(f"no day given: {_HINT}")
    local = local_now(tz, now)
    if not is_day_phrase(phrase):
        raise DateResolutionError(f"{text!r} does not name a day: {_HINT}")
    parsed = dateparser.parse(phrase, languages=LANGUAGES, settings=_settings(local, prefer))
    if parsed is None:
        raise DateResolutionError(f"could not read {text!r} as a day: {_HINT}")
    if not isinstance(parsed, datetime):  # dateparser is untyped: check what it gave
        raise DateResolutionError(f"could not read {text!r} as a day: {_HINT}")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(local.tzinfo)
    return parsed.date()


def find_day_in_text(
    message: str, *, tz: str, now: datetime | None = None, prefer: Prefer = "past"
) -> tuple[str, date] | None:
    """Find the first day phrase in a free-text message and resolve it.

    Candidates come from `dateparser.search.search_dates` with the settings of `resolve_day`. Possessives are
    blanked first ("Thursday's" would otherwise hide the date), a candidate is split at "and", "or", "to",
    commas..., leading prepositions and "the" ("on", "from", "for", ...) are dropped, and only phrases that pass
    `is_day_phrase` are kept, so "may I...", "now", "in a sec" or "5 hours" are not dates. The day is that of
    `resolve_day(phrase)`.

    Example: "show me last Thursday's logs" on Thursday 2026-11-26 → ``("last Thursday", date(2026, 11, 19))``.

    Args:
        message: the athlete's message.
        tz: the athlete's IANA time zone name.
        now: reference instant (default: the current time); naive means UTC.
        prefer: as in `resolve_day`.

    Returns:
        ``(phrase, day)`` for the first day phrase, or None when the message names no day.

    Raises:
        DateResolutionError: unknown time zone.
    """
    local = local_now(tz, now)
    if not isinstance(message, str) or not message.strip():
        return None
    cleaned = _POSSESSIVE_RE.sub("  ", message)  # same length: phrases stay substrings of the message
    found = search_dates(cleaned, languages=LANGUAGES, settings=_settings(local, prefer)) or []
    for candidate, _ in found:
        for part in _SPLIT_RE.split(candidate):
            phrase = _LEADING_WORDS_RE.sub("", " ".join(part.split()))
            if not phrase or not is_day_phrase(phrase):
                continue
            try:
                return phrase, resolve_day(phrase, tz=tz, now=local, prefer=prefer)
            except DateResolutionError:
                continue
    return None


_NOT_ATHLETE_ZONES = frozenset({"localtime", "Factory", "posixrules"})
"""Files of the time-zone database that are not zones an athlete lives in."""


@functools.cache
def known_timezones() -> frozenset[str]:
    """The IANA time-zone names of this machine's database (`zoneinfo.available_timezones`), read once.

    The first call reads the database's folder (about 0.2 s of file-system access; the server does it in its
    warm-up, outside the event loop); later calls are a cached set.
    """
    return frozenset(available_timezones()) - _NOT_ATHLETE_ZONES


def validate_timezone(tz: object) -> str:
    """Return `tz` when it is a known IANA time-zone name: the one check of every time zone a client gives.

    Used by `graphs.context.Context` (every run), the command line's `--tz`, the API's run requests
    (`server.auth`) and the ride queries. Only exact names of the time-zone database pass: no paths
    ("../../etc/passwd"), no POSIX strings ("UTC+3"), no "localtime".

    Raises:
        InvalidTimezoneError: `tz` is not a string naming a known zone (code `invalid_timezone`); the message
            suggests the name with the right case when there is one.
    """
    if isinstance(tz, str) and tz in known_timezones():
        return tz
    hint = "use an IANA name such as 'Europe/Paris' or 'America/Los_Angeles'"
    if isinstance(tz, str):
        same = [name for name in known_timezones() if name.lower() == tz.strip().lower()]
        if same:
            hint = f"did you mean {same[0]!r}?"
    shown = repr(tz)[:80] if isinstance(tz, str) else f"of type {type(tz).__name__}"
    raise InvalidTimezoneError(f"unknown time zone {shown}: {hint}")


def zone_info(tz: object) -> ZoneInfo:
    """The `ZoneInfo` of a known IANA name (see `validate_timezone`).

    Raises:
        InvalidTimezoneError: unknown name.
    """
    return ZoneInfo(validate_timezone(tz))


def _settings(local: datetime, prefer: Prefer) -> dict[str, Any]:
    """Dateparser settings: relative phrases count from the local wall-clock time `local`."""
    if prefer not in ("past", "future"):
        raise ValueError(f"prefer must be 'past' or 'future', got {prefer!r}")
    # No TIMEZONE / TO_TIMEZONE: dateparser then returns naive wall-clock results for phrases without an offset
    # (computed from the naive local RELATIVE_BASE) and aware ones for phrases with an offset, which the caller
    # converts with zoneinfo. (dateparser 1.5 inverts the sign of POSIX-style zones such as "Etc/GMT+5" when
    # converting itself.)
    return {"PREFER_DATES_FROM": prefer, "RELATIVE_BASE": local.replace(tzinfo=None)}
