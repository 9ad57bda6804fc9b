"""The `coach` command line: debrief ride files, show athlete facts, run the demo.

Every command takes the athlete from `--athlete`; output is human-readable on a terminal, or JSON with `--json`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import psycopg_pool
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli import audit as audit_commands
from cli import chat as chat_commands
from cli import doctor
from cli.replay import replay_recent
from config.settings import get_settings
from graphs.context import Context, thread_id
from graphs.debrief_coach import build_graph as build_debrief_graph
from graphs.pending_debriefs import build_graph as build_pending_graph
from memory.athlete_store import AthleteStore, validate_athlete_id
from memory.checkpointer import open_checkpointer
from memory.db import aprobe, open_pool
from memory.errors import MemoryError_, StoreUnavailableError
from memory.text import InvalidTextError, clean_text
from records.inbox import inbox_athletes
from records.stores import close_coach_deps, open_coach_deps
from training.ride_files import RideFileError, find_ride_files
from training.ride_peek import peek_start_time

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Endurance coach with memory."
)
# Wide enough for the rides table when the output is a pipe or a file (rich assumes 80 columns there).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_RIDES = Path(__file__).resolve().parent.parent / "data" / "rides"
"""The demo's rides: the MIT-licensed real rides vendored in the project (`data/rides/README.md`)."""

# The fields of one `coach debrief --json` line, in order (the contract).
DEBRIEF_JSON_FIELDS = (
    "ride_id",
    "file",
    "sport",
    "start_time",
    "elapsed_s",
    "moving_s",
    "distance_m",
    "avg_power_w",
    "normalized_power_w",
    "intensity_factor",
    "tss",
    "best_20min_w",
    "ftp_estimate_w",
    "ftp_used_w",
    "ftp_source",
    "avg_hr_bpm",
    "max_hr_bpm",
    "trimp",
    "hr_tss",
    "facts_changed",
    "already_debriefed",
    "debrief",
)

AthleteOpt = Annotated[str, typer.Option("--athlete", help="Athlete id (1-128 of letters, digits, _ . @ -).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


# ----- shared plumbing --------------------------------------------------------------------------------------


async def _open_store() -> AthleteStore:
    settings = get_settings()
    store = AthleteStore(await open_pool(settings.database_url, max_size=4))
    await store.setup()
    return store


def _run(coro: Any) -> Any:
    """Run a command's coroutine; turn store and input errors into one clear line and exit code 3 or 2."""
    try:
        return asyncio.run(coro)
    except StoreUnavailableError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(3) from None
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        err.print(f"[red]error[/red] (store_unavailable): Postgres is not reachable ({escape(type(exc).__name__)})")
        raise typer.Exit(3) from None
    except MemoryError_ as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(2) from None


def _check_athlete(athlete_id: str) -> str:
    try:
        return validate_athlete_id(athlete_id)
    except MemoryError_ as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(2) from None


def _iso_utc(value: Any) -> str | None:
    if value is None:
        return None
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _debrief_line(file: str, result: dict[str, Any]) -> dict[str, Any]:
    file = clean_text(file)  # a file name that is not UTF-8 is shown with U+FFFD (it cannot be printed as is)
    ride = result["ride"]
    m = ride["metrics"]
    line = {
        "ride_id": ride["ride_id"],
        "file": file,
        "sport": ride["sport"],
        "start_time": _iso_utc(ride["start_time"]),
        "elapsed_s": ride["elapsed_s"],
        "moving_s": ride["moving_s"],
        "distance_m": ride["distance_m"],
        "facts_changed": result.get("facts_changed", []),
        "already_debriefed": result.get("already_debriefed", False),
        "debrief": result.get("debrief"),
    }
    for key in DEBRIEF_JSON_FIELDS:
        if key not in line:
            line[key] = m.get(key)
    return {key: _rounded(line[key]) for key in DEBRIEF_JSON_FIELDS}


def _rounded(value: Any) -> Any:
    """Floats to 3 decimals in output (the stored metrics keep full precision)."""
    return round(value, 3) if isinstance(value, float) else value


def _error_line(file: str, code: str, message: str) -> dict[str, Any]:
    return {"file": clean_text(file), "error": {"code": code, "message": clean_text(message)}}


async def debrief_paths(paths: Sequence[str], athlete_id: str, *, show_progress: bool) -> list[dict[str, Any]]:
    """Debrief every ride file under `paths` for one athlete, each in its own transaction.

    Args:
        paths: files and folders (folders are read for `.fit`, `.fit.gz`, `.tcx`, `.gpx` files); the rides are
            debriefed oldest first.
        athlete_id: the athlete whose memory is written.
        show_progress: draw a progress bar on standard error.

    Returns:
        One dict per file: a `coach debrief --json` line, or `{"file", "error": {"code", "message"}}`.

    Raises:
        StoreUnavailableError: Postgres cannot be reached at the start (nothing is read or written).
    """
    files: list[tuple[str, Path | None, RideFileError | None]] = []
    for p in paths:
        try:
            files.extend((str(f), f, None) for f in find_ride_files([p]))
        except RideFileError as exc:
            files.append((p, None, exc))
    # Oldest ride first, so the FTP and power bests build up in the order the rides happened (each ride is
    # scored against the FTP on file when it is debriefed). Unreadable files keep their place at the end.
    starts = {label: await asyncio.to_thread(peek_start_time, path) for label, path, _ in files if path}
    files.sort(key=lambda f: (starts.get(f[0]) is None, starts.get(f[0]) or datetime.min.replace(tzinfo=UTC)))
    await aprobe(get_settings().database_url)
    deps = await open_coach_deps()
    results: list[dict[str, Any]] = []
    try:
        checkpointer = await open_checkpointer(deps.athlete_store.pool)
        graph = build_debrief_graph(checkpointer=checkpointer, stores=deps)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not show_progress,
            transient=True,
        )
        with progress:
            task = progress.add_task("debriefing", total=len(files))
            for label, path, problem in files:
                progress.update(task, description=f"debriefing {Path(label).name}")
                if problem is not None:
                    results.append(_error_line(label, problem.code, problem.message))
                else:
                    results.append(await _debrief_one(graph, label, str(path), athlete_id))
                progress.advance(task)
    finally:
        await close_coach_deps(deps)
    return results


async def _debrief_one(graph: Any, label: str, path: str, athlete_id: str) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread_id("debrief", athlete_id)}}
    try:
        result = await graph.ainvoke(
            {"ride_path": path}, config=config, context=Context(athlete_id=athlete_id, session_id="debrief")
        )
    except RideFileError as exc:
        return _error_line(label, exc.code, exc.message)
    except InvalidTextError as exc:
        return _error_line(label, exc.code, str(exc))
    except (StoreUnavailableError, psycopg.OperationalError) as exc:
        return _error_line(label, "store_unavailable", f"Postgres failed during this ride: {exc}")
    return _debrief_line(label, result)


def _fmt(value: Any, spec: str = ".0f", unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:{spec}}{unit}"


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def rides_table(lines: list[dict[str, Any]]) -> Table:
    """A table of debriefed rides (one row each) and failed files (their error)."""
    table = Table(title="Rides", title_justify="left")
    for col in ("file", "start (UTC)", "moving", "km", "avg W", "NP W", "IF", "TSS", "best 20' W", "HR", "TRIMP"):
        table.add_column(col, justify="left" if col in ("file", "start (UTC)") else "right")
    for line in lines:
        name = escape(Path(line["file"]).name)
        if "error" in line:
            table.add_row(name, f"[red]{line['error']['code']}[/red]: {escape(line['error']['message'])}")
            continue
        tss = _fmt(line["tss"])
        if line.get("ftp_source") == "estimated" and line["tss"] is not None:
            tss += "*"
        if line["tss"] is None and line.get("hr_tss") is not None:
            tss = f"{line['hr_tss']:.0f} (hr)"
        table.add_row(
            name,
            (line["start_time"] or "")[:16].replace("T", " "),
            _hms(line["moving_s"]),
            _fmt(line["distance_m"] / 1000 if line["distance_m"] else None, ".1f"),
            _fmt(line["avg_power_w"]),
            _fmt(line["normalized_power_w"]),
            _fmt(line["intensity_factor"], ".2f"),
            tss,
            _fmt(line["best_20min_w"]),
            _fmt(line["avg_hr_bpm"]),
            _fmt(line["trimp"]),
        )
    return table


def _print_debrief_results(lines: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for line in lines:
            print(json.dumps(line, default=str), flush=True)
        return
    for line in lines:
        name = Path(line["file"]).name
        if "skipped" in line:
            known = line["skipped"]
            err.print(
                f"[yellow]–[/yellow] {escape(name)}: skipped, it failed before ({known['code']}: "
                f"{escape(known['message'])}); fix or remove it, or debrief it by its path to read it again"
            )
            continue
        if "error" in line:
            err.print(f"[red]✗[/red] {escape(line['error']['message'])} ({line['error']['code']})")
            continue
        status = "already debriefed, unchanged" if line["already_debriefed"] else "debriefed"
        changed = ", ".join(line["facts_changed"]) or "none"
        out.print(f"[green]✓[/green] {escape(name)} ({status}; facts changed: {changed})")
        out.print(f"  {line['debrief']}", markup=False)


# ----- commands ---------------------------------------------------------------------------------------------


@app.command()
def debrief(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Ride files (.fit, .fit.gz, .tcx, .gpx) or folders of them.")
    ] = None,
    athlete: Annotated[
        str | None,
        typer.Option("--athlete", help="Athlete id (1-128 of letters, digits, _ . @ -); with --pending, optional."),
    ] = None,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending",
            help="Debrief every ride waiting in the inbox (INBOX_DIR/<athlete>/) or stored without a debrief, "
            "for --athlete or for every athlete with an inbox folder; each ride once (for a system cron).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Also write each ride's power curve vs your best to DIR.")
    ] = None,
) -> None:
    """Debrief ride files: metrics, athlete facts with provenance, and a short debrief, stored once per ride."""
    if pending:
        if paths:
            err.print("[red]error[/red] (usage): --pending takes no ride paths (it reads the inbox)")
            raise typer.Exit(2)
        lines = _run(debrief_pending(_check_athlete(athlete) if athlete is not None else None))
        _print_debrief_results(lines, as_json)
        if not lines and not as_json:
            out.print("No rides waiting for a debrief.")
        if any("error" in line for line in lines):
            raise typer.Exit(1)
        return
    if not paths or athlete is None:
        err.print("[red]error[/red] (usage): give ride files or folders and --athlete (or use --pending)")
        raise typer.Exit(2)
    athlete = _check_athlete(athlete)
    lines = _run(debrief_paths(paths, athlete, show_progress=err.is_terminal))
    _print_debrief_results(lines, as_json)
    if chart is not None and not audit_commands.print_debrief_charts(lines, athlete, chart, _run):
        raise typer.Exit(1)
    if any("error" in line for line in lines):
        raise typer.Exit(1)


async def debrief_pending(athlete_id: str | None) -> list[dict[str, Any]]:
    """Debrief the pending rides (`records.inbox`) of one athlete, or of every athlete with an inbox folder.

    Runs the `pending_debriefs` graph (the one the server's cron runs) per athlete until no ride is left, so a
    system cron (`*/15 * * * * cd /path/to/project && uv run coach debrief --pending`) does what the server's
    LangGraph cron does. Each ride is debriefed once: a ride already debriefed is skipped by its content.

    Returns:
        One `coach debrief --json` line per ride debriefed, `{"file", "error"}` per ride that failed, and
        `{"file", "skipped": {"code", "message", "failed_at"}}` per inbox file not read again because its content
        failed before (`memory.failed_files`); each with `athlete_id` first.

    Raises:
        StoreUnavailableError: Postgres cannot be reached at the start.
    """
    athletes = [athlete_id] if athlete_id is not None else await asyncio.to_thread(inbox_athletes)
    await aprobe(get_settings().database_url)
    deps = await open_coach_deps()
    results: list[dict[str, Any]] = []
    try:
        checkpointer = await open_checkpointer(deps.athlete_store.pool)
        graph = build_pending_graph(checkpointer=checkpointer, stores=deps)
        for athlete in athletes:
            skipped: dict[str, dict[str, Any]] = {}
            while True:
                config = {"configurable": {"thread_id": thread_id("pending", athlete)}}
                out = await graph.ainvoke({}, config=config, context=Context(athlete_id=athlete, session_id="debrief"))
                for done in out.get("debriefed", []):
                    label = done["file"] or f"ride:{done['ride']['ride_id']}"
                    results.append({"athlete_id": athlete, **_debrief_line(label, done)})
                for problem in out.get("errors", []):
                    label = problem["file"] or f"ride:{problem['ride_id']}"
                    line = _error_line(label, problem["code"], problem["message"])
                    results.append({"athlete_id": athlete, **line})
                for known in out.get("skipped", []):
                    skipped[known["file"]] = {k: known[k] for k in ("code", "message", "failed_at")}
                # Another batch while rides are left, unless this one only failed (they stay pending).
                if not out.get("remaining") or not out.get("debriefed"):
                    break
            results.extend({"athlete_id": athlete, "file": f, "skipped": known} for f, known in skipped.items())
    finally:
        await close_coach_deps(deps)
    return results


@app.command()
def facts(
    athlete: AthleteOpt,
    history: Annotated[str | None, typer.Option("--history", help="Show every value this fact key has had.")] = None,
    confirm: Annotated[int | None, typer.Option("--confirm", help="Confirm a pending fact proposal.")] = None,
    reject: Annotated[int | None, typer.Option("--reject", help="Reject a pending fact proposal.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the athlete's facts (with source and update time) or a fact's history; confirm or reject a proposal.

    A confirmed proposal is written with source `user`.
    """
    athlete = _check_athlete(athlete)
    if confirm is not None or reject is not None:
        if confirm is not None and reject is not None:
            err.print("[red]error[/red] (usage): give --confirm or --reject, not both")
            raise typer.Exit(2)
        proposal_id = confirm if confirm is not None else reject
        assert proposal_id is not None
        row = _run(decide_proposal(athlete, proposal_id, confirm=confirm is not None))
        if as_json:
            print(json.dumps(row, default=_json_default))
        else:
            out.print(f"proposal #{row['id']} {row['fact_key']} = {json.dumps(row['value'])}: {row['status']}")
        return

    async def fetch() -> Any:
        store = await _open_store()
        try:
            if history:
                return await store.fact_history(athlete, history), []
            return await store.current_facts(athlete), await store.list_proposals(athlete)
        finally:
            await store.pool.close()

    data, pending = _run(fetch())
    if as_json:
        print(json.dumps(data, default=_json_default))
        return
    for p in pending:
        out.print(f"pending proposal #{p['id']}: {p['fact_key']} = {escape(json.dumps(p['value']))}")
    if history:
        table = Table(title=f"History of {history} for {athlete}", title_justify="left")
        for col in ("value", "source", "ride", "valid from", "valid to"):
            table.add_column(col)
        for row in data:
            table.add_row(
                json.dumps(row["value"]),
                row["source"],
                (row["source_ride_id"] or "")[:12],
                _iso_utc(row["valid_from"]) or "",
                _iso_utc(row["valid_to"]) or "current",
            )
    else:
        table = facts_table(data, title=f"Facts of {athlete}")
    out.print(table)


async def decide_proposal(athlete_id: str, proposal_id: int, *, confirm: bool) -> dict[str, Any]:
    """Confirm or reject a pending proposal and drop the athlete's cached facts.

    Raises:
        ProposalNotFoundError: no pending proposal with that id for this athlete.
    """
    deps = await open_coach_deps()
    try:
        return await deps.athlete_store.decide_proposal(athlete_id, proposal_id, confirm=confirm)
    finally:
        await close_coach_deps(deps)


def facts_table(data: dict[str, dict[str, Any]], title: str) -> Table:
    """A table of current facts: key, value, source, ride, updated at."""
    table = Table(title=title, title_justify="left")
    for col in ("fact", "value", "source", "ride", "updated (UTC)"):
        table.add_column(col)
    for key, row in data.items():
        table.add_row(
            key,
            json.dumps(row["value"]),
            row["source"],
            (row["source_ride_id"] or "")[:12],
            (_iso_utc(row["updated_at"]) or "")[:19],
        )
    return table


@app.command()
def demo(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Ride files or folders (default: the project's data/rides).")
    ] = None,
    athlete: AthleteOpt = "demo-athlete",
) -> None:
    """Debrief every ride (default `data/rides`, vendored) for a demo athlete and print a readable report."""
    athlete = _check_athlete(athlete)
    chosen = paths or [str(DEFAULT_RIDES)]
    out.print(f"Debriefing {', '.join(chosen)} for athlete [bold]{athlete}[/bold]")

    async def run() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[Any]]:
        lines = await debrief_paths(chosen, athlete, show_progress=err.is_terminal)
        deps = await open_coach_deps()
        try:
            placed = await replay_recent(deps.athlete_store, deps.plans, athlete, lines)
            return lines, await deps.athlete_store.current_facts(athlete), placed
        finally:
            await close_coach_deps(deps)

    lines, current, placed = _run(run())
    out.print(rides_table(lines))
    out.print("* TSS with an FTP estimated from the ride itself (no FTP on file yet); (hr) = hrTSS from heart rate.")
    changed = [(Path(line["file"]).name, key) for line in lines if "error" not in line for key in line["facts_changed"]]
    if changed:
        out.print("\n[bold]Facts changed by this run[/bold]")
        for name, key in changed:
            out.print(f"  {key} ← {name}")
    else:
        out.print("\nNo facts changed by this run (every ride was already debriefed: nothing duplicated).")
    out.print(facts_table(current, title=f"Current facts of {athlete}"))
    done = [line for line in lines if "error" not in line]
    if done:
        latest = max(done, key=lambda line: line["start_time"] or "")
        out.print(f"\n[bold]Debrief of the latest ride[/bold] ({Path(latest['file']).name}, {latest['start_time']})")
        out.print(latest["debrief"], markup=False)
    if placed:
        years = sorted({str(line["start_time"])[:4] for line in done if line["start_time"]})
        span = years[0] if len(years) == 1 else f"{years[0]}-{years[-1]}"
        out.print(
            f"\n[bold]Replay (demo data)[/bold]: the rides above were recorded in {span}, so the demo also places a "
            "copy of each (named replay:...) on recent days, with a sample plan (Monday recovery rides that were "
            "skipped, and the next two days), so you can ask the coach about last week:"
        )
        out.print("  " + ", ".join(f"{day:%a %d %b} ← {name}" for day, name in placed))
        out.print(
            f'  Try: uv run coach chat --athlete {athlete} --message "show me last Thursday\'s logs"\n'
            f'       uv run coach chat --athlete {athlete} --message "how does that compare to my plan?"'
        )
        audit_commands.print_demo_audit(athlete, _run, out)
    if any("error" in line for line in lines):
        raise typer.Exit(1)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso_utc(value)
    return str(value)


chat_commands.register(app, _run, _check_athlete)
audit_commands.register(app, _run, _check_athlete)
doctor.register(app, _run)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `coach` script."""
    app(args=list(argv) if argv is not None else sys.argv[1:], prog_name="coach")


if __name__ == "__main__":
    main()
