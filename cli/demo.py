"""`coach demo`: debrief the vendored rides for a demo athlete, replay them on recent days, audit and report.

Registered on the `coach` app by `cli.main` (`register(app, run, check_athlete)`); the replay is `cli.replay`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli import audit as audit_commands
from cli.debrief import debrief_paths
from cli.facts import facts_table
from cli.replay import replay_recent
from records.stores import open_stores
from training.formatting import format_clock

# Wide enough for the rides table when the output is a pipe or a file (rich assumes 80 columns there).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_RIDES = Path(__file__).resolve().parent.parent / "data" / "rides"
"""The demo's rides: the MIT-licensed real rides vendored in the project (`data/rides/README.md`)."""


def _fmt(value: Any, spec: str = ".0f", unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:{spec}}{unit}"


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
            format_clock(line["moving_s"]),
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


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `coach demo` to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""

    @app.command()
    def demo(
        paths: Annotated[
            list[str] | None, typer.Argument(help="Ride files or folders (default: the project's data/rides).")
        ] = None,
        athlete: Annotated[
            str, typer.Option("--athlete", help="Athlete id (1-128 of letters, digits, _ . @ -).")
        ] = "demo-athlete",
    ) -> None:
        """Debrief every ride (default `data/rides`, vendored) for a demo athlete and print a readable report."""
        athlete = check_athlete(athlete)
        chosen = paths or [str(DEFAULT_RIDES)]
        out.print(f"Debriefing {', '.join(chosen)} for athlete [bold]{athlete}[/bold]")

        async def go() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[Any]]:
            lines = await debrief_paths(chosen, athlete, show_progress=err.is_terminal)
            async with open_stores() as stores:
                placed = await replay_recent(stores.rides, stores.plans, athlete, lines)
                return lines, await stores.athlete_store.current_facts(athlete), placed

        lines, current, placed = run(go())
        out.print(rides_table(lines))
        out.print(
            "IF and TSS use the FTP valid at each ride's start (confirmed > device > fitted; a value the ride "
            "disproves is replaced by its best-hour NP); (hr) = hrTSS from heart rate; a second recording of the "
            "same ride is shown but counted once in the load."
        )
        changed = [
            (Path(line["file"]).name, key) for line in lines if "error" not in line for key in line["facts_changed"]
        ]
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
            out.print(
                f"\n[bold]Debrief of the latest ride[/bold] ({Path(latest['file']).name}, {latest['start_time']})"
            )
            out.print(latest["debrief"], markup=False)
        if placed:
            years = sorted({str(line["start_time"])[:4] for line in done if line["start_time"]})
            span = years[0] if len(years) == 1 else f"{years[0]}-{years[-1]}"
            out.print(
                f"\n[bold]Replay (demo data)[/bold]: the rides above were recorded in {span}, so the demo also "
                "places a copy of each (named replay:...) on recent days, with a sample plan (Monday recovery rides "
                "that were skipped, and the next two days), so you can ask the coach about last week:"
            )
            out.print("  " + ", ".join(f"{day:%a %d %b} ← {name}" for day, name in placed))
            out.print(
                f'  Try: uv run coach chat --athlete {athlete} --message "show me last Thursday\'s logs"\n'
                f'       uv run coach chat --athlete {athlete} --message "how does that compare to my plan?"'
            )
            audit_commands.print_demo_audit(athlete, run, out)
        if any("error" in line for line in lines):
            raise typer.Exit(1)
