"""Chat-side commands of `coach`: chat, import-transcript, search, reindex, plan import, proposal decisions.

Registered on the `coach` Typer app by `cli.main`. Every command acts for `--athlete`; a chat sends only the
new message (the graph builds everything else from memory).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any

import psycopg
import psycopg_pool
import typer
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from config.settings import get_settings
from graphs.chat import STATUS_ORDER, InvalidMessageError
from graphs.chat import build_graph as build_chat_graph
from graphs.context import Context, thread_id
from memory.checkpointer import open_checkpointer
from memory.embeddings import start_warm_up
from memory.text import InvalidTextError
from records.plans import PlanImportError, parse_plan_csv
from records.stores import CoachDeps, close_coach_deps, open_coach_deps
from training.dates import InvalidTimezoneError, validate_timezone

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
AthleteOpt = Annotated[str, typer.Option("--athlete", help="Athlete id.")]
SessionOpt = Annotated[str, typer.Option("--session", help="Conversation (session) id.")]
_SESSION_RE = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")


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
    """Return the session id when it is 1-128 characters of `[A-Za-z0-9_.@:-]`; else exit 2 with a message."""
    if not _SESSION_RE.fullmatch(session_id):
        err.print(f"[red]error[/red] (invalid_session_id): invalid session id {escape(session_id)!r}")
        raise typer.Exit(2)
    return session_id


async def _checkpointer(deps: CoachDeps) -> Any:
    """PostgresSaver on the store's pool when Postgres answers, else an in-memory saver.

    With the in-memory saver the sticky context lasts for this process only.
    """
    try:
        return await open_checkpointer(deps.athlete_store.pool)
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


async def _finish_turn(deps: CoachDeps, result: dict[str, Any], athlete_id: str, session_id: str) -> None:
    """Archive the turn now (drain the outbox); a message of it that was dead-lettered changes its status."""
    await deps.memory.drain_outbox()
    if deps.memory.take_dead_letters(athlete_id, session_id):
        result["memory_status"] = max(result["memory_status"], "degraded:dead_letter", key=STATUS_ORDER.index)


async def chat_session(athlete_id: str, session_id: str, timezone: str, message: str | None, as_json: bool) -> int:
    """One turn (`message` given) or an interactive loop; returns the exit code (2: the message was refused).

    The message is checked by the graph's first node, before anything is saved or checkpointed: an empty or too
    long one is refused with `invalid_message`, one with NUL or a lone surrogate with `invalid_text`. The embedding
    model starts loading in its thread at once, while the stores open, so the first recall does not wait for it.
    """
    start_warm_up(get_settings())
    deps = await open_coach_deps()
    try:
        checkpointer = await _checkpointer(deps)
        graph = build_chat_graph(checkpointer=checkpointer, stores=deps)
        config = {"configurable": {"thread_id": thread_id("chat", athlete_id, session_id)}}
        inline = message is None
        context = Context(athlete_id=athlete_id, session_id=session_id, timezone=timezone, confirm_facts_inline=inline)
        if message is not None:
            try:
                result = await run_turn(graph, {"message": message}, config, context)
            except (InvalidMessageError, InvalidTextError) as exc:
                _print_error(exc.code, str(exc), as_json)
                return 2
            await _finish_turn(deps, result, athlete_id, session_id)
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
                answers: dict[str, bool] = {}
                for request in result["interrupt"]:
                    for p in request.get("proposals", []):
                        question = f"Save {p['key']} = {json.dumps(p['value'])} (proposal #{p['proposal_id']})?"
                        answers[str(p["proposal_id"])] = await asyncio.to_thread(typer.confirm, question, True)
                result = await run_turn(graph, Command(resume=answers), config, context)
            await _finish_turn(deps, result, athlete_id, session_id)
            _print_turn(result, False)
        return 0
    finally:
        await close_coach_deps(deps)


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
                f"(confirm: coach facts --athlete ... --confirm {p['proposal_id']})[/dim]"
            )


def _print_error(code: str, message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}), flush=True)
    else:
        err.print(f"[red]error[/red] ({code}): {escape(message)}")


def register(app: typer.Typer, run: Any, check_athlete: Any) -> None:
    """Add the chat-side commands to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""

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

    @app.command("import-transcript")
    def import_transcript(
        file: Annotated[Path, typer.Argument(help='JSON lines: {"role", "content", "ts"?, "id"?}.')],
        athlete: AthleteOpt,
        session: SessionOpt,
    ) -> None:
        """Import an earlier conversation into the archive (re-importing the same file adds nothing)."""
        athlete = check_athlete(athlete)
        session = check_session(session)
        records = _read_jsonl(file)

        async def go() -> Any:
            deps = await open_coach_deps()
            try:
                return await deps.memory.import_transcript(athlete, session, records)
            finally:
                await close_coach_deps(deps)

        result = run(go())
        out.print(f"imported {result.written} messages into {athlete}/{session} ({result.skipped} already there)")

    @app.command()
    def search(
        query: Annotated[str, typer.Argument(help="What to look for.")],
        athlete: AthleteOpt,
        k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many results.")] = 5,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Search the athlete's archive with the ranking `search_conversation` uses."""
        athlete = check_athlete(athlete)

        async def go() -> Any:
            start_warm_up(get_settings())  # the model loads in its thread while the stores open
            deps = await open_coach_deps()
            try:
                return await deps.memory.recall(athlete, query, k=k)
            finally:
                await close_coach_deps(deps)

        result = run(go())
        hits = [h.to_dict() for h in result.hits]
        if as_json:
            print(json.dumps(hits, default=str))
            return
        ranking = result.ranking.replace("_", "-")
        table = Table(title=f"Archive search ({ranking} ranking): {escape(query)}", title_justify="left")
        for col in ("score", "date", "session", "role", "snippet"):
            table.add_column(col)
        for h in hits:
            table.add_row(f"{h['score']:.3f}", str(h["ts"])[:10], h["session_id"], h["role"], escape(h["snippet"]))
        out.print(table)

    @app.command()
    def reindex(
        athlete: Annotated[str | None, typer.Option("--athlete", help="Embed this athlete's messages.")] = None,
        every: Annotated[bool, typer.Option("--all", help="Embed every athlete's messages.")] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Also re-embed messages that have a vector of the current model.")
        ] = False,
    ) -> None:
        """Compute the missing embeddings of archived messages, for hybrid recall (backfill; safe to rerun)."""
        if (athlete is None) == (not every):
            err.print("[red]error[/red] (invalid_arguments): give exactly one of --athlete ID and --all")
            raise typer.Exit(2)
        athlete_id = check_athlete(athlete) if athlete is not None else None

        async def go() -> tuple[int, bool, str | None]:
            deps = await open_coach_deps()
            try:
                memory = deps.memory
                if memory.embedder is None:
                    return 0, False, None
                progress = Progress(
                    TextColumn("embedding"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=err,
                    disable=not err.is_terminal,
                    transient=True,
                )
                task = progress.add_task("embedding", total=None)

                def report(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                with progress:
                    n = await memory.reindex(athlete_id, force=force, progress=report)
                assert memory.archive is not None
                return n, await memory.archive.vectors_enabled(), memory.embedder.model_id
            finally:
                await close_coach_deps(deps)

        n, vectors, model = run(go())
        whose = f"athlete {athlete_id}" if athlete_id else "all athletes"
        if model is None:
            err.print("[red]error[/red] (no_embedder): EMBEDDING_PROVIDER=none: recall is full-text only")
            raise typer.Exit(1)
        if not vectors:
            err.print("[red]error[/red] (no_pgvector): pgvector is not installed: recall is full-text only")
            raise typer.Exit(1)
        out.print(f"embedded {n} messages of {whose} with {model}")

    plan_app = typer.Typer(help="Planned workouts.", no_args_is_help=True)
    app.add_typer(plan_app, name="plan")

    @plan_app.command("import")
    def plan_import(
        file: Annotated[Path, typer.Argument(help="CSV with columns date, kind, duration_s, tss, description.")],
        athlete: AthleteOpt,
    ) -> None:
        """Import planned workouts; a bad row is reported by line number and nothing is imported.

        Exit codes: 1 for a bad plan (`invalid_plan`) or broken CSV quoting (`invalid_csv`), 2 for an unreadable
        file or text Postgres cannot store (`invalid_text`: NUL, a lone surrogate).
        """
        athlete = check_athlete(athlete)
        try:
            rows = parse_plan_csv(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"[red]error[/red] (unreadable_file): {escape(str(exc))}")
            raise typer.Exit(2) from None
        except InvalidTextError as exc:
            err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}; nothing was imported")
            raise typer.Exit(2) from None
        except PlanImportError as exc:
            err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
            raise typer.Exit(1) from None

        async def go() -> int:
            deps = await open_coach_deps()
            try:
                return await deps.plans.import_rows(athlete, rows)
            finally:
                await close_coach_deps(deps)

        n = run(go())
        out.print(f"imported {n} planned workouts for {athlete}")


def _read_jsonl(file: Path) -> list[dict[str, Any]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error[/red] (unreadable_file): {escape(str(exc))}")
        raise typer.Exit(2) from None
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            err.print(f"[red]error[/red] (invalid_transcript): line {n}: not JSON ({exc.msg}); nothing imported")
            raise typer.Exit(1) from None
        if not isinstance(record, dict):
            err.print(f"[red]error[/red] (invalid_transcript): line {n}: not a JSON object; nothing imported")
            raise typer.Exit(1)
        records.append(record)
    return records
