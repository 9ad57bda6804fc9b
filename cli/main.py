"""The `coach` command line: the Typer app, its entry point and the plumbing every command group shares.

Each command group lives in its own module and adds its commands with `register(app, run, check_athlete)`:
`cli.debrief` (`debrief`), `cli.facts` (`facts`), `cli.demo` (`demo`), `cli.chat` (`chat`), `cli.data`
(`import-transcript`, `search`, `reindex`), `cli.plan` (`plan import|proposals|accept|reject`), `cli.audit`
(`audit`), `cli.power_curve` (`power-curve`), `cli.doctor` (`doctor`), `cli.rides` (`delete-ride`),
`cli.privacy` (`forget`, `export`, `import-export`). Every command takes the athlete from `--athlete`; output is
human-readable on a terminal, or JSON with `--json`.

Exit codes: 0 done; 1 some input failed (a ride file, a plan row, a chart); 2 bad usage or input refused before
anything was written (`_check_athlete`, `MemoryError_`); 3 a store is unreachable (`StoreUnavailableError`,
a Postgres connection error).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import typer
from rich.console import Console
from rich.markup import escape

from cli import audit, chat, data, debrief, demo, doctor, facts, plan, power_curve, privacy, rides
from memory.athlete_store import validate_athlete_id
from memory.errors import MemoryError_, StoreUnavailableError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Endurance coach with memory."
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID_INPUT = 2
EXIT_STORE_UNAVAILABLE = 3

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; turn store and input errors into one clear line and exit code 3 or 2."""
    try:
        return asyncio.run(coro)
    except StoreUnavailableError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(EXIT_STORE_UNAVAILABLE) from None
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        err.print(f"[red]error[/red] (store_unavailable): Postgres is not reachable ({escape(type(exc).__name__)})")
        raise typer.Exit(EXIT_STORE_UNAVAILABLE) from None
    except MemoryError_ as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID_INPUT) from None


def _check_athlete(athlete_id: str) -> str:
    """The athlete id when valid (`memory.athlete_store.validate_athlete_id`), else exit 2 with its code."""
    try:
        return validate_athlete_id(athlete_id)
    except MemoryError_ as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID_INPUT) from None


# The order of `coach --help`: as before the split.
debrief.register(app, _run, _check_athlete)
facts.register(app, _run, _check_athlete)
demo.register(app, _run, _check_athlete)
chat.register(app, _run, _check_athlete)
data.register(app, _run, _check_athlete)
plan.register(app, _run, _check_athlete)
audit.register(app, _run, _check_athlete)
power_curve.register(app, _run, _check_athlete)
doctor.register(app, _run)
privacy.register(app, _run, _check_athlete)
rides.register(app, _run, _check_athlete)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `coach` script."""
    app(args=list(argv) if argv is not None else sys.argv[1:], prog_name="coach")


if __name__ == "__main__":
    main()
