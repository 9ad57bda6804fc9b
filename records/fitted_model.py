"""CP and W′ fitted from the athlete's rides, stored as dated athlete values (source ``fitted``) and proposed.

Rules (issue 11, "A fitted model"; sources in `training.cp_model`):

* The fitted CP and W′ valid from a ride's start are the model (`training.athlete_model.fit_window`: the CP/W′
  fit to the envelope of the curves of the primary rides of the ``FIT_WINDOW_DAYS`` (90) days up to and
  including that ride, refused when the rides do not support it) with the fit as evidence (rule, CP ± SE, R²,
  eFTP, days of efforts, the rides). Stored in ``athlete_values`` (`records.athlete_values.record_value`); where
  the window no longer supports a model the fitted rows of that moment are removed.
* A stored ride changes the windows of the rides of the 90 days from its start on: `refresh_fitted_cp` refits
  them all, so the stored values depend only on the rides stored, never on the order they arrived in.
* Precedence stays confirmed > device > fitted (`training.scoring.value_at`); a debrief's W′ balance uses the
  values valid at the ride's start (`records.athlete_values.values_at`).
* The coach proposes the latest fitted CP (with its W′ in the evidence, one proposal, one
  `records.proposals.decide_proposal`) when no confirmed or device CP holds then, or when the fitted CP or W′
  differs from the one that holds by more than 5 % (``CP_PROPOSAL_MARGIN``, the margin the eFTP rule uses for a
  stale FTP). Accepting it confirms both from the fit's ``valid_from``.

eFTP is not stored here: it scores rides, so it is fitted per ride to the 90 days *before* the ride (the ride
itself excluded, `training.athlete_model.choose_ftp`); the stored CP fit carries its ``eftp_w`` as evidence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from records.athlete_values import dated_values, list_values, propose_value, record_value
from records.best_curve import curves_between
from training.athlete_model import FIT_WINDOW_DAYS
from training.cp_windows import trailing_window_fits
from training.scoring import EFTP_STALE_MARGIN, value_at

CP_KEYS = ("cp_w", "w_prime_j")
"""The dated values the CP model gives."""

CP_PROPOSAL_MARGIN = EFTP_STALE_MARGIN
"""A fitted CP or W′ more than 5 % away from the confirmed or device value in force is proposed."""


async def refresh_fitted_cp(conn: AsyncConnection[DictRow], athlete_id: str, since: datetime) -> int:
    """Refit the stored CP/W′ of every primary ride whose 90-day window holds ``since`` (rules above).

    The windows' envelopes come from one matrix (`training.cp_windows.trailing_window_fits`, the same fits as each
    window alone) and the stored fitted rows of those moments are read once: only the rows whose value changes
    are written (`record_value` writes nothing else either), and the rows of a window that no longer supports a
    model are removed.

    Args:
        conn: a connection in the caller's transaction.
        athlete_id: the athlete (checked by the caller).
        since: the start of the ride stored (or removed).

    Returns:
        The number of fitted rows inserted, changed or removed.
    """
    window = timedelta(days=FIT_WINDOW_DAYS)
    curves = await curves_between(conn, athlete_id, since - window, since + window, upper_inclusive=True)
    first = next((i for i, c in enumerate(curves) if c[1] >= since), len(curves))
    cur = await conn.execute(
        """SELECT key, value, valid_from FROM athlete_values WHERE athlete_id = %s AND source = 'fitted'
           AND key = ANY(%s) AND valid_from >= %s AND valid_from <= %s""",
        (athlete_id, list(CP_KEYS), since, since + window),
    )
    stored = {(r["key"], r["valid_from"]): r["value"] for r in await cur.fetchall()}
    changed = 0
    for j, fitted in trailing_window_fits(curves, first):
        ride_id, start, _ = curves[j]
        if fitted is None:
            if any((key, start) in stored for key in CP_KEYS):
                cur = await conn.execute(
                    """DELETE FROM athlete_values WHERE athlete_id = %s AND source = 'fitted' AND key = ANY(%s)
                       AND valid_from = %s""",
                    (athlete_id, list(CP_KEYS), start),
                )
                changed += cur.rowcount
                for key in CP_KEYS:
                    stored.pop((key, start), None)
            continue
        fit, evidence = fitted
        evidence = {
            **evidence,
            "rule": f"CP model fitted to the bests (2-20 min) of the {FIT_WINDOW_DAYS} days up to this ride",
            "ride_id": ride_id,
        }
        for key, value in (("cp_w", round(fit.cp_w, 1)), ("w_prime_j", round(fit.w_prime_j))):
            if stored.get((key, start)) == value:
                continue  # record_value would leave the row as it is
            changed += await record_value(conn, athlete_id, key, value, "fitted", start, evidence)
            stored[(key, start)] = value
    return changed


async def propose_fitted_cp(conn: AsyncConnection[DictRow], athlete_id: str) -> int | None:
    """Propose the athlete's latest fitted CP and W′ when the values in force then disagree (rules above).

    Returns:
        The proposal id, or None when nothing is proposed.
    """
    rows = await list_values(conn, athlete_id)
    fitted = {key: [v for v in dated_values(rows, key) if v.source == "fitted"] for key in CP_KEYS}
    if not fitted["cp_w"] or not fitted["w_prime_j"]:
        return None
    cp, w_prime = fitted["cp_w"][-1], fitted["w_prime_j"][-1]
    if cp.valid_from != w_prime.valid_from:
        return None
    held = {
        key: value_at((v for v in dated_values(rows, key) if v.source != "fitted"), cp.valid_from) for key in CP_KEYS
    }
    in_force = {key: v.value for key, v in held.items() if v is not None}
    new = {"cp_w": cp.value, "w_prime_j": w_prime.value}
    if in_force and all(
        key in in_force and abs(new[key] - in_force[key]) <= CP_PROPOSAL_MARGIN * in_force[key] for key in CP_KEYS
    ):
        return None
    evidence: dict[str, Any] = {
        **cp.evidence,
        "w_prime_j": round(w_prime.value),
        "valid_from": cp.valid_from.isoformat(),
        "in_force": in_force,
        "proposal_rule": f"no confirmed or device CP/W' holds, or the fitted ones differ by more than "
        f"{CP_PROPOSAL_MARGIN:.0%}",
    }
    return await propose_value(conn, athlete_id, "cp_w", round(cp.value), evidence)
