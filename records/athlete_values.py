"""Dated athlete values (FTP, LTHR, max HR, CP, W′, sex, weight, time zone) and the rides scored with them.

A value holds from its ``valid_from``; among the values valid at a moment, the source decides: ``confirmed`` by the
athlete (``coach facts --set``, an accepted proposal) > ``device`` (read from a ride file: FIT ``zones_target``,
``user_profile``, ``session.threshold_power``; valid from that ride's start) > ``fitted`` from the rides
(`training.scoring.value_at`). Table ``athlete_values`` (`memory.schema` v32).

Rides are scored from what their rows keep (NP, seconds of power, best 60-min NP, the power curve, the seconds at each
heart rate and power value), never frozen: `recompute_scores` re-scores every ride from a moment on whenever a value
changes, so a ride's IF, TSS, zones and hrTSS depend only on the values and rides stored, not on the order the rides
were debriefed in (the Auditor's load follows).

Fitted values, computed when needed from the stored rides (deterministic, so order-free):

* eFTP (``ftp_w``, source ``fitted``): the CP model (`training.cp_model.fit_critical_power`) fitted to the best
  curve (`training.power_curve.best_of_curves`) of the primary rides of the 90 days before the ride
  (``FIT_WINDOW_DAYS``), the ride itself excluded (never the scored ride's own data alone);
* LTHR and max HR: the highest per-ride estimate (`training.heart_rate.sustained_hr_estimate`,
  `max_hr_estimate`, kept in each ride's metrics as ``hr_estimates``) of the rides up to the moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from memory.athlete_store import AthleteStore, validate_athlete_id, validate_fact
from memory.errors import InvalidFactError
from records.best_curve import curves_between
from training.athlete_model import (
    FIT_WINDOW_DAYS,
    Curve,
    choose_ftp,
    hr_parameters_from_estimates,
    scored_metrics,
    w_prime_figures,
)
from training.dates import validate_timezone
from training.debrief import HR_VALUE_KEYS, W_PRIME_VALUE_KEYS, refreshed_values_used
from training.power_series import unpack_power_series
from training.records import FactChange
from training.ride_histograms import RideHistograms, frozen_zones_and_hr, rescored_zones_and_hr
from training.scoring import SOURCE_PRECEDENCE, DatedValue, value_at

VALUE_KEYS = ("ftp_w", "lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "cp_w", "w_prime_j", "sex", "weight_kg", "timezone")
"""The keys that are dated athlete values (the others stay plain facts)."""

SCORING_KEYS = ("ftp_w", "lthr_bpm", "max_hr_bpm", "resting_hr_bpm", "sex", "cp_w", "w_prime_j")
"""The values a ride's IF, TSS, zones, TRIMP, hrTSS or W′ balance depend on: a change re-scores the rides from its
date."""


async def record_value(
    conn: AsyncConnection[DictRow],
    athlete_id: str,
    key: str,
    value: Any,
    source: str,
    valid_from: datetime,
    evidence: dict[str, Any] | None = None,
) -> bool:
    """Insert (or update) one dated value inside the caller's transaction.

    Args:
        conn: a connection in the caller's transaction.
        athlete_id: the athlete (checked by the caller).
        key: one of ``VALUE_KEYS``.
        value: a number, or text for ``sex`` and ``timezone``.
        source: ``confirmed``, ``device`` or ``fitted``.
        valid_from: from when it holds (timezone-aware).
        evidence: where it comes from (JSON-ready).

    Returns:
        True when a value was inserted or changed.

    Raises:
        ValueError: unknown key or source.
    """
    if key not in VALUE_KEYS:
        raise ValueError(f"unknown athlete value {key!r}; expected one of {list(VALUE_KEYS)}")
    if source not in SOURCE_PRECEDENCE:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(SOURCE_PRECEDENCE)}")
    cur = await conn.execute(
        """INSERT INTO athlete_values (athlete_id, key, value, source, valid_from, evidence)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (athlete_id, key, source, valid_from) DO UPDATE
               SET value = EXCLUDED.value, evidence = EXCLUDED.evidence, recorded_at = clock_timestamp()
               WHERE athlete_values.value <> EXCLUDED.value
           RETURNING id""",
        (athlete_id, key, Jsonb(value), source, valid_from, Jsonb(evidence or {})),
    )
    return await cur.fetchone() is not None


async def list_values(conn: AsyncConnection[DictRow], athlete_id: str, key: str | None = None) -> list[dict[str, Any]]:
    """Every stored value of the athlete (of one key when given), oldest ``valid_from`` first.

    Returns:
        Rows ``{"key", "value", "source", "valid_from", "evidence", "recorded_at"}``.
    """
    cur = await conn.execute(
        """SELECT key, value, source, valid_from, evidence, recorded_at FROM athlete_values
           WHERE athlete_id = %s AND (%s::text IS NULL OR key = %s) ORDER BY valid_from, id""",
        (athlete_id, key, key),
    )
    return await cur.fetchall()


def dated_values(rows: list[dict[str, Any]], key: str) -> list[DatedValue]:
    """The numeric values of one key among `list_values` rows, as `training.scoring.DatedValue`."""
    return [
        DatedValue(float(r["value"]), r["source"], r["valid_from"], r["evidence"] or {})
        for r in rows
        if r["key"] == key and isinstance(r["value"], int | float) and not isinstance(r["value"], bool)
    ]


async def values_at(conn: AsyncConnection[DictRow], athlete_id: str, at: datetime) -> dict[str, DatedValue | str]:
    """The athlete's values valid at ``at``: numbers as `DatedValue`, ``sex``/``timezone`` as text.

    LTHR and max HR without a confirmed or device value fall back to the highest per-ride estimate of the rides
    started at or before ``at`` (source ``fitted``, the ride as evidence).
    """
    rows = await list_values(conn, athlete_id)
    out: dict[str, DatedValue | str] = {}
    for key in VALUE_KEYS:
        if key in ("sex", "timezone"):
            texts = [r for r in rows if r["key"] == key and r["valid_from"] <= at and isinstance(r["value"], str)]
            if texts:
                best = max(texts, key=lambda r: (SOURCE_PRECEDENCE[r["source"]], r["valid_from"]))
                out[key] = str(best["value"])
            continue
        chosen = value_at(dated_values(rows, key), at)
        if chosen is not None:
            out[key] = chosen
    for key, estimate in (("lthr_bpm", "lthr_bpm"), ("max_hr_bpm", "max_hr_bpm")):
        if key in out:
            continue
        cur = await conn.execute(
            """SELECT ride_id, start_time, (metrics->'hr_estimates'->>%s)::float8 AS v FROM rides
               WHERE athlete_id = %s AND start_time <= %s AND metrics->'hr_estimates'->>%s IS NOT NULL
               ORDER BY v DESC, start_time LIMIT 1""",
            (estimate, athlete_id, at, estimate),
        )
        row = await cur.fetchone()
        if row is not None:
            rule = "highest sustained 20-60 min HR of the rides" if key == "lthr_bpm" else "highest 5-s HR of the rides"
            out[key] = DatedValue(
                float(row["v"]), "fitted", row["start_time"], {"ride_id": row["ride_id"], "rule": rule}
            )
    return out


async def prior_curves(
    conn: AsyncConnection[DictRow], athlete_id: str, before: datetime, *, exclude_ride_id: str | None = None
) -> list[tuple[str, datetime, Curve]]:
    """The power curves of the athlete's primary rides of the ``FIT_WINDOW_DAYS`` days before ``before``."""
    lower = before - timedelta(days=FIT_WINDOW_DAYS)
    return await curves_between(conn, athlete_id, lower, before, exclude_ride_id=exclude_ride_id)


async def recompute_scores(
    conn: AsyncConnection[DictRow], athlete_id: str, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Re-score the athlete's rides started at or after ``since`` (all when None) with the current values.

    A power ride's IF and TSS follow the FTP valid at its start; every ride's power zones, TRIMP, hrTSS and heart-rate
    zones follow the FTP, LTHR, max HR, resting HR and sex valid at its start, from the histograms its row keeps
    (`training.ride_histograms`); a ride stored before them keeps the figures of its debrief and says so.

    Args:
        conn: a connection in the caller's transaction.
        athlete_id: the athlete.
        since: the earliest ride start affected (e.g. a changed value's ``valid_from``).

    Returns:
        ``[{"ride_id", "tss_before", "tss", "intensity_factor", "tss_status", "ftp_stale", "hr_tss_before",
        "hr_tss"}]`` for the rides whose figures changed.
    """
    ftp_values = dated_values(await list_values(conn, athlete_id, "ftp_w"), "ftp_w")
    cur = await conn.execute(
        """SELECT ride_id, start_time, tss, hr_tss, metrics, hr_hist_bpm, hr_hist_s, power_hist_w, power_hist_s,
                  power_1hz_w
           FROM rides WHERE athlete_id = %s AND (%s::timestamptz IS NULL OR start_time >= %s)
           ORDER BY start_time""",
        (athlete_id, since, since),
    )
    changed: list[dict[str, Any]] = []
    for row in await cur.fetchall():
        metrics = new = row["metrics"]
        if metrics.get("normalized_power_w") is not None:
            curves = await prior_curves(conn, athlete_id, row["start_time"], exclude_ride_id=row["ride_id"])
            choice = choose_ftp(ftp_values, row["start_time"], metrics.get("best_60min_np_w"), curves)
            new = scored_metrics(metrics, metrics.get("power_s"), choice)
        values = await values_at(conn, athlete_id, row["start_time"])
        new = _rescored_w_prime(row, _rescored_zones_and_hr(row, new, values), values)
        frozen = (HR_VALUE_KEYS if row["hr_hist_bpm"] is None or row["power_hist_w"] is None else frozenset()) | (
            W_PRIME_VALUE_KEYS if row["power_1hz_w"] is None else frozenset()
        )
        used = refreshed_values_used(new.get("athlete_values_used") or {}, values, frozen=frozen)
        new = {**new, "athlete_values_used": used} if "athlete_values_used" in new else new
        if new == metrics:
            continue
        await conn.execute(
            "UPDATE rides SET tss = %s, hr_tss = %s, metrics = %s WHERE athlete_id = %s AND ride_id = %s",
            (new.get("tss"), new.get("hr_tss"), Jsonb(new), athlete_id, row["ride_id"]),
        )
        changed.append(
            {
                "ride_id": row["ride_id"],
                "tss_before": row["tss"],
                "tss": new.get("tss"),
                "intensity_factor": new.get("intensity_factor"),
                "tss_status": new.get("tss_status"),
                "ftp_stale": new.get("ftp_stale"),
                "hr_tss_before": row["hr_tss"],
                "hr_tss": new.get("hr_tss"),
            }
        )
    return changed


def _rescored_zones_and_hr(
    row: dict[str, Any], metrics: dict[str, Any], values: dict[str, DatedValue | str]
) -> dict[str, Any]:
    """The ride's zones, TRIMP and hrTSS with the values valid at its start (`training.ride_histograms`).

    A ride without histograms (stored before `memory.schema` v35) keeps its stored ones, marked as such.
    """
    if row["hr_hist_bpm"] is None or row["power_hist_w"] is None:
        return frozen_zones_and_hr(metrics)
    params = hr_parameters_from_estimates(values, metrics.get("hr_estimates") or {})
    hist = RideHistograms((row["hr_hist_bpm"], row["hr_hist_s"]), (row["power_hist_w"], row["power_hist_s"]))
    return rescored_zones_and_hr(metrics, hist, params)


def _rescored_w_prime(
    row: dict[str, Any], metrics: dict[str, Any], values: dict[str, DatedValue | str]
) -> dict[str, Any]:
    """The ride's W′ balance low point with the CP and W′ valid at its start, from its stored 1 Hz power.

    A ride stored without the series (before `memory.schema` v38) keeps the figure of its debrief and says so
    (``w_prime_status = 'as_debriefed'``); with no CP and W′ valid at its start it has none.
    """
    if row["power_1hz_w"] is None:
        if metrics.get("w_prime_balance") is None:
            return metrics
        return {
            **metrics,
            "w_prime_status": "as_debriefed",
            "w_prime_note": "stored before rides kept their 1 Hz power: its W' balance is that of its debrief, "
            "with the CP and W' valid then",
        }
    cp, w_prime = values.get("cp_w"), values.get("w_prime_j")
    figures = None
    if isinstance(cp, DatedValue) and isinstance(w_prime, DatedValue) and cp.value > 0 and w_prime.value > 0:
        power = unpack_power_series(row["power_1hz_w"])
        figures = w_prime_figures(power, cp.value, w_prime.value, cp.source)
    return {**metrics, "w_prime_balance": figures}


async def propose_value(
    conn: AsyncConnection[DictRow], athlete_id: str, key: str, value: Any, evidence: dict[str, Any]
) -> int:
    """Propose a value to the athlete (a pending fact proposal with its evidence); a pending one of the key is reused.

    Returns:
        The proposal id.
    """
    cur = await conn.execute(
        """SELECT id FROM fact_proposals WHERE athlete_id = %s AND fact_key = %s AND status = 'pending'
           ORDER BY id LIMIT 1 FOR UPDATE""",
        (athlete_id, key),
    )
    row = await cur.fetchone()
    if row is not None:
        await conn.execute(
            "UPDATE fact_proposals SET value = %s, evidence = %s WHERE id = %s",
            (Jsonb(value), Jsonb(evidence), row["id"]),
        )
        return int(row["id"])
    cur = await conn.execute(
        "INSERT INTO fact_proposals (athlete_id, fact_key, value, evidence) VALUES (%s, %s, %s, %s) RETURNING id",
        (athlete_id, key, Jsonb(value), Jsonb(evidence)),
    )
    inserted = await cur.fetchone()
    assert inserted is not None
    return int(inserted["id"])


async def confirm_value(
    conn: AsyncConnection[DictRow],
    athlete_id: str,
    key: str,
    value: Any,
    valid_from: datetime,
    evidence: dict[str, Any],
) -> list[dict[str, Any]]:
    """Record a value the athlete confirmed and re-score the rides it affects (from ``valid_from`` on).

    Returns:
        The re-scored rides (`recompute_scores`).
    """
    await record_value(conn, athlete_id, key, value, "confirmed", valid_from, evidence)
    return await recompute_scores(conn, athlete_id, valid_from) if key in SCORING_KEYS else []


async def set_value(
    athletes: AthleteStore, athlete_id: str, key: str, value: Any, valid_from: datetime | None = None
) -> list[dict[str, Any]]:
    """The athlete sets a value (``coach facts --set``), in one transaction.

    It is written as a fact (source ``user``) and, for ``VALUE_KEYS``, as a confirmed dated value from
    ``valid_from`` (default now); the rides it affects are re-scored.

    Args:
        athletes: the athlete store: the value is written in its `facts_transaction` (the one facts write
            path, whose commit drops the athlete's cached facts).
        athlete_id: the athlete.
        key: a fact key (`memory.athlete_store.validate_fact`).
        value: its value; for ``sex`` ``male``/``female``, for ``timezone`` an IANA name, else a positive number
            for the numeric ``VALUE_KEYS``.
        valid_from: from when it holds (timezone-aware).

    Returns:
        The re-scored rides (`recompute_scores`).

    Raises:
        InvalidAthleteIdError, InvalidFactError: bad id, key or value.
    """
    validate_athlete_id(athlete_id)
    validate_fact(key, value)
    if key in VALUE_KEYS:
        _check_value(key, value)
    async with athletes.facts_transaction(athlete_id) as tx:
        conn = tx.conn
        await tx.apply([FactChange(key, value)], "user")
        if key not in VALUE_KEYS:
            return []
        return await confirm_value(
            conn, athlete_id, key, value, valid_from or datetime.now(UTC), {"set_by": "athlete (coach facts --set)"}
        )


def _check_value(key: str, value: Any) -> None:
    if key == "sex":
        ok = value in ("male", "female")
    elif key == "timezone":
        try:
            validate_timezone(str(value))
            ok = isinstance(value, str)
        except ValueError:
            ok = False
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if not ok:
        expected = {"sex": "'male' or 'female'", "timezone": "an IANA time zone name"}.get(key, "a positive number")
        raise InvalidFactError(f"invalid value for {key!r}: {value!r}; expected {expected}")
