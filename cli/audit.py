"""The Training Load Auditor command of `coach`: `audit` (the plan-change proposals it makes: `cli.plan`).

Also the helper `coach demo` calls (`print_demo_audit`).

Registered on the `coach` Typer app by `cli.main` (``audit.register(app, _run, _check_athlete)``). Every command
acts for `--athlete`.

`coach audit --json` prints one JSON object::

    {"as_of": "YYYY-MM-DD", "tsb_for": "YYYY-MM-DD", "ctl", "atl", "tsb", "ramp_rate", "acwr", "monotony",
     "strain", "weekly_tss", "days_of_data", "form_zone": {...},
     "flags": [{"code", "message", "source", "value", "threshold"}],
     "proposals": [{"id", "as_of", "status", "change", "reason", "flag_code", "created_at", "decided_at"}],
     "facts_changed": [fact keys], "patterns": [...], "chart": "path" | null}

``tsb`` is the form going into ``tsb_for`` (the day after ``as_of``): CTL − ATL at the end of ``as_of``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.chat import check_timezone
from cli.decisions import ask_decision
from graphs.context import Context, thread_id
from graphs.training_load_auditor import AuditDateError
from graphs.training_load_auditor import build_graph as build_auditor_graph
from records.stores import open_stores
from training.charts import ChartUnavailableError, pmc_chart
from training.dates import DateResolutionError, resolve_day
from training.formatting import format_duration
from training.records import Decision

# Wide enough for the tables when the output is a pipe or a file (rich assumes 80 columns there), as cli.main.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True, highlight=False, soft_wrap=True)
AthleteOpt = Annotated[str, typer.Option("--athlete", help="Athlete id.")]

AUDIT_JSON_KEYS = (
    "as_of",
    "tsb_for",
    "ctl",
    "atl",
    "tsb",
    "ramp_rate",
    "acwr",
    "monotony",
    "strain",
    "weekly_tss",
    "days_of_data",
    "form_zone",
    "flags",
    "proposals",
    "facts_changed",
    "patterns",
)
"""Keys of `coach audit --json`, in order (plus ``chart``); the issue's contract is the first eleven of
as_of, ctl, atl, tsb, ramp_rate, acwr, monotony, strain, flags, proposals, facts_changed."""

CHART_MIN_DAYS = 28
"""The audit chart shows at least this many days."""

DEMO_CHART_DIR = Path(tempfile.gettempdir()) / "endurance-coach"
"""Where `coach demo` writes the Auditor's chart."""

Answer = Callable[[dict[str, Any]], Decision]
"""Asks the athlete about one proposal: ``accept`` or ``reject``."""


# ----- running the Auditor ------------------------------------------------------------------------------------


def resolve_as_of_text(text: str | None, tz: str) -> str | None:
    """``YYYY-MM-DD`` of a day phrase ("2026-11-20", "yesterday", "last Sunday") in `tz`; None stays None.

    Raises:
        DateResolutionError: a phrase that names no day.
    """
    if text is None:
        return None
    return resolve_day(text, tz=tz, prefer="past").isoformat()


async def run_audit(athlete_id: str, *, as_of: str | None, tz: str, ask: Answer | None = None) -> dict[str, Any]:
    """Run the Training Load Auditor graph once and return its report.

    Args:
        athlete_id: the athlete.
        as_of: ``YYYY-MM-DD`` (default today in `tz`).
        tz: the athlete's IANA time zone.
        ask: when given, the run pauses on each pending proposal and this function decides it (``accept``
            applies the change); when None proposals stay pending.

    Returns:
        The report (see `graphs.training_load_auditor`).

    Raises:
        AuditDateError: `as_of` is not a date or is in the future.
        StoreUnavailableError: Postgres cannot be reached.
    """
    async with open_stores() as stores:
        graph = build_auditor_graph(checkpointer=InMemorySaver(), stores=stores)
        config = {"configurable": {"thread_id": thread_id("audit", athlete_id)}}
        context = Context(athlete_id=athlete_id, session_id="audit", timezone=tz)
        payload: dict[str, Any] = {"ask": ask is not None}
        if as_of:
            payload["as_of"] = as_of
        result = await graph.ainvoke(payload, config=config, context=context)
        while ask is not None and result.get("__interrupt__"):
            answers: dict[str, Decision] = {}
            for request in result["__interrupt__"]:
                for proposal in request.value.get("proposals", []):
                    answers[str(proposal["id"])] = await asyncio.to_thread(ask, proposal)
            result = await graph.ainvoke(Command(resume=answers), config=config, context=context)
        return dict(result["report"])


def audit_json(report: Mapping[str, Any], chart: Path | None = None) -> dict[str, Any]:
    """The `coach audit --json` object of a report (module docstring)."""
    data = {key: report.get(key) for key in AUDIT_JSON_KEYS}
    data["chart"] = str(chart) if chart else None
    return data


def write_audit_chart(report: Mapping[str, Any], path: Path, athlete_id: str) -> Path:
    """Draw the report's fitness/fatigue/form chart (form zones) to `path`.

    The chart covers the report's series (90 days) from a week before the first ride in it, and at least the last
    `CHART_MIN_DAYS` days.

    Raises:
        ChartUnavailableError: matplotlib is not installed.
        ValueError: the report has no series.
    """
    series = list(report.get("series") or [])
    first = next((i for i, p in enumerate(series) if p["tss"] > 0), len(series))
    start = max(0, min(first - 7, len(series) - CHART_MIN_DAYS))
    return pmc_chart(
        series[start:],
        path,
        next_form=(date.fromisoformat(report["tsb_for"]), float(report["tsb"])),
        title=f"{athlete_id}: fitness, fatigue and form to {report['as_of']}",
    )


# ----- printing -----------------------------------------------------------------------------------------------


def _num(value: Any, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def day_label(iso: str) -> str:
    """`Sat 28 Nov` of an ISO day."""
    return f"{date.fromisoformat(iso):%a %d %b}"


def describe_change(change: Mapping[str, Any]) -> str:
    """One line: "Sat 28 Nov threshold (1h15, 85 TSS) → recovery (45min, 25 TSS)"."""

    def side(w: Mapping[str, Any]) -> str:
        parts = []
        if w.get("duration_s") is not None:
            parts.append(format_duration(float(w["duration_s"])))
        if w.get("tss") is not None:
            parts.append(f"{float(w['tss']):.0f} TSS")
        return f"{w['kind']} ({', '.join(parts)})" if parts else str(w["kind"])

    return f"{day_label(change['date'])} {side(change['before'])} → {side(change['after'])}"


def print_report(report: Mapping[str, Any], athlete_id: str, console: Console = out) -> None:
    """Print a report for a person: figures, flags, weekly compliance, patterns, facts changed, proposals."""
    zone = report.get("form_zone") or {}
    console.print(
        f"[bold]Training load of {escape(athlete_id)}[/bold] as of {day_label(report['as_of'])} "
        f"({report.get('timezone', 'UTC')}; {report['days_of_data']} days of data)"
    )
    console.print(
        f"  Fitness (CTL) {_num(report['ctl'])} · Fatigue (ATL) {_num(report['atl'])} · Form (TSB) for "
        f"{day_label(report['tsb_for'])}: {report['tsb']:+.1f} ({zone.get('label', '')})"
    )
    console.print(
        f"  Ramp rate {report['ramp_rate']:+.1f} CTL/week · ACWR {_num(report['acwr'], '.2f')} · monotony "
        f"{_num(report['monotony'], '.2f')} · strain {_num(report['strain'], '.0f')} · last 7 days "
        f"{_num(report['weekly_tss'], '.0f')} TSS"
    )
    flags = report.get("flags") or []
    console.print(f"\n[bold]Flags[/bold] ({len(flags)}; each a prompt to look, not a diagnosis)")
    for f in flags:
        console.print(f"  [yellow]⚑ {f['code']}[/yellow]: {escape(f['message'])}")
        console.print(f"    [dim]source: {escape(f['source'])}[/dim]")
    if not flags:
        console.print("  none: load, form and compliance look ordinary.")
    weeks = list((report.get("compliance") or {}).get("weeks") or [])
    while weeks and not (weeks[0]["planned_workouts"] or weeks[0]["actual_tss"] or weeks[0]["unplanned"]):
        weeks.pop(0)  # weeks before the first plan or ride say nothing
    if weeks:
        table = Table(title="Plan compliance by week (Mon-Sun)", title_justify="left")
        for col in ("week of", "days", "planned", "done", "partial", "missed", "planned TSS", "ridden TSS", "TSS %"):
            table.add_column(col, justify="left" if col == "week of" else "right")
        for w in weeks:
            ratio = w.get("tss_compliance")
            table.add_row(
                day_label(w["week_start"]),
                str(w["days"]),
                str(w["planned_workouts"]),
                str(w["done"]),
                str(w["partial"]),
                str(w["missed"]),
                f"{w['planned_tss']:.0f}",
                f"{w['actual_tss']:.0f}",
                "–" if ratio is None else f"{ratio * 100:.0f} %",
            )
        console.print(table)
    patterns = report.get("patterns") or []
    console.print("\n[bold]Recurring patterns[/bold] (skipped on >= 3 of the last 4 planned occurrences)")
    for p in patterns:
        console.print(f"  {p['key']}: {escape(p['description'])}")
    if not patterns:
        console.print("  none found.")
    changed = report.get("facts_changed") or []
    console.print(f"Facts changed by this audit: {', '.join(changed) if changed else 'none'}")
    proposals = report.get("proposals") or []
    if proposals:
        console.print("\n[bold]Plan-change proposals[/bold] (applied only if you accept)")
    for p in proposals:
        console.print(f"  #{p['id']} {escape('[' + p['status'] + ']')} {escape(describe_change(p['change']))}")
        console.print(f"    {escape(p['reason'])}")
        if p.get("note"):
            console.print(f"    [red]{escape(p['note'])}[/red]")
        if p["status"] == "pending":
            console.print(
                f"    [dim]accept: coach plan accept {p['id']} --athlete {athlete_id}   "
                f"reject: coach plan reject {p['id']} --athlete {athlete_id}[/dim]"
            )


def _ask_on_terminal(proposal: dict[str, Any]) -> Decision:
    out.print(f"\nProposal #{proposal['id']}: {escape(describe_change(proposal['change']))}")
    out.print(f"  {escape(proposal['reason'])}")
    return ask_decision("Accept this change to your plan?", default="reject")


# ----- the coach demo helper ----------------------------------------------------------------------------------


def print_demo_audit(athlete_id: str, run: Any, console: Console = out, chart_dir: Path = DEMO_CHART_DIR) -> None:
    """`coach demo`, after the replay: run the Auditor on the replayed days, print its report and chart path.

    The days are UTC days, as the replay places the rides; proposals stay pending (nothing is changed in the
    plan without the athlete).
    """
    console.print(
        "\n[bold]Training Load Auditor on the replayed days[/bold] (demo data: copies of the rides above placed "
        "on recent days with the sample plan; not a real training history)"
    )
    report = run(run_audit(athlete_id, as_of=None, tz="UTC"))
    print_report(report, athlete_id, console)
    if not report.get("patterns"):
        console.print(
            f"  (The replay covers {report['days_of_data']} days: too few planned Mondays for a recurring pattern, "
            "which needs a workout skipped on 3 of its last 4 planned occurrences.)"
        )
    path = chart_dir / f"pmc-{athlete_id}-{report['as_of']}.png"
    try:
        write_audit_chart(report, path, athlete_id)
        console.print(f"\nChart of fitness, fatigue and form: {path}")
    except ChartUnavailableError as exc:
        console.print(f"\nNo chart: {escape(str(exc))}")
    console.print(f"Run again: uv run coach audit --athlete {athlete_id} --tz UTC --chart pmc.png")


# ----- commands -----------------------------------------------------------------------------------------------


def register(app: typer.Typer, run: Callable[..., Any], check_athlete: Callable[[str], str]) -> None:
    """Add `audit` to the `coach` app (`run`, `check_athlete` from cli.main)."""

    @app.command()
    def audit(
        athlete: AthleteOpt,
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="Day to audit: YYYY-MM-DD or words ('yesterday').")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
        chart: Annotated[
            Path | None, typer.Option("--chart", help="Write the fitness/fatigue/form chart to this PNG.")
        ] = None,
        tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone (default: this machine's).")] = None,
        ask: Annotated[
            bool | None,
            typer.Option("--ask/--no-ask", help="Ask about each plan-change proposal (default: on a terminal)."),
        ] = None,
    ) -> None:
        """Audit training load: fitness, fatigue, form, ramp rate, ACWR, monotony, strain, flags, patterns.

        Plan-change proposals are stored and applied only when accepted (here, or with `coach plan accept ID`).
        """
        athlete = check_athlete(athlete)
        zone = check_timezone(tz, as_json)
        try:
            day = resolve_as_of_text(as_of, zone)
        except DateResolutionError as exc:
            _fail("invalid_as_of", str(exc), as_json)
        interactive = ask if ask is not None else (sys.stdin.isatty() and not as_json)
        try:
            report = run(run_audit(athlete, as_of=day, tz=zone, ask=_ask_on_terminal if interactive else None))
        except AuditDateError as exc:
            _fail(exc.code, str(exc), as_json)
        written: Path | None = None
        chart_problem: str | None = None
        if chart is not None:
            try:
                written = write_audit_chart(report, chart, athlete)
            except (ChartUnavailableError, ValueError, OSError) as exc:
                chart_problem = str(exc)
        if as_json:
            print(json.dumps(audit_json(report, written), default=str), flush=True)
        else:
            print_report(report, athlete)
            if written:
                out.print(f"\nChart: {written}")
        if chart_problem:
            err.print(f"[red]error[/red] (chart_unavailable): {escape(chart_problem)}")
            raise typer.Exit(1)


def _fail(code: str, message: str, as_json: bool) -> Any:
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}), flush=True)
    else:
        err.print(f"[red]error[/red] ({code}): {escape(message)}")
    raise typer.Exit(2)
