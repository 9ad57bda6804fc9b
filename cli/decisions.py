"""The athlete's decision on a proposal, asked on the terminal (interactive `coach chat` and `coach audit`).

The answer is read by the one parser the graphs use too (`graphs.inputs.read_decision`): yes/no, accept/reject,
y/n, true/false in any case; an empty line takes the default; anything else is asked again.
"""

from __future__ import annotations

import typer

from graphs.inputs import InvalidAnswerError, read_decision
from training.records import Decision


def ask_decision(question: str, *, default: Decision) -> Decision:
    """Ask `question` on the terminal until the answer reads; return ``accept`` or ``reject``.

    Args:
        question: the question, without the ``[Y/n]`` hint (added here from `default`).
        default: the decision an empty answer gives.

    Raises:
        click.exceptions.Abort: the input ended (Ctrl-D) or was interrupted (Ctrl-C).
    """
    hint = "[Y/n]" if default == "accept" else "[y/N]"
    while True:
        answer: str = typer.prompt(f"{question} {hint}", default="", show_default=False)
        if not answer.strip():
            return default
        try:
            return read_decision(answer)
        except InvalidAnswerError as exc:
            typer.echo(f"error ({exc.code}): {exc.message}", err=True)
