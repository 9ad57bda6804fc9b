"""What clients send to the graphs, checked where it comes in: run requests, graph inputs, answers to questions.

- `check_run_request`: a run's (or a cron's) `context` and `input` as the API receives them; the server's auth
  handlers (`server.auth`) answer 422 with the error's code before any run starts.
- `check_max_rides`: the `pending_debriefs` input, checked again by the graph itself (other callers).
- `read_decision` / `read_decisions`: the one parser of the athlete's answer about proposals (fact proposals and
  plan-change proposals alike), used by the chat graph, the Auditor graph and the interactive command line; it
  gives `accept` / `reject` (`training.records.Decision`), the words `records.proposals.decide_proposal` takes.
- `ask_for_decisions`: a LangGraph `interrupt` that asks again, with the same proposals and an `error`, until
  the answer reads (`read_decisions`); a bad answer never fails the run nor loses the question.

Every refusal carries a `code` (`invalid_timezone`, `invalid_max_rides`, `invalid_answer`) and a message
saying what is expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.types import interrupt

from training.dates import validate_timezone
from training.records import Decision

MAX_RIDES_LIMIT = 1000
"""The largest `max_rides` a run may ask for."""

ACCEPT_WORDS = frozenset({"y", "yes", "ok", "true", "accept", "accepted", "confirm", "confirmed"})
"""Words (any case, spaces around ignored) that accept a proposal; `confirm` is kept for older clients."""
REJECT_WORDS = frozenset({"n", "no", "false", "reject", "rejected"})
"""Words that reject a proposal."""


class InvalidInputError(ValueError):
    """A client's input that a graph cannot use; `code` names the problem, the message says what is expected."""

    def __init__(self, code: str, message: str) -> None:
        """Make the error with its `code`."""
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidAnswerError(InvalidInputError):
    """An answer to a confirmation question that does not read (`read_decisions`)."""

    def __init__(self, message: str) -> None:
        """Make the error (code `invalid_answer`)."""
        super().__init__("invalid_answer", message)


def check_max_rides(value: Any) -> int:
    """The `max_rides` of a `pending_debriefs` run: an integer from 1 to `MAX_RIDES_LIMIT`.

    Raises:
        InvalidInputError: code `invalid_max_rides` for anything else ("abc", 2.5, true, 0).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RIDES_LIMIT:
        shown = repr(value)[:40]
        raise InvalidInputError(
            "invalid_max_rides", f"max_rides must be an integer from 1 to {MAX_RIDES_LIMIT}, not {shown}"
        )
    return value


def check_run_request(context: Any, run_input: Any) -> None:
    """Check what a client sends with a run (or in a cron's payload) before the run is created.

    Args:
        context: the run's `context` (the server fills it from `config.configurable` when no context is given);
            its `timezone`, when given, must be a known IANA name.
        run_input: the run's `input`; its `max_rides`, when given, must pass `check_max_rides`.

    Raises:
        InvalidTimezoneError: code `invalid_timezone`.
        InvalidInputError: code `invalid_max_rides`.
    """
    if isinstance(context, Mapping) and "timezone" in context:
        validate_timezone(context["timezone"])
    if isinstance(run_input, Mapping) and run_input.get("max_rides") is not None:
        check_max_rides(run_input["max_rides"])


def read_decision(value: Any) -> Decision:
    """Read one answer about one proposal.

    Args:
        value: `True`/`False`, or a word of `ACCEPT_WORDS` / `REJECT_WORDS` (any case, e.g. "Yes", " no ",
            "accept", "reject").

    Returns:
        ``accept`` or ``reject``.

    Raises:
        InvalidAnswerError: anything else (another word, a number, None).
    """
    if isinstance(value, bool):
        return "accept" if value else "reject"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ACCEPT_WORDS:
            return "accept"
        if word in REJECT_WORDS:
            return "reject"
    raise InvalidAnswerError(f"answer yes or no (accept/reject, true/false), not {repr(value)[:40]}")


def read_decisions(answer: Any, pending_ids: Iterable[int]) -> dict[int, Decision]:
    """Read an answer to a question about pending proposals.

    Accepted shapes:

    - one answer for every pending proposal (`read_decision`: `True`/`False`, "yes", "no", "accept", ...);
    - ``{proposal_id: answer}`` for some of them (ids as integers or decimal strings; a proposal left out stays
      pending), e.g. ``{"12": "yes", 13: False}``;
    - either of those wrapped as ``{"decisions": ...}``.

    Args:
        answer: the resume value (`Command(resume=...)`) or what the athlete typed.
        pending_ids: the ids of the proposals asked about.

    Returns:
        ``{proposal_id: "accept" | "reject"}``.

    Raises:
        InvalidAnswerError: anything else: another word, a number, an empty object, an id that is not pending.
    """
    ids = [int(i) for i in pending_ids]
    if isinstance(answer, Mapping) and set(answer) == {"decisions"}:
        answer = answer["decisions"]
    if isinstance(answer, Mapping):
        if not answer:
            raise InvalidAnswerError(f"the answer names no proposal; pending: {ids}")
        decisions: dict[int, Decision] = {}
        for key, value in answer.items():
            proposal_id = _proposal_id(key)
            if proposal_id not in ids:
                raise InvalidAnswerError(f"{str(key)[:40]!r} is not a pending proposal; pending: {ids}")
            decisions[proposal_id] = read_decision(value)
        return decisions
    return dict.fromkeys(ids, read_decision(answer))


def ask_for_decisions(request: Mapping[str, Any], pending_ids: Iterable[int]) -> dict[int, Decision]:
    """Pause the run with `interrupt(request)` until the athlete's answer reads; return the decisions.

    A bad answer (`read_decisions`) pauses the run again with the same request plus
    `error: {code: "invalid_answer", message}`, so the proposals stay open for a valid answer. (On each resume
    LangGraph runs the node again and replays the earlier answers in order, so the loop is deterministic.)
    """
    ids = list(pending_ids)
    question = dict(request)
    while True:
        answer = interrupt(question)
        try:
            return read_decisions(answer, ids)
        except InvalidAnswerError as exc:
            question = {**request, "error": {"code": exc.code, "message": exc.message}}


def _proposal_id(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().isdecimal() and len(key.strip()) <= 18:
        return int(key.strip())
    return None
