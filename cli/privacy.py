"""`coach forget`, `coach export`, `coach import-export`: erase, export and restore an athlete.

Erase an athlete everywhere, export everything held about them, restore an export into a fresh athlete
(`records.erase`, `records.export`, `records.restore`).

Registered on the `coach` app by `cli.main` (`register(app, run, check_athlete)`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cli.confirm import confirmed
from records.erase import ErasureReport, erase_athlete, survey_athlete
from records.export import write_export
from records.restore import RestoreResult, restore_export
from records.stores import open_stores

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

AthleteOpt = Annotated[str, typer.Option("--athlete", help="Athlete id (1-128 of letters, digits, _ . @ -).")]


async def held_about(athlete_id: str) -> dict[str, int]:
    """What the coach holds about the athlete, per place (`records.erase.survey_athlete`)."""
    async with open_stores(require_postgres=True) as stores:
        return await survey_athlete(stores, athlete_id)


async def forget_athlete(athlete_id: str) -> ErasureReport:
    """Erase the athlete everywhere (`records.erase.erase_athlete`)."""
    async with open_stores(require_postgres=True) as stores:
        return await erase_athlete(stores, athlete_id)


async def export_athlete(athlete_id: str, path: Path, force: bool) -> dict[str, int]:
    """Write the athlete's export zip (`records.export.write_export`)."""
    async with open_stores(require_postgres=True) as stores:
        return await write_export(stores, athlete_id, path, force=force)


async def import_export(path: Path, athlete_id: str) -> RestoreResult:
    """Restore an export zip into a fresh athlete (`records.restore.restore_export`)."""
    async with open_stores(require_postgres=True) as stores:
        return await restore_export(stores, path, athlete_id)


def _confirmed(athlete_id: str, held: dict[str, int], yes: bool) -> bool:
    """`--yes`, or the athlete's answer on a terminal (after what is held); without a terminal: no."""
    if not yes and sys.stdin.isatty():
        places = ", ".join(f"{place} {n}" for place, n in held.items() if n)
        out.print(f"The coach holds about [bold]{escape(athlete_id)}[/bold]: {escape(places)}.")
    return confirmed("Erase all of it? This cannot be undone", yes=yes, action="erase")


def print_report(report: ErasureReport) -> None:
    """One line per place that held something, then what the coach could not reach."""
    out.print(f"Erased athlete [bold]{escape(report.athlete_id)}[/bold] ({report.total} items):")
    for place, n in report.erased.items():
        if n:
            out.print(f"  {escape(place)}: {n}")
    out.print("Not erased (not identifiable or not reachable by the coach):")
    for note in report.not_erased:
        out.print(f"  - {escape(note)}")


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `forget`, `export` and `import-export` to the `coach` app (`run`, `check_athlete` from cli.main)."""

    @app.command()
    def forget(
        athlete: AthleteOpt,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (for scripts).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    ) -> None:
        """Erase everything the coach holds about the athlete, everywhere, then say what was erased per place.

        Asks for confirmation unless --yes; without a terminal and without --yes it refuses (exit 2). An athlete
        of whom nothing is held: says so, erases nothing, exit 0.
        """
        athlete = check_athlete(athlete)
        held = run(held_about(athlete))
        if not any(held.values()):
            if as_json:
                print(json.dumps(ErasureReport(athlete, dict.fromkeys(held, 0)).to_dict()))
            else:
                out.print(f"The coach holds nothing about athlete {escape(athlete)}: nothing erased.")
            return
        if not _confirmed(athlete, held, yes):
            err.print("Nothing erased.")
            raise typer.Exit(2)
        report = run(forget_athlete(athlete))
        if as_json:
            print(json.dumps(report.to_dict()))
        else:
            print_report(report)

    @app.command()
    def export(
        athlete: AthleteOpt,
        out_path: Annotated[Path, typer.Option("--out", help="The zip file to write.")],
        force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False,
    ) -> None:
        """Write everything the coach holds about the athlete to a zip of open formats (README.txt inside).

        An existing file is refused (exit 2) unless --force.
        """
        athlete = check_athlete(athlete)
        counts = run(export_athlete(athlete, out_path, force))
        out.print(f"Wrote {escape(str(out_path))}:")
        for name, n in counts.items():
            out.print(f"  {escape(name)}: {n}")

    @app.command("import-export")
    def import_export_cmd(
        file: Annotated[Path, typer.Argument(help="A zip written by `coach export`.", exists=True, dir_okay=False)],
        athlete: AthleteOpt,
    ) -> None:
        """Restore an export into a fresh athlete: facts with history, messages, plans, rides, ride files."""
        athlete = check_athlete(athlete)
        result = run(import_export(file, athlete))
        out.print(f"Restored into {escape(athlete)}: " + ", ".join(f"{k} {v}" for k, v in asdict(result).items()))
