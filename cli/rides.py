"""`coach delete-ride RIDE_ID --athlete ID`: delete one ride uploaded by mistake (`records.ride_delete`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cli.confirm import confirmed
from records.ride_delete import RideDeletion, delete_ride
from records.stores import open_stores

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


async def delete_one_ride(athlete_id: str, ride_id: str) -> RideDeletion:
    """Delete the ride (`records.ride_delete.delete_ride`)."""
    async with open_stores(require_postgres=True) as stores:
        return await delete_ride(stores, athlete_id, ride_id)


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `delete-ride` to the `coach` app (`run`, `check_athlete` from cli.main)."""

    @app.command("delete-ride")
    def delete_ride_command(
        ride_id: Annotated[str, typer.Argument(help="The ride's id (`coach debrief --json` shows it).")],
        athlete: Annotated[str, typer.Option("--athlete", help="Athlete id (1-128 of letters, digits, _ . @ -).")],
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (for scripts).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print what changed as one JSON object.")] = False,
    ) -> None:
        """Delete one ride and what came from it (debrief, device values, its proposals); the load follows.

        A recording of the same activity linked to it becomes primary; the best curve, the fitted CP/W′ and the
        rides after it are recomputed; its file leaves the inbox. Asks for confirmation unless --yes; without a
        terminal and without --yes it refuses (exit 2). An unknown ride: exit 2 (ride_not_found).
        """
        athlete = check_athlete(athlete)
        if not confirmed(f"Delete ride {ride_id} of {athlete}? This cannot be undone", yes=yes, action="delete"):
            err.print("Nothing deleted.")
            raise typer.Exit(2)
        done: RideDeletion = run(delete_one_ride(athlete, ride_id))
        if as_json:
            print(json.dumps(asdict(done), default=str))
            return
        out.print(f"Deleted ride {escape(done.ride_id)} ({escape(done.file_name)}, {done.start_time:%Y-%m-%d %H:%M}).")
        if done.promoted_ride_id:
            out.print(f"  The other recording of that activity, {escape(done.promoted_ride_id)}, now counts.")
        out.print(
            f"  Removed: {done.device_values} device value(s), {done.proposals} pending proposal(s), "
            f"{done.inbox_files} inbox file(s); {len(done.rescored)} ride(s) re-scored."
        )
