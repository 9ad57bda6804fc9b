"""Scheduled post-ride debriefs (docs/architecture.md): debrief every pending ride of the run's athlete.

    START ─► find_pending ─► debrief_rides ─► END

`find_pending` lists the athlete's rides waiting for a debrief (`records.inbox.scan_inbox`: inbox files whose
ride has no debrief yet, and stored rides without one), oldest first; `debrief_rides` runs the Debrief Coach on
each, at most `max_rides` per run, and reports every result and every failure. A file whose content cannot be
read (a `RideFileError` of `records.inbox.REMEMBERED_ERROR_CODES`: corrupt, too large, ...) is remembered by its
content hash (`memory.failed_files`) and not read again: later runs list it under `skipped`. Other failures (the
store unavailable, a file that could not be opened) leave the ride pending, tried again next time. The Debrief
Coach decides "once per ride" itself (by the file's content), so two overlapping runs never debrief a ride twice.

A LangGraph cron runs this graph on the server for the authenticated athlete; `coach debrief --pending` runs it
from a system cron for every athlete with an inbox folder. It is a graph of its own, not a mode of the Debrief
Coach, so the Debrief Coach keeps its one-ride input and its tests, and is reused here whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from graphs.context import Context, run_context
from graphs.debrief_coach import RideNotFoundError
from graphs.debrief_coach import build_graph as build_debrief_graph
from graphs.inputs import check_max_rides
from memory.athlete_store import validate_athlete_id
from memory.errors import MemoryError_
from memory.failed_files import record_failed_file
from records.inbox import REMEMBERED_ERROR_CODES, scan_inbox
from records.stores import Stores, get_stores
from training.ride_files import RideFileError

DEFAULT_MAX_RIDES = 20


class PendingInput(TypedDict, total=False):
    """What a client (or a cron's payload) sends: optionally, the most rides to debrief in this run."""

    max_rides: int


class PendingOutput(TypedDict, total=False):
    """What a run returns.

    `debriefed` holds one Debrief Coach result per ride (`ride`, `debrief`, `writer`, `facts_changed`,
    `already_debriefed`) with its `file` (None for a stored ride); `errors` one `{file, ride_id, code, message}`
    per ride that failed in this run; `skipped` one `{file, ride_id, code, message, failed_at}` per inbox file
    not read because its content failed before; `remaining` the pending rides left for the next run.
    """

    debriefed: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    remaining: int


class PendingState(PendingInput, PendingOutput, total=False):
    """Working state: the pending rides found."""

    pending: list[dict[str, Any]]


_EXPECTED_ERRORS = (RideFileError, RideNotFoundError, MemoryError_, psycopg.OperationalError, psycopg_pool.PoolTimeout)


def build_graph(checkpointer: Checkpointer = None, stores: Stores | None = None) -> Any:
    """Build and compile the pending-debriefs graph.

    Args:
        checkpointer: LangGraph checkpointer (the command line passes its Postgres one); None for the exported
            graph, whose server supplies its own.
        stores: the memory and stores; None takes the process-wide ones (`records.stores.get_stores`).

    Returns:
        The compiled graph; invoke with `{}` or `{"max_rides": n}` and `context=Context(athlete_id=...)`.
        A `max_rides` that is not an integer from 1 to `graphs.inputs.MAX_RIDES_LIMIT` fails the run with
        `InvalidInputError` (code `invalid_max_rides`) before anything is read (the API refuses it with 422).
    """
    # One ride per Debrief Coach run, without checkpoints of its own: each ride is stored in one transaction.
    debrief = build_debrief_graph(checkpointer=False, stores=stores)

    async def _deps() -> Stores:
        return stores if stores is not None else await get_stores()

    async def find_pending(state: PendingState, runtime: Runtime[Context]) -> dict[str, Any]:
        if state.get("max_rides") is not None:
            check_max_rides(state["max_rides"])  # before anything is read: InvalidInputError (invalid_max_rides)
        athlete_id = validate_athlete_id(run_context(runtime).athlete_id)
        scan = await scan_inbox((await _deps()).rides, athlete_id)
        skipped = [
            {
                "file": s.ride_path,
                "ride_id": s.ride_id,
                "code": s.code,
                "message": s.message,
                "failed_at": s.failed_at.isoformat(),
            }
            for s in scan.skipped
        ]
        return {"pending": [{"ride_id": p.ride_id, "ride_path": p.ride_path} for p in scan.pending], "skipped": skipped}

    async def debrief_rides(state: PendingState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = run_context(runtime)
        limit = state.get("max_rides") or DEFAULT_MAX_RIDES
        pending = state.get("pending") or []
        done: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for ride in pending[:limit]:
            ride_input = {"ride_path": ride["ride_path"]} if ride["ride_path"] else {"ride_id": ride["ride_id"]}
            try:
                result = await debrief.ainvoke(ride_input, context=ctx)
            except _EXPECTED_ERRORS as exc:
                code = getattr(exc, "code", None) or "store_unavailable"
                message = getattr(exc, "message", None) or str(exc)
                errors.append({"file": ride["ride_path"], "ride_id": ride["ride_id"], "code": code, "message": message})
                if (
                    ride["ride_path"]
                    and code in REMEMBERED_ERROR_CODES
                    and not ride["ride_id"].startswith("unreadable:")
                ):
                    await _remember_failure(ctx.athlete_id, ride["ride_id"], ride["ride_path"], code, message)
                continue
            done.append({"file": ride["ride_path"], **result})
        return {"debriefed": done, "errors": errors, "remaining": max(0, len(pending) - limit)}

    async def _remember_failure(athlete_id: str, ride_id: str, path: str, code: str, message: str) -> None:
        try:
            pool = (await _deps()).athlete_store.pool
            await record_failed_file(pool, athlete_id, ride_id, Path(path).name, code, message)
        except (MemoryError_, psycopg.OperationalError, psycopg_pool.PoolTimeout):
            pass  # not remembered: the next run reads the file again and reports it again

    builder = StateGraph(PendingState, context_schema=Context, input_schema=PendingInput, output_schema=PendingOutput)
    builder.add_node("find_pending", find_pending)
    builder.add_node("debrief_rides", debrief_rides)
    builder.add_edge(START, "find_pending")
    builder.add_edge("find_pending", "debrief_rides")
    builder.add_edge("debrief_rides", END)
    return builder.compile(checkpointer=checkpointer, name="pending_debriefs")


graph = build_graph()
