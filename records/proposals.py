"""What the athlete decides: fact proposals and plan-change proposals, one vocabulary and one decision function.

The coach never writes a fact it infers from a chat, nor changes the plan, on its own: it proposes, and the
athlete decides. Both kinds of proposal share one vocabulary:

- a decision is ``accept`` or ``reject`` (`training.records.Decision`);
- a proposal's status is ``pending``, then ``accepted`` or ``rejected`` (`training.records.ProposalStatus`);
  a proposal is decided once.

`decide_proposal` is the one way to decide either kind (the chat graph, the Auditor graph and the command line
call it): in one transaction it marks the pending proposal decided and, when accepted, applies it (a fact
proposal writes the fact with source ``user``; a plan-change proposal changes the planned workout and the
proposal's status in its audit's stored report). The athlete's answer to a question about proposals is read by
one parser, `graphs.inputs.read_decisions`.

Tables (`memory.schema`): ``fact_proposals`` (v12, statuses renamed by v26) and ``plan_change_proposals`` (v16).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from memory.athlete_store import FACT_PROPOSAL_COLUMNS, AthleteStore, validate_athlete_id
from memory.errors import MemoryError_, ProposalNotFoundError
from records.athlete_values import VALUE_KEYS, confirm_value
from records.audit_store import PLAN_PROPOSAL_COLUMNS, proposal_dict
from training.records import STATUS_OF, Decision, FactChange

ProposalKind = Literal["fact", "plan_change"]
"""``fact``: a row of ``fact_proposals``; ``plan_change``: a row of ``plan_change_proposals``."""

DECISIONS: tuple[Decision, ...] = get_args(Decision)


class PlanProposalNotFoundError(ProposalNotFoundError):
    """No pending plan-change proposal with that id for this athlete."""

    code = "plan_proposal_not_found"


class PlanChangeConflictError(MemoryError_, ValueError):
    """The planned workout a proposal changes is gone or was changed since; nothing was applied."""

    code = "plan_change_conflict"


async def decide_proposal(
    athletes: AthleteStore, kind: ProposalKind, athlete_id: str, proposal_id: int, decision: Decision
) -> dict[str, Any]:
    """Accept (and apply) or reject a pending proposal, in one transaction.

    Args:
        athletes: the athlete store: the decision runs in its `facts_transaction` (the one facts write path,
            whose commit drops the athlete's cached facts when an accepted fact changed them).
        kind: ``fact`` or ``plan_change``.
        athlete_id: the athlete.
        proposal_id: the proposal's id (ids are per kind).
        decision: ``accept`` or ``reject``.

    Returns:
        The proposal as decided, its ``status`` ``accepted`` or ``rejected``: for ``fact`` the
        ``fact_proposals`` row (``{"id", "fact_key", "value", "status", "source_session_id", "created_at",
        "decided_at"}``, datetimes as `datetime`); for ``plan_change`` `records.audit_store.proposal_dict`.

    Raises:
        ValueError: `kind` or `decision` outside the vocabulary.
        ProposalNotFoundError: no pending fact proposal with this id for this athlete (decided already, or
            another athlete's: "not found" too); `PlanProposalNotFoundError` for a plan change.
        PlanChangeConflictError: accepting a plan change whose workout is gone, was changed since the proposal,
            or whose new kind is already planned that day; nothing is written and the proposal stays pending.
    """
    validate_athlete_id(athlete_id)
    if decision not in STATUS_OF:
        raise ValueError(f"a decision is one of {list(DECISIONS)}, not {decision!r}")
    if kind == "fact":
        table, columns, missing, label = "fact_proposals", FACT_PROPOSAL_COLUMNS, ProposalNotFoundError, "proposal"
    elif kind == "plan_change":
        table, columns, missing = "plan_change_proposals", PLAN_PROPOSAL_COLUMNS, PlanProposalNotFoundError
        label = "plan-change proposal"
    else:
        raise ValueError(f"a proposal kind is one of {list(get_args(ProposalKind))}, not {kind!r}")
    async with athletes.facts_transaction(athlete_id) as tx:
        conn = tx.conn
        cur = await conn.execute(
            f"""UPDATE {table} SET status = %s, decided_at = now()
                WHERE athlete_id = %s AND id = %s AND status = 'pending' RETURNING {columns}""",
            (STATUS_OF[decision], athlete_id, proposal_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise missing(f"no pending {label} {proposal_id} for athlete {athlete_id!r}")
        if kind == "fact":
            if decision == "accept":
                cur = await conn.execute("SELECT evidence FROM fact_proposals WHERE id = %s", (row["id"],))
                evidence = ((await cur.fetchone()) or {}).get("evidence") or {}
                values = {row["fact_key"]: row["value"]}
                if row["fact_key"] == "cp_w" and isinstance(evidence.get("w_prime_j"), int | float):
                    values["w_prime_j"] = evidence["w_prime_j"]  # a CP proposal carries its W′: one decision
                changes = [FactChange(key, value) for key, value in values.items()]
                await tx.apply(changes, "user", source_session_id=row["source_session_id"])
                for key, value in values.items():
                    if key in VALUE_KEYS:
                        await _confirm_proposed_value(conn, athlete_id, row, key, value, evidence)
            return dict(row)
        if decision == "accept":
            await _apply_plan_change(conn, athlete_id, row["change"])
        decided = proposal_dict(row)
        await _update_report(conn, athlete_id, row["as_of"], decided)
        return decided


async def _confirm_proposed_value(
    conn: AsyncConnection[DictRow], athlete_id: str, row: dict[str, Any], key: str, value: Any, evidence: dict[str, Any]
) -> None:
    """An accepted athlete value (FTP, CP, W′, …) becomes a confirmed dated value and re-scores the rides it affects.

    It holds from the ``valid_from`` of the proposal's evidence (the ride that disproved the old value, or the ride
    a CP/W′ fit is valid from), else now.
    """
    valid_from_text = evidence.get("valid_from")
    valid_from = datetime.fromisoformat(valid_from_text) if valid_from_text else datetime.now(UTC)
    await confirm_value(conn, athlete_id, key, value, valid_from, {"proposal_id": row["id"], "proposed": evidence})


async def _update_report(conn: AsyncConnection[DictRow], athlete_id: str, as_of: date, decided: dict[str, Any]) -> None:
    """Replace the decided proposal in its audit's stored report (``load_reports.report["proposals"]``)."""
    cur = await conn.execute(
        "SELECT report FROM load_reports WHERE athlete_id = %s AND as_of = %s FOR UPDATE", (athlete_id, as_of)
    )
    stored = await cur.fetchone()
    if stored is None:
        return
    report = dict(stored["report"])
    report["proposals"] = [decided if p.get("id") == decided["id"] else p for p in report.get("proposals") or []]
    await conn.execute(
        "UPDATE load_reports SET report = %s WHERE athlete_id = %s AND as_of = %s", (Jsonb(report), athlete_id, as_of)
    )


async def _apply_plan_change(conn: AsyncConnection[DictRow], athlete_id: str, change: Mapping[str, Any]) -> None:
    """Apply a change (`training.plan_changes`) to the workout it names; the caller holds the transaction.

    Raises:
        PlanChangeConflictError: the workout is gone or changed, or the new kind is already planned that day.
    """
    day = date.fromisoformat(change["date"])
    before, after = change["before"], change["after"]
    cur = await conn.execute(
        """SELECT id, duration_s, tss FROM planned_workouts
           WHERE athlete_id = %s AND date = %s AND kind = %s FOR UPDATE""",
        (athlete_id, day, before["kind"]),
    )
    current = await cur.fetchone()
    if current is None:
        raise PlanChangeConflictError(
            f"the {before['kind']} workout of {day} is no longer in the plan; nothing changed (reject the proposal)"
        )
    for field in ("duration_s", "tss"):
        if not _same(current[field], before.get(field)):
            raise PlanChangeConflictError(
                f"the {before['kind']} workout of {day} changed since the proposal ({field} {current[field]} "
                f"instead of {before.get(field)}); nothing changed: run the audit again"
            )
    if after["kind"] != before["kind"]:
        cur = await conn.execute(
            "SELECT 1 FROM planned_workouts WHERE athlete_id = %s AND date = %s AND kind = %s",
            (athlete_id, day, after["kind"]),
        )
        if await cur.fetchone() is not None:
            raise PlanChangeConflictError(f"a {after['kind']} workout is already planned on {day}; nothing changed")
    await conn.execute(
        """UPDATE planned_workouts SET kind = %s, duration_s = %s, tss = %s, description = %s, imported_at = now()
           WHERE athlete_id = %s AND id = %s""",
        (
            after["kind"],
            after.get("duration_s"),
            after.get("tss"),
            after.get("description") or "",
            athlete_id,
            current["id"],
        ),
    )


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
