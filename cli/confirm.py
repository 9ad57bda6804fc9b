"""Asking before a command destroys data (`coach forget`, `coach delete-ride`)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)


def confirmed(question: str, *, yes: bool, action: str) -> bool:
    """`--yes`, or the answer to ``question`` on a terminal; without `--yes` and without a terminal: no.

    Without a terminal it prints ``error (confirmation_required): ... pass --yes to <action>`` on stderr.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        err.print(f"[red]error[/red] (confirmation_required): no terminal to confirm on: pass --yes to {action}")
        return False
    return typer.confirm(question, default=False)
