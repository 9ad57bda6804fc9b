"""The Debrief Coach graph (docs/architecture.md, the three graphs): ride file → metrics → facts → debrief → store.

    load_ride ──(already debriefed)──► END
        │
        ▼
    plan_facts ─► write_debrief ─► store ─► END

Input is a ride file path or a stored ride id; the athlete comes from the run's `Context`. The ride row, the facts
it changes and the debrief are written in one transaction at the end, so a failure anywhere writes nothing, and
a second run on the same ride changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from config.settings import get_settings
from graphs.context import Context, run_context
from llm.debrief_writer import write_debrief
from llm.models import get_chat_model
from memory.athlete_store import validate_athlete_id
from memory.text import InvalidTextError, clean_ride_metadata, describe_char, find_unstorable
from records.athlete_values import dated_values, list_values, prior_curves, values_at
from records.stores import Stores, get_stores
from training.athlete_model import device_value_rows, with_device_values
from training.debrief import analyse_ride, ride_fact_changes
from training.fit_profile import DeviceValues, FitProfileError, read_device_values
from training.records import FactChange, RideRecord
from training.ride_files import read_ride
from training.scoring import DatedValue


class RideNotFoundError(LookupError):
    """The stored ride id does not exist for this athlete."""

    code = "ride_not_found"


def _storable_path(path: str) -> str:
    """Return `path` when Postgres (the checkpointer, the ride row) can store it.

    Raises:
        InvalidTextError: the path holds NUL or a lone surrogate (a file name that is not UTF-8: Python reads
            its bytes as surrogates); the file must be renamed.
    """
    position = find_unstorable(path)
    if position is not None:
        raise InvalidTextError(
            "ride file name",
            f"the path holds {describe_char(path[position])} (a name that is not UTF-8 text); rename the file",
            position=position,
        )
    return path


class DebriefInput(TypedDict, total=False):
    """What a client sends: a ride file path (readable by the server) or the id of a stored ride."""

    ride_path: str
    ride_id: str


class DebriefOutput(TypedDict, total=False):
    """What a run returns."""

    ride: dict[str, Any]
    debrief: str
    writer: str
    facts_changed: list[str]
    already_debriefed: bool


class DebriefState(DebriefInput, DebriefOutput, total=False):
    """Working state: input, output, and the facts read at the start."""

    facts_before: dict[str, Any]
    fact_changes: list[dict[str, Any]]
    dated_values: list[dict[str, Any]]
    proposals: list[dict[str, Any]]


_UNSET: Any = object()


def build_graph(
    checkpointer: Checkpointer = None,
    stores: Stores | None = None,
    model: BaseChatModel | None = _UNSET,
) -> Any:
    """Build and compile the Debrief Coach graph.

    Args:
        checkpointer: LangGraph checkpointer (the command line passes `CoachPostgresSaver`); None for the
            exported graph, whose server supplies its own.
        stores: the athlete store and conversation memory (whose facts cache a fact change invalidates); None
            takes the process-wide ones (`records.stores.get_stores`).
        model: the chat model writing the debrief; by default the model factory's (None means offline).

    Returns:
        The compiled graph; invoke with `{"ride_path": ...}` or `{"ride_id": ...}` and `context=Context(...)`.
    """
    chosen_model = get_chat_model() if model is _UNSET else model

    async def _deps() -> Stores:
        return stores if stores is not None else await get_stores()

    async def load_ride(state: DebriefState, runtime: Runtime[Context]) -> dict[str, Any]:
        athlete_id = validate_athlete_id(run_context(runtime).athlete_id)
        opened = await _deps()
        facts = await opened.memory.current_facts(athlete_id)  # the one read path (cache, then Postgres)
        rides = opened.rides
        record: RideRecord | None
        dated: list[dict[str, Any]] = []
        proposals: list[dict[str, Any]] = []
        if state.get("ride_id"):
            record = await rides.get_ride(athlete_id, state["ride_id"])
            if record is None:
                raise RideNotFoundError(f"no ride {state['ride_id']!r} for athlete {athlete_id!r}")
        elif state.get("ride_path"):
            path = _storable_path(state["ride_path"])
            ride_id = await asyncio.to_thread(_file_ride_id, path)
            record = await rides.get_ride(athlete_id, ride_id) if ride_id else None
            if record is None:
                record, dated, proposals = await _analyse_file(opened, athlete_id, path)
                file_name, sport = clean_ride_metadata(record.file_name, record.sport)
                record = dataclasses.replace(record, file_name=file_name, sport=sport)
        else:
            raise ValueError("the Debrief Coach needs a ride_path or a ride_id")
        existing = await rides.get_debrief(athlete_id, record.ride_id)
        out: dict[str, Any] = {
            "ride": _ride_dict(record),
            "facts_before": _jsonable_facts(facts),
            "dated_values": [{**v, "valid_from": v["valid_from"].isoformat()} for v in dated],
            "proposals": proposals,
        }
        if existing is not None:
            out.update(debrief=existing["text"], writer=existing["writer"], facts_changed=[], already_debriefed=True)
        else:
            out["already_debriefed"] = False
        return out

    def route_after_load(state: DebriefState) -> str:
        return END if state.get("already_debriefed") else "plan_facts"

    async def plan_facts(state: DebriefState) -> dict[str, Any]:
        current = state["facts_before"]
        changes = [
            c
            for c in ride_fact_changes(state["ride"]["metrics"])
            if _would_change(c, current.get(c.key, {}).get("value"))
        ]
        return {"fact_changes": [c.__dict__ for c in changes]}

    async def debrief(state: DebriefState) -> dict[str, Any]:
        planned = [c["key"] for c in state.get("fact_changes", [])]
        text, writer = await write_debrief(chosen_model, state["ride"], state["facts_before"], planned)
        return {"debrief": text, "writer": writer}

    async def save(state: DebriefState, runtime: Runtime[Context]) -> dict[str, Any]:
        athlete_id = validate_athlete_id(run_context(runtime).athlete_id)
        rides = (await _deps()).rides
        record = _ride_record(state["ride"])
        changes = [FactChange(**c) for c in state.get("fact_changes", [])]
        dated = [{**v, "valid_from": datetime.fromisoformat(v["valid_from"])} for v in state.get("dated_values", [])]
        changed = await rides.save_debriefed_ride(
            athlete_id,
            record,
            changes,
            state["debrief"],
            state["writer"],
            dated_values=dated,
            proposals=state.get("proposals", []),
        )
        if changed is None:  # a concurrent run debriefed this ride first: report its debrief.
            existing = await rides.get_debrief(athlete_id, record.ride_id)
            assert existing is not None
            return {"debrief": existing["text"], "facts_changed": [], "already_debriefed": True}
        stored = await rides.get_ride(athlete_id, record.ride_id)  # re-scored with the values stored with it
        return {"facts_changed": changed, "ride": _ride_dict(stored or record)}

    builder = StateGraph(DebriefState, context_schema=Context, input_schema=DebriefInput, output_schema=DebriefOutput)
    builder.add_node("load_ride", load_ride)
    builder.add_node("plan_facts", plan_facts)
    builder.add_node("write_debrief", debrief)
    builder.add_node("store", save)
    builder.add_edge(START, "load_ride")
    builder.add_conditional_edges("load_ride", route_after_load, ["plan_facts", END])
    builder.add_edge("plan_facts", "write_debrief")
    builder.add_edge("write_debrief", "store")
    builder.add_edge("store", END)
    return builder.compile(checkpointer=checkpointer, name="debrief_coach")


async def _analyse_file(
    stores: Stores, athlete_id: str, path: str
) -> tuple[RideRecord, list[dict[str, Any]], list[dict[str, Any]]]:
    """Read a ride file and score it with the athlete's values valid at its start (`training.debrief.analyse_ride`).

    Returns:
        ``(record, device value rows, proposals)``.
    """
    limits = get_settings()
    ride = await asyncio.to_thread(
        read_ride, path, max_bytes=limits.ride_max_bytes, max_xml_bytes=limits.ride_max_xml_bytes
    )
    device = await asyncio.to_thread(_device_values, path) if ride.file_format == "fit" else None
    file_name = ride.file_path.rsplit("/", 1)[-1]
    rows = [] if device is None else device_value_rows(device, ride.start_time, ride.ride_id, file_name)
    async with stores.rides.pool.connection() as conn:
        values = with_device_values(await values_at(conn, athlete_id, ride.start_time), rows)
        ftp_values = dated_values(await list_values(conn, athlete_id, "ftp_w"), "ftp_w")
        curves = await prior_curves(conn, athlete_id, ride.start_time, exclude_ride_id=ride.ride_id)
    ftp_values += [
        DatedValue(float(r["value"]), "device", r["valid_from"], r["evidence"]) for r in rows if r["key"] == "ftp_w"
    ]
    offset = None if device is None else device.utc_offset_s
    record, proposals = await asyncio.to_thread(analyse_ride, ride, values, ftp_values, curves, utc_offset_s=offset)
    return record, rows, proposals


def _device_values(path: str) -> DeviceValues | None:
    """The athlete values the FIT file's device reports, or None when it cannot be read for them."""
    try:
        return read_device_values(path)
    except (FitProfileError, OSError):
        return None


def _file_ride_id(path: str) -> str | None:
    """The ride id `read_ride` would give this file (SHA-256 prefix), or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None
    return digest[:32]


def _would_change(change: FactChange, current: Any) -> bool:
    if current is None:
        return True
    if change.only_if_higher and isinstance(current, int | float):
        return bool(change.value > current)
    return bool(change.value != current)


def _ride_dict(record: RideRecord) -> dict[str, Any]:
    d = dict(record.__dict__)
    d["start_time"] = record.start_time.isoformat()
    d["end_time"] = record.end_time.isoformat() if record.end_time else None
    return d


def _ride_record(d: dict[str, Any]) -> RideRecord:
    end = d.get("end_time")
    return RideRecord(
        **{
            **d,
            "start_time": datetime.fromisoformat(d["start_time"]),
            "end_time": datetime.fromisoformat(end) if end else None,
        }
    )


def _jsonable_facts(facts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        k: {**v, "updated_at": v["updated_at"].isoformat() if v.get("updated_at") else None} for k, v in facts.items()
    }


graph = build_graph()
