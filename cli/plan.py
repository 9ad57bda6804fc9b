"""Planned workouts in `coach`: `plan import`, and the Auditor's proposals: `plan proposals|accept|reject`.

Registered on the `coach` Typer app by `cli.main` (`register(app, run, check_athlete)`, which adds the `plan`
sub-app). Every command acts for `--athlete`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

from cli.audit import day_label, describe_change
from cli.chat import local_timezone
from memory.text import InvalidTextError
from records.plans import PlanImportError, parse_plan_csv
from records.proposals import decide_proposal
from records.stores import open_stores
from training.records import Decision

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
AthleteOpt = Annotated[str, typer.Option("--athlete", help="Athlete id.")]


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add the `plan` sub-app to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""
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
            async with open_stores() as stores:
                return await stores.plans.import_rows(athlete, rows)

        n = run(go())
        out.print(f"imported {n} planned workouts for {athlete}")

    @plan_app.command("proposals")
    def plan_proposals(
        athlete: AthleteOpt,
        show_all: Annotated[bool, typer.Option("--all", help="Every proposal, decided or past, too.")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """List plan-change proposals: by default the pending ones for today or later."""
        athlete = check_athlete(athlete)

        async def go() -> list[dict[str, Any]]:
            async with open_stores() as stores:
                audits = stores.audits
                if show_all:
                    return await audits.list_proposals(athlete, status=None)
                today = datetime.now(UTC).astimezone(ZoneInfo(local_timezone())).date()
                return await audits.list_proposals(athlete, from_day=today)

        rows = run(go())
        if as_json:
            print(json.dumps(rows, default=str))
            return
        if not rows:
            out.print("no plan-change proposals" + ("" if show_all else " pending"))
        for p in rows:
            status = escape(f"[{p['status']}]")
            out.print(f"#{p['id']} {status} {escape(describe_change(p['change']))} (audit of {p['as_of']})")
            out.print(f"  {escape(p['reason'])}")

    def decide(athlete: str, proposal_id: int, decision: Decision, as_json: bool) -> None:
        athlete = check_athlete(athlete)

        async def go() -> dict[str, Any]:
            async with open_stores() as stores:
                return await decide_proposal(stores.athlete_store, "plan_change", athlete, proposal_id, decision)

        row = run(go())
        if as_json:
            print(json.dumps(row, default=str))
            return
        verb = "accepted: the plan now has" if decision == "accept" else "rejected: the plan keeps"
        change = row["change"]
        shown = change if decision == "accept" else {**change, "after": change["before"]}
        out.print(
            f"proposal #{row['id']} {verb} {escape(describe_change(shown).split(' → ')[-1])} on "
            f"{day_label(change['date'])}"
        )

    @plan_app.command("accept")
    def plan_accept(
        proposal_id: Annotated[int, typer.Argument(help="Proposal id (see `coach plan proposals`).")],
        athlete: AthleteOpt,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Accept a plan-change proposal: the planned workout is changed as proposed."""
        decide(athlete, proposal_id, "accept", as_json)

    @plan_app.command("reject")
    def plan_reject(
        proposal_id: Annotated[int, typer.Argument(help="Proposal id (see `coach plan proposals`).")],
        athlete: AthleteOpt,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Reject a plan-change proposal: the plan stays as it is (the same change is not proposed again)."""
        decide(athlete, proposal_id, "reject", as_json)
