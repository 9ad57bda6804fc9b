"""`coach facts`: show an athlete's facts or a fact's history; accept or reject a pending fact proposal.

Registered on the `coach` app by `cli.main` (`register(app, run, check_athlete)`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.debrief import iso_utc
from records.athlete_values import set_value
from records.proposals import decide_proposal
from records.stores import open_stores
from training.records import Decision

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `coach facts` to the `coach` app (`run` and `check_athlete` come from `cli.main`)."""

    @app.command()
    def facts(
        athlete: Annotated[str, typer.Option("--athlete", help="Athlete id (1-128 of letters, digits, _ . @ -).")],
        history: Annotated[
            str | None, typer.Option("--history", help="Show every value this fact key has had.")
        ] = None,
        accept: Annotated[
            int | None, typer.Option("--accept", "--confirm", help="Accept a pending fact proposal (--confirm: alias).")
        ] = None,
        reject: Annotated[int | None, typer.Option("--reject", help="Reject a pending fact proposal.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        set_: Annotated[
            str | None,
            typer.Option("--set", help="Set a fact: KEY=VALUE (ftp_w=250, sex=female, timezone=Europe/Paris)."),
        ] = None,
        from_: Annotated[
            str | None,
            typer.Option("--from", help="With --set: from when it holds (ISO date or time; UTC if no zone)."),
        ] = None,
    ) -> None:
        """Show the athlete's facts (with source and update time) or a fact's history; accept or reject a proposal.

        An accepted proposal is written with source `user`. `--set KEY=VALUE [--from DATE]` sets a value the athlete
        confirms: for ftp_w, lthr_bpm, max_hr_bpm, … a dated value (highest precedence) from DATE (default now),
        and the rides from then on are re-scored.
        """
        athlete = check_athlete(athlete)
        if set_ is not None:
            key, value, valid_from = parse_set(set_, from_)
            rescored = run(_set_value(athlete, key, value, valid_from))
            if as_json:
                print(json.dumps({"key": key, "value": value, "rescored": rescored}, default=json_default))
            else:
                out.print(f"{key} = {json.dumps(value)} (confirmed); {len(rescored)} ride(s) re-scored")
            return
        if accept is not None or reject is not None:
            if accept is not None and reject is not None:
                err.print("[red]error[/red] (usage): give --accept or --reject, not both")
                raise typer.Exit(2)
            proposal_id = accept if accept is not None else reject
            assert proposal_id is not None
            row = run(decide_fact_proposal(athlete, proposal_id, "accept" if accept is not None else "reject"))
            if as_json:
                print(json.dumps(row, default=json_default))
            else:
                out.print(f"proposal #{row['id']} {row['fact_key']} = {json.dumps(row['value'])}: {row['status']}")
            return

        async def fetch() -> Any:
            async with open_stores(require_postgres=True) as stores:
                store = stores.athlete_store
                if history:
                    return await store.fact_history(athlete, history), []
                return await store.current_facts(athlete), await store.list_proposals(athlete)

        data, pending = run(fetch())
        if as_json:
            print(json.dumps(data, default=json_default))
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
                    iso_utc(row["valid_from"]) or "",
                    iso_utc(row["valid_to"]) or "current",
                )
        else:
            table = facts_table(data, title=f"Facts of {athlete}")
        out.print(table)


def parse_set(text: str, valid_from: str | None) -> tuple[str, Any, datetime | None]:
    """Read ``KEY=VALUE`` (a number when it reads as one) and ``--from`` (ISO date or time, UTC when naive).

    Raises:
        typer.Exit: code 2 with the reason, on a malformed argument.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        err.print("[red]error[/red] (usage): --set takes KEY=VALUE, e.g. --set ftp_w=250")
        raise typer.Exit(2)
    value: Any = raw.strip()
    try:
        value = float(value) if "." in value else int(value)
    except ValueError:
        pass
    when = None
    if valid_from is not None:
        try:
            when = datetime.fromisoformat(valid_from)
        except ValueError:
            err.print(f"[red]error[/red] (usage): --from {valid_from!r} is not an ISO date or time")
            raise typer.Exit(2) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return key.strip(), value, when


async def _set_value(athlete_id: str, key: str, value: Any, valid_from: datetime | None) -> list[dict[str, Any]]:
    async with open_stores(require_postgres=True) as stores:
        return await set_value(stores.athlete_store, athlete_id, key, value, valid_from)


async def decide_fact_proposal(athlete_id: str, proposal_id: int, decision: Decision) -> dict[str, Any]:
    """Accept or reject a pending fact proposal (`records.proposals.decide_proposal`, the one facts write path).

    Raises:
        ProposalNotFoundError: no pending proposal with that id for this athlete.
    """
    async with open_stores() as stores:
        row = await decide_proposal(stores.athlete_store, "fact", athlete_id, proposal_id, decision)
        return row


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
            (iso_utc(row["updated_at"]) or "")[:19],
        )
    return table


def json_default(value: Any) -> Any:
    """`json.dumps` default: datetimes as `iso_utc`, anything else as its `str`."""
    if isinstance(value, datetime):
        return iso_utc(value)
    return str(value)
