"""The one parser of the athlete's answer about proposals (graphs and command line): words, shapes, re-asking."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.decisions import ask_decision
from graphs.inputs import ACCEPT_WORDS, REJECT_WORDS, InvalidAnswerError, read_decision, read_decisions
from training.records import STATUS_OF


@pytest.mark.parametrize("word", sorted(ACCEPT_WORDS))
def test_accept_words(word: str) -> None:
    assert read_decision(word) == read_decision(f"  {word.upper()} ") == "accept"


@pytest.mark.parametrize("word", sorted(REJECT_WORDS))
def test_reject_words(word: str) -> None:
    assert read_decision(word) == read_decision(word.title()) == "reject"


def test_one_vocabulary() -> None:
    assert read_decision(True) == "accept" and read_decision(False) == "reject"
    assert set(STATUS_OF) == {"accept", "reject"} and set(STATUS_OF.values()) == {"accepted", "rejected"}
    assert "confirm" in ACCEPT_WORDS  # older clients' word still reads, as `accept`


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("yes", {3: "accept", 4: "accept"}),
        ({"decisions": "no"}, {3: "reject", 4: "reject"}),
        ({"decisions": {"3": "accept", 4: "reject"}}, {3: "accept", 4: "reject"}),
        ({"4": True}, {4: "accept"}),
    ],
)
def test_resume_payloads(answer: Any, expected: dict[int, str]) -> None:
    assert read_decisions(answer, [3, 4]) == expected


@pytest.mark.parametrize("answer", [{"decisions": {}}, {"decisions": "maybe"}, {"decisions": {"9": True}}, "ok?"])
def test_payloads_that_do_not_read(answer: Any) -> None:
    with pytest.raises(InvalidAnswerError):
        read_decisions(answer, [3, 4])


def _ask_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def ask() -> None:
        typer.echo(f"decision={ask_decision('Save goal?', default='accept')}")

    return app


@pytest.mark.parametrize(
    ("typed", "expected"), [("y\n", "accept"), ("Reject\n", "reject"), ("\n", "accept"), ("maybe\nno\n", "reject")]
)
def test_the_terminal_reads_the_same_words_and_asks_again(typed: str, expected: str) -> None:
    result = CliRunner().invoke(_ask_app(), [], input=typed)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"decision={expected}")
    assert result.output.count("Save goal? [Y/n]") == typed.count("\n")
