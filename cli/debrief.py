"""`coach debrief`: debrief ride files for one athlete, or every ride waiting in the inboxes (`--pending`).

Output: one JSON line per ride with `--json` (the fields of `DEBRIEF_JSON_FIELDS`, in order), else a line per
ride and its debrief. Registered on the `coach` app by `cli.main` (`register(app, run, check_athlete)`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.power_curve import ride_w_prime_chart
from graphs.context import Context, thread_id
from graphs.debrief_coach import build_graph as build_debrief_graph
from graphs.pending_debriefs import build_graph as build_pending_graph
from memory.checkpointer import open_checkpointer
from memory.errors import StoreUnavailableError
from memory.text import InvalidTextError, clean_text
from records.inbox import inbox_athletes
from records.stores import open_stores
from training.charts import ChartUnavailableError, curve_from_mmp, power_curve_chart
from training.ride_files import RideFileError, find_ride_files
from training.ride_peek import peek_start_time

# Wide enough for the rides table when the output is a pipe or a file (rich assumes 80 columns there).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True, highlight=False, soft_wrap=True)

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


def iso_utc(value: Any) -> str | None:
    """ISO 8601 in UTC with `Z` of a datetime or an ISO string; None stays None."""
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
        "start_time": iso_utc(ride["start_time"]),
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
    results: list[dict[str, Any]] = []
    async with open_stores(require_postgres=True) as stores:
        checkpointer = await open_checkpointer(stores.athlete_store.pool)
        graph = build_debrief_graph(checkpointer=checkpointer, stores=stores)
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


async def ride_power_charts(
    athlete_id: str, ride_ids: Sequence[str], chart_dir: Path, files: Mapping[str, str] | None = None
) -> list[tuple[str, Path | None, str | None]]:
    """Draw each ride's power curve against the athlete's best (over all stored rides, the ride included).

    With the ride's file (``files``), also its ride chart (`ride_w_prime_chart`): power over time and, when the
    debrief knew CP and W′, the W′ balance with its minimum.

    Args:
        athlete_id: the athlete.
        ride_ids: stored rides.
        chart_dir: folder of the PNG files (``power-<ride id prefix>.png``, ``ride-<prefix>.png``), created when
            missing.
        files: ride id → its file, for the ride charts (rides without one get the power curve only).

    Returns:
        ``(ride_id, path or None, problem or None)`` per chart: a ride without power gets a problem, no file.

    Raises:
        ChartUnavailableError: matplotlib is not installed.
    """
    async with open_stores() as stores:
        best = curve_from_mmp(await stores.audits.best_mmp(athlete_id))
        results: list[tuple[str, Path | None, str | None]] = []
        for ride_id in ride_ids:
            ride = await stores.rides.get_ride(athlete_id, ride_id)
            curve = curve_from_mmp((ride.metrics.get("mmp_w") if ride else None) or {})
            if ride is None or not curve:
                results.append((ride_id, None, "no power data: no power curve"))
                continue
            path = await asyncio.to_thread(
                power_curve_chart,
                curve,
                best,
                chart_dir / f"power-{ride_id[:12]}.png",
                title=f"{ride.file_name} ({ride.start_time:%Y-%m-%d}): power curve vs {athlete_id}'s best",
            )
            results.append((ride_id, path, None))
            if files and ride_id in files:
                out_path = chart_dir / f"ride-{ride_id[:12]}.png"
                try:
                    drawn = await asyncio.to_thread(
                        ride_w_prime_chart, files[ride_id], ride.metrics.get("w_prime_balance"), out_path
                    )
                except RideFileError as exc:
                    results.append((ride_id, None, f"no ride chart: {exc.message}"))
                    continue
                results.append((ride_id, drawn, None if drawn else "no power data: no ride chart"))
        return results


def print_debrief_charts(lines: Sequence[Mapping[str, Any]], athlete_id: str, chart_dir: Path, run: Any) -> bool:
    """`coach debrief --chart DIR`: write the debriefed rides' power-curve charts and say where.

    Args:
        lines: `coach debrief --json` lines (lines with an error are skipped).
        athlete_id: the athlete.
        chart_dir: folder of the PNG files.
        run: `cli.main._run` (turns store errors into an exit code).

    Returns:
        False when no chart could be drawn at all (matplotlib missing), else True. Messages go to standard error,
        so `--json` output stays clean.
    """
    ride_ids = [str(line["ride_id"]) for line in lines if "error" not in line and line.get("ride_id")]
    files = {str(line["ride_id"]): str(line["file"]) for line in lines if "error" not in line and line.get("file")}
    try:
        results = run(ride_power_charts(athlete_id, ride_ids, chart_dir, files))
    except ChartUnavailableError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        return False
    for ride_id, path, problem in results:
        if path is not None:
            what = "ride chart" if path.name.startswith("ride-") else "power curve"
            err.print(f"{what} of {ride_id[:12]}: {path}")
        else:
            err.print(f"[dim]power curve of {ride_id[:12]}: {problem}[/dim]")
    return True


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `coach debrief` to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""

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
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        chart: Annotated[
            Path | None, typer.Option("--chart", help="Also write each ride's power curve vs your best to DIR.")
        ] = None,
    ) -> None:
        """Debrief ride files: metrics, athlete facts with provenance, and a short debrief, stored once per ride."""
        if pending:
            if paths:
                err.print("[red]error[/red] (usage): --pending takes no ride paths (it reads the inbox)")
                raise typer.Exit(2)
            lines = run(debrief_pending(check_athlete(athlete) if athlete is not None else None))
            _print_debrief_results(lines, as_json)
            if not lines and not as_json:
                out.print("No rides waiting for a debrief.")
            if any("error" in line for line in lines):
                raise typer.Exit(1)
            return
        if not paths or athlete is None:
            err.print("[red]error[/red] (usage): give ride files or folders and --athlete (or use --pending)")
            raise typer.Exit(2)
        athlete = check_athlete(athlete)
        lines = run(debrief_paths(paths, athlete, show_progress=err.is_terminal))
        _print_debrief_results(lines, as_json)
        if chart is not None and not print_debrief_charts(lines, athlete, chart, run):
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
    results: list[dict[str, Any]] = []
    async with open_stores(require_postgres=True) as stores:
        checkpointer = await open_checkpointer(stores.athlete_store.pool)
        graph = build_pending_graph(checkpointer=checkpointer, stores=stores)
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
    return results
