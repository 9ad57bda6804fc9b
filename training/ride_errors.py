"""The error of a ride file that cannot be read: :class:`RideFileError`, with its machine-readable codes."""

from __future__ import annotations

import re

__all__ = ["ERROR_CODES", "RideFileError", "one_line"]

ERROR_CODES = frozenset(
    {
        "empty_file",
        "corrupt_file",
        "unsupported_format",
        "not_a_file",
        "no_samples",
        "no_power_or_hr",
        "no_ride_files",
        "file_too_large",
    }
)
"""Codes carried by :class:`RideFileError`."""


class RideFileError(Exception):
    """A ride file that cannot be read, with a machine-readable code and a one-line message.

    ``str(error)`` is the message; the code is for programs (and tests).

    Attributes:
        code: one of ``ERROR_CODES``: ``'empty_file'``, ``'corrupt_file'``, ``'unsupported_format'``,
            ``'not_a_file'``, ``'no_samples'``, ``'no_power_or_hr'``, ``'no_ride_files'``, ``'file_too_large'``.
        message: a one-line explanation naming the file.
    """

    def __init__(self, code: str, message: str):
        """Create the error.

        Args:
            code: one of ``ERROR_CODES``.
            message: a one-line explanation naming the file.

        Raises:
            ValueError: if ``code`` is not one of ``ERROR_CODES``.
        """
        if code not in ERROR_CODES:
            raise ValueError(f"unknown RideFileError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


def one_line(exc: BaseException) -> str:
    """A library's exception as one line for a :class:`RideFileError` message: ``"Type: text"``, spaces collapsed.

    Args:
        exc: the exception.

    Returns:
        Its type name, then its text with runs of white space made one space (the type name alone if empty).
    """
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
