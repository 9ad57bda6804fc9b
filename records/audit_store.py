"""The Training Load Auditor's tables: its inputs, its reports (`load_reports`) and plan-change proposals.

Every method takes the athlete id and every query filters by it. An audit is written in one transaction (the
facts it changes, the pattern facts it clears, its proposals and its report), under a per-athlete advisory lock
so two audits of one athlete do not interleave; a re-run for the same day replaces the report, writes no fact
twice and duplicates no proposal. A proposal changes `planned_workouts` only when the athlete accepts it, in the
same transaction as the decision (`records.proposals.decide_proposal`).

Fact writes go through the athlete store's `facts_transaction` (`memory.fact_writes`), which drops the Redis
facts cache after the commit.

Proposal rows (``proposal_dict``)::

    {"id": int, "as_of": "YYYY-MM-DD", "status": "pending" | "accepted" | "rejected",
     "change": {...} (see training.plan_changes), "reason": str, "flag_code": str | None,
     "created_at": ISO 8601, "decided_at": ISO 8601 | None}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from memory.athlete_store import AthleteStore, FactChange, FactSource, validate_athlete_id
from memory.db import DictPool
from records.plans import PlanStore
from records.rides import daily_load
from training.records import ProposalStatus

AUDITOR_SOURCE: FactSource = "training_load_auditor"
PLAN_PROPOSAL_COLUMNS = "id, as_of, status, change, reason, flag_code, created_at, decided_at"
_MARGIN = timedelta(days=2)  # UTC offsets lie within -12 h..+14 h (as records.rides)


@dataclass(frozen=True)
class AuditInputs:
    """What an audit reads, per local day of the athlete.

    Attributes:
        daily_tss: ``{day: TSS}`` from `history_start` to the day audited; days with rides only (a ride's TSS is
            its power TSS, else its hrTSS, else 0), as `records.rides.daily_load`.
        planned: planned workouts from `plan_start` to `plan_end` (`records.plans.PlanStore` rows).
        rides_by_day: ``{day: [{"moving_s", "tss", "hr_tss", "tss_status", "primary"}, ...]}`` from `plan_start`
            to the day audited; ``tss_status`` is the ride's (``"ok"``, ``"no_ftp"``, ``"no_power"`` or None),
            ``primary`` False for the linked copy of an activity recorded twice (never counted).
        history_start: first day of `daily_tss`.
        plan_start: first day of `planned` and `rides_by_day`.
        plan_end: last day of `planned`.
    """

    daily_tss: dict[date, float]
    planned: list[dict[str, Any]]
    rides_by_day: dict[date, list[dict[str, Any]]]
    history_start: date
    plan_start: date
    plan_end: date


def proposal_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `plan_change_proposals` row as a JSON-ready dict (module docstring)."""
    return {
        "id": int(row["id"]),
        "as_of": row["as_of"].isoformat(),
        "status": row["status"],
        "change": row["change"],
        "reason": row["reason"],
        "flag_code": row["flag_code"],
        "created_at": _iso(row["created_at"]),
        "decided_at": _iso(row["decided_at"]),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


class AuditStore:
    """The Auditor's reads and writes through a psycopg pool (autocommit, dict rows)."""

    def __init__(self, pool: DictPool) -> None:
        """Wrap an open pool; see `records.stores.open_stores`."""
        self.pool = pool

    # ----- inputs -------------------------------------------------------------------------------------------

    async def read_inputs(
        self,
        athlete_id: str,
        as_of: date,
        tz: str,
        *,
        history_days: int,
        lookback_days: int,
        ahead_days: int,
    ) -> AuditInputs:
        """Read the daily load, the plan and the rides an audit of `as_of` needs.

        Args:
            athlete_id: the athlete.
            as_of: the day audited (a local day in `tz`).
            tz: the athlete's IANA time zone.
            history_days: days of load before `as_of` (e.g. `training.load.LOAD_HISTORY_DAYS`).
            lookback_days: days of plan and rides up to `as_of`, both included (compliance and patterns).
            ahead_days: days of plan after `as_of` (proposals).

        Returns:
            The inputs (see `AuditInputs`).

        Raises:
            InvalidAthleteIdError: bad athlete id.
            ValueError: unknown time zone, or a negative window.
        """
        validate_athlete_id(athlete_id)
        if min(history_days, lookback_days, ahead_days) < 0 or lookback_days < 1:
            raise ValueError("history_days and ahead_days must be >= 0, lookback_days >= 1")
        history_start = as_of - timedelta(days=history_days)
        plan_start = as_of - timedelta(days=lookback_days - 1)
        plan_end = as_of + timedelta(days=ahead_days)
        daily = await daily_load(self.pool, athlete_id, history_start, as_of, tz)
        planned = await PlanStore(self.pool).plan_between(athlete_id, plan_start, plan_end)
        lower = datetime.combine(plan_start, time(0), tzinfo=UTC) - _MARGIN
        upper = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC) + _MARGIN
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT (start_time AT TIME ZONE %(tz)s)::date AS day, moving_s, tss, hr_tss,
                          metrics->>'tss_status' AS tss_status, primary_ride_id IS NULL AS is_primary
                   FROM rides
                   WHERE athlete_id = %(athlete_id)s AND start_time >= %(lower)s AND start_time < %(upper)s
                     AND (start_time AT TIME ZONE %(tz)s)::date BETWEEN %(start)s AND %(end)s
                   ORDER BY start_time""",
                {"athlete_id": athlete_id, "tz": tz, "lower": lower, "upper": upper, "start": plan_start, "end": as_of},
            )
            rows = await cur.fetchall()
        rides_by_day: dict[date, list[dict[str, Any]]] = {}
        for r in rows:
            rides_by_day.setdefault(r["day"], []).append(
                {
                    "moving_s": r["moving_s"],
                    "tss": r["tss"],
                    "hr_tss": r["hr_tss"],
                    "tss_status": r["tss_status"],
                    "primary": r["is_primary"],
                }
            )
        return AuditInputs(daily, list(planned), rides_by_day, history_start, plan_start, plan_end)

    async def best_mmp(self, athlete_id: str) -> dict[str, float]:
        """The athlete's best mean-max power per duration label over all stored rides' ``metrics["mmp_w"]``.

        Returns:
            ``{"5s": W, "1min": W, ...}`` for the labels any ride has; {} without power data.
        """
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT m.key AS label, max(m.value::float8) AS watts
                   FROM rides r, jsonb_each_text(CASE WHEN jsonb_typeof(r.metrics->'mmp_w') = 'object'
                                                      THEN r.metrics->'mmp_w' END) AS m
                   WHERE r.athlete_id = %s AND m.value IS NOT NULL
                   GROUP BY m.key""",
                (athlete_id,),
            )
            return {r["label"]: float(r["watts"]) for r in await cur.fetchall()}

    # ----- audits -------------------------------------------------------------------------------------------

    async def save_audit(
        self,
        athlete_id: str,
        as_of: date,
        report: Mapping[str, Any],
        *,
        fact_changes: Sequence[FactChange],
        clear_fact_keys: Sequence[str],
        proposals: Sequence[Mapping[str, Any]],
        clearable_prefix: str,
        fact_writer: AthleteStore,
    ) -> dict[str, Any]:
        """Write an audit in one transaction: facts, cleared pattern facts, proposals, then the report.

        Facts are written with source ``training_load_auditor``; a fact whose value is unchanged is not written
        again. A pattern fact is cleared (its current row closed by ``valid_to``, the history kept) only when its
        key starts with `clearable_prefix` and its current value came from the Auditor. A proposed change equal
        to an earlier proposal's (any day, any status) reuses that proposal (a rejected change is not proposed
        again); pending proposals of the same `as_of` that this audit no longer makes are deleted.

        Args:
            athlete_id: the athlete.
            as_of: the day audited.
            report: the report, JSON-ready; its ``facts_changed`` and ``proposals`` are set here.
            fact_changes: facts to write.
            clear_fact_keys: pattern facts that no longer hold.
            proposals: ``{"change", "reason", "flag_code"}`` dicts (`training.plan_changes`).
            clearable_prefix: key prefix of the facts this audit may clear.
            fact_writer: the athlete store whose `facts_transaction` the audit runs in (its commit drops the
                cached facts).

        Returns:
            The report as stored: ``facts_changed`` (keys written or cleared) and ``proposals``
            (`proposal_dict` rows) filled in.

        Raises:
            InvalidAthleteIdError: bad athlete id.
        """
        async with fact_writer.facts_transaction(athlete_id) as tx:
            conn = tx.conn
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"audit:{athlete_id}",))
            changed = await tx.apply(fact_changes, AUDITOR_SOURCE)
            cleared: list[str] = []
            if clear_fact_keys:
                cur = await conn.execute(
                    """UPDATE athlete_facts SET valid_to = clock_timestamp()
                       WHERE athlete_id = %s AND fact_key = ANY(%s) AND valid_to IS NULL AND source = %s
                         AND starts_with(fact_key, %s)
                       RETURNING fact_key""",
                    (athlete_id, list(clear_fact_keys), AUDITOR_SOURCE, clearable_prefix),
                )
                cleared = sorted(r["fact_key"] for r in await cur.fetchall())
                tx.note_changed(cleared)
            rows = [await _upsert_proposal(conn, athlete_id, as_of, p) for p in proposals]
            await conn.execute(
                """DELETE FROM plan_change_proposals
                   WHERE athlete_id = %s AND as_of = %s AND status = 'pending' AND NOT (id = ANY(%s))""",
                (athlete_id, as_of, [r["id"] for r in rows]),
            )
            stored = {
                **report,
                "facts_changed": changed + [k for k in cleared if k not in changed],
                "proposals": [proposal_dict(r) for r in rows],
            }
            await conn.execute(
                """INSERT INTO load_reports (athlete_id, as_of, report) VALUES (%s, %s, %s)
                   ON CONFLICT (athlete_id, as_of) DO UPDATE SET report = EXCLUDED.report, created_at = now()""",
                (athlete_id, as_of, Jsonb(stored)),
            )
        return stored

    async def get_report(self, athlete_id: str, as_of: date | None = None) -> dict[str, Any] | None:
        """The stored report of `as_of` (default: the latest audited day), or None."""
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT report FROM load_reports WHERE athlete_id = %s AND (%s::date IS NULL OR as_of = %s)
                   ORDER BY as_of DESC LIMIT 1""",
                (athlete_id, as_of, as_of),
            )
            row = await cur.fetchone()
        return None if row is None else dict(row["report"])

    # ----- proposals ----------------------------------------------------------------------------------------

    async def list_proposals(
        self, athlete_id: str, *, status: ProposalStatus | None = "pending", from_day: date | None = None
    ) -> list[dict[str, Any]]:
        """The athlete's plan-change proposals (by default the pending ones), oldest first.

        Args:
            athlete_id: the athlete.
            status: ``pending``, ``accepted``, ``rejected``, or None for all.
            from_day: only changes of workouts on or after this day (hide the ones whose day has passed).

        Returns:
            `proposal_dict` rows.
        """
        validate_athlete_id(athlete_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"""SELECT {PLAN_PROPOSAL_COLUMNS} FROM plan_change_proposals
                    WHERE athlete_id = %s AND (%s::text IS NULL OR status = %s)
                      AND (%s::date IS NULL OR (change->>'date')::date >= %s)
                    ORDER BY id""",
                (athlete_id, status, status, from_day, from_day),
            )
            return [proposal_dict(r) for r in await cur.fetchall()]


async def _upsert_proposal(
    conn: AsyncConnection[DictRow], athlete_id: str, as_of: date, proposal: Mapping[str, Any]
) -> dict[str, Any]:
    change = Jsonb(proposal["change"])
    cur = await conn.execute(
        f"""SELECT {PLAN_PROPOSAL_COLUMNS} FROM plan_change_proposals
            WHERE athlete_id = %s AND change = %s ORDER BY (status = 'pending') DESC, id DESC LIMIT 1""",
        (athlete_id, change),
    )
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute(
            f"""INSERT INTO plan_change_proposals (athlete_id, as_of, change, reason, flag_code)
                VALUES (%s, %s, %s, %s, %s) RETURNING {PLAN_PROPOSAL_COLUMNS}""",
            (athlete_id, as_of, change, proposal["reason"], proposal.get("flag_code")),
        )
        row = await cur.fetchone()
    assert row is not None
    return row
