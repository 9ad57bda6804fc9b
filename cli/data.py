"""The archive's commands of `coach`: `import-transcript`, `search`, `reindex`.

Registered on the `coach` Typer app by `cli.main` (`register(app, run, check_athlete)`). Every command acts for
`--athlete` (`reindex` also for `--all`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cli.chat import AthleteOpt, SessionOpt, check_session
from config.settings import get_settings
from memory.embeddings import start_warm_up
from records.stores import open_stores

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `import-transcript`, `search` and `reindex` to the `coach` app (`run`, `check_athlete` from cli.main)."""

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
            async with open_stores() as stores:
                return await stores.memory.import_transcript(athlete, session, records)

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
            start_warm_up(get_settings())  # the embedding model loads in its thread while the stores open
            async with open_stores() as stores:
                return await stores.memory.recall(athlete, query, k=k)

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
            async with open_stores() as stores:
                memory = stores.memory
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

        n, vectors, model = run(go())
        whose = f"athlete {athlete_id}" if athlete_id else "all athletes"
        if model is None:
            err.print("[red]error[/red] (no_embedder): EMBEDDING_PROVIDER=none: recall is full-text only")
            raise typer.Exit(1)
        if not vectors:
            err.print("[red]error[/red] (no_pgvector): pgvector is not installed: recall is full-text only")
            raise typer.Exit(1)
        out.print(f"embedded {n} messages of {whose} with {model}")


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
