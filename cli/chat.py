"""`coach chat`: talk with the coach, one turn or an interactive loop; the checks of `--session` and `--tz`.

Registered on the `coach` Typer app by `cli.main`. Every command acts for `--athlete`; a chat sends only the
new message (the graph builds everything else from memory).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any

import psycopg
import psycopg_pool
import typer
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from rich.console import Console
from rich.markup import escape

from cli.decisions import ask_decision
from config.settings import get_settings
from graphs.chat import STATUS_ORDER, InvalidMessageError
from graphs.chat import build_graph as build_chat_graph
from graphs.context import Context, thread_id
from memory.checkpointer import open_checkpointer
from memory.embeddings import start_warm_up
from memory.errors import InvalidSessionIdError
from memory.messages import validate_session_id
from memory.text import InvalidTextError
from records.stores import Stores, open_stores
from training.dates import InvalidTimezoneError, validate_timezone
from training.records import Decision

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
AthleteOpt = Annotated[str, typer.Option("--athlete", help="Athlete id.")]
SessionOpt = Annotated[str, typer.Option("--session", help="Conversation (session) id.")]


def local_timezone() -> str:
    """The machine's IANA time zone name (tzlocal), or UTC when it cannot be told or is not a known IANA name."""
    try:
        import tzlocal

        return validate_timezone(tzlocal.get_localzone_name() or "UTC")
    except Exception:  # noqa: BLE001 - any failure means "unknown": fall back to UTC
        return "UTC"


def check_timezone(tz: str | None, as_json: bool = False) -> str:
    """`--tz` when it is a known IANA name (`training.dates.validate_timezone`), else this machine's zone.

    An unknown name exits 2 with the code `invalid_timezone` (as JSON on stdout with `--json`).
    """
    if tz is None:
        return local_timezone()
    try:
        return validate_timezone(tz)
    except InvalidTimezoneError as exc:
        _print_error(exc.code, str(exc), as_json)
        raise typer.Exit(2) from None


def check_session(session_id: str) -> str:
    """Return the session id when `memory.messages.validate_session_id` accepts it; else exit 2 with its message."""
    try:
        return validate_session_id(session_id)
    except InvalidSessionIdError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(2) from None


async def _checkpointer(stores: Stores) -> Any:
    """PostgresSaver on the store's pool when Postgres answers, else an in-memory saver.

    With the in-memory saver the sticky context lasts for this process only.
    """
    try:
        return await open_checkpointer(stores.athlete_store.pool)
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
        return InMemorySaver()


async def run_turn(graph: Any, payload: Any, config: dict[str, Any], context: Context) -> dict[str, Any]:
    """Run one turn (or resume one) and return its output, plus `interrupt` when it paused for a confirmation.

    The output is kept even when the final checkpoint write fails (Postgres going down mid-turn): the
    exchange is already in the window and the outbox by then.
    """
    values: dict[str, Any] = {}
    interrupted: Any = None
    try:
        async for chunk in graph.astream(
            payload, config=config, context=context, stream_mode="values", durability="exit"
        ):
            if isinstance(chunk, dict):
                if "__interrupt__" in chunk:
                    interrupted = chunk["__interrupt__"]
                values = chunk
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
        if not values.get("reply"):
            raise
        values["memory_status"] = "degraded:postgres"
    state = await graph.aget_state(config) if interrupted is None else None
    if interrupted is None and state is not None and state.interrupts:
        interrupted = state.interrupts
    result = {
        "reply": values.get("reply", ""),
        "tool_calls": values.get("tool_calls", []),
        "memory_status": values.get("memory_status", "unavailable"),
        "prompt_tokens": values.get("prompt_tokens", 0),
        "proposals": values.get("proposals", []),
    }
    if interrupted:
        result["interrupt"] = [getattr(i, "value", i) for i in interrupted]
    return result


async def _finish_turn(stores: Stores, result: dict[str, Any], athlete_id: str, session_id: str) -> None:
    """Archive the turn now (drain the outbox); a message of it that was dead-lettered changes its status."""
    await stores.memory.drain_outbox()
    if stores.memory.take_dead_letters(athlete_id, session_id):
        result["memory_status"] = max(result["memory_status"], "degraded:dead_letter", key=STATUS_ORDER.index)


async def chat_session(athlete_id: str, session_id: str, timezone: str, message: str | None, as_json: bool) -> int:
    """One turn (`message` given) or an interactive loop; returns the exit code (2: the message was refused).

    The message is checked by the graph's first node, before anything is saved or checkpointed: an empty or too
    long one is refused with `invalid_message`, one with NUL or a lone surrogate with `invalid_text`. The embedding
    model starts loading in its thread at once, while the stores open, so the first recall does not wait for it.
    """
    start_warm_up(get_settings())  # the embedding model loads in its thread while the stores open
    async with open_stores() as stores:
        checkpointer = await _checkpointer(stores)
        graph = build_chat_graph(checkpointer=checkpointer, stores=stores)
        config = {"configurable": {"thread_id": thread_id("chat", athlete_id, session_id)}}
        inline = message is None
        context = Context(athlete_id=athlete_id, session_id=session_id, timezone=timezone, confirm_facts_inline=inline)
        if message is not None:
            try:
                result = await run_turn(graph, {"message": message}, config, context)
            except (InvalidMessageError, InvalidTextError) as exc:
                _print_error(exc.code, str(exc), as_json)
                return 2
            await _finish_turn(stores, result, athlete_id, session_id)
            _print_turn(result, as_json)
            return 0
        out.print(
            f"Chatting as [bold]{escape(athlete_id)}[/bold], session {escape(session_id)}. Empty line or Ctrl-D ends."
        )
        while True:
            try:
                line = await asyncio.to_thread(input, "you> ")
            except EOFError:
                break
            except UnicodeDecodeError:
                _print_error("invalid_text", "the line is not valid UTF-8; type it again", False)
                continue
            if not line.strip():
                break
            try:
                result = await run_turn(graph, {"message": line}, config, context)
            except (InvalidMessageError, InvalidTextError) as exc:
                _print_error(exc.code, str(exc), False)
                continue
            while "interrupt" in result:
                answers: dict[str, Decision] = {}
                for request in result["interrupt"]:
                    for p in request.get("proposals", []):
                        question = f"Save {p['key']} = {json.dumps(p['value'])} (proposal #{p['proposal_id']})?"
                        answers[str(p["proposal_id"])] = await asyncio.to_thread(
                            ask_decision, question, default="accept"
                        )
                result = await run_turn(graph, Command(resume=answers), config, context)
            await _finish_turn(stores, result, athlete_id, session_id)
            _print_turn(result, False)
        return 0


def _print_turn(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "interrupt"}, default=str), flush=True)
        return
    out.print(f"[bold]coach>[/bold] {escape(result['reply'])}")
    calls = ", ".join(c["name"] for c in result["tool_calls"]) or "none"
    out.print(
        f"[dim]memory: {result['memory_status']} · tools: {calls} · prompt ≈ {result['prompt_tokens']} tokens[/dim]"
    )
    for p in result["proposals"]:
        if p.get("status", "pending") == "pending":
            out.print(
                f"[dim]proposal #{p['proposal_id']}: {p['key']} = {escape(json.dumps(p['value']))} "
                f"(accept: coach facts --athlete ... --accept {p['proposal_id']})[/dim]"
            )


def _print_error(code: str, message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}), flush=True)
    else:
        err.print(f"[red]error[/red] ({code}): {escape(message)}")


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `coach chat` to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""

    @app.command()
    def chat(
        athlete: AthleteOpt,
        session: SessionOpt = "default",
        message: Annotated[str | None, typer.Option("--message", help="Send one message and exit.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the turn as JSON (with --message).")] = False,
        tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone (default: this machine's).")] = None,
    ) -> None:
        """Talk with the coach: one turn with --message, else an interactive loop with confirmation prompts."""
        athlete = check_athlete(athlete)
        session = check_session(session)
        zone = check_timezone(tz, as_json)
        code = run(chat_session(athlete, session, zone, message, as_json))
        raise typer.Exit(code)
