"""Text that Postgres can store: one check for every boundary where outside text comes in.

Postgres `text` and `jsonb` cannot hold the NUL character (U+0000), and UTF-8 cannot encode a lone surrogate
(U+D800-U+DFFF: Python makes them from undecodable bytes in file names and command-line arguments, and a JSON
escape such as backslash-u-D800 decodes to one). Either one, let through, fails later and far away: the archive
write of a queued turn (dead-lettered after the reply said `ok`), the checkpointer, an import's transaction.

Each boundary decides once what to do with such text:

- **refuse** with `InvalidTextError` (code `invalid_text`, naming the field and the line): the athlete's chat
  message (`graphs.chat`), transcript records (`memory.archive.import_transcript`), plan CSV files
  (`records.plans.parse_plan_csv`);
- **normalise** with `clean_text` (NUL removed, each lone surrogate replaced by U+FFFD): ride metadata read from
  files (file name, sport; `training.debrief.ride_record`) and the model's and tools' text archived with a turn
  (`graphs.chat`), which the athlete did not type and cannot fix.

Other control characters (tab, escape, U+0001...) are stored as they are: Postgres accepts them.
"""

from __future__ import annotations

import re

from memory.errors import MemoryError_

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL or a lone surrogate: the characters Postgres text cannot hold."""
REPLACEMENT_CHAR = "\ufffd"


class InvalidTextError(MemoryError_, ValueError):
    """Text holds a character Postgres cannot store (NUL, a lone surrogate), or is too long or empty.

    Attributes:
        field: what the text is (`message`, `content`, `plan file`...).
        line: 1-based line of the file or record the text came from, or None.
        position: 0-based index of the offending character in the text, or None (too long, empty).
    """

    code = "invalid_text"

    def __init__(self, field: str, reason: str, *, line: int | None = None, position: int | None = None) -> None:
        """Build the message `"<field> (line N): <reason>"`."""
        where = f"{field} (line {line})" if line is not None else field
        super().__init__(f"{where}: {reason}")
        self.field = field
        self.line = line
        self.position = position


def find_unstorable(value: str) -> int | None:
    """Return the index of the first NUL or lone surrogate in `value`, or None when there is none."""
    match = _UNSTORABLE.search(value)
    return match.start() if match else None


def describe_char(char: str) -> str:
    """Name a character for an error message: `NUL (U+0000)`, `a lone surrogate (U+D800)`."""
    code = f"U+{ord(char):04X}"
    return f"NUL ({code})" if char == "\x00" else f"a lone surrogate ({code})"


def validate_text(
    value: object,
    field: str,
    *,
    line: int | None = None,
    max_chars: int | None = None,
    allow_empty: bool = True,
) -> str:
    """Return `value` unchanged when Postgres can store it; else raise `InvalidTextError`.

    The error names the offending character's place: its 1-based line and column in a multi-line value (a
    whole file), else its 1-based position (and `line`, when given: the record's line in its file).

    Args:
        value: the text to check.
        field: what the text is, for the message (`message`, `content`, `plan file`).
        line: the 1-based line (of a file or a JSONL record) the value came from, for the message.
        max_chars: the longest value accepted, in characters (code points); None: no limit.
        allow_empty: whether an empty or blank value is accepted.

    Returns:
        `value`, unchanged.

    Raises:
        InvalidTextError: `value` is not a string, holds NUL or a lone surrogate, is longer than `max_chars`,
            or is empty or blank while `allow_empty` is False.
    """
    if not isinstance(value, str):
        raise InvalidTextError(field, f"expected text, got {type(value).__name__}", line=line)
    position = find_unstorable(value)
    if position is not None:
        at_line, where = line, f"character {position + 1}"
        if line is None and "\n" in value:  # a whole file: say where in it
            at_line = value.count("\n", 0, position) + 1
            where = f"column {position - value.rfind(chr(10), 0, position)}"
        raise InvalidTextError(
            field,
            f"{describe_char(value[position])} at {where} cannot be stored; remove it and try again",
            line=at_line,
            position=position,
        )
    if max_chars is not None and len(value) > max_chars:
        raise InvalidTextError(field, f"{len(value)} characters long; the limit is {max_chars}", line=line)
    if not allow_empty and not value.strip():
        raise InvalidTextError(field, "empty", line=line)
    return value


def clean_text(value: str) -> str:
    """Return `value` with every NUL removed and every lone surrogate replaced by U+FFFD (the normalising path).

    Text without either is returned as it is (the same object).
    """
    if find_unstorable(value) is None:
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else REPLACEMENT_CHAR, value)


def clean_ride_metadata(file_name: str, sport: str) -> tuple[str, str]:
    """Normalise a ride file's name and sport for the store (`clean_text`).

    Metadata read from a file is normalised, not refused: a file name that is not valid UTF-8 (Python decodes
    its bytes to lone surrogates) or a sport string holding NUL would otherwise fail the ride's insert, and the
    athlete cannot fix a device's output. NUL is removed; each lone surrogate becomes U+FFFD.

    Returns:
        `(file_name, sport)`, storable in Postgres.
    """
    return clean_text(file_name), clean_text(sport)
